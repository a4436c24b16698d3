#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ELU+1 (MATH.md §4, "Transformers are RNNs"): φ(x) = elu(x) + 1, i.e. x + 1 for x > 0 and e^x
/// otherwise, elementwise. m = d, no parameters, features > 0 (so the normaliser is positive).
public final class EluPlusOneFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "elu+1")
    }

    public var featureDim: Int { configuration.headDim }
    public var isPositive: Bool { true }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<(rows * configuration.headDim) {
            let x = input[i]
            output[i] = x > 0 ? x + 1 : expf(x)
        }
    }
}
