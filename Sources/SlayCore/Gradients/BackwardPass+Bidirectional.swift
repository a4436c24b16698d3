/// The bidirectional backward: S = S0 + Σ_t φ(k_t) v_tᵀ (z alike) is seen by every query, so
/// three passes over the sequence suffice: build S, z; the query side (dφ(q) = S dnum + z dden)
/// while Ŝ = dS_final + Σ φ(q) dnumᵀ and ẑ accumulate; the key side (dφ(k) = Ŝ v + ẑ, dv = Ŝᵀφ(k)).
extension BackwardPass {
    func bidirectional(span: SequenceSpan, origin: Int, sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for i in 0..<rows {
                let key = w.keyFeatures + i * m
                let value = w.values + i * dv
                for f in 0..<m {
                    let kf = key[f]
                    let row = w.state + f * dv
                    for j in 0..<dv { row[j] += kf * value[j] }
                    w.normaliser[f] += kf
                }
            }
            t0 += rows
        }
        seedReverse(sequence: sequence, keyHead: keyHead, workspace: w)
        t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                for i in 0..<rows {
                    let query = w.queryFeatures + (g * c + i) * m
                    let doutRow = w.outputGradient + (g * c + i) * dv
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    let den = readState(query: query, workspace: w)
                    let dden = outputGradients(doutRow: doutRow, denominator: den, slot: slot, workspace: w)
                    let gradient = w.queryFeatureGradient + (g * c + i) * m
                    for f in 0..<m {
                        let row = w.state + f * dv
                        let gradientRow = w.stateGradient + f * dv
                        let qf = query[f]
                        var dot: Float = 0
                        for j in 0..<dv {
                            dot += row[j] * doutRow[j]
                            gradientRow[j] += qf * doutRow[j]
                        }
                        gradient[f] = dot + w.normaliser[f] * dden
                        w.normaliserGradient[f] += qf * dden
                    }
                }
            }
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
        t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            for i in 0..<rows {
                let key = w.keyFeatures + i * m
                let value = w.values + i * dv
                let valueGradient = w.valueGradient + i * dv
                let keyGradient = w.keyFeatureGradient + i * m
                valueGradient.update(repeating: 0, count: dv)
                for f in 0..<m {
                    let row = w.stateGradient + f * dv
                    var dot: Float = 0
                    for j in 0..<dv { dot += row[j] * value[j] }
                    keyGradient[f] = dot + w.normaliserGradient[f]
                    let kf = key[f]
                    if kf != 0 { for j in 0..<dv { valueGradient[j] += kf * row[j] } }
                }
            }
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
    }
}
