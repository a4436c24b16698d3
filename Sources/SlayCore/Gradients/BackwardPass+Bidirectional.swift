/// The bidirectional backward: S = S0 + Σ_t φ(k_t) v_tᵀ (z alike) is seen by every query, so
/// three passes over the sequence suffice, each a chunk of GEMMs:
/// - build S += Φ_Kᵀ V, z += Φ_Kᵀ 1;
/// - the query side: X = dO Sᵀ gives dout·num = rowdot(Φ_Q, X), D = Φ_Q z, dnum = dO/D and
///   dΦ_Q = X/D + dden zᵀ, while Ŝ = dS_final + Σ Φ_Qᵀ dnum and ẑ = dz_final + Σ Φ_Qᵀ dden accumulate;
/// - the key side: dΦ_K = V Ŝᵀ + 1 ẑᵀ, dV = Φ_K Ŝ.
extension BackwardPass {
    func bidirectional(span: SequenceSpan, origin: Int, sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for i in 0..<rows {
                let key = w.keyFeatures + i * m
                for f in 0..<m { w.normaliser[f] += key[f] }
            }
            Gemm.multiply(m: m, n: dv, k: rows, a: w.keyFeatures, rowStrideA: 1, columnStrideA: m,
                          b: w.values, rowStrideB: dv, columnStrideB: 1, c: w.state, ldc: dv,
                          accumulate: true, workspace: w.gemm)
            t0 += rows
        }
        seedReverse(sequence: sequence, keyHead: keyHead, workspace: w)
        t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                let query = w.queryFeatures + g * c * m
                let dnum = w.outputGradient + g * c * dv
                let gradient = w.queryFeatureGradient + g * c * m
                Gemm.multiply(m: rows, n: m, k: dv, a: dnum, rowStrideA: dv, columnStrideA: 1,
                              b: w.state, rowStrideB: 1, columnStrideB: dv, c: gradient, ldc: m,
                              accumulate: false, workspace: w.gemm)
                for i in 0..<rows {
                    let (row, x) = (query + i * m, gradient + i * m)
                    var inverse: Float = 1
                    var dden: Float = 0
                    if options.normalize {
                        let den = DecodeKernels.dot(row, w.normaliser, count: m)
                        inverse = options.denominator.inverse(den, delta: delta)
                        let follows = options.denominator == .add || den > delta
                        dden = follows ? -DecodeKernels.dot(row, x, count: m) * inverse * inverse : 0
                        let doutRow = dnum + i * dv
                        for j in 0..<dv { doutRow[j] *= inverse }
                        for f in 0..<m { x[f] = inverse * x[f] + dden * w.normaliser[f] }
                        if dden != 0 { for f in 0..<m { w.normaliserGradient[f] += dden * row[f] } }
                    }
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    slot[0] = inverse
                    slot[1] = dden
                }
                Gemm.multiply(m: m, n: dv, k: rows, a: query, rowStrideA: 1, columnStrideA: m,
                              b: dnum, rowStrideB: dv, columnStrideB: 1, c: w.stateGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
            }
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
        t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            Gemm.multiply(m: rows, n: m, k: dv, a: w.values, rowStrideA: dv, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: 1, columnStrideB: dv, c: w.keyFeatureGradient, ldc: m,
                          accumulate: false, workspace: w.gemm)
            for j in 0..<rows {
                let row = w.keyFeatureGradient + j * m
                for f in 0..<m { row[f] += w.normaliserGradient[f] }
            }
            Gemm.multiply(m: rows, n: dv, k: m, a: w.keyFeatures, rowStrideA: m, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                          accumulate: false, workspace: w.gemm)
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
    }
}
