/// ω of a random-feature map, (H, d, m) row-major, and the per-head product X·ω_h that FAVOR+,
/// ReLU random and random Fourier features all start from.
struct RandomProjection {
    let headDim: Int
    let numHeads: Int
    let featureCount: Int
    var omega: [Float]

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
