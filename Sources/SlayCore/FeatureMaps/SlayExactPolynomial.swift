/// SLAY's exact polynomials: vec(ûûᵀ), so poly(q̂)·poly(k̂) = (q̂·k̂)² exactly. Packed
/// (SLAY_POLY_EXACT): the upper triangle i ≤ j row-major, off-diagonals × √2, d(d+1)/2 features.
/// Full (SLAY_POLY_EXACT_FULL): all d² products. No parameters; features signed.
public struct SlayExactPolynomial: SlayPolynomialEstimator {
    public let headDim: Int
    public let packed: Bool

    public var width: Int { packed ? headDim * (headDim + 1) / 2 : headDim * headDim }
    public var isPositive: Bool { false }

    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, pf) = (headDim, width)
        if packed {
            let root2 = Float(2.0.squareRoot())
            for i in 0..<rows {
                let u = units + i * d
                var target = poly + i * pf
                for a in 0..<d {
                    target[0] = u[a] * u[a]
                    let ua = u[a] * root2
                    for b in (a + 1)..<max(a + 1, d) { target[b - a] = ua * u[b] }
                    target += d - a
                }
            }
        } else {
            for i in 0..<rows {
                let u = units + i * d
                let target = poly + i * pf
                for a in 0..<d { for b in 0..<d { target[a * d + b] = u[a] * u[b] } }
            }
        }
    }

    /// (û_q·û_k)² from the unit rows: a rows × rows × d product instead of rows × rows × P'.
    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let d = headDim
        Gemm.multiply(m: rows, n: rows, k: d, a: query.units, rowStrideA: d, columnStrideA: 1,
                      b: key.units, rowStrideB: 1, columnStrideB: d, c: gram, ldc: rows,
                      accumulate: false, workspace: gemmSpace)
        for i in 0..<(rows * rows) { output[i] *= gram[i] * gram[i] }
    }
}
