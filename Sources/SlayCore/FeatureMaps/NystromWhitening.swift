/// The whitening matrix of SLAY's Nyström polynomial (docs/math.md §1): W = (K_AA + λI)^{−1/2} with
/// K_AA = (A Aᵀ)∘(A Aᵀ), the x² kernel between the anchors, so that ⟨W k_A(q), W k_A(k)⟩ =
/// k_A(q)ᵀ (K_AA + λI)^{−1} k_A(k) ≈ (q̂·k̂)², k_A(u) = [(a_p·u)²]_p.
public enum NystromWhitening {
    /// The ridge λ: keeps W finite when K_AA is singular (it has rank at most d(d+1)/2 < P for
    /// many anchors) at the cost of a small shrinkage of the kernel.
    public static let lambda = 1e-3
    /// The eigen-decomposition is O(P³) per Jacobi sweep at creation and on set_param, and W holds
    /// P² floats: P is capped so that stays under half a second (P = 512 already takes seconds).
    public static let maximumAnchors = 256

    /// W (P × P, symmetric, row-major) from (P, d) row-major anchors, computed in double and
    /// rounded to float. Throws for a factorisation that fails (only non-finite input can).
    public static func matrix(anchors: HeapArray<Float>, count p: Int, headDim d: Int) throws -> HeapArray<Float> {
        guard p >= 1, p <= maximumAnchors, anchors.count == p * d else {
            throw SlayError.shape("Nyström anchors must hold P·d = \(p * d) floats with P ≤ \(maximumAnchors), got \(anchors.count)")
        }
        // The P × P matrices (P ≤ 256: 512 KiB each) are fallibly allocated like everything a
        // caller sizes; the (P, d) anchors are read in place (d is caller-sized).
        let a = anchors.baseAddress
        let k = try HeapArray<Double>(count: p * p, what: "the Nyström kernel")
        for i in 0..<p {
            for j in i..<p {
                var dot = 0.0
                for c in 0..<d { dot += Double(a[i * d + c]) * Double(a[j * d + c]) }
                k[i * p + j] = dot * dot
                k[j * p + i] = dot * dot
            }
            k[i * p + i] += lambda
        }
        guard let (values, vectors) = try SymmetricEigen.decompose(k, n: p), values.allSatisfy({ $0.isFinite }) else {
            throw SlayError.invalid("the Nyström kernel of these anchors has no usable eigen-decomposition (values too large?)")
        }
        // K_AA is positive semi-definite, so every eigenvalue of K_AA + λI is >= λ up to rounding;
        // the floor at λ/2 only guards against rounding.
        let scales = try values.mapped(what: "the Nyström scales") { 1 / max($0, lambda / 2).squareRoot() }
        let w = try HeapArray<Float>(count: p * p, what: "Nyström whitening")
        for i in 0..<p {
            for j in i..<p {
                var sum = 0.0
                for e in 0..<p { sum += vectors[i * p + e] * scales[e] * vectors[j * p + e] }
                w[i * p + j] = Float(sum)
                w[j * p + i] = Float(sum)
            }
        }
        return w
    }
}
