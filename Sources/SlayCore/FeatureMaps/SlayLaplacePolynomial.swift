/// No polynomial factor (SLAY_POLY_LAPLACE): one constant feature 1, so Ψ_r = √w_r·φ_PRF(û; s_r)
/// estimates Σ_r w_r e^{2 s_r x} ∝ C/(C − 2x), the Laplace-only kernel: a different kernel from
/// Yat, kept for comparison. No parameters; features > 0.
public struct SlayLaplacePolynomial: SlayPolynomialEstimator {
    public var width: Int { 1 }
    public var isPositive: Bool { true }

    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        poly.update(repeating: 1, count: rows)
    }

    /// The PRF Gram is the whole kernel.
    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {}
}
