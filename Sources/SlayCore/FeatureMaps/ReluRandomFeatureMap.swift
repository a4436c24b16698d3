/// ReLU random features (MATH.md §4; the SLAY reference's "performer"): φ(x) = max(ωᵀx, 0) / √m
/// with i.i.d. Gaussian ω (H, d, m) from stream 4 of the generator. E[φ(q)·φ(k)] is the
/// first-order arc-cosine kernel ‖q‖‖k‖(sin θ + (π − θ) cos θ)/(2π). Features are ≥ 0.
public final class ReluRandomFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    private var projection: RandomProjection
    public private(set) var identity: UInt64 = 0

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateRandomFeatures()
        self.configuration = configuration
        let c = configuration
        let omega = ParameterGenerator(seed: c.seed).normals(stream: ParameterGenerator.reluRandomStream,
                                                             count: c.numHeads * c.headDim * c.featureCount)
        projection = RandomProjection(headDim: c.headDim, numHeads: c.numHeads, featureCount: c.featureCount, omega: omega)
        rebuildIdentity()
    }

    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var featureDim: Int { configuration.featureCount }
    public var isPositive: Bool { true }

    public var parameterNames: [String] { ["omega"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "omega" ? projection.shape : nil }
    public func parameterValues(_ name: String) -> [Float]? { name == "omega" ? projection.omega : nil }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        projection.omega = try FeatureMapParameters.checked(name, of: self, values: values)
        rebuildIdentity()
    }

    private func rebuildIdentity() {
        var hasher = IdentityHasher()
        hasher.combine("relu-random")
        hasher.combine(headDim); hasher.combine(numHeads); hasher.combine(featureDim)
        hasher.combine(projection.omega)
        identity = hasher.value
    }

    public func scratchFloats(rows: Int) -> Int { projection.scratchFloats(rows: rows) }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let m = featureDim
        let products = projection.project(head: head, input: input, rows: rows, scratch: scratch)
        let scale = Float(1 / Double(m).squareRoot())
        for i in 0..<(rows * m) { output[i] = products[i] < 0 ? 0 : products[i] * scale }
    }
}
