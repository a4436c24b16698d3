/// The rescaled-exp form: the ELA Hadamard Exp kernel k(a, b) = Σ_f e^{a_f + b_f} (docs/math.md
/// §2), evaluated exactly and without overflow. The features e^a, e^b overflow fp32 once an
/// entry passes ~88, so this form never forms them.
///
/// Per (sequence, key head) the state keeps, per feature dimension f, the running maximum μ_f of
/// the (decayed) key entries absorbed so far (−inf = "empty", no key yet) and the rows rescaled
/// by it: S = e^{μ_f} S̃_f, z = e^{μ_f} z̃_f. Decay composes: with λ_tf = log α_tf + log γ (zero
/// without decay) a key j seen from row i ≥ j carries e^{b_jf + Σ_{t=j+1..i} λ_tf}, so the frame
/// decays with the state: μ'_f = max(μ_f + λ_f, b_f) per token. A query row a_i gets its own
/// reference r_i = max_f (a_if + prefix_if), prefix_i the decayed running maximum up to row i, so
/// every exponentiated value is ≤ 0. Then
///   num_i = Σ_f e^{a_if + μ_f + L_if − r_i} S̃_f + Σ_{j ≤ i} s_ij v_j,
///   s_ij = g^K_j Σ_f e^{a_if + b_jf + Σ_{t=j+1..i} λ_tf − r_i},  L_if = Σ_{t ≤ i} λ_tf,
/// den_i likewise with z̃ and 1, both times the query gate g^Q_i, and y_i = num_i / (den_i + δ e^{−r_i})
/// (the common factor e^{r_i} cancels; unnormalised: y_i = e^{r_i} num_i, which overflows to inf
/// exactly where the true value does). Exponent sums run from the row outwards, so no difference
/// of large cumulative sums is formed.
///
/// Intra-chunk scores cost c·d exponentials per query row (the kernel has no cheaper exact
/// factorisation in a stable frame); μ is shared by all value columns, so tasks are not split
/// into column blocks. Non-finite inputs are not trapped: NaN propagates to the outputs (and the
/// state) it reaches, never to earlier rows.
enum RescaledExpForm: RecurrenceForm {
    static let empty = AttentionForms.emptyMaximum

    static func claims(map: FeatureMap, options: LinearAttentionOptions) -> Bool { map is HadamardExpFeatureMap }
    static func keepsMaxima(_ map: FeatureMap) -> Bool { map is HadamardExpFeatureMap }

