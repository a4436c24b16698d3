/// The backward pass of the delta rule (DeltaNet / Gated DeltaNet, `DeltaRuleForm`), causal and
/// unnormalised: with k_t, q_t the (L2-normalised, gated) features, α_t = e^{g_t}·γ, β_t,
///   S_t = α_t S_{t−1} + β_t k_t w_tᵀ,  w_t = v_t − α_t u_t,  u_t = S_{t−1}ᵀ k_t,  o_t = S_tᵀ q_t.
/// Going backwards with Ŝ = ∂L/∂S_t (Σ_g q_{g,t} do_{g,t}ᵀ added first) and P = S_{t−1}:
///   dq_{g,t} = S_t do_{g,t},   x = Ŝᵀ k_t,   dv_t = β_t x,   dβ_t = k_tᵀ Ŝ w_t,
///   dk_t = β_t Ŝ w_t − α_t β_t P x,   dα_t = ⟨Ŝ, P⟩ − β_t x·u_t,   dg_t = α_t dα_t,
///   Ŝ ← α_t (Ŝ − β_t k_t xᵀ)   (= ∂L/∂S_{t−1}; after the first token it is dS0).
/// z is neither read nor written by the delta rule, so dz0 = dz_T.
///
/// The reverse pass needs every S_{t−1}, which the recurrence cannot give back (I − β k kᵀ is
/// singular at β‖k‖² = 1). It keeps checkpoints: the tokens of a sequence are cut into blocks of
/// L rows (L a multiple of the chunk c near √T); a first pass token by token stores the state at
/// the start of each block; the reverse pass, block by block from the last, recomputes the
/// block's L + 1 states from its checkpoint and walks its tokens backwards. Memory per thread:
/// (⌈T/L⌉ + L + 1)·m·dv floats (about 2√T·m·dv) besides the backward's chunk workspace;
/// the features are computed three times per key row and once per query row.
enum DeltaRuleBackward {
    /// Rows per checkpoint block for sequences of up to `length` tokens: the multiple of `chunk`
    /// nearest √length, at least one chunk.
    static func blockLength(chunk: Int, length: Int) -> Int {
        let root = Double(max(length, 1)).squareRoot()
        return chunk * max(1, Int((root / Double(chunk)).rounded()))
    }

    /// Floats of the delta rule's region in each worker's workspace.
    static func floats(chunk: Int, length: Int, featureDim m: Int, valueDim dv: Int) throws -> Int {
        let block = blockLength(chunk: chunk, length: length)
        let blocks = (max(length, 1) + block - 1) / block
        let states = try CheckedSize.multiply(blocks + block + 1, m, dv, what: "delta-rule checkpoints")
        return try CheckedSize.add(states, 4 * chunk + 3 * dv + 2 * m, what: "delta-rule checkpoints")
    }

    /// The region carved: checkpoints, the block's states, per-row β, α, dβ, dg and the vectors
    /// of one token.
    struct Region {
        let checkpoints: UnsafeMutablePointer<Float>
        let states: UnsafeMutablePointer<Float>
        let beta: UnsafeMutablePointer<Float>
        let alpha: UnsafeMutablePointer<Float>
        let betaGradient: UnsafeMutablePointer<Float>
        let decayGradient: UnsafeMutablePointer<Float>
        let u: UnsafeMutablePointer<Float>
        let x: UnsafeMutablePointer<Float>
        let w: UnsafeMutablePointer<Float>
        let sw: UnsafeMutablePointer<Float>
        let px: UnsafeMutablePointer<Float>

        init(_ base: UnsafeMutablePointer<Float>, block: Int, blocks: Int, chunk c: Int, featureDim m: Int, valueDim dv: Int) {
            var cursor = base
            func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { cursor += n }; return cursor }
            checkpoints = take(blocks * m * dv); states = take((block + 1) * m * dv)
            beta = take(c); alpha = take(c); betaGradient = take(c); decayGradient = take(c)
            u = take(dv); x = take(dv); w = take(dv); sw = take(m); px = take(m)
        }
    }
}

