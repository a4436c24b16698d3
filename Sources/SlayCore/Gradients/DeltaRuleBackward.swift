/// The backward pass of the delta rule (DeltaNet / Gated DeltaNet, `DeltaRuleForm`), causal and
/// unnormalised, in the chunked WY form of the forward. Per chunk of r rows, with K, Q the
/// (L2-normalised, gated) features, λ = g + log γ, b_i = Σ_{t ≤ i} λ_t, Γ_i = e^{b_i}, β:
///   A_ij = β_i (k_i·k_j) e^{b_i − b_j} (j < i),  T = (I + A)⁻¹,  X = diag(βΓ) K,  Y = diag(β) V,
///   W = T X,  U' = T Y − W S_0,  P = tril(Q Kᵀ ⊙ e^{b_i − b_j}),
///   O = diag(Γ) Q S_0 + P U',  S_c = Γ_last S_0 + K̃ᵀ U'  (K̃_j = e^{b_last − b_j} k_j).
/// Backwards, from dO (each query head of the group) and Ŝ = ∂L/∂S_c:
///   dU' = K̃ Ŝ + Σ_g Pᵀ dO,  dP = dO U'ᵀ,  dQ = diag(Γ) dO S_0ᵀ + (dP ⊙ e^{b_i − b_j}) K,
///   dS_0 = Σ_g Qᵀ diag(Γ) dO + Γ_last Ŝ − Wᵀ dU',  dW = −dU' S_0ᵀ,
///   dT = dW Xᵀ + dU' Yᵀ,  dX = Tᵀ dW,  dY = Tᵀ dU',  dA = −Tᵀ dT Tᵀ (strictly lower),
///   dK = (dP ⊙ …)ᵀ Q + e^{b_last − b} ∘ (U' Ŝᵀ) + diag(βΓ) dX + N K + Nᵀ K  (N_ij = dA_ij β_i e^{b_i − b_j}),
///   dV = diag(β) dY,  dβ_i = Γ_i dX_i·k_i + dY_i·v_i + Σ_j dA_ij (k_i·k_j) e^{b_i − b_j},
/// and ∂L/∂b_i from every e^{…} above, summed from the chunk's end into dλ (= dg). Then Ŝ ← dS_0.
/// z is neither read nor written by the delta rule, so dz0 = dz_T.
///
/// The reverse pass needs each chunk's S_0. A first pass over the chunks (the forward's WY
/// update) stores S_0 every k chunks (checkpoints); the reverse pass, block by block from the
/// last, recomputes the block's other k − 1 chunk states from its checkpoint and walks its chunks
/// backwards, recomputing each chunk's T, W and U'. k = 1 (every chunk state kept, no block
/// recompute) while ⌈T/c⌉·m·dv floats fit 16 MiB, else the smallest k that fits (at least 4
/// checkpoints). Memory per thread: (⌈T/(k·c)⌉ + k)·m·dv floats plus O(c·(m + dv) + c²).
enum DeltaRuleBackward {
    /// Checkpoints take at most this many floats per thread (16 MiB), but up to 4 are always kept.
    /// A variable only so that tests can force blocks of several chunks.
    nonisolated(unsafe) static var checkpointBudget = 1 << 22

    /// Chunks per checkpoint block for sequences of up to `length` tokens: 1 (every chunk state
    /// kept) while the states fit the budget, else the fewest that make them fit.
    static func stride(chunk: Int, length: Int, featureDim m: Int, valueDim dv: Int) -> Int {
        let chunks = (max(length, 1) + chunk - 1) / chunk
        let most = max(4, checkpointBudget / max(m * dv, 1))
        return max(1, (chunks + most - 1) / most)
    }

    static func floats(chunk: Int, length: Int, featureDim m: Int, valueDim dv: Int) throws -> Int {
        let k = stride(chunk: chunk, length: length, featureDim: m, valueDim: dv)
        let chunks = (max(length, 1) + chunk - 1) / chunk
        let checkpoints = (chunks + k - 1) / k
        let states = try CheckedSize.multiply(checkpoints + k + 1, m, dv, what: "delta-rule checkpoints")
        let c = chunk
        let blocks = try CheckedSize.multiply(c, 9 * c + 6 * m + 5 * dv + 8, what: "delta-rule chunk")
        return try CheckedSize.add(states, blocks, what: "delta-rule workspace")
    }

