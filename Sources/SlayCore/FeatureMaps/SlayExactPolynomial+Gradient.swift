/// vec(ûûᵀ): packed, poly_(a,a) = û_a² and poly_(a,b>a) = √2 û_a û_b; full, poly_(a,b) = û_a û_b.
/// No parameters.
extension SlayExactPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int { 0 }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, pf) = (headDim, width)
        let root2 = Float(2.0.squareRoot())
        for i in 0..<rows {
            let u = units + i * d
            let du = unitGradient + i * d
            let g = polyGradient + i * pf
            if packed {
                var index = 0
                for a in 0..<d {
                    du[a] += 2 * u[a] * g[index]
                    index += 1
                    for b in (a + 1)..<max(a + 1, d) {
                        let weight = root2 * g[index]
                        du[a] += weight * u[b]
                        du[b] += weight * u[a]
                        index += 1
                    }
                }
            } else {
                for a in 0..<d {
                    for b in 0..<d {
                        let weight = g[a * d + b]
                        du[a] += weight * u[b]
                        du[b] += weight * u[a]
                    }
                }
            }
        }
    }
}