extension BackwardPass {
    /// The delta rule's backward for one (sequence, key head) pair (see `DeltaRuleBackward`).
    func deltaRule(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let span = spans[sequence]
        let origin = origins[sequence]
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let matrix = m * dv
        let block = DeltaRuleBackward.blockLength(chunk: c, length: length)
        let blocks = (span.length + block - 1) / block
        let r = DeltaRuleBackward.Region(w.form, block: block, blocks: (max(length, 1) + block - 1) / block, chunk: c,
                                         featureDim: m, valueDim: dv)
        loadInitialState(sequence: sequence, keyHead: keyHead, workspace: w)

        // Pass 1: the state at the start of every block (the last block's tokens are not needed).
        for b in 0..<blocks {
            r.checkpoints.advanced(by: b * matrix).update(from: w.state, count: matrix)
            guard b < blocks - 1 else { break }
            for t0 in stride(from: b * block, to: (b + 1) * block, by: c) {
                let rows = min(c, span.length - t0)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                loadDeltaRows(span: span, keyHead: keyHead, t0: t0, rows: rows, region: r)
                for i in 0..<rows { deltaStep(from: w.state, to: w.state, row: i, workspace: w, region: r) }
            }
        }

        // Ŝ ← dS_T; ẑ ← dz_T stays (z passes through the delta rule unchanged: dz0 = dz_T).
        loadFinalGradient(sequence: sequence, keyHead: keyHead, workspace: w)

        for b in stride(from: blocks - 1, through: 0, by: -1) {
            let start = b * block
            let end = min(start + block, span.length)
            r.states.update(from: r.checkpoints + b * matrix, count: matrix)
            for t0 in stride(from: start, to: end, by: c) {
                let rows = min(c, end - t0)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                loadDeltaRows(span: span, keyHead: keyHead, t0: t0, rows: rows, region: r)
                for i in 0..<rows {
                    let local = t0 - start + i
                    deltaStep(from: r.states + local * matrix, to: r.states + (local + 1) * matrix, row: i, workspace: w,
                              region: r)
                }
            }
            var t0 = start + ((end - start - 1) / c) * c
            while t0 >= start {
                let rows = min(c, end - t0)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                loadDeltaRows(span: span, keyHead: keyHead, t0: t0, rows: rows, region: r)
                for g in 0..<group {
                    loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                }
                for i in stride(from: rows - 1, through: 0, by: -1) {
                    let local = t0 - start + i
                    deltaReverseStep(previous: r.states + local * matrix, current: r.states + (local + 1) * matrix,
                                     row: i, workspace: w, region: r)
                }
                storeDeltaRows(span: span, keyHead: keyHead, t0: t0, rows: rows, region: r)
                finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                t0 -= c
            }
        }
        storeInitialStateGradient(sequence: sequence, keyHead: keyHead, workspace: w)
    }

    /// Ŝ ← dS_T and ẑ ← dz_T (zeros when not given).
    private func loadFinalGradient(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (m, dv) = (featureDim, valueDim)
        if let ds = request.finalStateGradient {
            for f in 0..<m {
                let row = ds.base + sequence * ds.steps[0] + keyHead * ds.steps[1] + f * ds.steps[2]
                for j in 0..<dv { w.stateGradient[f * dv + j] = row[j * ds.steps[3]] }
            }
        } else {
            w.stateGradient.update(repeating: 0, count: m * dv)
        }
        if let dz = request.finalNormaliserGradient {
            let row = dz.base + sequence * dz.steps[0] + keyHead * dz.steps[1]
            for f in 0..<m { w.normaliserGradient[f] = row[f * dz.steps[2]] }
        } else {
            w.normaliserGradient.update(repeating: 0, count: m)
        }
    }

    /// β (1 without options.beta) and α = e^{g}·γ (γ alone without log_decay) of the chunk's rows.
    private func loadDeltaRows(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, region r: DeltaRuleBackward.Region) {
        if let view = options.beta {
            let base = view.base + span.batch * view.steps[0] + keyHead * view.steps[2]
            for i in 0..<rows { r.beta[i] = base[(span.start + t0 + i) * view.steps[1]] }
        } else {
            r.beta.update(repeating: 1, count: rows)
        }
        let logGamma = options.decay.logarithm(head: keyHead)
        if let view = options.logDecay {
            let base = view.base + span.batch * view.steps[0] + keyHead * view.steps[2]
            for i in 0..<rows { r.alpha[i] = ScalarDecay.weight(base[(span.start + t0 + i) * view.steps[1]] + logGamma) }
        } else {
            r.alpha.update(repeating: options.decay.decays(head: keyHead) ? options.decay[keyHead] : 1, count: rows)
        }
    }

