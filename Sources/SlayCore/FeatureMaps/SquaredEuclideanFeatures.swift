/// The row routine shared by the two ELA squared-Euclidean maps (docs/math.md §2). Both expand
/// ‖a ± b‖² = ‖a‖² ± 2a·b + ‖b‖² into one dot product of d + 2 features:
///   query φ(a) = [a; ‖a‖²; 1],  key ψ(b) = [keyScale·b; 1; ‖b‖²],  keyScale = ±2,
/// so φ(a)·ψ(b) = ±2a·b + ‖a‖² + ‖b‖² exactly (up to fp32 rounding of the products).
enum SquaredEuclideanFeatures {
    /// ‖x‖² of one row, accumulated in double so that neither tiny nor large entries lose
    /// precision before the single rounding to float (overflow to inf only past ‖x‖ ≈ 1.8e19).
    @inline(__always)
    static func squaredNorm(_ x: UnsafePointer<Float>, _ d: Int) -> Double {
        var sum = 0.0
        for i in 0..<d { let v = Double(x[i]); sum += v * v }
        return sum
    }

    /// Features of `rows` rows [rows, d] into [rows, d + 2]. keyScale is ±2 and multiplies key
    /// rows exactly (a power of two), so the sign of the cross term is the only difference
    /// between the summation and subtraction kernels.
    static func map(role: FeatureRole, keyScale: Float, headDim d: Int, input: UnsafePointer<Float>, rows: Int,
                    output: UnsafeMutablePointer<Float>) {
        let m = d + 2
        for r in 0..<rows {
            let x = input + r * d
            let out = output + r * m
            let norm = Float(squaredNorm(x, d))
            switch role {
            case .query:
                for i in 0..<d { out[i] = x[i] }
                out[d] = norm
                out[d + 1] = 1
            case .key:
                for i in 0..<d { out[i] = keyScale * x[i] }
                out[d] = 1
                out[d + 1] = norm
            }
        }
    }
}
