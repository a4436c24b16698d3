/// The delta-rule form: DeltaNet and Gated DeltaNet (flash-linear-attention's convention; S is
/// [m, dv] per key head, g_t ≤ 0 from log_decay [B, T, Hk], β_t ∈ [0, 2] from beta [B, T, Hk]):
///   S_t = α_t (I − β_t φ(k_t) φ(k_t)ᵀ) S_{t−1} + β_t φ(k_t) v_tᵀ,  α_t = e^{g_t} (γ too when given),
///   o_t = S_tᵀ φ(q_t)   (unnormalised; z is neither read nor written).
///
/// Chunked prefill (the WY / UT representation, Yang et al. 2024): with b_i = Σ_{t ≤ i} log α_t
/// within the chunk and A_ij = β_i (k_i·k_j) e^{b_i − b_j} for j < i, the chunk's corrected
/// values are U' = T (diag(β) V − diag(β e^b) K S_0), T = (I + A)⁻¹ obtained by forward
/// substitution (A is strictly lower triangular). Then
///   O = diag(e^b) Q S_0 + (tril(Q Kᵀ) ⊙ e^{b_i − b_j}) U',   S ← e^{b_last} S_0 + (e^{b_last − b_j} K)ᵀ U'.
/// Work per chunk O(c·m·dv + c²·(m + dv) + c³/6), workspace O(c·m + c·dv + c²). Every exponent is ≤ 0.
/// Decode: two passes over S (one read computing Sᵀk and Sᵀq, one read-modify-write), per column block.
enum DeltaRuleForm: RecurrenceForm {
    static func claims(map: FeatureMap, options: LinearAttentionOptions) -> Bool { options.update == .delta }

    static func check(_ options: LinearAttentionOptions, mode: AttentionMode) throws {
        guard mode != .bidirectional else {
            throw SlayError(.unsupported, "the delta rule is defined for causal attention only (set causal = 1)")
        }
        guard !options.normalize else {
            throw SlayError(.unsupported, "the delta rule is unnormalised: set normalize = 0 (normalize=False)")
        }
        if let logDecay = options.logDecay, logDecay.steps[logDecay.rank - 1] != 0 {
            throw SlayError(.unsupported, "the delta rule takes one g per token and key head: log_decay [B, T, Hk] "
                            + "([N, Hk] for steps), not per channel")
        }
    }

    /// Its chunk costs O(c²·(m + dv) + c³) beyond the GEMMs shared with the additive form: 16 is
    /// fastest in `python -m slay.bench` (identity map, d = dv = 64).
    static let preferredChunk = 16

    static func reserve(_ layout: inout WorkspaceLayout, map: FeatureMap, valueDim: Int, step: Bool) throws {
        let (c, m) = (layout.chunk, map.featureDim)
        // A step keeps the q_g·k products of its group in formRows (DeltaRows' scratch).
        guard !step else { return try layout.reserve(.formRows, max(c, 1)) }
        try layout.reserve(.formSquare, c, c)           // T
        try layout.reserve(.formKeys, c, m)             // W
        try layout.reserve(.formValues, c, valueDim)    // U'
        try layout.reserve(.formRows, c)                // β
        try layout.reserve(.rowDecay, c)                // b
        try layout.reserve(.decayFactors, c)
    }

