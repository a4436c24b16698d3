/// ‖a + b‖² features: see SquaredEuclideanFeatures.gradient.
extension SummationSquaredEuclideanFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        SquaredEuclideanFeatures.gradient(role: role, keyScale: 2, headDim: headDim, input: input, rows: rows,
                                          outputGradient: outputGradient, inputGradient: inputGradient)
    }
}
