/// The additive form: S_t = decay_t S_{t−1} + φ(k_t) v_tᵀ, z_t = decay_t z_{t−1} + φ(k_t), with
/// decay_t = 1 (plain linear attention), RetNet's γ per key head, or a per-head data-dependent
/// e^{g_t} (GLA with log_decay [B, T, Hk]; times γ when both are given).
///
/// Chunked (docs/math.md §5): per chunk y = Φ_Q S_prev + tril(Φ_Q Φ_Kᵀ) V, S += Φ_Kᵀ V, with the
/// scalar decay factors of ScalarDecay on the inter-chunk rows, the intra-chunk scores and the
/// keys entering the state. Decode: one pass over S (the DecodeKernels row stream).
enum AdditiveForm: RecurrenceForm {
    static func claims(map: FeatureMap, options: LinearAttentionOptions) -> Bool { options.update == .add }

    static let preferredChunk = 64

    static func reserve(_ layout: inout WorkspaceLayout, map: FeatureMap, valueDim: Int, step: Bool) throws {
        guard !step else { return try layout.reserve(.running, 1) }
        let c = layout.chunk
        try layout.reserve(.powers, c + 1)
        try layout.reserve(.rowDecay, c)
        try layout.reserve(.decayFactors, c)
    }

    static func prepareKeys(_ task: FormTask, _ chunk: inout ChunkRows) {
        if task.options.logDecay != nil {
            task.cumulativeRowDecay(chunk)
        } else if task.decays && chunk.t0 == 0 {
            // The powers depend only on γ: once per task (the workspace is the task's until it ends).
            ScalarDecay.fillPowers(task.options.decay[task.keyHead], count: task.w.layout.chunk + 1, into: task.w[.powers])
        }
    }

    static func queryChunk(_ task: FormTask, _ chunk: ChunkRows, causal: Bool) {
        let (w, m, rows) = (task.w, task.map.featureDim, chunk.rows)
        task.readState(rows: rows)
        guard causal else { return }
        let (decayed, dataDependent) = (task.decays, task.options.logDecay != nil)
        // The state holds keys before the chunk: row i sees them decayed by e^{b_i} (γ^(i+1)).
        if decayed { task.scaleReadout(rows: rows) { dataDependent ? ScalarDecay.weight(w[.rowDecay][$0]) : w[.powers][$0 + 1] } }
        // Intra-chunk: scores = tril(Φ_Q Φ_Kᵀ), diagonal included; from the map's factorised
        // kernel when it has one (far cheaper than the c × c × m product). The shortcut sees the
        // raw features: gate its rows and columns; with qk_l2norm multiply instead.
        let factorised = task.map.scores(head: task.keyHead, rows: rows, queryScratch: w[.featureScratch],
                                         keyScratch: w[.keyScratch], output: w[.scores], scratch: w[.scoreScratch])
        if !factorised || task.options.qkL2Norm {
            Gemm.multiply(m: rows, n: rows, k: m, a: w[.phiQ], rowStrideA: m, columnStrideA: 1,
                          b: w[.phiK], rowStrideB: 1, columnStrideB: m, c: w[.scores], ldc: rows,
                          accumulate: false, workspace: w[.gemm])
        } else {
            // scores[i, j] ×= g^Q_i · g^K_j (the gates of the chunk are in the workspace).
            let (queryGates, keyGates) = (task.options.queryGateLogits != nil, task.options.keyGateLogits != nil)
            if queryGates { HeadGates.scaleRows(w[.scores], rows: rows, width: rows, by: w[.queryGates]) }
            for i in 0..<rows where keyGates {
                for j in 0..<rows { w[.scores][i * rows + j] *= w[.keyGates][j] }
            }
        }
        if decayed { task.decayScores(w[.scores], rows: rows, powers: !dataDependent) }
        task.addIntraChunk(chunk)
    }

    /// S ← e^{b_last} S + Σ_j e^{b_last − b_j} φ(k_j) v_jᵀ (and z alike); without decay S += Φ_Kᵀ V.
    static func absorbChunk(_ task: FormTask, _ chunk: ChunkRows) {
        task.addDecayedKeys(rows: chunk.rows, powers: task.options.logDecay == nil)
    }

    // MARK: decode step

    /// S ← a·S + φ(k) vᵀ, z alike (a = γ, or e^{g + log γ} per head), and every query head of the
    /// group reads the new rows, in one pass over S (the DecodeKernels row stream).
    static func step(_ task: StepTask) {
        let w = task.w
        w[.running][0] = task.scalarDecay
        let decays = task.options.logDecay != nil || w[.running][0] != 1
        task.additive(rows: task.map.featureDim, stateScales: decays ? w[.running] : nil, stride: 0, keyScales: w[.phiK])
    }
}
