/// ELA safe blueprint kernel (docs/math.md §2): the paper's (a·b + 1)(‖a‖² + 1)(‖b‖² + 1) goes
/// negative for a·b < −1; the safe form uses unit directions,
///   k(a, b) = (â·b̂ + 1)·(‖a‖² + 1)·(‖b‖² + 1) ∈ [0, 2(‖a‖² + 1)(‖b‖² + 1)],
/// with â = a/‖a‖ and â = 0 for a = 0 (so k(0, b) = ‖b‖² + 1). It factorises exactly into d + 1
/// features, the same on both sides (symmetric, role ignored):
///   φ(x) = (‖x‖² + 1)·[x̂; 1],  φ(a)·φ(b) = (‖a‖² + 1)(‖b‖² + 1)(â·b̂ + 1).
/// No parameters. The features are signed (x̂ is), so `isPositive` is false although the kernel
/// is ≥ 0; it is 0 only for opposite directions (b̂ = −â).
public final class BlueprintFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "ela-blueprint")
    }

    public var featureDim: Int { configuration.headDim + 1 }
    public var isPositive: Bool { false }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let d = configuration.headDim
        for r in 0..<rows {
            let x = input + r * d
            let out = output + r * (d + 1)
            // Norm and scale in double: x/‖x‖ neither underflows for tiny rows nor overflows for
            // large ones, and each feature is rounded to float once.
            let squared = SquaredEuclideanFeatures.squaredNorm(x, d)
            let norm = squared.squareRoot()
            let magnitude = squared + 1
            // Zero rows have no direction (x̂ = 0). NaN rows fail `norm == 0` and stay NaN.
            let directionScale = norm == 0 ? 0 : magnitude / norm
            for i in 0..<d { out[i] = Float(Double(x[i]) * directionScale) }
            out[d] = Float(magnitude)
        }
    }
}
