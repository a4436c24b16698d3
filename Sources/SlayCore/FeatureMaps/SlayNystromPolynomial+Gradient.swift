/// poly = Y W with y_p = (a_p·û)² and W = (K_AA + λI)^{−1/2} symmetric, K_AA = G∘G, G = A Aᵀ.
/// Through û: ∂y = ∂poly W, then as the anchor polynomial. Through the anchors, both ways:
/// - directly in y (as the anchor polynomial, with ∂y);
/// - through W: ∂L/∂W = Σ_rows yᵀ ∂poly is accumulated over the whole call (P × P doubles per
///   head), and once at the end the derivative of the inverse square root (Daleckii–Krein) gives
///   ∂L/∂M for M = K_AA + λI = V diag(λ) Vᵀ: ∂L/∂M = V (F ∘ (Vᵀ ∂L/∂W V)) Vᵀ with
///   F_ij = (λ_i^{−1/2} − λ_j^{−1/2}) / (λ_i − λ_j) = −1 / (s_i s_j (s_i + s_j)), s = √λ (this form
///   is exact and stable for equal eigenvalues, where it is the derivative −½ λ^{−3/2}); then
///   ∂L/∂G = 2 G∘∂L/∂M and ∂L/∂A += (∂L/∂G + ∂L/∂Gᵀ) A.
extension SlayNystromPolynomial: SlayPolynomialGradient {
    func gradientSpareFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * width)
            + max(projection.squaredProjectionSpare(rows: rows), ScratchBuffer.footprint(width * width))
    }

    var gradientExtraFloats: Int { width * width }

    func addGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                     unitGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                     spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let p = width
        let whitened = spare
        // poly[i, :] = y[i, :] W, so ∂y[i, :] = ∂poly[i, :] Wᵀ = ∂poly[i, :] W.
        Gemm.multiply(m: rows, n: p, k: p, a: polyGradient, rowStrideA: p, columnStrideA: 1,
                      b: whitening.baseAddress, rowStrideB: 1, columnStrideB: p,
                      c: whitened, ldc: p, accumulate: false, workspace: gemmSpace)
        projection.addSquaredProjectionGradient(units, rows: rows, scale: 1, polyGradient: whitened,
                                                unitGradient: unitGradient, anchorGradient: parameterGradient,
                                                spare: spare + ScratchBuffer.footprint(rows * p), gemmSpace: gemmSpace)
    }

    /// extra += Yᵀ ∂poly (P × P), Y the block's squared projections.
    func addExtraGradient(_ units: UnsafePointer<Float>, rows: Int, polyGradient: UnsafePointer<Float>,
                          extra: UnsafeMutablePointer<Double>, spare: UnsafeMutablePointer<Float>,
                          gemmSpace: UnsafeMutablePointer<Float>) {
        let p = width
        let squared = spare
        let block = spare + ScratchBuffer.footprint(rows * p)
        projection.squaredProjections(units, rows: rows, scale: 1, into: squared, gemmSpace: gemmSpace)
        Gemm.multiply(m: p, n: p, k: rows, a: squared, rowStrideA: 1, columnStrideA: p, b: polyGradient, rowStrideB: p,
                      columnStrideB: 1, c: block, ldc: p, accumulate: false, workspace: gemmSpace)
        for i in 0..<(p * p) { extra[i] += Double(block[i]) }
    }

    /// The whitening's share of ∂L/∂A from an accumulated ∂L/∂W, prepared before the pass: the
    /// eigen-decomposition and every P × P matrix are allocated here (fallible, P caller-sized),
    /// so the returned function, run once per head after the pass, cannot fail.
    func extraGradientFinisher() throws -> ((UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void)? {
        let (p, d) = (width, projection.headDim)
        let anchors = projection.anchors
        let a = anchors.baseAddress
        let gram = try HeapArray<Double>(count: p * p, what: "Nyström gradient")
        let kernel = try HeapArray<Double>(count: p * p, what: "Nyström gradient")
        for i in 0..<p {
            for j in i..<p {
                var dot = 0.0
                for c in 0..<d { dot += Double(a[i * d + c]) * Double(a[j * d + c]) }
                (gram[i * p + j], gram[j * p + i]) = (dot, dot)
                (kernel[i * p + j], kernel[j * p + i]) = (dot * dot, dot * dot)
            }
            kernel[i * p + i] += NystromWhitening.lambda
        }
        guard let (values, v) = try SymmetricEigen.decompose(kernel, n: p) else {
            throw SlayError.invalid("the Nyström kernel of these anchors has no usable eigen-decomposition")
        }
        let roots = try HeapArray<Double>(count: p, what: "Nyström gradient")
        for e in 0..<p { roots[e] = max(values[e], NystromWhitening.lambda / 2).squareRoot() }
        let t = try HeapArray<Double>(count: p * p, what: "Nyström gradient")
        let x = try HeapArray<Double>(count: p * p, what: "Nyström gradient")
        return { extra, parameterGradient in
            // X = Vᵀ Ḡ V, X ∘= F, ∂M = V X Vᵀ.
            for i in 0..<p {
                for e in 0..<p {
                    var sum = 0.0
                    for j in 0..<p { sum += extra[i * p + j] * v[j * p + e] }
                    t[i * p + e] = sum   // (Ḡ V)[i, e]
                }
            }
            for e in 0..<p {
                for f in 0..<p {
                    var sum = 0.0
                    for i in 0..<p { sum += v[i * p + e] * t[i * p + f] }
                    x[e * p + f] = sum * (-1 / (roots[e] * roots[f] * (roots[e] + roots[f])))
                }
            }
            for i in 0..<p {
                for f in 0..<p {
                    var sum = 0.0
                    for e in 0..<p { sum += v[i * p + e] * x[e * p + f] }
                    t[i * p + f] = sum   // (V X)[i, f]
                }
            }
            // ∂L/∂G_ij = 2 G_ij ∂M_ij with ∂M = (V X) Vᵀ (into x, no longer needed); symmetrised, times A.
            for i in 0..<p {
                for j in 0..<p {
                    var sum = 0.0
                    for f in 0..<p { sum += t[i * p + f] * v[j * p + f] }
                    x[i * p + j] = 2 * gram[i * p + j] * sum
                }
            }
            for i in 0..<p {
                for j in 0..<p {
                    let weight = x[i * p + j] + x[j * p + i]
                    if weight == 0 { continue }
                    for c in 0..<d { parameterGradient[i * d + c] += weight * Double(a[j * d + c]) }
                }
            }
            withExtendedLifetime(anchors) {}
        }
    }
}