    /// Key features, β, b, T, W and the chunk's corrected values U' (which need S_0).
    static func prepareKeys(_ task: FormTask, _ chunk: inout ChunkRows) {
        let (w, m, dv, rows, width) = (task.w, task.map.featureDim, task.call.valueDim, chunk.rows, task.columns.count)
        chunk.finiteRows = min(chunk.finiteRows, FormTask.finiteRows(w[.phiK], rows: rows, width: m))
        let beta = w[.formRows]
        task.headRows(task.options.beta, chunk, absent: 1, into: beta)
        let decayed = task.decays
        if decayed { task.cumulativeRowDecay(chunk) }
        // A = β_i (k_i·k_j) e^{b_i − b_j} below the diagonal (in w[.scores], free until the queries).
        let a = w[.scores]
        Gemm.multiply(m: rows, n: rows, k: m, a: w[.phiK], rowStrideA: m, columnStrideA: 1, b: w[.phiK], rowStrideB: 1,
                      columnStrideB: m, c: a, ldc: rows, accumulate: false, workspace: w[.gemm])
        if decayed { task.decayScores(a, rows: rows) }
        // T = (I + A)⁻¹ by forward substitution: row i = e_i − Σ_{j<i} A_ij T_j (rows j < i only,
        // so a non-finite row reaches no earlier one).
        let t = w[.formSquare]
        for i in 0..<rows {
            let (row, coefficients) = (t + i * rows, a + i * rows)
            row.update(repeating: 0, count: rows)
            row[i] = 1
            for j in 0..<i {
                let (x, earlier) = (beta[i] * coefficients[j], t + j * rows)
                for c in 0...j { row[c] -= x * earlier[c] }
            }
        }
        // W = T diag(β e^b) K and U = T diag(β) V (scaled rows in w[.phiQ] and w[.outputs], free here).
        for i in 0..<rows {
            let scale = beta[i] * (decayed ? ScalarDecay.weight(w[.rowDecay][i]) : 1)
            let (source, target) = (w[.phiK] + i * m, w[.phiQ] + i * m)
            for f in 0..<m { target[f] = source[f] * scale }
            let (values, scaled) = (w[.valueRows] + i * dv + task.columns.lowerBound, w[.outputs] + i * width)
            for j in 0..<width { scaled[j] = values[j] * beta[i] }
        }
        task.lowerProduct(t, rows: rows, finiteRows: chunk.finiteRows, b: w[.phiQ], rowStrideB: m, width: m,
                          into: w[.formKeys], accumulate: false)
        task.lowerProduct(t, rows: rows, finiteRows: chunk.finiteRows, b: w[.outputs], rowStrideB: width, width: width,
                          into: w[.formValues], accumulate: false)
        // U' = U − W S_0.
        Gemm.multiply(m: rows, n: width, k: m, a: w[.formKeys], rowStrideA: m, columnStrideA: 1,
                      b: task.state + task.columns.lowerBound, rowStrideB: dv, columnStrideB: 1, c: w[.outputs], ldc: width,
                      accumulate: false, workspace: w[.gemm])
        for i in 0..<(rows * width) { w[.formValues][i] -= w[.outputs][i] }
        // Finite but huge keys or values can overflow T, W or U' from their row on (U'_i depends
        // on rows ≤ i only): the outputs' masked product must keep those rows from earlier ones.
        chunk.finiteRows = min(chunk.finiteRows, FormTask.finiteRows(w[.formValues], rows: rows, width: width))
    }

    static func queryChunk(_ task: FormTask, _ chunk: ChunkRows, causal: Bool) {
        let (w, m, rows) = (task.w, task.map.featureDim, chunk.rows)
        task.readState(rows: rows)
        guard causal else { return }
        let decayed = task.decays
        // (z is not the delta rule's: the denominators these also scale are never read.)
        if decayed { task.scaleReadout(rows: rows) { ScalarDecay.weight(w[.rowDecay][$0]) } }
        Gemm.multiply(m: rows, n: rows, k: m, a: w[.phiQ], rowStrideA: m, columnStrideA: 1, b: w[.phiK], rowStrideB: 1,
                      columnStrideB: m, c: w[.scores], ldc: rows, accumulate: false, workspace: w[.gemm])
        if decayed { task.decayScores(w[.scores], rows: rows) }
        task.addIntraChunk(chunk, values: w[.formValues], stride: task.columns.count)
    }

    /// S ← e^{b_last} S + Kᵀ (e^{b_last − b_j} U').
    static func absorbChunk(_ task: FormTask, _ chunk: ChunkRows) {
        let (values, width) = (task.w[.formValues], task.columns.count)
        task.addDecayedKeys(rows: chunk.rows, powers: false, values: values, stride: width, normaliser: false)
    }

    // MARK: decode step

    /// u = Sᵀk, w = β(v − α u), S ← α S + k wᵀ, o_g = α Sᵀq_g + (q_g·k) w: two passes over S (one
    /// read, one read-modify-write), through the DecodeKernels delta row stream.
    static func step(_ task: StepTask) {
        let (w, m, dv) = (task.w, task.map.featureDim, task.valueDim)
        let beta = task.options.beta.map { task.token($0) } ?? 1
        DecodeKernels.delta(state: task.matrix, storage: task.storage, rows: m, columns: dv, rowStride: dv,
                            keys: w[.phiK], alpha: task.scalarDecay, beta: beta, value: w[.valueRows], queries: w[.phiQ], queryStride: m,
                            group: task.group, outputs: w[.outputs], queryKey: w[.formRows])
    }
}
