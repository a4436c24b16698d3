/// The constant feature 1 has no gradient.
extension SlayLaplacePolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int { 0 }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {}
}
