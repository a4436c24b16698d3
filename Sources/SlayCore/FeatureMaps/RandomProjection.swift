/// ω of a random-feature map, (H, d, m) row-major, and the per-head product X·ω_h that FAVOR+,
/// ReLU random and random Fourier features all start from.
struct RandomProjection {
    let headDim: Int
    let numHeads: Int
    let featureCount: Int
    var omega: HeapArray<Float>

    var shape: [Int] { [numHeads, headDim, featureCount] }

    /// Scratch of `project`: the [rows, m] product plus the GEMM workspace.
    func scratchFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * featureCount) + Gemm.workspaceFloats
    }

    /// products[i, j] = x_i · ω[head, :, j] for `rows` contiguous rows; returns the product block
    /// (at the start of `scratch`).
    func project(head: Int, input: UnsafePointer<Float>, rows: Int,
                 scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let (d, m) = (headDim, featureCount)
        let products = scratch
        let gemmSpace = scratch + ScratchBuffer.footprint(rows * m)
        omega.withUnsafeBufferPointer { buffer in
            Gemm.multiply(m: rows, n: m, k: d, a: input, rowStrideA: d, columnStrideA: 1,
                          b: buffer.baseAddress! + head * d * m, rowStrideB: m, columnStrideB: 1,
                          c: products, ldc: m, accumulate: false, workspace: gemmSpace)
        }
        return products
    }
}

/// The maps built on a RandomProjection (FAVOR+, ReLU random, random Fourier features): their
/// dimensions, scratch, "omega" parameter API and identity come from here; each map file keeps
/// only its generator and its formula (random Fourier features add their "bias" on top).
protocol RandomProjectionFeatureMap: FeatureMap {
    var configuration: ClassicMapConfiguration { get }
    var projection: RandomProjection { get set }
    var identity: UInt64 { get set }
    /// The kind name hashed into the identity.
    var kindName: String { get }
}

extension RandomProjectionFeatureMap {
    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var featureDim: Int { configuration.featureCount }

    public var parameterNames: [String] { ["omega"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "omega" ? projection.shape : nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { name == "omega" ? projection.omega : nil }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        projection.omega = try FeatureMapParameters.checked(name, of: self, values: values)
        rebuildIdentity()
    }

    public func scratchFloats(rows: Int) -> Int { projection.scratchFloats(rows: rows) }

    /// Kind, dimensions, ω and any further arrays (`extra`), in that order.
    func rebuildIdentity(extra: HeapArray<Float>? = nil) {
        var hasher = IdentityHasher()
        hasher.combine(kindName)
        hasher.combine(headDim); hasher.combine(numHeads); hasher.combine(featureDim)
        hasher.combine(projection.omega)
        if let extra { hasher.combine(extra) }
        identity = hasher.value
    }
}
