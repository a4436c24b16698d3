#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The causal backward of the additive form (with RetNet γ) in chunks of c rows, with GEMMs as in
/// the forward. Within a chunk, row i reads S_i = γ^{i+1} S_prev + Σ_{j≤i} γ^{i−j} φ(k_j) v_jᵀ, so
/// with A = tril(Φ_Q Φ_Kᵀ ∘ Γ), Γ_ij = γ^{i−j}, and p_i = γ^{i+1}, w_j = γ^{c−1−j}:
///   forward pass:  X = dO S_prevᵀ gives dout·num = p∘(X·φ(q)) + dO·(A V) and dnum = dO/D,  dA = tril((dnum Vᵀ + dden 1ᵀ) ∘ Γ),
///                  dΦ_Q = dA Φ_K + p∘(X/D + dden z_prevᵀ),  S ← γ^c S_prev + Φ_Kᵀ(w∘V);
///   reverse pass:  dΦ_K = Σ_g dA_gᵀ Φ_Q,g + w∘(V Ŝᵀ + 1 ẑᵀ),  dV = Σ_g A_gᵀ dnum_g + w∘(Φ_K Ŝ),
///                  Ŝ ← γ^c Ŝ + Σ_g Φ_Q,gᵀ (p∘dnum_g),  ẑ ← γ^c ẑ + Σ_g Φ_Q,gᵀ (p∘dden_g).
extension BackwardPass {
    /// γ^0 … γ^c into w.powers (all 1 without decay).
    func fillPowers(keyHead: Int, workspace w: BackwardWorkspace) {
        let gamma = options.decay[keyHead]
        if gamma >= 1 {
            w.powers.update(repeating: 1, count: chunk + 1)
            return
        }
        let logGamma = log(Double(gamma))
        for n in 0...chunk { w.powers[n] = Float(exp(Double(n) * logGamma)) }
    }

    /// A = tril(Φ_Q Φ_Kᵀ ∘ Γ) of query head g into w.scores (rows × rows).
    func chunkScores(g: Int, rows: Int, workspace w: BackwardWorkspace) {
        let (c, m) = (chunk, featureDim)
        Gemm.multiply(m: rows, n: rows, k: m, a: w.queryFeatures + g * c * m, rowStrideA: m, columnStrideA: 1,
                      b: w.keyFeatures, rowStrideB: 1, columnStrideB: m, c: w.scores, ldc: rows,
                      accumulate: false, workspace: w.gemm)
        maskAndDecay(w.scores, rows: rows, workspace: w)
    }

    /// Zeroes the strict upper triangle and multiplies entry (i, j ≤ i) by γ^{i−j}.
    func maskAndDecay(_ block: UnsafeMutablePointer<Float>, rows: Int, workspace w: BackwardWorkspace) {
        for i in 0..<rows {
            let row = block + i * rows
            for j in 0...i { row[j] *= w.powers[i - j] }
            for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
        }
    }

    /// dA = tril((dnum Vᵀ + dden 1ᵀ) ∘ Γ) of query head g into w.scoreGradient; dnum is in
    /// w.outputGradient and dden in w.denominatorGradient.
    func chunkScoreGradient(g: Int, rows: Int, workspace w: BackwardWorkspace) {
        let (c, dv) = (chunk, valueDim)
        Gemm.multiply(m: rows, n: rows, k: dv, a: w.outputGradient + g * c * dv, rowStrideA: dv, columnStrideA: 1,
                      b: w.values, rowStrideB: 1, columnStrideB: dv, c: w.scoreGradient, ldc: rows,
                      accumulate: false, workspace: w.gemm)
        if options.normalize {
            for i in 0..<rows {
                let dden = w.denominatorGradient[g * c + i]
                for j in 0..<rows { w.scoreGradient[i * rows + j] += dden }
            }
        }
        maskAndDecay(w.scoreGradient, rows: rows, workspace: w)
    }