    static func check(_ options: LinearAttentionOptions, mode: AttentionMode) throws {
        guard options.update == .add else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP does not support update = SLAY_UPDATE_DELTA (the delta "
                            + "rule needs the features e^k themselves, which overflow fp32)")
        }
        guard !options.qkL2Norm else {
            throw SlayError(.unsupported, "SLAY_KIND_HADAMARD_EXP does not support qk_l2norm (its features are kept in a "
                            + "rescaled frame and never formed)")
        }
    }

    /// Its intra-chunk block costs an exp per pair and channel: short chunks are faster.
    static let preferredChunk = 8

    static func reserve(_ layout: inout WorkspaceLayout, map: FeatureMap, valueDim: Int, step: Bool) throws {
        let (c, d) = (step ? 1 : layout.chunk, map.headDim)
        try layout.reserve(.formKeys, c, d)       // prefix maxima (steps: the decayed μ)
        try layout.reserve(.formRows, d)          // steps: key scales
        guard !step else { return }
        try layout.reserve(.formSquare, c, d)     // exponents
        try layout.reserve(.references, c)
        try layout.reserve(.maxima, d)
        try layout.reserve(.logDecay, c, d)
        try layout.reserve(.decayFactors, d)
        try layout.reserve(.running, d)
    }

    /// NaN-skipping maximum: a NaN entry is not selected here, it reaches the output through
    /// its own exponential instead.
    @inline(__always)
    static func larger(_ x: Float, _ y: Float) -> Float { x > y ? x : y }

    /// Keys, values, λ (w[.logDecay]) and the decayed running maxima
    /// prefix[i, f] = max(prefix[i−1, f] + λ_if, b_if), prefix[−1] = μ, that bound row i's exponents.
    static func prepareKeys(_ task: FormTask, _ chunk: inout ChunkRows) {
        let (w, d, rows) = (task.w, task.map.headDim, chunk.rows)
        task.channelLogDecay(chunk)
        let maxima = task.maxima!
        for i in 0..<rows {
            let previous = i == 0 ? UnsafePointer(maxima) : UnsafePointer(w[.formKeys] + (i - 1) * d)
            let (key, lambda, target) = (w[.keyRows] + i * d, w[.logDecay] + i * d, w[.formKeys] + i * d)
            for f in 0..<d { target[f] = larger(key[f], previous[f] + lambda[f]) }
        }
    }

    /// Outputs of a chunk's queries for one query head: against the state (inter-chunk) and,
    /// when causal, against the chunk's keys j ≤ i (intra-chunk, diagonal included).
    static func queryChunk(_ task: FormTask, _ chunk: ChunkRows, causal: Bool) {
        let (w, d, dv, rows) = (task.w, task.map.headDim, task.call.valueDim, chunk.rows)
        let maxima = task.maxima!
        let decayed = causal && task.decays
        let keyGates = task.options.keyGateLogits != nil
        // L_i = Σ_{t ≤ i} λ_t, per channel, built up row by row (0 when nothing decays: λ is not
        // loaded for queries alone).
        let cumulative = w[.decayFactors]
        cumulative.update(repeating: 0, count: d)
        for i in 0..<rows {
            let a = w[.queryRows] + i * d
            let bound = causal ? UnsafePointer(w[.formKeys] + i * d) : UnsafePointer(maxima)
            var r = -Float.infinity
            for f in 0..<d { r = larger(a[f] + bound[f], r) }
            // No key at all (a query on an empty slot): every weight is 0, any frame will do.
            if r == -.infinity { r = 0 }
            w[.references][i] = r
            // Inter-chunk weights e^{a_f + μ_f + L_if − r}; empty dimensions have no keys (weight 0).
            let (weights, lambda) = (w[.phiQ] + i * d, w[.logDecay] + i * d)
            if decayed {
                for f in 0..<d { cumulative[f] += lambda[f] }
            }
            for f in 0..<d { weights[f] = a[f] + maxima[f] + cumulative[f] }
            VectorMath.expShiftedClamped(weights, count: d, shift: r, limit: 88, scale: 1, output: weights)
            for f in 0..<d where maxima[f] == empty { weights[f] = 0 }
            var total: Float = 0
            for f in 0..<d { total += weights[f] * task.normaliser[f] }
            w[.denominators][i] = total
            guard causal else { continue }
            // Intra-chunk scores s_ij = g^K_j Σ_f e^{a_f + b_jf + Σ_{t=j+1..i} λ_tf − r}, j ≤ i.
            let (sums, running) = (w[.formSquare], w[.running])
            running.update(repeating: 0, count: d)
            for j in stride(from: i, through: 0, by: -1) {
                let (key, lambda, target) = (w[.keyRows] + j * d, w[.logDecay] + j * d, sums + j * d)
                for f in 0..<d { target[f] = a[f] + key[f] + running[f] }
                if decayed {
                    for f in 0..<d { running[f] += lambda[f] }
                }
            }
            VectorMath.expShiftedClamped(sums, count: (i + 1) * d, shift: r, limit: 88, scale: 1, output: sums)
            for j in 0...i {
                let terms = sums + j * d
                var s: Float = 0
                for f in 0..<d { s += terms[f] }
                w[.scores][i * rows + j] = keyGates ? s * w[.keyGates][j] : s
            }
        }
        Gemm.multiply(m: rows, n: dv, k: d, a: w[.phiQ], rowStrideA: d, columnStrideA: 1,
                      b: task.state, rowStrideB: dv, columnStrideB: 1, c: w[.outputs], ldc: dv,
                      accumulate: false, workspace: w[.gemm])
        if causal { task.addIntraChunk(chunk) }
        // The query gate scales φ(q): numerator and denominator of the row alike.
        if task.options.queryGateLogits != nil { task.scaleReadout(rows: rows) { w[.queryGates][$0] } }
    }

    /// μ' = the chunk's last prefix row; S̃, z̃ rows rescaled by e^{μ + L_last − μ'}, then
    /// S̃ += Eᵀ V and z̃ += Eᵀ 1 with E_jf = g^K_j e^{b_jf + Σ_{t=j+1..last} λ_tf − μ'_f}.
    static func absorbChunk(_ task: FormTask, _ chunk: ChunkRows) {
        let (w, d, dv, rows) = (task.w, task.map.headDim, task.call.valueDim, chunk.rows)
        let (maxima, newMaxima) = (task.maxima!, w[.formKeys] + (rows - 1) * d)
        // suffix_j = Σ_{t=j+1..last} λ_t into w[.running] as it walks j downwards; the carry L_last
        // (= suffix_{−1}) rescales the old rows.
        let (e, suffix) = (w[.formSquare], w[.running])
        suffix.update(repeating: 0, count: d)
        for j in stride(from: rows - 1, through: 0, by: -1) {
            let (key, lambda, target) = (w[.keyRows] + j * d, w[.logDecay] + j * d, e + j * d)
            for f in 0..<d { target[f] = key[f] + suffix[f] - newMaxima[f] }
            for f in 0..<d { suffix[f] += lambda[f] }
        }
        for f in 0..<d where maxima[f] != empty {
            let exponent = maxima[f] + suffix[f] - newMaxima[f]
            guard exponent != 0 else { continue }
            let factor = expf(exponent)
            let row = task.state + f * dv
            for j in 0..<dv { row[j] *= factor }
            task.normaliser[f] *= factor
        }
        VectorMath.expShiftedClamped(e, count: rows * d, shift: 0, limit: 88, scale: 1, output: e)
        for f in 0..<d where newMaxima[f] == empty {
            // Only keys with b = −inf so far: e^b = 0 (and b − μ' would be NaN).
            for j in 0..<rows { e[j * d + f] = 0 }
        }
        if task.options.keyGateLogits != nil { HeadGates.scaleRows(e, rows: rows, width: d, by: w[.keyGates]) }
        Gemm.multiply(m: d, n: dv, k: rows, a: e, rowStrideA: 1, columnStrideA: d,
                      b: w[.valueRows], rowStrideB: dv, columnStrideB: 1, c: task.state, ldc: dv,
                      accumulate: true, workspace: w[.gemm])
        for j in 0..<rows {
            let terms = e + j * d
            for f in 0..<d { task.normaliser[f] += terms[f] }
        }
        maxima.update(from: newMaxima, count: d)
    }

    // MARK: decode step

    /// One decode token in the rescaled frame, with the state streamed once. Per feature f the
    /// frame first decays (μ_f + λ_f); the new key then either raises it (the state row is scaled
    /// by e^{μ + λ − b} and the key enters with weight g^K) or not (the key enters with weight
    /// g^K e^{b − μ − λ}): one exponential e^{−|b − μ − λ|} per f covers both.
    static func step(_ task: StepTask) {
        let (w, d, dv, group) = (task.w, task.map.headDim, task.valueDim, task.group)
        let (mu, keys, decayed) = (task.maxima!, w[.keyRows], w[.formKeys])
        let (logDecay, logGamma) = (task.options.logDecay, task.options.decay.logarithm(head: task.head))
        for f in 0..<d { decayed[f] = mu[f] + ((logDecay.map { task.token($0, channel: f) } ?? 0) + logGamma) }
        if logDecay == nil && logGamma == 0 { decayed.update(from: mu, count: d) }
        // Exponents −|b − μ̂| (0 where the factor is fixed below: an empty μ̂, or a key of −inf).
        let factors = w[.phiK]
        for f in 0..<d {
            let (b, m) = (keys[f], decayed[f])
            factors[f] = b > m ? (m == empty ? 0 : m - b) : (b == empty ? 0 : b - m)
        }
        VectorMath.expShiftedClamped(factors, count: d, shift: 0, limit: 88, scale: 1, output: factors)
        // Row f is rescaled when the key raises μ_f, else the key is scaled down: factors becomes
        // the per-row state scale, keyScales the per-row key scale; μ' = max(μ̂, b).
        let (keyScales, keyGate) = (w[.formRows], task.gate(task.options.keyGateLogits, head: task.head))
        for f in 0..<d {
            let (b, m) = (keys[f], decayed[f])
            if b > m {
                (factors[f], keyScales[f]) = (m == empty ? 0 : factors[f], keyGate)
            } else {
                (factors[f], keyScales[f]) = (1, b == empty ? 0 : factors[f] * keyGate)
            }
            mu[f] = larger(b, m)
        }
        // Query weights e^{a_f + μ'_f − r} against the state after this key.
        for g in 0..<group {
            let (a, row) = (w[.queryRows] + g * d, w[.phiQ] + g * d)
            var r = -Float.infinity
            for f in 0..<d { r = larger(a[f] + mu[f], r) }
            if r == -.infinity { r = 0 }
            w[.references][g] = r
            for f in 0..<d { row[f] = a[f] + mu[f] }
            VectorMath.expShiftedClamped(row, count: d, shift: r, limit: 88, scale: 1, output: row)
            for f in 0..<d where mu[f] == empty { row[f] = 0 }
        }
        task.additive(rows: d, stateScales: factors, stride: 1, keyScales: keyScales)
        if let gates = task.options.queryGateLogits {
            for g in 0..<group {
                let gate = task.gate(gates, head: task.head * group + g)
                for j in 0..<dv { w[.outputs][g * dv + j] *= gate }
                w[.denominators][g] *= gate
            }
        }
    }
}
