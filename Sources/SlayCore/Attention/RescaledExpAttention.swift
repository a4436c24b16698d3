#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Kernel-normalised attention with the ELA Hadamard Exp kernel k(a, b) = Σ_f e^{a_f + b_f}
/// (docs/math.md §2), evaluated exactly and without overflow: the features e^a, e^b overflow fp32 once
/// an entry passes ~88, so this engine never forms them.
///
/// Per (sequence, key head) the state keeps, per feature dimension f, the running maximum μ_f of
/// the key entries b_jf absorbed so far (−inf = "empty", no key yet) and the rows rescaled by it:
///   S̃_f = Σ_j e^{b_jf − μ_f} v_j,   z̃_f = Σ_j e^{b_jf − μ_f}.
/// A query row a_i gets its own reference r_i = the largest exponent it will meet,
///   r_i = max_f (a_if + max(μ_f, max_{j ≤ i in the chunk} b_jf)),
/// so every exponentiated value a_if + μ_f − r_i (inter-chunk) and a_if + b_jf − r_i (intra-chunk)
/// is ≤ 0 in fp32 too (fp32 addition is monotone). Then
///   num_i = Σ_f e^{a_if + μ_f − r_i} S̃_f + Σ_{j ≤ i} s_ij v_j,  s_ij = Σ_f e^{a_if + b_jf − r_i},
///   den_i likewise with z̃ and 1, and y_i = num_i / (den_i + δ e^{−r_i}):
/// the common factor e^{r_i} cancels, and δ is scaled into the same frame, so y is the usual
/// Σ k v / (Σ k + δ) (clamp mode: / max(Σ k, δ)). The largest term is 1, so den_i ≥ 1 up to
/// rounding. After a chunk, μ' = max(μ, chunk max), S̃ and z̃ rows are rescaled by e^{μ − μ'}
/// and the chunk's keys added with e^{b_jf − μ'_f}.
///
/// Intra-chunk scores cost c·d exponentials per query row (the kernel has no cheaper exact
/// factorisation in a stable frame); threads split (sequence, key head) pairs only, so results
/// do not depend on the thread count. Unnormalised outputs (they are e^{r_i}·num_i, which
/// overflows exactly where this kernel is interesting) and decay are refused.
///
/// Non-finite inputs are not trapped: NaN propagates to the outputs (and the state) it reaches;
/// ±inf entries give NaN or meaningless values for those rows, as with the other maps.
enum RescaledExpAttention {
    /// μ of a feature dimension no key has reached yet.
    static let empty = -Float.infinity

    static func handles(_ map: FeatureMap) -> Bool { map is HadamardExpFeatureMap }

