/// The gated form (GLA, docs/math.md §3): data-dependent per-channel decay,
/// S_t = Diag(α_t) S_{t−1} + φ(k_t) v_tᵀ and z_t = Diag(α_t) z_{t−1} + φ(k_t), log_decay
/// [B, T, Hk, m] (times γ when `decay` is given too). Per-head log_decay [B, T, Hk] is a scalar
/// decay and runs in the additive form.
///
/// With b_i = Σ_{t ≤ i} log α_t within a chunk (per channel), row i reads the state before the
/// chunk through φ(q_i) ⊙ e^(b_i); the intra-chunk block is s_ij = Σ_f φq_if φk_jf e^(b_if − b_jf)
/// for j ≤ i, computed pairwise (DecayKernels.decayedScores); the state moves on as
/// S ← e^(b_last) ⊙ S + Σ_j (φk_j ⊙ e^(b_last − b_j)) v_jᵀ, a GEMM on scaled key features.
/// Every exponent is a sum of log α over a stretch of rows, so it is ≤ 0 and e^(−b) is never
/// formed: any α, down to e^−10000 and below, gives finite results (weights below the smallest
/// normal float are 0). Decode: one pass over S with a per-row state scale α_f.
enum GatedForm: RecurrenceForm {
    static func claims(map: FeatureMap, options: LinearAttentionOptions) -> Bool {
        // A per-head log decay arrives broadcast over the channels (a zero channel stride).
        guard options.update == .add, let logDecay = options.logDecay else { return false }
        return logDecay.steps[logDecay.rank - 1] != 0
    }

    /// Its intra-chunk block costs an exp per pair and channel: short chunks are faster (8 in
    /// `python -m slay.bench`).
    static let preferredChunk = 8

    static func reserve(_ layout: inout WorkspaceLayout, map: FeatureMap, valueDim: Int, step: Bool) throws {
        let (c, m) = (layout.chunk, map.featureDim)
        guard !step else { return try layout.reserve(.decayFactors, m) }
        try layout.reserve(.logDecay, c, m)
        try layout.reserve(.decayFactors, c, m)
        try layout.reserve(.running, try CheckedSize.add(m, 8, what: "workspace"))
    }

    static func prepareKeys(_ task: FormTask, _ chunk: inout ChunkRows) {
        task.channelLogDecay(chunk)
        // e^(b_i): how much of the state before the chunk row i still sees, per channel.
        let (w, m, rows) = (task.w, task.map.featureDim, chunk.rows)
        let (factors, logs) = (w[.decayFactors], w[.logDecay])
        factors.update(from: logs, count: m)
        for i in 1..<max(1, rows) {
            let (previous, row, step) = (factors + (i - 1) * m, factors + i * m, logs + i * m)
            for f in 0..<m { row[f] = previous[f] + step[f] }
        }
        DecayMath.expNonPositive(factors, count: rows * m, output: factors)
    }

    static func queryChunk(_ task: FormTask, _ chunk: ChunkRows, causal: Bool) {
        let (w, m, rows) = (task.w, task.map.featureDim, chunk.rows)
        guard causal else { return task.readState(rows: rows) }
        // The intra block needs the undecayed φ(q); the readout then decays it in place.
        DecayMath.decayedScores(q: w[.phiQ], k: w[.phiK], logDecay: w[.logDecay], rows: rows, m: m, output: w[.scores],
                                running: w[.running])
        for i in 0..<(rows * m) { w[.phiQ][i] *= w[.decayFactors][i] }
        task.readState(rows: rows)
        task.addIntraChunk(chunk)
    }

    /// S ← e^(b_last) ⊙ S + Σ_j (φk_j ⊙ e^(b_last − b_j)) v_jᵀ and z alike, from w[.logDecay] and
    /// w[.phiK] (scaled in place: the chunk is done with it).
    static func absorbChunk(_ task: FormTask, _ chunk: ChunkRows) {
        let (w, m, rows) = (task.w, task.map.featureDim, chunk.rows)
        // Suffix sums b_last − b_j = Σ_{t = j+1 … last} log α_t, then the carry b_last = that of j = −1.
        let (suffix, carry, logs, count) = (w[.decayFactors], w[.running], w[.logDecay], rows * m)
        (suffix + count - m).update(repeating: 0, count: m)
        for j in stride(from: rows - 2, through: 0, by: -1) {
            let (row, next, step) = (suffix + j * m, suffix + (j + 1) * m, logs + (j + 1) * m)
            for f in 0..<m { row[f] = next[f] + step[f] }
        }
        for f in 0..<m { carry[f] = suffix[f] + logs[f] }
        DecayMath.expNonPositive(suffix, count: count, output: suffix)
        DecayMath.expNonPositive(carry, count: m, output: carry)
        task.scaleState(by: carry)
        for i in 0..<count { w[.phiK][i] *= suffix[i] }
        task.addKeysToState(rows: rows)
    }

    // MARK: decode step

    /// S_f ← α_f γ S_f + φ(k)_f v, z alike, read out by every query head of the group: one pass.
    static func step(_ task: StepTask) {
        let (w, m, logDecay) = (task.w, task.map.featureDim, task.options.logDecay!)
        let logGamma = task.options.decay.logarithm(head: task.head)
        let scales = w[.decayFactors]
        for f in 0..<m { scales[f] = task.token(logDecay, channel: f) + logGamma }
        DecayMath.expNonPositive(scales, count: m, output: scales)
        task.additive(rows: m, stateScales: scales, stride: 1, keyScales: w[.phiK])
    }
}
