/// poly_p = (r1_p·û)(r2_p·û)/√P: with t_k = R_k û, G1 = g∘t2/√P and G2 = g∘t1/√P,
/// ∂û += G1 R1 + G2 R2 and ∂R_k += G_kᵀ Û ("maclaurin" (2, P, d)).
extension SlayMaclaurinPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int { 2 * ScratchBuffer.footprint(rows * polyDim) + ScratchBuffer.footprint(polyDim * headDim) }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, polyDim)
        let first = spare
        let second = spare + ScratchBuffer.footprint(rows * p)
        let block = second + ScratchBuffer.footprint(rows * p)
        for (half, target) in [(0, first), (1, second)] {
            Gemm.multiply(m: rows, n: p, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: transposed.baseAddress + half * p * d, rowStrideB: p, columnStrideB: 1,
                          c: target, ldc: p, accumulate: false, workspace: gemmSpace)
        }
        let scale = 1 / Float(p).squareRoot()
        for i in 0..<(rows * p) {
            let (t1, t2) = (first[i], second[i])
            first[i] = polyGradient[i] * t2 * scale
            second[i] = polyGradient[i] * t1 * scale
        }
        for (half, g) in [(0, first), (1, second)] {
            Gemm.multiply(m: rows, n: d, k: p, a: g, rowStrideA: p, columnStrideA: 1,
                          b: directions.baseAddress + half * p * d, rowStrideB: d, columnStrideB: 1,
                          c: unitGradient, ldc: d, accumulate: true, workspace: gemmSpace)
            guard let parameterGradient else { continue }
            Gemm.multiply(m: p, n: d, k: rows, a: g, rowStrideA: 1, columnStrideA: p,
                          b: units, rowStrideB: d, columnStrideB: 1, c: block, ldc: d,
                          accumulate: false, workspace: gemmSpace)
            let target = parameterGradient + half * p * d
            for i in 0..<(p * d) { target[i] += Double(block[i]) }
        }
    }
}
