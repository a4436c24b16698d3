#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// φ(x) = √(2/m) cos(ωᵀx + b): the product (and bias) gradient is −√(2/m) sin(ωᵀx + b)·g.
/// Parameters: "omega" (H, d, m) then "bias" (H, m).
extension RandomFourierFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { projectionGradientScratch(rows: rows) }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let (d, m, h) = (headDim, featureDim, numHeads)
        let products = recomputeProducts(head: head, input: input, rows: rows, omega: parameters, scratch: scratch)
        let g = productGradientBlock(rows: rows, scratch: scratch)
        let biasOffset = h * d * m
        let bias = parameters + biasOffset + head * m
        let scale = Float((2 / Double(m)).squareRoot())
        for i in 0..<rows {
            for j in 0..<m {
                g[i * m + j] = -scale * sinf(products[i * m + j] + bias[j]) * outputGradient[i * m + j]
            }
        }
        if let parameterGradient {
            let target = parameterGradient + biasOffset + head * m
            for i in 0..<rows { for j in 0..<m { target[j] += Double(g[i * m + j]) } }
        }
        finishProjectionGradient(head: head, input: input, rows: rows, omega: parameters, inputGradient: inputGradient,
                                 parameterGradient: parameterGradient, scratch: scratch)
    }
}
