/// ReLU random features (docs/math.md §4; the SLAY reference's "performer"): φ(x) = max(ωᵀx, 0) / √m
/// with i.i.d. Gaussian ω (H, d, m) from stream 4 of the generator. E[φ(q)·φ(k)] is the
/// first-order arc-cosine kernel ‖q‖‖k‖(sin θ + (π − θ) cos θ)/(2π). Features are ≥ 0.
public final class ReluRandomFeatureMap: RandomProjectionFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    var projection: RandomProjection
    public internal(set) var identity: UInt64 = 0
    var kindName: String { "relu-random" }

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateRandomFeatures()
        self.configuration = configuration
        let c = configuration
        let omega = try ParameterGenerator(seed: c.seed).makeNormals(stream: ParameterGenerator.reluRandomStream,
                                                                     count: c.numHeads * c.headDim * c.featureCount, what: "omega")
        projection = RandomProjection(headDim: c.headDim, numHeads: c.numHeads, featureCount: c.featureCount, omega: omega)
        rebuildIdentity()
    }

    public var isPositive: Bool { true }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let m = featureDim
        let products = projection.project(head: head, input: input, rows: rows, scratch: scratch)
        let scale = Float(1 / Double(m).squareRoot())
        for i in 0..<(rows * m) { output[i] = products[i] < 0 ? 0 : products[i] * scale }
    }
}
