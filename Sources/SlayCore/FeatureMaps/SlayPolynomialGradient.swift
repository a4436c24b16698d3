/// The reverse-mode derivative of a SLAY polynomial estimator (one `+Gradient` file per
/// estimator): from ∂L/∂poly of a block of unit rows, ∂L/∂û (added) and ∂L/∂(its parameters).
protocol SlayPolynomialGradient {
    /// Spare floats `addGradient` needs for `rows` rows.
    func gradientSpareFloats(rows: Int) -> Int

    /// unitGradient[rows, d] += (∂poly/∂û)ᵀ polyGradient[rows, width]; when `parameterGradient`
    /// is not nil, ∂L/∂(the estimator's parameter arrays, flat in its `parameterNames` order) is
    /// added there (in double). `gemmSpace` holds Gemm.workspaceFloats.
    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>)

    /// Why the estimator's parameters have no gradient (nil when they have one).
    var parameterGradientUnavailable: String? { get }

    /// Doubles the estimator accumulates over all rows beyond its parameter arrays (0: none),
    /// see `FeatureMapGradient.parameterGradientExtraFloats`.
    var gradientExtraFloats: Int { get }
    /// Adds this block's rows to the accumulation space `extra` (only when parameter gradients are
    /// wanted); `spare` holds gradientSpareFloats(rows).
    func addExtraGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                          extra: UnsafeMutablePointer<Double>, spare: UnsafeMutablePointer<Float>,
                          gemmSpace: UnsafeMutablePointer<Float>)
    /// A function that adds an accumulated `extra`'s contribution to ∂L/∂(the estimator's
    /// arrays), prepared (and allocated) before the pass so that running it cannot fail.
    func extraGradientFinisher() throws -> ((UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void)?
}

extension SlayPolynomialGradient {
    var parameterGradientUnavailable: String? { nil }
    var gradientExtraFloats: Int { 0 }
    func addExtraGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                          extra: UnsafeMutablePointer<Double>, spare: UnsafeMutablePointer<Float>,
                          gemmSpace: UnsafeMutablePointer<Float>) {}
    func extraGradientFinisher() throws -> ((UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void)? { nil }
}

extension SlayAnchorProjection {
    /// Backward of poly_p = scale·(a_p·û)² given g = ∂L/∂poly: with t_p = a_p·û and
    /// G_p = 2·scale·t_p·g_p, ∂û += G A and ∂A += Gᵀ Û. `spare` holds 2·rows·P + P·d floats.
    func addSquaredProjectionGradient(_ units: UnsafePointer<Float>, rows: Int, scale: Float,
                                      polyGradient: UnsafePointer<Float>, unitGradient: UnsafeMutablePointer<Float>,
                                      anchorGradient: UnsafeMutablePointer<Double>?, spare: UnsafeMutablePointer<Float>,
                                      gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, count)
        let projections = spare
        Gemm.multiply(m: rows, n: p, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                      b: transposed.baseAddress, rowStrideB: p, columnStrideB: 1,
                      c: projections, ldc: p, accumulate: false, workspace: gemmSpace)
        for i in 0..<(rows * p) { projections[i] = 2 * scale * projections[i] * polyGradient[i] }
        Gemm.multiply(m: rows, n: d, k: p, a: projections, rowStrideA: p, columnStrideA: 1,
                      b: anchors.baseAddress, rowStrideB: d, columnStrideB: 1,
                      c: unitGradient, ldc: d, accumulate: true, workspace: gemmSpace)
        guard let anchorGradient else { return }
        let block = spare + ScratchBuffer.footprint(rows * p)
        Gemm.multiply(m: p, n: d, k: rows, a: projections, rowStrideA: 1, columnStrideA: p,
                      b: units, rowStrideB: d, columnStrideB: 1, c: block, ldc: d,
                      accumulate: false, workspace: gemmSpace)
        for i in 0..<(p * d) { anchorGradient[i] += Double(block[i]) }
    }

    func squaredProjectionSpare(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * count) + ScratchBuffer.footprint(count * headDim)
    }
}
