/// û = x/‖x‖ for rows of a block, the input every spherical (Yat) map starts from.
public enum UnitDirections {
    /// `rows` rows of width d from `input` into `units`. The norm is computed in double, so huge
    /// inputs do not overflow and tiny ones do not underflow; a zero row maps to 0 (it has no
    /// direction) and a row with NaN or inf stays non-finite (VectorProducts.unitRows).
    public static func normalise(_ input: UnsafePointer<Float>, rows: Int, width d: Int,
                                 into units: UnsafeMutablePointer<Float>) {
        VectorMath.unitRows(input, rows: rows, width: d, into: units)
    }
}