    /// The region carved: checkpoints, the block's chunk states, ∂L/∂S_0, and the chunk's blocks.
    struct Region {
        let checkpoints, blockStates, stateGradient: UnsafeMutablePointer<Float>
        // c × c
        /// decay[i, j] = e^{b_i − b_j} for j ≤ i.
        let gram, a, t, p, dp, dt, da, square, decay: UnsafeMutablePointer<Float>
        // c × m
        let x, w, dw, dx, keyScratch, queryGradient: UnsafeMutablePointer<Float>
        // c × dv
        let y, values, valueGradient, negativeValueGradient, rowScratch: UnsafeMutablePointer<Float>
        // c
        let beta, b, gamma, tail, db, betaGradient, lambda, decayGradient: UnsafeMutablePointer<Float>

        init(_ base: UnsafeMutablePointer<Float>, checkpoints count: Int, stride k: Int, chunk c: Int, featureDim m: Int,
             valueDim dv: Int) {
            var cursor = base
            func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { cursor += n }; return cursor }
            checkpoints = take(count * m * dv); blockStates = take((k - 1) * m * dv); stateGradient = take(m * dv)
            gram = take(c * c); a = take(c * c); t = take(c * c); p = take(c * c)
            dp = take(c * c); dt = take(c * c); da = take(c * c); square = take(c * c); decay = take(c * c)
            x = take(c * m); w = take(c * m); dw = take(c * m); dx = take(c * m); keyScratch = take(c * m)
            queryGradient = take(c * m)
            y = take(c * dv); values = take(c * dv); valueGradient = take(c * dv); negativeValueGradient = take(c * dv)
            rowScratch = take(c * dv)
            beta = take(c); b = take(c); gamma = take(c); tail = take(c); db = take(c); betaGradient = take(c)
            lambda = take(c); decayGradient = take(c)
        }
    }
}