    /// dβ and dg of the chunk's rows to the request.
    private func storeDeltaRows(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, region r: DeltaRuleBackward.Region) {
        if let target = request.beta {
            let base = target.base + span.batch * target.steps[0] + keyHead * target.steps[2]
            for i in 0..<rows { base[(span.start + t0 + i) * target.steps[1]] = r.betaGradient[i] }
        }
        if request.logDecay != nil {
            storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: r.decayGradient)
        }
    }

    /// S_t from S_{t−1} for row `row` of the loaded chunk (in place when `from` == `to`):
    /// u = S_{t−1}ᵀk, w = β(v − αu), S_t = αS_{t−1} + k wᵀ.
    @inline(__always)
    private func deltaStep(from previous: UnsafePointer<Float>, to next: UnsafeMutablePointer<Float>, row i: Int,
                           workspace w: BackwardWorkspace, region r: DeltaRuleBackward.Region) {
        let (m, dv) = (featureDim, valueDim)
        let key = w.keyFeatures + i * m
        let value = w.values + i * dv
        let (alpha, beta) = (r.alpha[i], r.beta[i])
        let u = r.u
        u.update(repeating: 0, count: dv)
        for f in 0..<m {
            let kf = key[f]
            if kf == 0 { continue }
            let row = previous + f * dv
            for j in 0..<dv { u[j] += kf * row[j] }
        }
        for j in 0..<dv { u[j] = beta * (value[j] - alpha * u[j]) }
        for f in 0..<m {
            let kf = key[f]
            let (source, target) = (previous + f * dv, next + f * dv)
            for j in 0..<dv { target[j] = alpha * source[j] + kf * u[j] }
        }
    }

    /// One token backwards: the query side against S_t, then the key side, β, α and Ŝ ← ∂L/∂S_{t−1}.
    @inline(__always)
    private func deltaReverseStep(previous: UnsafePointer<Float>, current: UnsafePointer<Float>, row i: Int,
                                  workspace w: BackwardWorkspace, region r: DeltaRuleBackward.Region) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let hat = w.stateGradient
        for g in 0..<group {
            let query = w.queryFeatures + (g * c + i) * m
            let doutRow = w.outputGradient + (g * c + i) * dv
            let gradient = w.queryFeatureGradient + (g * c + i) * m
            for f in 0..<m {
                gradient[f] = DecodeKernels.dot(current + f * dv, doutRow, count: dv)
                let qf = query[f]
                if qf == 0 { continue }
                let row = hat + f * dv
                for j in 0..<dv { row[j] += qf * doutRow[j] }
            }
        }
        let key = w.keyFeatures + i * m
        let value = w.values + i * dv
        let (alpha, beta) = (r.alpha[i], r.beta[i])
        let (u, x, wv) = (r.u, r.x, r.w)
        u.update(repeating: 0, count: dv)
        x.update(repeating: 0, count: dv)
        for f in 0..<m {
            let kf = key[f]
            if kf == 0 { continue }
            let (p, s) = (previous + f * dv, hat + f * dv)
            for j in 0..<dv {
                u[j] += kf * p[j]
                x[j] += kf * s[j]
            }
        }
        for j in 0..<dv { wv[j] = value[j] - alpha * u[j] }
        var overlap: Float = 0
        var betaGradient: Float = 0
        let keyGradient = w.keyFeatureGradient + i * m
        for f in 0..<m {
            let (p, s) = (previous + f * dv, hat + f * dv)
            let sw = DecodeKernels.dot(s, wv, count: dv)
            let px = DecodeKernels.dot(p, x, count: dv)
            overlap += DecodeKernels.dot(s, p, count: dv)
            let kf = key[f]
            betaGradient += kf * sw
            keyGradient[f] = beta * (sw - alpha * px)
            let scale = beta * kf
            for j in 0..<dv { s[j] = alpha * (s[j] - scale * x[j]) }
        }
        let valueGradient = w.valueGradient + i * dv
        for j in 0..<dv { valueGradient[j] = beta * x[j] }
        r.betaGradient[i] = betaGradient
        r.decayGradient[i] = alpha * (overlap - beta * DecodeKernels.dot(x, u, count: dv))
    }
}
