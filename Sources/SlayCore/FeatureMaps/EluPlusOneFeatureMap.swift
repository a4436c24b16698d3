#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ELU+1 (docs/math.md §4, "Transformers are RNNs"): φ(x) = elu(x) + 1, i.e. x + 1 for x > 0 and e^x
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
        let count = rows * configuration.headDim
        // elu(x) + 1 = max(x, 0) + e^min(x, 0), without a branch per element (on random signs one
        // mispredicts every other element and dominated the cost). Swift's min and max return the
        // NaN operand, so NaN stays NaN; e^min(x, 0) ≥ e^−88 ≈ 6e-39 for x ≤ −88 (immaterial).
        for i in 0..<count { output[i] = Swift.min(input[i], 0) }
        VectorMath.expShiftedClamped(output, count: count, shift: 0, limit: 88, scale: 1, output: output)
        for i in 0..<count { output[i] += Swift.max(input[i], 0) }
    }
}
