/// ReLU (docs/math.md §4): φ(x) = max(x, 0) elementwise. m = d, no parameters, features ≥ 0. A row
/// with no positive entry has φ = 0: its output is 0 / (0 + δ) = 0, not an error, and also 0 with
/// δ = 0 (DenominatorMode.inverse maps a zero denominator to 0).
public final class ReluFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "relu")
    }

    public var featureDim: Int { configuration.headDim }
    public var isPositive: Bool { true }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        // NaN inputs stay NaN (max would hide them), as in every other map.
        for i in 0..<(rows * configuration.headDim) { output[i] = input[i] < 0 ? 0 : input[i] }
    }
}
