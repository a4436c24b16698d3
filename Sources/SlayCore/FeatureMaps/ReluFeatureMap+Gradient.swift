/// φ(x) = max(x, 0): the gradient passes where x > 0 (0 at x = 0, the subgradient the forward's
/// `x < 0 ? 0 : x` has on its flat side).
extension ReluFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<(rows * headDim) { inputGradient[i] = input[i] > 0 ? outputGradient[i] : 0 }
    }
}
