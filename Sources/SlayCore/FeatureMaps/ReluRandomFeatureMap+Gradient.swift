/// φ(x) = max(ωᵀx, 0)/√m: the product gradient is g/√m where ωᵀx > 0, then back through ω.
extension ReluRandomFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { projectionGradientScratch(rows: rows) }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let products = recomputeProducts(head: head, input: input, rows: rows, omega: parameters, scratch: scratch)
        let g = productGradientBlock(rows: rows, scratch: scratch)
        let scale = Float(1 / Double(featureDim).squareRoot())
        for i in 0..<(rows * featureDim) { g[i] = products[i] > 0 ? outputGradient[i] * scale : 0 }
        finishProjectionGradient(head: head, input: input, rows: rows, omega: parameters, inputGradient: inputGradient,
                                 parameterGradient: parameterGradient, scratch: scratch)
    }
}
