/// ELA Summation squared-Euclidean kernel (docs/math.md §2): k(a, b) = ‖a + b‖², exact with d + 2
/// features φ(a) = [a; ‖a‖²; 1] (query), ψ(b) = [2b; 1; ‖b‖²] (key). ASYMMETRIC: the role
/// selects the side. No parameters. The kernel is ≥ 0 but the features are signed, so
/// `isPositive` is false; the normaliser Σ‖q + k_j‖² is > 0 unless every key is −q.
public final class SummationSquaredEuclideanFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "ela-sum-sqeuclid")
    }

    public var featureDim: Int { configuration.headDim + 2 }
    public var isPositive: Bool { false }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        SquaredEuclideanFeatures.map(role: role, keyScale: 2, headDim: configuration.headDim, input: input,
                                     rows: rows, output: output)
    }
}