    static func checkOptions(normalize: Bool, decay: HeadDecay, channelDecay: Bool = false, gates: Bool = false) throws {
        guard normalize else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP computes normalised attention only (normalize = 0 is "
                            + "unsupported: the unnormalised output Σ_j k(q, k_j) v_j overflows fp32 for large inputs)")
        }
        guard !decay.isActive else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP does not support decay (its rescaled state has no decayed form)")
        }
        guard !channelDecay else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP does not support log_decay (its rescaled state has no decayed form)")
        }
        guard !gates else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP does not support query_gate_logits / key_gate_logits "
                            + "(gates belong to the unnormalised SLA backbone; this kind is normalised only)")
        }
    }

    /// δ in the frame of a row whose exponents were shifted by −r: δ·e^{−r}, in double so that
    /// only a frame beyond fp32 range rounds it to 0 or inf (then y is 0, which the exact
    /// num / (den + δ) also rounds to in fp32). δ = 0 stays 0 (never 0·inf).
    @inline(__always)
    static func scaledDelta(_ delta: Float, reference r: Float) -> Float {
        delta == 0 ? 0 : Float(Double(delta) * exp(-Double(r)))
    }

    /// NaN-skipping maximum: a NaN entry is not selected here, it reaches the output through
    /// its own exponential instead.
    @inline(__always)
    static func larger(_ x: Float, _ y: Float) -> Float { x > y ? x : y }

    // MARK: whole sequences, prefill, absorb and queries (the LinearAttention.Plan hook)

    /// Runs every (sequence, key head) task of partition `ith` of `nth` on up to `nThreads` threads.
    static func execute(_ plan: LinearAttention.Plan, nThreads: Int, partition: (ith: Int, nth: Int)) throws {
        try checkOptions(normalize: plan.normalize, decay: plan.decay, channelDecay: plan.logDecay != nil,
                         gates: plan.queryGates != nil || plan.keyGates != nil)
        let layout = try Layout(headDim: plan.map.headDim, valueDim: plan.valueDim, chunk: plan.layout.chunk)
        let mine = ParallelFor.share(of: plan.taskCount, worker: partition.ith, workers: partition.nth)
        let workers = max(1, min(nThreads, mine.count))
        // Every worker's workspace up front: a failure is a status, never a partial write.
        var buffers: [ScratchBuffer] = []
        for _ in 0..<workers { buffers.append(try ScratchBuffer(floats: layout.totalFloats)) }
        let scratch = buffers
        ParallelFor.run(workers: workers) { worker in
            let w = Workspace(layout: layout, buffer: scratch[worker])
            for index in ParallelFor.share(of: mine.count, worker: worker, workers: workers) {
                runTask(plan, task: mine.lowerBound + index, workspace: w)
            }
        }
        withExtendedLifetime(buffers) {}
    }

    static func runTask(_ plan: LinearAttention.Plan, task: Int, workspace w: Workspace) {
        let sequence = task / plan.map.numHeads
        let span = plan.spans[sequence]
        let keyHead = task % plan.map.numHeads
        let (d, dv) = (plan.map.headDim, plan.valueDim)
        var rescaled: RescaledState
        if let state = plan.state {
            let slot = plan.slots[sequence]
            rescaled = RescaledState(matrix: state.matrix(slot: slot, head: keyHead),
                                     normaliser: state.normaliser(slot: slot, head: keyHead),
                                     maxima: state.maxima(slot: slot, head: keyHead)!)
        } else {
            rescaled = RescaledState(matrix: w.state, normaliser: w.normaliser, maxima: w.maxima)
            w.state.update(repeating: 0, count: d * dv)
            w.normaliser.update(repeating: 0, count: d)
            w.maxima.update(repeating: empty, count: d)
        }
        let context = Context(plan: plan, span: span, keyHead: keyHead, headDim: d, valueDim: dv)
        switch plan.mode {
        case .causal:
            var t0 = 0
            while t0 < span.length {
                let rows = min(w.chunk, span.length - t0)
                context.loadKeys(t0: t0, rows: rows, state: rescaled, workspace: w)
                for g in 0..<context.group {
                    context.queryChunk(queryHead: keyHead * context.group + g, t0: t0, rows: rows, causal: true,
                                       state: rescaled, workspace: w)
                }
                context.absorbChunk(rows: rows, state: &rescaled, workspace: w)
                t0 += rows
            }
        case .bidirectional, .absorb:
            var t0 = 0
            while t0 < span.length {
                let rows = min(w.chunk, span.length - t0)
                context.loadKeys(t0: t0, rows: rows, state: rescaled, workspace: w)
                context.absorbChunk(rows: rows, state: &rescaled, workspace: w)
                t0 += rows
            }
            if plan.mode == .bidirectional { context.queryAll(state: rescaled, workspace: w) }
        case .query:
            context.queryAll(state: rescaled, workspace: w)
        }
    }

    /// One (sequence, key head) pair's rescaled state: S̃ [d, dv], z̃ [d], μ [d].
    struct RescaledState {
        let matrix: UnsafeMutablePointer<Float>
        let normaliser: UnsafeMutablePointer<Float>
        let maxima: UnsafeMutablePointer<Float>
    }

    /// What a task reads: the plan's views and options for one sequence and key head.
    struct Context {
        let plan: LinearAttention.Plan
        let span: SequenceSpan
        let keyHead: Int
        let headDim: Int
        let valueDim: Int

        var group: Int { plan.queryHeads / plan.map.numHeads }

        /// Keys and values of rows t0 ..< t0 + rows, and the running maxima
        /// prefix[i, f] = max(μ_f, b_0f, …, b_if) that bound row i's exponents.
        func loadKeys(t0: Int, rows: Int, state: RescaledState, workspace w: Workspace) {
            let d = headDim
            plan.k!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.keyRows)
            plan.v!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.valueRows)
            for i in 0..<rows {
                let previous = i == 0 ? UnsafePointer(state.maxima) : UnsafePointer(w.prefix + (i - 1) * d)
                let key = w.keyRows + i * d
                let target = w.prefix + i * d
                for f in 0..<d { target[f] = larger(key[f], previous[f]) }
            }
        }

        /// Outputs of a chunk's queries for one query head: against the state (inter-chunk) and,
        /// when causal, against the chunk's keys j ≤ i (intra-chunk, diagonal included).
        func queryChunk(queryHead: Int, t0: Int, rows: Int, causal: Bool, state: RescaledState, workspace w: Workspace) {
            let (d, dv) = (headDim, valueDim)
            plan.q!.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows, into: w.queryRows)
            for i in 0..<rows {
                let a = w.queryRows + i * d
                let bound = causal ? UnsafePointer(w.prefix + i * d) : UnsafePointer(state.maxima)
                var r = -Float.infinity
                for f in 0..<d { r = larger(a[f] + bound[f], r) }
                // No key at all (a query on an empty slot): every weight is 0, any frame will do.
                if r == -.infinity { r = 0 }
                w.references[i] = r
                // Inter-chunk weights e^{a_f + μ_f − r}; empty dimensions have no keys (weight 0).
                let weights = w.weights + i * d
                for f in 0..<d { weights[f] = a[f] + state.maxima[f] }
                VectorMath.expShiftedClamped(weights, count: d, shift: r, limit: 88, scale: 1, output: weights)
                for f in 0..<d where state.maxima[f] == empty { weights[f] = 0 }
                var total: Float = 0
                for f in 0..<d { total += weights[f] * state.normaliser[f] }
                w.denominators[i] = total
                guard causal else { continue }
                // Intra-chunk scores s_ij = Σ_f e^{a_f + b_jf − r}, j ≤ i.
                let sums = w.exponents
                for j in 0...i {
                    let key = w.keyRows + j * d
                    let target = sums + j * d
                    for f in 0..<d { target[f] = a[f] + key[f] }
                }
                VectorMath.expShiftedClamped(sums, count: (i + 1) * d, shift: r, limit: 88, scale: 1, output: sums)
                let row = w.scores + i * rows
                var rowTotal: Float = 0
                for j in 0...i {
                    let terms = sums + j * d
                    var s: Float = 0
                    for f in 0..<d { s += terms[f] }
                    row[j] = s
                    rowTotal += s
                }
                for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
                w.denominators[i] += rowTotal
            }
            Gemm.multiply(m: rows, n: dv, k: d, a: w.weights, rowStrideA: d, columnStrideA: 1,
                          b: state.matrix, rowStrideB: dv, columnStrideB: 1, c: w.outputs, ldc: dv,
                          accumulate: false, workspace: w.gemm)
            if causal {
                Gemm.multiply(m: rows, n: dv, k: rows, a: w.scores, rowStrideA: rows, columnStrideA: 1,
                              b: w.valueRows, rowStrideB: dv, columnStrideB: 1, c: w.outputs, ldc: dv,
                              accumulate: true, workspace: w.gemm)
            }
            store(rows: rows, queryHead: queryHead, t0: t0, workspace: w)
        }

        /// y = num / (den + δ e^{−r}) (or max(den, δ e^{−r})) into `out`.
        func store(rows: Int, queryHead: Int, t0: Int, workspace w: Workspace) {
            let out = plan.out!
            let dv = valueDim
            let base = out.base + span.batch * out.steps[0] + queryHead * out.steps[2]
            for i in 0..<rows {
                let delta = scaledDelta(plan.delta, reference: w.references[i])
                let inverse = plan.denominator.inverse(w.denominators[i], delta: delta)
                let row = w.outputs + i * dv
                let target = base + (span.start + t0 + i) * out.steps[1]
                for j in 0..<dv { target[j * out.steps[3]] = row[j] * inverse }
            }
        }

        /// Every query of the span against the (final) state, for each query head of the group.
        func queryAll(state: RescaledState, workspace w: Workspace) {
            for g in 0..<group {
                var t0 = 0
                while t0 < span.length {
                    let rows = min(w.chunk, span.length - t0)
                    queryChunk(queryHead: keyHead * group + g, t0: t0, rows: rows, causal: false, state: state, workspace: w)
                    t0 += rows
                }
            }
        }

        /// μ' = the chunk's last prefix row; S̃, z̃ rows rescaled by e^{μ − μ'}, then
        /// S̃ += Eᵀ V and z̃ += Eᵀ 1 with E_jf = e^{b_jf − μ'_f}.
        func absorbChunk(rows: Int, state: inout RescaledState, workspace w: Workspace) {
            let (d, dv) = (headDim, valueDim)
            let newMaxima = w.prefix + (rows - 1) * d
            for f in 0..<d where newMaxima[f] != state.maxima[f] && state.maxima[f] != empty {
                let factor = expf(state.maxima[f] - newMaxima[f])
                let row = state.matrix + f * dv
                for j in 0..<dv { row[j] *= factor }
                state.normaliser[f] *= factor
            }
            let e = w.exponents
            for j in 0..<rows {
                let key = w.keyRows + j * d
                let target = e + j * d
                for f in 0..<d { target[f] = key[f] - newMaxima[f] }
            }
            VectorMath.expShiftedClamped(e, count: rows * d, shift: 0, limit: 88, scale: 1, output: e)
            for f in 0..<d where newMaxima[f] == empty {
                // Only keys with b = −inf so far: e^b = 0 (and b − μ' would be NaN).
                for j in 0..<rows { e[j * d + f] = 0 }
            }
            Gemm.multiply(m: d, n: dv, k: rows, a: e, rowStrideA: 1, columnStrideA: d,
                          b: w.valueRows, rowStrideB: dv, columnStrideB: 1, c: state.matrix, ldc: dv,
                          accumulate: true, workspace: w.gemm)
            for j in 0..<rows {
                let terms = e + j * d
                for f in 0..<d { state.normaliser[f] += terms[f] }
            }
            state.maxima.update(from: newMaxima, count: d)
        }
    }

    /// Floats of one worker's workspace, computed with overflow checks.
    struct Layout: Sendable {
        let chunk, headDim, valueDim: Int
        let keyFloats, valueFloats, scoreFloats, stateFloats: Int
        let totalFloats: Int

        init(headDim: Int, valueDim: Int, chunk: Int) throws {
            self.chunk = chunk
            self.headDim = headDim
            self.valueDim = valueDim
            keyFloats = try CheckedSize.multiply(chunk, headDim, what: "workspace (chunk_size · d)")
            valueFloats = try CheckedSize.multiply(chunk, valueDim, what: "workspace (chunk_size · dv)")
            scoreFloats = try CheckedSize.multiply(chunk, chunk, what: "workspace (chunk_size²)")
            stateFloats = try CheckedSize.multiply(headDim, valueDim, what: "state size d · dv")
            var total = 0
            for piece in [keyFloats, keyFloats, valueFloats, keyFloats, keyFloats, keyFloats, scoreFloats, valueFloats,
                          chunk, chunk, stateFloats, headDim, headDim, Gemm.workspaceFloats] {
                total = try CheckedSize.add(total, ScratchBuffer.footprint(piece), what: "workspace")
            }
            totalFloats = total
        }
    }

    /// One worker's blocks, carved in the order Layout sums them.
    struct Workspace {
        let queryRows, keyRows, valueRows, prefix, weights, exponents, scores, outputs, denominators, references,
            state, normaliser, maxima, gemm: UnsafeMutablePointer<Float>
        let chunk: Int

        init(layout: Layout, buffer: ScratchBuffer) {
            chunk = layout.chunk
            var carver = ScratchCarver(buffer.pointer)
            queryRows = carver.take(layout.keyFloats)
            keyRows = carver.take(layout.keyFloats)
            valueRows = carver.take(layout.valueFloats)
            prefix = carver.take(layout.keyFloats)
            weights = carver.take(layout.keyFloats)
            exponents = carver.take(layout.keyFloats)
            scores = carver.take(layout.scoreFloats)
            outputs = carver.take(layout.valueFloats)
            denominators = carver.take(layout.chunk)
            references = carver.take(layout.chunk)
            state = carver.take(layout.stateFloats)
            normaliser = carver.take(layout.headDim)
            maxima = carver.take(layout.headDim)
            gemm = carver.take(Gemm.workspaceFloats)
        }
    }
}

