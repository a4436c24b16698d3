/// ReLU (MATH.md §4): φ(x) = max(x, 0) elementwise. m = d, no parameters, features ≥ 0. A row
/// with no positive entry has φ = 0: its output is 0 / (0 + δ) = 0, not an error.
public final class ReluFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        var hasher = IdentityHasher()
        hasher.combine("relu")
        hasher.combine(configuration.headDim); hasher.combine(configuration.numHeads)
        identity = hasher.value
    }

    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var featureDim: Int { configuration.headDim }
    public var isPositive: Bool { true }

    public var parameterNames: [String] { [] }
    public func parameterShape(_ name: String) -> [Int]? { nil }
    public func parameterValues(_ name: String) -> [Float]? { nil }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        _ = try FeatureMapParameters.checked(name, of: self, values: values)
    }

    public func scratchFloats(rows: Int) -> Int { 0 }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        // NaN inputs stay NaN (max would hide them), as in every other map.
        for i in 0..<(rows * configuration.headDim) { output[i] = input[i] < 0 ? 0 : input[i] }
    }
}
