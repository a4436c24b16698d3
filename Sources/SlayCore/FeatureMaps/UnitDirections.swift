/// û = x/‖x‖ for rows of a block, the input every spherical (Yat) map starts from.
public enum UnitDirections {
    /// `rows` rows of width d from `input` into `units`. The norm is computed in double, so huge
    /// inputs do not overflow and tiny ones do not underflow; a zero row maps to 0 (it has no
    /// direction) and a row with NaN or inf stays non-finite.
    public static func normalise(_ input: UnsafePointer<Float>, rows: Int, width d: Int,
                                 into units: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let x = input + i * d
            var sumSquares = 0.0
            for j in 0..<d { let v = Double(x[j]); sumSquares += v * v }
            let norm = sumSquares.squareRoot()
            let inverse = norm > 0 ? 1 / norm : 0
            for j in 0..<d { units[i * d + j] = Float(Double(x[j]) * inverse) }
        }
    }
}
