/// φ(x) = (‖x‖² + 1)·[x̂; 1]: with a = ‖x‖² + 1 and g = [g_dir; g_1],
/// dx = 2x·(g_dir·x̂ + g_1) + a·(g_dir − x̂(x̂·g_dir))/‖x‖, in double per row. At x = 0 the
/// forward sets x̂ = 0 (the direction part jumps there), and the gradient is 0.
extension BlueprintFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let d = headDim
        for r in 0..<rows {
            let x = input + r * d
            let g = outputGradient + r * (d + 1)
            let dx = inputGradient + r * d
            let squared = SquaredEuclideanFeatures.squaredNorm(x, d)
            let norm = squared.squareRoot()
            guard norm > 0 else {
                for i in 0..<d { dx[i] = 0 }
                continue
            }
            let inverse = 1 / norm
            var radial = 0.0
            for i in 0..<d { radial += Double(g[i]) * Double(x[i]) * inverse }
            let magnitudeGradient = 2 * (radial + Double(g[d]))
            let directionScale = (squared + 1) * inverse
            for i in 0..<d {
                let xi = Double(x[i])
                dx[i] = Float(magnitudeGradient * xi + directionScale * (Double(g[i]) - xi * inverse * radial))
            }
        }
    }
}
