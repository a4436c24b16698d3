/// The causal backward of the additive (RetNet γ) and gated (GLA α_t) forms, token by token
/// within each chunk: S_t = Diag(α_t) S_{t−1} + φ(k_t) v_tᵀ (α_t = γ without log decay, 1
/// without either), z alike, y_t = S_tᵀφ(q_t) / D(φ(q_t)·z_t) or S_tᵀφ(q_t).
extension BackwardPass {
    /// Decay factor of row i, channel f of the current chunk (γ or 1 without channel decay).
    @inline(__always)
    func decayFactor(_ w: BackwardWorkspace, row i: Int, channel f: Int, gamma: Float) -> Float {
        options.logDecay != nil ? w.decay[i * featureDim + f] : gamma
    }

    /// Forward over the chunks: rebuilds S_t, z_t and writes the query side (dq, query gate
    /// gradients, the query part of d log α) and the per-row scalars the reverse pass needs.
    func causalForward(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let gamma = options.decay[keyHead]
        let channelDecay = options.logDecay != nil
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for g in 0..<group { loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w) }
            for i in 0..<rows {
                let key = w.keyFeatures + i * m
                let value = w.values + i * dv
                for f in 0..<m {
                    let row = w.state + f * dv
                    let a = channelDecay ? w.decay[i * m + f] : gamma
                    let kf = key[f]
                    if a != 1 {
                        for j in 0..<dv { row[j] = a * row[j] + kf * value[j] }
                    } else {
                        for j in 0..<dv { row[j] += kf * value[j] }
                    }
                    w.normaliser[f] = a * w.normaliser[f] + kf
                }
                for g in 0..<group {
                    let query = w.queryFeatures + (g * c + i) * m
                    let doutRow = w.outputGradient + (g * c + i) * dv
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    let den = readState(query: query, workspace: w)
                    let dden = outputGradients(doutRow: doutRow, denominator: den, slot: slot, workspace: w)
                    // dφ(q) = S dnum + z dden (doutRow now holds dnum).
                    let gradient = w.queryFeatureGradient + (g * c + i) * m
                    for f in 0..<m {
                        let row = w.state + f * dv
                        var dot: Float = 0
                        for j in 0..<dv { dot += row[j] * doutRow[j] }
                        gradient[f] = dot + w.normaliser[f] * dden
                    }
                }
            }
            if request.logDecay != nil {
                // Query part of ∂L/∂b_t: Σ_g φ(q)∘dφ(q) over the group (gated features); per head,
                // its sum over the channels (row i of the block then holds it in entry i).
                for i in 0..<rows {
                    let row = w.decayGradient + i * m
                    row.update(repeating: 0, count: m)
                    for g in 0..<group {
                        let query = w.queryFeatures + (g * c + i) * m
                        let gradient = w.queryFeatureGradient + (g * c + i) * m
                        for f in 0..<m { row[f] += query[f] * gradient[f] }
                    }
                    if perHeadDecay {
                        var total: Float = 0
                        for f in 0..<m { total += row[f] }
                        w.decayGradient[i] = total
                    }
                }
                storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient)
            }
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
    }

    /// Reverse over the chunks: Ŝ_t = α_{t+1}∘Ŝ_{t+1} + Σ_g φ(q_t) dnum_tᵀ (ẑ alike with dden),
    /// dφ(k_t) = Ŝ_t v_t + ẑ_t, dv_t = Ŝ_tᵀ φ(k_t); leaves α_1∘Ŝ_1 = dS0 in w.stateGradient.
    func causalReverse(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let gamma = options.decay[keyHead]
        let channelDecay = options.logDecay != nil
        guard span.length > 0 else { return }
        var t0 = ((span.length - 1) / c) * c
        while t0 >= 0 {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                for i in 0..<rows {
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    let row = w.outputGradient + (g * c + i) * dv
                    if slot[0] != 1 { for j in 0..<dv { row[j] *= slot[0] } }
                    w.denominatorGradient[g * c + i] = slot[1]
                }
            }
            loadDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, into: w.decayGradient)
            for i in stride(from: rows - 1, through: 0, by: -1) {
                let key = w.keyFeatures + i * m
                let value = w.values + i * dv
                let valueGradient = w.valueGradient + i * dv
                let keyGradient = w.keyFeatureGradient + i * m
                valueGradient.update(repeating: 0, count: dv)
                for f in 0..<m {
                    let row = w.stateGradient + f * dv
                    var zf = w.normaliserGradient[f]
                    for g in 0..<group {
                        let qf = w.queryFeatures[(g * c + i) * m + f]
                        if qf == 0 { continue }
                        let dnum = w.outputGradient + (g * c + i) * dv
                        for j in 0..<dv { row[j] += qf * dnum[j] }
                        zf += qf * w.denominatorGradient[g * c + i]
                    }
                    var dot: Float = 0
                    for j in 0..<dv { dot += row[j] * value[j] }
                    keyGradient[f] = dot + zf
                    let kf = key[f]
                    if kf != 0 { for j in 0..<dv { valueGradient[j] += kf * row[j] } }
                    let a = channelDecay ? w.decay[i * m + f] : gamma
                    if a != 1 { for j in 0..<dv { row[j] *= a } }
                    w.normaliserGradient[f] = a * zf
                }
                if request.logDecay != nil && perHeadDecay {
                    var keyPart: Float = 0
                    for f in 0..<m { keyPart += key[f] * keyGradient[f] }
                    w.decaySuffix[0] += w.decayGradient[i] - keyPart
                    w.decayGradient[i] = w.decaySuffix[0]
                } else if request.logDecay != nil {
                    let row = w.decayGradient + i * m
                    for f in 0..<m {
                        w.decaySuffix[f] += row[f] - key[f] * keyGradient[f]
                        row[f] = w.decaySuffix[f]
                    }
                }
            }
            storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient)
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 -= c
        }
    }
}
