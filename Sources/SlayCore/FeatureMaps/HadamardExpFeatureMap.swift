#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ELA Hadamard Exp kernel (docs/math.md §2, the paper's default): k(a, b) = Σ_f e^{a_f + b_f}, exact
/// with m = d features φ(a) = exp(a), ψ(b) = exp(b), the same on both sides. No parameters;
/// features > 0.
///
/// These raw features are what `features` (and so slay_feature_map_apply) returns, and they
/// overflow to inf once an entry exceeds ~88.7. Attention never multiplies them: the engine
/// hands this kind to the rescaled-exp form (Forms/RescaledExpForm.swift), which evaluates the
/// same kernel with per-query and per-feature-dimension running maxima, so every exponent it
/// exponentiates is ≤ 0.
public final class HadamardExpFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "ela-hadamard-exp")
    }

    public var featureDim: Int { configuration.headDim }
    public var isPositive: Bool { true }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        // Scalar libm expf: exact to an ulp over the whole range, inf past ~88.7 and NaN for NaN
        // (the vectorised exp clamps, which would hide the overflow this map documents).
        for i in 0..<(rows * configuration.headDim) { output[i] = expf(input[i]) }
    }
}
