/// Backward of the squared-Euclidean rows: query φ(a) = [a; ‖a‖²; 1] gives da = g_a + 2a·g_‖a‖²;
/// key ψ(b) = [keyScale·b; 1; ‖b‖²] gives db = keyScale·g_b + 2b·g_‖b‖².
extension SquaredEuclideanFeatures {
    static func gradient(role: FeatureRole, keyScale: Float, headDim d: Int, input: UnsafePointer<Float>, rows: Int,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>) {
        let m = d + 2
        for r in 0..<rows {
            let x = input + r * d
            let g = outputGradient + r * m
            let dx = inputGradient + r * d
            switch role {
            case .query:
                let radial = 2 * g[d]
                for i in 0..<d { dx[i] = g[i] + radial * x[i] }
            case .key:
                let radial = 2 * g[d + 1]
                for i in 0..<d { dx[i] = keyScale * g[i] + radial * x[i] }
            }
        }
    }
}
