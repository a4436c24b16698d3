/// poly_p = (a_p·û)²/√P: see SlayAnchorProjection.addSquaredProjectionGradient; "anchors" get
/// their gradient as given (set_param does not renormalise them, so neither does the gradient).
extension SlayAnchorPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int { projection.squaredProjectionSpare(rows: rows) }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        projection.addSquaredProjectionGradient(units, rows: rows, scale: 1 / Float(width).squareRoot(),
                                                polyGradient: polyGradient, unitGradient: unitGradient,
                                                anchorGradient: parameterGradient, spare: spare, gemmSpace: gemmSpace)
    }
}
