/// qk_l2norm's x̂ = x / r with r = sqrt(Σ x² + 10⁻⁶) (fla's use_qk_l2norm_in_kernel, the
/// forward's `FormTask.normaliseRows`), applied to the map's features before the SLA gates.
/// r > 0 everywhere, so x̂ is smooth and its backward is defined at x = 0 the way the forward is:
/// ∂L/∂x = (∂L/∂x̂ − x̂ (x̂·∂L/∂x̂)) / r, which is ∂L/∂x̂ / 10⁻³ at x = 0.
enum RowNormalisation {
    /// Each row ← row / r in place (bit for bit the forward's arithmetic), 1/r into `inverseNorms`.
    static func forward(_ block: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                        inverseNorms: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let row = block + i * width
            var sum: Float = 0
            for f in 0..<width { sum += row[f] * row[f] }
            let inverse = 1 / (sum + 1e-6).squareRoot()
            for f in 0..<width { row[f] *= inverse }
            inverseNorms[i] = inverse
        }
    }

    /// `gradient` holds ∂L/∂x̂ on entry and ∂L/∂x on return, from x̂ (`normalised`) and 1/r.
    static func backward(normalised: UnsafePointer<Float>, inverseNorms: UnsafePointer<Float>,
                         gradient: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for i in 0..<rows {
            let (unit, row) = (normalised + i * width, gradient + i * width)
            var radial: Float = 0
            for f in 0..<width { radial += unit[f] * row[f] }
            let inverse = inverseNorms[i]
            for f in 0..<width { row[f] = (row[f] - unit[f] * radial) * inverse }
        }
    }
}
