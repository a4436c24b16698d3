/// poly = W y with y_p = (a_p·û)² and W = (K_AA + λI)^{−1/2} symmetric: ∂y = W ∂poly, then as
/// the anchor polynomial. The anchors' gradient would also flow through W(A) (the derivative of
/// an inverse matrix square root), which is not implemented: ∂/∂anchors is refused.
extension SlayNystromPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * width) + projection.squaredProjectionSpare(rows: rows)
    }

    var parameterGradientUnavailable: String? {
        "the Nyström polynomial's anchors have no gradient (it would flow through the whitening (K_AA + λI)^(-1/2)); request the gradients of q, k, v and the other inputs only"
    }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let p = width
        let whitened = spare
        // poly[i, :] = y[i, :] W, so ∂y[i, :] = ∂poly[i, :] Wᵀ = ∂poly[i, :] W.
        Gemm.multiply(m: rows, n: p, k: p, a: polyGradient, rowStrideA: p, columnStrideA: 1,
                      b: whitening.baseAddress, rowStrideB: 1, columnStrideB: p,
                      c: whitened, ldc: p, accumulate: false, workspace: gemmSpace)
        projection.addSquaredProjectionGradient(units, rows: rows, scale: 1, polyGradient: whitened,
                                                unitGradient: unitGradient, anchorGradient: nil,
                                                spare: spare + ScratchBuffer.footprint(rows * p), gemmSpace: gemmSpace)
    }
}
