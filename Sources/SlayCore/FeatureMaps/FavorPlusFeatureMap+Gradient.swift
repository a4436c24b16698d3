#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// FAVOR+ φ_j = exp(e_j − shift)/√m, e_j = d^(−1/4) ω_jᵀx − ‖x‖²/(2√d), shift = max_j e_j for query
/// rows (0 for keys). With G_j = g_j φ_j (0 where the forward clamped e_j − shift to ±88, which
/// is constant there), the query shift adds −(Σ_j G_j) to the row's largest exponent (its
/// derivative, through the argmax, that the forward's first maximum picks), so
///   dx = d^(−1/4) ω G − (x/√d) Σ_j G_j,  dω_h += d^(−1/4) x Gᵀ.
/// For query rows Σ_j G_j = 0 after the shift term: the normalising factor cancels exactly.
extension FavorPlusFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { projectionGradientScratch(rows: rows) }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let (d, m) = (headDim, featureDim)
        let products = recomputeProducts(head: head, input: input, rows: rows, omega: parameters, scratch: scratch)
        let g = productGradientBlock(rows: rows, scratch: scratch)
        let inputScale = Float(1 / Double(d).squareRoot().squareRoot())
        let outputScale = Float(1 / Double(m).squareRoot())
        var sums = [Double](repeating: 0, count: rows)
        for i in 0..<rows {
            let x = input + i * d
            var sumSquares = 0.0
            for c in 0..<d { let v = Double(x[c]); sumSquares += v * v }
            let halfNorm = Float(sumSquares / (2 * Double(d).squareRoot()))
            let e = products + i * m
            var largest = -Float.infinity
            var argmax = 0
            for j in 0..<m {
                e[j] = inputScale * e[j] - halfNorm
                if e[j] > largest { largest = e[j]; argmax = j }
            }
            let shift = role == .query ? largest : 0
            let row = g + i * m
            var total = 0.0
            for j in 0..<m {
                let exponent = e[j] - shift
                let clamped = exponent > 88 || exponent < -88
                let value = clamped ? 0 : outputGradient[i * m + j] * outputScale * expf(exponent)
                row[j] = value
                total += Double(value)
            }
            if role == .query { row[argmax] -= Float(total); total = 0 }
            sums[i] = total
            // The d^(−1/4) of ωᵀx' folds into the product gradient.
            for j in 0..<m { row[j] *= inputScale }
        }
        finishProjectionGradient(head: head, input: input, rows: rows, omega: parameters, inputGradient: inputGradient,
                                 parameterGradient: parameterGradient, scratch: scratch)
        let normScale = 1 / Double(d).squareRoot()
        for i in 0..<rows where sums[i] != 0 {
            for c in 0..<d { inputGradient[i * d + c] -= Float(Double(input[i * d + c]) * normScale * sums[i]) }
        }
    }
}