    func chunkedForward(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        fillPowers(keyHead: keyHead, workspace: w)
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                let query = w.queryFeatures + g * c * m
                let dnum = w.outputGradient + g * c * dv
                chunkScores(g: g, rows: rows, workspace: w)
                let gradient = w.queryFeatureGradient + g * c * m
                // X = dO S_prevᵀ serves both dout·num (through X_i·φ(q_i)) and dΦ_Q's state term.
                Gemm.multiply(m: rows, n: m, k: dv, a: dnum, rowStrideA: dv, columnStrideA: 1,
                              b: w.state, rowStrideB: 1, columnStrideB: dv, c: gradient, ldc: m,
                              accumulate: false, workspace: w.gemm)
                if options.normalize {
                    let intra = w.block
                    Gemm.multiply(m: rows, n: dv, k: rows, a: w.scores, rowStrideA: rows, columnStrideA: 1,
                                  b: w.values, rowStrideB: dv, columnStrideB: 1, c: intra, ldc: dv,
                                  accumulate: false, workspace: w.gemm)
                    for i in 0..<rows {
                        let row = query + i * m
                        let x = gradient + i * m
                        let p = w.powers[i + 1]
                        var den: Float = 0
                        var stateDot: Float = 0
                        for f in 0..<m {
                            den += row[f] * w.normaliser[f]
                            stateDot += row[f] * x[f]
                        }
                        var intraDen: Float = 0
                        for j in 0..<rows { intraDen += w.scores[i * rows + j] }
                        let doutRow = dnum + i * dv
                        var intraDot: Float = 0
                        for j in 0..<dv { intraDot += doutRow[j] * intra[i * dv + j] }
                        den = den * p + intraDen
                        let inverse = options.denominator.inverse(den, delta: delta)
                        let follows = options.denominator == .add || den > delta
                        let dden = follows ? -(p * stateDot + intraDot) * inverse * inverse : 0
                        let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                        slot[0] = inverse
                        slot[1] = dden
                        w.denominatorGradient[g * c + i] = dden
                        for j in 0..<dv { doutRow[j] *= inverse }
                        for f in 0..<m { x[f] = p * (inverse * x[f] + dden * w.normaliser[f]) }
                    }
                } else {
                    for i in 0..<rows {
                        let p = w.powers[i + 1]
                        if p != 1 { for f in 0..<m { gradient[i * m + f] *= p } }
                    }
                }
                chunkScoreGradient(g: g, rows: rows, workspace: w)
                // dΦ_Q += dA Φ_K.
                Gemm.multiply(m: rows, n: m, k: rows, a: w.scoreGradient, rowStrideA: rows, columnStrideA: 1,
                              b: w.keyFeatures, rowStrideB: m, columnStrideB: 1, c: gradient, ldc: m,
                              accumulate: true, workspace: w.gemm)
            }
            // S ← γ^rows S + Φ_Kᵀ (w∘V), z alike.
            let decayAll = w.powers[rows]
            if decayAll != 1 {
                for i in 0..<(m * dv) { w.state[i] *= decayAll }
                for f in 0..<m { w.normaliser[f] *= decayAll }
            }
            let weighted = w.block
            for j in 0..<rows {
                let weight = w.powers[rows - 1 - j]
                for e in 0..<dv { weighted[j * dv + e] = weight * w.values[j * dv + e] }
                let key = w.keyFeatures + j * m
                for f in 0..<m { w.normaliser[f] += weight * key[f] }
            }
            Gemm.multiply(m: m, n: dv, k: rows, a: w.keyFeatures, rowStrideA: 1, columnStrideA: m,
                          b: weighted, rowStrideB: dv, columnStrideB: 1, c: w.state, ldc: dv,
                          accumulate: true, workspace: w.gemm)
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
    }

    func chunkedReverse(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        guard span.length > 0 else { return }
        var t0 = ((span.length - 1) / c) * c
        while t0 >= 0 {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            // Inter-chunk terms first, while Ŝ is the gradient of the state at the chunk's end:
            // dΦ_K = w∘(V Ŝᵀ + 1 ẑᵀ), dV = w∘(Φ_K Ŝ).
            Gemm.multiply(m: rows, n: m, k: dv, a: w.values, rowStrideA: dv, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: 1, columnStrideB: dv, c: w.keyFeatureGradient, ldc: m,
                          accumulate: false, workspace: w.gemm)
            Gemm.multiply(m: rows, n: dv, k: m, a: w.keyFeatures, rowStrideA: m, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                          accumulate: false, workspace: w.gemm)
            for j in 0..<rows {
                let weight = w.powers[rows - 1 - j]
                let row = w.keyFeatureGradient + j * m
                for f in 0..<m { row[f] = weight * (row[f] + w.normaliserGradient[f]) }
                let valueRow = w.valueGradient + j * dv
                for e in 0..<dv { valueRow[e] *= weight }
            }
            let decayAll = w.powers[rows]
            if decayAll != 1 {
                for i in 0..<(m * dv) { w.stateGradient[i] *= decayAll }
                for f in 0..<m { w.normaliserGradient[f] *= decayAll }
            }
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                let query = w.queryFeatures + g * c * m
                let dnum = w.outputGradient + g * c * dv
                // The forward pass stored 1/D and ∂L/∂den of normalised rows (unnormalised: dnum = dout).
                for i in 0..<rows where options.normalize {
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    let row = dnum + i * dv
                    for j in 0..<dv { row[j] *= slot[0] }
                    w.denominatorGradient[g * c + i] = slot[1]
                }
                if !options.normalize { (w.denominatorGradient + g * c).update(repeating: 0, count: rows) }
                chunkScores(g: g, rows: rows, workspace: w)
                chunkScoreGradient(g: g, rows: rows, workspace: w)
                Gemm.multiply(m: rows, n: m, k: rows, a: w.scoreGradient, rowStrideA: 1, columnStrideA: rows,
                              b: query, rowStrideB: m, columnStrideB: 1, c: w.keyFeatureGradient, ldc: m,
                              accumulate: true, workspace: w.gemm)
                Gemm.multiply(m: rows, n: dv, k: rows, a: w.scores, rowStrideA: 1, columnStrideA: rows,
                              b: dnum, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
                // Ŝ += Φ_Qᵀ (p∘dnum), ẑ += Φ_Qᵀ (p∘dden).
                let scaled = w.block
                for i in 0..<rows {
                    let p = w.powers[i + 1]
                    for j in 0..<dv { scaled[i * dv + j] = p * dnum[i * dv + j] }
                    let dden = w.denominatorGradient[g * c + i] * p
                    if dden != 0 {
                        let row = query + i * m
                        for f in 0..<m { w.normaliserGradient[f] += dden * row[f] }
                    }
                }
                Gemm.multiply(m: m, n: dv, k: rows, a: query, rowStrideA: 1, columnStrideA: m,
                              b: scaled, rowStrideB: dv, columnStrideB: 1, c: w.stateGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
            }
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 -= c
        }
    }
}