extension BackwardPass {
    @inline(__always)
    private func gemm(_ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ rsA: Int, _ csA: Int,
                      _ b: UnsafePointer<Float>, _ rsB: Int, _ csB: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                      accumulate: Bool, _ w: BackwardWorkspace) {
        Gemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: rsA, columnStrideA: csA, b: b, rowStrideB: rsB,
                      columnStrideB: csB, c: c, ldc: ldc, accumulate: accumulate, workspace: w.gemm)
    }

    /// The delta rule's backward for one (sequence, key head) pair (see `DeltaRuleBackward`).
    func deltaRule(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let span = spans[sequence]
        let origin = origins?[sequence] ?? 0
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let matrix = m * dv
        let k = DeltaRuleBackward.stride(chunk: c, length: length, featureDim: m, valueDim: dv)
        let allChunks = (max(length, 1) + c - 1) / c
        let r = DeltaRuleBackward.Region(w.form, checkpoints: (allChunks + k - 1) / k, stride: k, chunk: c, featureDim: m,
                                         valueDim: dv)
        let chunks = (span.length + c - 1) / c
        loadInitialState(sequence: sequence, keyHead: keyHead, workspace: w)

        // Pass 1: the state before every k-th chunk (the last block's chunks are not needed).
        // A chunk that ends a block writes its S_c straight into the next checkpoint.
        let blocks = (chunks + k - 1) / k
        var current = UnsafeMutablePointer(w.state)
        for n in 0..<max(0, (blocks - 1) * k) {
            let checkpoint = r.checkpoints + (n / k) * matrix
            if n % k == 0 && current != checkpoint { checkpoint.update(from: current, count: matrix) }
            let t0 = n * c
            let rows = min(c, span.length - t0)
            let next = (n + 1) % k == 0 ? r.checkpoints + ((n + 1) / k) * matrix : w.state
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            deltaChunk(span: span, keyHead: keyHead, t0: t0, rows: rows, state: current, next: next, workspace: w, region: r)
            current = next
        }
        let lastCheckpoint = r.checkpoints + max(blocks - 1, 0) * matrix
        if blocks > 0 && current != lastCheckpoint { lastCheckpoint.update(from: current, count: matrix) }

        // Ŝ ← dS_T; ẑ ← dz_T stays (z passes through the delta rule unchanged: dz0 = dz_T).
        loadFinalGradient(sequence: sequence, keyHead: keyHead, workspace: w)
        // Ŝ and the next ∂L/∂S_0 alternate between two buffers.
        var (hat, spare) = (w.stateGradient, r.stateGradient)

        for block in stride(from: blocks - 1, through: 0, by: -1) {
            let first = block * k
            let last = min(first + k, chunks)
            // The state before chunk n of the block: its checkpoint, then the recomputed ones.
            func state(_ n: Int) -> UnsafeMutablePointer<Float> {
                n == first ? r.checkpoints + block * matrix : r.blockStates + (n - first - 1) * matrix
            }
            for n in first..<(last - 1) {
                let t0 = n * c
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: min(c, span.length - t0), workspace: w)
                deltaChunk(span: span, keyHead: keyHead, t0: t0, rows: min(c, span.length - t0), state: state(n),
                           next: state(n + 1), workspace: w, region: r)
            }
            for n in stride(from: last - 1, through: first, by: -1) {
                let t0 = n * c
                let rows = min(c, span.length - t0)
                let s0 = state(n)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for g in 0..<group {
                    loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                }
                deltaChunk(span: span, keyHead: keyHead, t0: t0, rows: rows, state: s0, next: nil, workspace: w, region: r)
                deltaChunkBackward(rows: rows, s0: s0, hat: hat, into: spare, workspace: w, region: r)
                swap(&hat, &spare)
                storeDeltaRows(span: span, keyHead: keyHead, t0: t0, rows: rows, region: r)
                finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            }
        }
        if hat != w.stateGradient { w.stateGradient.update(from: hat, count: matrix) }
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

    /// The chunk's forward pieces from its S_0 (`state`): β, λ, b, Γ, e^{b_last − b}, KKᵀ, A, T,
    /// X, Y, W and U' (in r.values); S_c into `next` when given (it may be `state` itself).
    private func deltaChunk(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, state: UnsafePointer<Float>,
                            next: UnsafeMutablePointer<Float>?, workspace w: BackwardWorkspace,
                            region r: DeltaRuleBackward.Region) {
        let (m, dv) = (featureDim, valueDim)
        let key = w.keyFeatures
        if let view = options.beta {
            let base = view.base + span.batch * view.steps[0] + keyHead * view.steps[2]
            for i in 0..<rows { r.beta[i] = base[(span.start + t0 + i) * view.steps[1]] }
        } else {
            r.beta.update(repeating: 1, count: rows)
        }
        let logGamma = options.decay.logarithm(head: keyHead)
        if let view = options.logDecay {
            let base = view.base + span.batch * view.steps[0] + keyHead * view.steps[2]
            for i in 0..<rows { r.lambda[i] = base[(span.start + t0 + i) * view.steps[1]] + logGamma }
        } else {
            r.lambda.update(repeating: logGamma, count: rows)
        }
        var running: Float = 0
        for i in 0..<rows {
            running += r.lambda[i]
            r.b[i] = running
            r.gamma[i] = ScalarDecay.weight(running)
        }
        for i in 0..<rows { r.tail[i] = ScalarDecay.weight(r.b[rows - 1] - r.b[i]) }
        for i in 0..<rows {
            for j in 0...i { r.decay[i * rows + j] = ScalarDecay.weight(r.b[i] - r.b[j]) }
        }
        // KKᵀ, A = β_i (k_i·k_j) e^{b_i − b_j} below the diagonal, T = (I + A)⁻¹ by substitution.
        gemm(rows, rows, m, key, m, 1, key, 1, m, r.gram, rows, accumulate: false, w)
        for i in 0..<rows {
            for j in 0..<rows {
                r.a[i * rows + j] = j < i ? r.beta[i] * r.gram[i * rows + j] * r.decay[i * rows + j] : 0
            }
        }
        for i in 0..<rows {
            let row = r.t + i * rows
            row.update(repeating: 0, count: rows)
            row[i] = 1
            for j in 0..<i {
                let x = r.a[i * rows + j]
                if x == 0 { continue }
                let earlier = r.t + j * rows
                for col in 0...j { row[col] -= x * earlier[col] }
            }
        }
        // X = diag(βΓ) K, Y = diag(β) V, W = T X, U' = T Y − W S_0.
        for i in 0..<rows {
            let scale = r.beta[i] * r.gamma[i]
            for f in 0..<m { r.x[i * m + f] = scale * key[i * m + f] }
            for j in 0..<dv { r.y[i * dv + j] = r.beta[i] * w.values[i * dv + j] }
        }
        gemm(rows, m, rows, r.t, rows, 1, r.x, m, 1, r.w, m, accumulate: false, w)
        gemm(rows, dv, rows, r.t, rows, 1, r.y, dv, 1, r.values, dv, accumulate: false, w)
        gemm(rows, dv, m, r.w, m, 1, state, dv, 1, r.rowScratch, dv, accumulate: false, w)
        for i in 0..<(rows * dv) { r.values[i] -= r.rowScratch[i] }
        guard let next else { return }
        // S_c = Γ_last S_0 + K̃ᵀ U'.
        let carry = r.gamma[rows - 1]
        for i in 0..<(m * dv) { next[i] = carry * state[i] }
        for i in 0..<rows {
            let scale = r.tail[i]
            for f in 0..<m { r.keyScratch[i * m + f] = scale * key[i * m + f] }
        }
        gemm(m, dv, rows, r.keyScratch, 1, m, r.values, dv, 1, next, dv, accumulate: true, w)
    }

    /// The chunk's gradients from Ŝ = ∂L/∂S_c (`hat`) and the group's dO: dQ into
    /// w.queryFeatureGradient, dK into w.keyFeatureGradient, dV into w.valueGradient, dβ and dλ
    /// into the region, ∂L/∂S_0 into `dS0`.
    private func deltaChunkBackward(rows: Int, s0: UnsafePointer<Float>, hat: UnsafePointer<Float>,
                                    into dS0: UnsafeMutablePointer<Float>, workspace w: BackwardWorkspace,
                                    region r: DeltaRuleBackward.Region) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let key = w.keyFeatures
        let dK = w.keyFeatureGradient
        let dU = r.valueGradient
        r.db.update(repeating: 0, count: rows)
        r.betaGradient.update(repeating: 0, count: rows)
        // K̃ = e^{b_last − b} ∘ K; dU' = K̃ Ŝ.
        for i in 0..<rows {
            for f in 0..<m { r.keyScratch[i * m + f] = r.tail[i] * key[i * m + f] }
        }
        gemm(rows, dv, m, r.keyScratch, m, 1, hat, dv, 1, dU, dv, accumulate: false, w)
        // dS_0 = Γ_last Ŝ (+ the query and W terms below); ∂b_last += Γ_last ⟨Ŝ, S_0⟩.
        let carry = r.gamma[rows - 1]
        var overlap: Float = 0
        for i in 0..<(m * dv) {
            dS0[i] = carry * hat[i]
            overlap += hat[i] * s0[i]
        }
        r.db[rows - 1] += carry * overlap
        // dK̃ = U' Ŝᵀ: dK = e^{b_last − b} ∘ dK̃ (the first term of dK), ∂b from the tails.
        gemm(rows, m, dv, r.values, dv, 1, hat, 1, dv, dK, m, accumulate: false, w)
        for i in 0..<rows {
            var dot: Float = 0
            for f in 0..<m {
                dK[i * m + f] *= r.tail[i]
                dot += dK[i * m + f] * key[i * m + f]
            }
            r.db[rows - 1] += dot
            r.db[i] -= dot
        }
        for g in 0..<group {
            let query = w.queryFeatures + g * c * m
            let dO = w.outputGradient + g * c * dv
            let dQ = w.queryFeatureGradient + g * c * m
            // P = tril(Q Kᵀ ⊙ e^{b_i − b_j}); dU' += Pᵀ dO.
            gemm(rows, rows, m, query, m, 1, key, 1, m, r.p, rows, accumulate: false, w)
            for i in 0..<rows {
                for j in 0..<rows { r.p[i * rows + j] = j <= i ? r.p[i * rows + j] * r.decay[i * rows + j] : 0 }
            }
            gemm(rows, dv, rows, r.p, 1, rows, dO, dv, 1, dU, dv, accumulate: true, w)
            // dP = dO U'ᵀ; ∂b from P's decay; E = dP ⊙ e^{b_i − b_j} (lower) into r.dp.
            gemm(rows, rows, dv, dO, dv, 1, r.values, 1, dv, r.dp, rows, accumulate: false, w)
            for i in 0..<rows {
                for j in 0..<rows {
                    guard j <= i else { r.dp[i * rows + j] = 0; continue }
                    let gradient = r.dp[i * rows + j]
                    let term = gradient * r.p[i * rows + j]
                    r.db[i] += term
                    r.db[j] -= term
                    r.dp[i * rows + j] = gradient * r.decay[i * rows + j]
                }
            }
            // dQ = diag(Γ) dO S_0ᵀ + E K; ∂b_i += q_i·(Γ_i dO_i S_0ᵀ).
            gemm(rows, m, dv, dO, dv, 1, s0, 1, dv, dQ, m, accumulate: false, w)
            for i in 0..<rows {
                var dot: Float = 0
                for f in 0..<m {
                    dQ[i * m + f] *= r.gamma[i]
                    dot += dQ[i * m + f] * query[i * m + f]
                }
                r.db[i] += dot
            }
            gemm(rows, m, rows, r.dp, rows, 1, key, m, 1, dQ, m, accumulate: true, w)
            // dK += Eᵀ Q; dS_0 += Qᵀ diag(Γ) dO.
            gemm(rows, m, rows, r.dp, 1, rows, query, m, 1, dK, m, accumulate: true, w)
            for i in 0..<rows {
                for j in 0..<dv { r.rowScratch[i * dv + j] = r.gamma[i] * dO[i * dv + j] }
            }
            gemm(m, dv, rows, query, 1, m, r.rowScratch, dv, 1, dS0, dv, accumulate: true, w)
        }
        // dW = −dU' S_0ᵀ; dS_0 −= Wᵀ dU'.
        for i in 0..<(rows * dv) { r.negativeValueGradient[i] = -dU[i] }
        gemm(rows, m, dv, r.negativeValueGradient, dv, 1, s0, 1, dv, r.dw, m, accumulate: false, w)
        gemm(m, dv, rows, r.w, 1, m, r.negativeValueGradient, dv, 1, dS0, dv, accumulate: true, w)
        // dT = dW Xᵀ + dU' Yᵀ; dX = Tᵀ dW; dY = Tᵀ dU' (into r.rowScratch).
        gemm(rows, rows, m, r.dw, m, 1, r.x, 1, m, r.dt, rows, accumulate: false, w)
        gemm(rows, rows, dv, dU, dv, 1, r.y, 1, dv, r.dt, rows, accumulate: true, w)
        gemm(rows, m, rows, r.t, 1, rows, r.dw, m, 1, r.dx, m, accumulate: false, w)
        gemm(rows, dv, rows, r.t, 1, rows, dU, dv, 1, r.rowScratch, dv, accumulate: false, w)
        // X = diag(βΓ) K, Y = diag(β) V.
        for i in 0..<rows {
            let (beta, gamma) = (r.beta[i], r.gamma[i])
            var dot: Float = 0
            for f in 0..<m {
                dot += r.dx[i * m + f] * key[i * m + f]
                dK[i * m + f] += beta * gamma * r.dx[i * m + f]
            }
            var valueDot: Float = 0
            let dY = r.rowScratch + i * dv
            let value = w.values + i * dv
            let dV = w.valueGradient + i * dv
            for j in 0..<dv {
                valueDot += dY[j] * value[j]
                dV[j] = beta * dY[j]
            }
            r.betaGradient[i] += gamma * dot + valueDot
            r.db[i] += beta * gamma * dot
        }
        // dA = −Tᵀ dT Tᵀ (strictly lower); N_ij = dA_ij β_i e^{b_i − b_j}; dK += (N + Nᵀ) K.
        gemm(rows, rows, rows, r.dt, rows, 1, r.t, 1, rows, r.square, rows, accumulate: false, w)
        gemm(rows, rows, rows, r.t, 1, rows, r.square, rows, 1, r.da, rows, accumulate: false, w)
        for i in 0..<rows {
            for j in 0..<rows {
                guard j < i else { r.da[i * rows + j] = 0; continue }
                let gradient = -r.da[i * rows + j]
                let decay = r.decay[i * rows + j]
                r.betaGradient[i] += gradient * r.gram[i * rows + j] * decay
                let term = gradient * r.a[i * rows + j]
                r.db[i] += term
                r.db[j] -= term
                r.da[i * rows + j] = gradient * r.beta[i] * decay
            }
        }
        for i in 0..<rows {
            for j in 0..<rows { r.square[i * rows + j] = r.da[i * rows + j] + r.da[j * rows + i] }
        }
        gemm(rows, m, rows, r.square, rows, 1, key, m, 1, dK, m, accumulate: true, w)
        // dλ_t = Σ_{i ≥ t} ∂b_i within the chunk.
        var suffix: Float = 0
        for i in stride(from: rows - 1, through: 0, by: -1) {
            suffix += r.db[i]
            r.decayGradient[i] = suffix
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
}
