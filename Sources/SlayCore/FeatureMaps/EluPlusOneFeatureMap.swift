#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ELU+1 (MATH.md §4, "Transformers are RNNs"): φ(x) = elu(x) + 1, i.e. x + 1 for x > 0 and e^x
/// otherwise, elementwise. m = d, no parameters, features > 0 (so the normaliser is positive).
public final class EluPlusOneFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        var hasher = IdentityHasher()
        hasher.combine("elu+1")
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
        for i in 0..<(rows * configuration.headDim) {
            let x = input[i]
            output[i] = x > 0 ? x + 1 : expf(x)
        }
    }
}
