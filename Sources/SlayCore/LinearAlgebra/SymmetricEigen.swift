/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations, in double.
///
/// SlayCore needs it once per map (the Nyström whitening (K_AA + λI)^{−1/2}), never per token, so
/// robustness and accuracy matter more than speed: Jacobi gives eigenvalues to high relative
/// accuracy and orthogonal eigenvectors, with no dependency on LAPACK.
public enum SymmetricEigen {
    /// A = V diag(values) Vᵀ for a symmetric n × n row-major matrix. `vectors` is row-major n × n
    /// with eigenvector j in column j. Returns nil if an entry is not finite or the sweeps do not
    /// converge (the caller reports an error instead of using a bad factorisation); throws
    /// SlayError(.outOfMemory) when its n² work arrays cannot be allocated (n is caller-sized).
    public static func decompose(_ matrix: HeapArray<Double>, n: Int, maximumSweeps: Int = 100) throws
        -> (values: HeapArray<Double>, vectors: HeapArray<Double>)? {
        guard n >= 0, matrix.count == n * n, matrix.allSatisfy({ $0.isFinite }) else { return nil }
        // Work on A / max|a_ij| so the sums of squares below cannot overflow; undo at the end.
        let scale = matrix.reduce(0.0) { max($0, abs($1)) }
        let a = try matrix.mapped(what: "the eigen-decomposition's work matrix") { scale > 0 ? $0 / scale : $0 }
        let vt = try HeapArray<Double>(count: n * n, what: "the eigen-decomposition's rotations")
        let v = try HeapArray<Double>(count: n * n, what: "eigenvectors")
        let values = try HeapArray<Double>(count: n, what: "eigenvalues")
        guard n > 0 else { return (values, v) }
        for i in 0..<n { vt[i * n + i] = 1 }
        guard sweeps(a.baseAddress, vt.baseAddress, n: n, maximumSweeps: maximumSweeps) else { return nil }
        for i in 0..<n { for j in 0..<n { v[i * n + j] = vt[j * n + i] } }
        for i in 0..<n { values[i] = a[i * n + i] * (scale > 0 ? scale : 1) }
        return (values, v)
    }

    /// Cyclic Jacobi sweeps on a (n × n) with the accumulated rotations in vt = Vᵀ; true once the
    /// off-diagonal mass is negligible against the diagonal. Raw pointers: this loop is O(n³) per
    /// sweep and bounds checks would dominate it.
    private static func sweeps(_ a: UnsafeMutablePointer<Double>, _ vt: UnsafeMutablePointer<Double>, n: Int,
                               maximumSweeps: Int) -> Bool {
        for _ in 0..<maximumSweeps {
            var off = 0.0, diagonal = 0.0
            for p in 0..<n {
                diagonal += a[p * n + p] * a[p * n + p]
                for q in (p + 1)..<max(p + 1, n) { off += a[p * n + q] * a[p * n + q] }
            }
            if off <= 1e-30 * diagonal || off == 0 { return true }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) {
                    let apq = a[p * n + q]
                    if apq == 0 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    // The smaller root of t² + 2θt − 1 = 0 (|rotation angle| <= π/4), overflow-safe.
                    let t = abs(theta) > 1e150
                        ? 1 / (2 * theta)
                        : (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    // A ← Jᵀ A J with J the rotation in the (p, q) plane. A stays symmetric, so the
                    // rows p and q (contiguous) are rotated and mirrored into the columns.
                    let (rowP, rowQ) = (a + p * n, a + q * n)
                    let (app, aqq) = (rowP[p], rowQ[q])
                    for k in 0..<n {
                        let apk = rowP[k], aqk = rowQ[k]
                        rowP[k] = c * apk - s * aqk
                        rowQ[k] = s * apk + c * aqk
                    }
                    // The 2 × 2 block gets both rotations; the new a_pq is zero by the choice of t.
                    a[p * n + p] = app - t * apq
                    a[q * n + q] = aqq + t * apq
                    rowP[q] = 0
                    rowQ[p] = 0
                    for k in 0..<n where k != p && k != q {
                        a[k * n + p] = rowP[k]
                        a[k * n + q] = rowQ[k]
                    }
                    // V ← V J, kept transposed (row e of `vt` is eigenvector e) so this is contiguous too.
                    let (vp, vq) = (vt + p * n, vt + q * n)
                    for k in 0..<n {
                        let vkp = vp[k], vkq = vq[k]
                        vp[k] = c * vkp - s * vkq
                        vq[k] = s * vkp + c * vkq
                    }
                }
            }
        }
        return false
    }
}