// MARK: decode steps (the RecurrentState.step hook)

extension RecurrentState {
    /// One decode token of one (sequence, key head) task for SLAY_KIND_HADAMARD_EXP, in the
    /// rescaled frame of RescaledExpAttention, with the state streamed once as in the generic
    /// step. Per feature f the new key either raises μ_f (the state row is scaled by e^{μ − b}
    /// and the key enters with weight 1) or not (the key enters with weight e^{b − μ}): one
    /// exponential e^{−|b − μ|} per f covers both. The carving of `buffer` is the generic step's
    /// (DecodeWorkspace): query rows, key row, value row, φ(q) block (here the query weights),
    /// φ(k) (here e^{−|b − μ|}), outputs, denominators.
    func decodeRescaledExp(task: Int, group: Int, q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           slots: SlotList, delta: Float, denominator: DenominatorMode, buffer: ScratchBuffer) {
        let (d, dv) = (map.headDim, valueDim)
        let sequence = task / numHeads
        let head = task % numHeads
        let slot = slots[sequence]
        var carver = ScratchCarver(buffer.pointer)
        let queryRows = carver.take(group * d), keyRow = carver.take(d), valueRow = carver.take(dv), weights = carver.take(group * d),
            factors = carver.take(d), outputs = carver.take(group * dv), denominators = carver.take(group),
            keyScales = carver.take(d)
        RecurrentState.gatherStepToken(q: q, k: k, v: v, sequence: sequence, head: head, group: group,
                                       queryRows: queryRows, keyRow: keyRow, valueRow: valueRow)

        let empty = RescaledExpAttention.empty
        let mu = maxima(slot: slot, head: head)!
        // Exponents −|b − μ| (0 where the factor is fixed below: an empty μ, or a key of −inf).
        for f in 0..<d {
            let (b, m) = (keyRow[f], mu[f])
            factors[f] = b > m ? (m == empty ? 0 : m - b) : (b == empty ? 0 : b - m)
        }
        VectorMath.expShiftedClamped(factors, count: d, shift: 0, limit: 88, scale: 1, output: factors)
        // Query weights e^{a_f + μ'_f − r} against the state after this key, μ' = max(μ, b).
        func reference(_ a: UnsafePointer<Float>) -> Float {
            var r = -Float.infinity
            for f in 0..<d { r = RescaledExpAttention.larger(a[f] + RescaledExpAttention.larger(keyRow[f], mu[f]), r) }
            return r == -.infinity ? 0 : r
        }
        for g in 0..<group {
            let a = queryRows + g * d
            let row = weights + g * d
            for f in 0..<d { row[f] = a[f] + RescaledExpAttention.larger(keyRow[f], mu[f]) }
            VectorMath.expShiftedClamped(row, count: d, shift: reference(a), limit: 88, scale: 1, output: row)
            for f in 0..<d where RescaledExpAttention.larger(keyRow[f], mu[f]) == empty { row[f] = 0 }
        }
        let state = rawMatrix(slot: slot, head: head)
        let z = rawNormaliser(slot: slot, head: head)
        // Row f of S and z is rescaled when the key raises μ_f, else the key is scaled down:
        // factors becomes the per-row state scale, keyScales the per-row key scale.
        for f in 0..<d {
            let (b, m) = (keyRow[f], mu[f])
            if b > m {
                (factors[f], keyScales[f]) = (m == empty ? 0 : factors[f], 1)
                mu[f] = b
            } else {
                (factors[f], keyScales[f]) = (1, b == empty ? 0 : factors[f])
            }
        }
        DecodeKernels.normaliser(z, storage: storageType, rows: d, stateScales: factors, stateScaleStride: 1, keyScales: keyScales,
                                 queries: weights, queryStride: d, group: group, denominators: denominators)
        DecodeKernels.additive(state: state, storage: storageType, rows: d, columns: dv, rowStride: dv,
                               stateScales: factors, stateScaleStride: 1, keyScales: keyScales, value: valueRow,
                               queries: weights, queryStride: d, group: group, outputs: outputs)
        for g in 0..<group {
            // μ now holds μ', so the reference is recomputed from it (the same r as above).
            var r = -Float.infinity
            for f in 0..<d { r = RescaledExpAttention.larger(queryRows[g * d + f] + mu[f], r) }
            if r == -.infinity { r = 0 }
            let inverse = denominator.inverse(denominators[g], delta: RescaledExpAttention.scaledDelta(delta, reference: r))
            let target = out.base + sequence * out.steps[0] + (head * group + g) * out.steps[1]
            for j in 0..<dv { target[j * out.steps[2]] = outputs[g * dv + j] * inverse }
        }
    }
}
