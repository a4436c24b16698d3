/// TS(û)_b = Σ_a C1[a]·C2[(b − a) mod P] with count sketches C_k[h_k(i)] += s_k(i) û_i: from
/// g = ∂L/∂TS, ∂C1[a] = Σ_b g_b C2[(b − a) mod P], ∂C2[c] = Σ_b g_b C1[(b − c) mod P], and
/// ∂û_i += s1(i) ∂C1[h1(i)] + s2(i) ∂C2[h2(i)]. The "sketch" (hashes and signs) is discrete:
/// its gradient is 0.
extension SlayTensorSketchPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int { 4 * polyDim }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, polyDim)
        let (c1, c2, d1, d2) = (spare, spare + p, spare + 2 * p, spare + 3 * p)
        for row in 0..<rows {
            let u = units + row * d
            let g = polyGradient + row * p
            c1.update(repeating: 0, count: 4 * p)
            for i in 0..<d {
                c1[buckets[i]] += signs[i] * u[i]
                c2[buckets[d + i]] += signs[d + i] * u[i]
            }
            for a in usedBuckets[0] {
                for c in usedBuckets[1] {
                    let b = a + c < p ? a + c : a + c - p
                    d1[a] += g[b] * c2[c]
                    d2[c] += g[b] * c1[a]
                }
            }
            let du = unitGradient + row * d
            for i in 0..<d { du[i] += signs[i] * d1[buckets[i]] + signs[d + i] * d2[buckets[d + i]] }
        }
    }
}
