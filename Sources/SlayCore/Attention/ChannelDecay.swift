#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SlayKernels
import SlayKernelsAVX2

/// The decay kernels through the active variant (see KernelVariant).
enum DecayMath {
    @inline(__always)
    static func expNonPositive(_ input: UnsafePointer<Float>, count: Int, output: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.DecayKernels.expNonPositive(input, count: count, output: output)
        case .portable: SlayKernels.DecayKernels.expNonPositive(input, count: count, output: output)
        }
    }

    @inline(__always)
    static func decayedScores(q: UnsafePointer<Float>, k: UnsafePointer<Float>, logDecay: UnsafePointer<Float>,
                              rows: Int, m: Int, output: UnsafeMutablePointer<Float>, running: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m, output: output,
                                                       running: running)
        case .portable:
            SlayKernels.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m, output: output,
                                                   running: running)
        }
    }
}

/// GLA: data-dependent per-channel decay (docs/math.md §3), S_t = Diag(α_t) S_{t−1} + φ(k_t) v_tᵀ and
/// z_t = Diag(α_t) z_{t−1} + φ(k_t), in the chunked causal form.
///
/// With b_i = Σ_{t ≤ i} log α_t within a chunk (per channel), row i reads the state before the
/// chunk through φ(q_i) ⊙ e^(b_i); the intra-chunk block is s_ij = Σ_f φq_if φk_jf e^(b_if − b_jf)
/// for j ≤ i, computed pairwise (DecayKernels.decayedScores); the state moves on as
/// S ← e^(b_last) ⊙ S + Σ_j (φk_j ⊙ e^(b_last − b_j)) v_jᵀ, a GEMM on scaled key features.
/// Every exponent is a sum of log α over a stretch of rows, so it is ≤ 0 and e^(−b) is never
/// formed: any α, down to e^−10000 and below, gives finite results (weights below the smallest
/// normal float are 0). Sums are accumulated in float; they only lose precision where the
/// weight has already underflowed.
extension LinearAttention.Plan {
    static func checkTokenInputs(map: FeatureMap, q: TensorView?, k: TensorView?, queryHeads: Int, mode: LinearAttention.Mode,
                                 logDecay: TensorView?, queryGates: TensorView?, keyGates: TensorView?) throws {
        if mode != .query, let k {
            let (b, t, h) = (k.extents[0], k.extents[1], map.numHeads)
            if let logDecay {
                guard mode == .causal || mode == .absorb else {
                    throw SlayError.invalid("log_decay needs causal attention (set causal = 1)")
                }
                try TokenTensors.checkLogDecay(logDecay, rank: 4, extents: SIMD4(b, t, h, map.featureDim),
                                               layout: "[B, T, Hk, m] (m = the feature map's dim)")
            }
            if let keyGates {
                try TokenTensors.checkGateLogits(keyGates, "key_gate_logits", rank: 3, extents: SIMD4(b, t, h, 1),
                                                 layout: "[B, T, Hk]")
            }
        }
        if let queryGates, let q {
            try TokenTensors.checkGateLogits(queryGates, "query_gate_logits", rank: 3,
                                             extents: SIMD4(q.extents[0], q.extents[1], queryHeads, 1), layout: "[B, T, Hq]")
        }
    }

    /// log α of rows t0 ..< t0 + rows into w.logDecay [rows, m]; with RetNet decay also given,
    /// log α + log γ (the two decays multiply).
    func loadLogDecay(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: LinearAttention.Workspace) {
        let m = map.featureDim
        logDecay!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.logDecay)
        let logGamma = decay.logarithm(head: keyHead)
        if logGamma != 0 {
            for i in 0..<(rows * m) { w.logDecay[i] += logGamma }
        }
    }

    func runChannelDecayCausal(span: SequenceSpan, origin: Int, keyHead: Int, columns: Range<Int>,
                               state: UnsafeMutablePointer<Float>, normaliser: UnsafeMutablePointer<Float>,
                               workspace w: LinearAttention.Workspace) {
        let (m, dv) = (map.featureDim, valueDim)
        var t0 = 0
        while t0 < span.length {
            let rows = min(w.chunk, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            loadLogDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            // e^(b_i): how much of the state before the chunk row i still sees, per channel.
            let factors = w.decayFactors
            factors.update(from: w.logDecay, count: m)
            for i in 1..<max(1, rows) {
                let (previous, row, step) = (factors + (i - 1) * m, factors + i * m, w.logDecay + i * m)
                for f in 0..<m { row[f] = previous[f] + step[f] }
            }
            DecayMath.expNonPositive(factors, count: rows * m, output: factors)
            for g in 0..<group {
                let queryHead = keyHead * group + g
                loadQueries(span: span, origin: origin, keyHead: keyHead, queryHead: queryHead, t0: t0, rows: rows, workspace: w)
                // The intra block needs the undecayed φ(q); the readout then decays it in place.
                DecayMath.decayedScores(q: w.phiQ, k: w.phiK, logDecay: w.logDecay, rows: rows, m: m, output: w.scores,
                                        running: w.running)
                for i in 0..<(rows * m) { w.phiQ[i] *= factors[i] }
                LinearAttention.readState(rows: rows, m: m, dv: dv, columns: columns, state: state,
                                          normaliser: normaliser, workspace: w)
                LinearAttention.addIntraChunk(rows: rows, dv: dv, columns: columns, workspace: w)
                LinearAttention.normaliseAndStore(rows: rows, columns: columns, delta: delta, denominator: denominator,
                                                  normalize: normalize, workspace: w,
                                                  out: out!, batch: span.batch, head: queryHead, t0: span.start + t0)
            }
            updateStateChannelDecay(rows: rows, columns: columns, state: state, normaliser: normaliser, workspace: w)
            t0 += rows
        }
    }

    /// S ← e^(b_last) ⊙ S + Σ_j (φk_j ⊙ e^(b_last − b_j)) v_jᵀ and z alike, from w.logDecay and
    /// w.phiK (scaled in place: the chunk is done with it).
    func updateStateChannelDecay(rows: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                                 normaliser: UnsafeMutablePointer<Float>, workspace w: LinearAttention.Workspace) {
        let (m, dv, width) = (map.featureDim, valueDim, columns.count)
        // Suffix sums b_last − b_j = Σ_{t = j+1 … last} log α_t, then the carry b_last = that of j = −1.
        let suffix = w.decayFactors
        let last = suffix + (rows - 1) * m
        last.update(repeating: 0, count: m)
        for j in stride(from: rows - 2, through: 0, by: -1) {
            let (row, next, step) = (suffix + j * m, suffix + (j + 1) * m, w.logDecay + (j + 1) * m)
            for f in 0..<m { row[f] = next[f] + step[f] }
        }
        let carry = w.running
        for f in 0..<m { carry[f] = suffix[f] + w.logDecay[f] }
        DecayMath.expNonPositive(suffix, count: rows * m, output: suffix)
        DecayMath.expNonPositive(carry, count: m, output: carry)
        for f in 0..<m {
            let row = state + f * dv + columns.lowerBound
            let factor = carry[f]
            for j in 0..<width { row[j] *= factor }
            normaliser[f] *= factor
        }
        for i in 0..<(rows * m) { w.phiK[i] *= suffix[i] }
        LinearAttention.updateState(rows: rows, m: m, dv: dv, columns: columns, state: state,
                                    normaliser: normaliser, workspace: w)
    }
}
