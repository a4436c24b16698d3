/// The part every random-projection map's gradient shares: products X·ω_h recomputed from the
/// flat parameters, and the backward of that product once a map has turned its feature gradient
/// into a product gradient.
extension RandomProjectionFeatureMap {
    /// Scratch: the [rows, m] products, the [rows, m] product gradient, the projection's spare.
    func projectionGradientScratch(rows: Int) -> Int {
        2 * ScratchBuffer.footprint(rows * featureDim) + FeatureGradientParts.projectionSpare(headDim: headDim, features: featureDim)
            + Gemm.workspaceFloats
    }

    /// products[i, j] = x_i · ω[head, :, j] with ω read from the flat parameters at `omegaOffset`,
    /// into the start of `scratch`.
    func recomputeProducts(head: Int, input: UnsafePointer<Float>, rows: Int, omega: UnsafePointer<Float>,
                           scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let (d, m) = (headDim, featureDim)
        let products = scratch
        let gemmSpace = scratch + 2 * ScratchBuffer.footprint(rows * m) + FeatureGradientParts.projectionSpare(headDim: d, features: m)
        Gemm.multiply(m: rows, n: m, k: d, a: input, rowStrideA: d, columnStrideA: 1,
                      b: omega + head * d * m, rowStrideB: m, columnStrideB: 1,
                      c: products, ldc: m, accumulate: false, workspace: gemmSpace)
        return products
    }

    /// The product-gradient block in scratch (after the products).
    func productGradientBlock(rows: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        scratch + ScratchBuffer.footprint(rows * featureDim)
    }

    /// dX = G ω_hᵀ, and dω_h += Xᵀ G when parameter gradients are wanted (ω at offset 0).
    func finishProjectionGradient(head: Int, input: UnsafePointer<Float>, rows: Int, omega: UnsafePointer<Float>,
                                  inputGradient: UnsafeMutablePointer<Float>,
                                  parameterGradient: UnsafeMutablePointer<Double>?, scratch: UnsafeMutablePointer<Float>) {
        let (d, m) = (headDim, featureDim)
        FeatureGradientParts.projection(input: input, rows: rows, headDim: d, features: m, omega: omega + head * d * m,
                                        productGradient: productGradientBlock(rows: rows, scratch: scratch),
                                        inputGradient: inputGradient,
                                        omegaGradient: parameterGradient.map { $0 + head * d * m },
                                        spare: scratch + 2 * ScratchBuffer.footprint(rows * m))
    }
}
