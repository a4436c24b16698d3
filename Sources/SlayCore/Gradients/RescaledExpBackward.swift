#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The backward pass of the rescaled-exp form (ELA Hadamard Exp, `RescaledExpForm`), overflow-safe
/// in the same way as the forward: the features e^q, e^k are never formed.
///
/// Kernel with decay, per channel f: key j seen from query i ≥ j weighs e^{q_if + k_jf + Λ_f(j+1..i)}
/// (Λ the sum of λ = log α + log γ), times the gates g^Q_i g^K_j. In the true scale
///   dq_if = g^Q_i e^{q_if} (S_if·dnum_i + z_if dden_i),
///   dk_jf = g^K_j e^{k_jf} Σ_{i ≥ j} e^{Λ} g^Q_i e^{q_if} (dnum_i·v_j + dden_i),
///   dv_j = g^K_j Σ_f e^{k_jf} Σ_{i ≥ j} e^{Λ} g^Q_i e^{q_if} dnum_i.
/// The forward pass keeps S = e^{μ_f} S̃_f, z alike (μ the decayed running maximum of the keys)
/// and the query's reference r_i = max_f (q_if + μ_if); with ĩ = 1/D(d̃_i, δe^{−r_i}) of the
/// framed denominator d̃_i, the framed gradients Ỹ_i = e^{r_i} dnum_i = ĩ dout_i and
/// ỹ_i = e^{r_i} dden_i = −(dout_i·ñ_i) ĩ² are bounded, and dq_if = g^Q e^{q_if + μ_if − r_i}
/// (S̃_f·Ỹ_i + z̃_f ỹ_i) has an exponent ≤ 0. The reverse pass keeps Ĝ = Σ_{i ≥ j} e^{Λ} g^Q_i
/// e^{q_if − r_i} Ỹ_i (ĝ alike) in its own frame Ĝ = e^{ν_f} G̃_f, ν the decayed running maximum
/// of q_if − r_i over the queries already seen; since r_i ≥ q_if + k_jf + Λ for j ≤ i, the key
/// weights e^{k_jf + ν_f} are ≤ 1 too.
///
/// μ, ν and r are treated as constants (stop-gradient). That is exact, not an approximation: the
/// forward's value does not depend on them — normalised, y = ñ/(d̃ + δe^{−r}) = num/(den + δ) for
/// any r; unnormalised, y = e^{r} ñ = num — so the derivative along them is zero. Unnormalised,
/// the backward uses the reference 0 (dq_if = g^Q e^{q_if + μ_if} S̃_f·dout_i): a gradient
/// overflows to inf exactly where the true one exceeds fp32, as the forward's output does.
///
/// d log α uses the identity ∂L/∂b_if = Σ_g dq_{g,if} − dk_if (the kernel depends on the
/// cumulative log decay b only through q + b and k − b), plus e^{μ_f}(S̃_f·dS_T,f + z̃_f dz_T,f)
/// at the last token, summed from the end. Token by token within chunks; per token and query
/// head three floats (r, ĩ, ỹ) are kept between the passes.
enum RescaledExpBackward {
    /// Floats of the form region: μ, ν, one row's weights, and the chunk's gate gradients.
    static func floats(headDim d: Int, group: Int, chunk c: Int) -> Int { 3 * d + group * c + c }

    struct Region {
        let mu: UnsafeMutablePointer<Float>
        let nu: UnsafeMutablePointer<Float>
        let weights: UnsafeMutablePointer<Float>
        /// ∂L/∂g^Q per query row (head g at g·c) and ∂L/∂g^K per key row of the chunk.
        let queryGateGradients: UnsafeMutablePointer<Float>
        let keyGateGradients: UnsafeMutablePointer<Float>

        init(_ base: UnsafeMutablePointer<Float>, headDim d: Int, group: Int, chunk c: Int) {
            mu = base; nu = base + d; weights = base + 2 * d
            queryGateGradients = base + 3 * d; keyGateGradients = base + 3 * d + group * c
        }
    }

    static let empty = AttentionForms.emptyMaximum
    /// Floats kept per token and query head between the passes.
    static let scalarsPerRow = 3
}

extension BackwardPass {
    private var decaysRescaled: Bool { options.causal && (options.logDecay != nil || options.decay.isActive) }

    /// The rescaled-exp backward for one (sequence, key head) pair.
    func rescaledExp(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let span = spans[sequence]
        let (c, d, dv) = (chunk, headDim, valueDim)
        let r = RescaledExpBackward.Region(w.form, headDim: d, group: group, chunk: c)
        loadInitialState(sequence: sequence, keyHead: keyHead, workspace: w)
        // The initial state is in the true scale: frame 0 where it has anything, else empty.
        for f in 0..<d {
            var any = w.normaliser[f] != 0
            for j in 0..<dv where w.state[f * dv + j] != 0 { any = true }
            r.mu[f] = any ? 0 : RescaledExpBackward.empty
        }
        if options.causal {
            var t0 = 0
            while t0 < span.length {
                let rows = min(c, span.length - t0)
                loadRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for g in 0..<group { loadRescaledQueries(span: span, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w) }
                for i in 0..<rows {
                    absorbRescaledKey(row: i, workspace: w, region: r)
                    for g in 0..<group {
                        let (reference, inverse, framedDen) = rescaledQuerySide(g: g, row: i, workspace: w, region: r)
                        let slot = rescaledSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                        slot[0] = reference; slot[1] = inverse; slot[2] = framedDen
                    }
                    if request.logDecay != nil {
                        let row = w.decayGradient + i * d
                        row.update(repeating: 0, count: d)
                        for g in 0..<group {
                            let dq = w.queryFeatureGradient + (g * c + i) * d
                            for f in 0..<d { row[f] += dq[f] }
                        }
                        if perHeadDecay {
                            var total: Float = 0
                            for f in 0..<d { total += row[f] }
                            w.decayGradient[i] = total
                        }
                    }
                }
                if request.logDecay != nil { storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient) }
                storeRescaledQueries(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w, region: r)
                t0 += rows
            }
            seedRescaledReverse(sequence: sequence, keyHead: keyHead, workspace: w, region: r)
            guard span.length > 0 else { return storeRescaledInitialGradient(sequence: sequence, keyHead: keyHead, workspace: w, region: r) }
            t0 = ((span.length - 1) / c) * c
            while t0 >= 0 {
                let rows = min(c, span.length - t0)
                loadRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for g in 0..<group {
                    loadRescaledQueries(span: span, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                    for i in 0..<rows {
                        let slot = rescaledSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                        let row = w.outputGradient + (g * c + i) * dv
                        for j in 0..<dv { row[j] *= slot[1] }
                        w.denominatorGradient[g * c + i] = slot[2]
                        w.queryInverseNorms[g * c + i] = slot[0]   // the reference r_i (qk_l2norm is refused here)
                    }
                }
                if request.logDecay != nil { loadDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, into: w.decayGradient) }
                for i in stride(from: rows - 1, through: 0, by: -1) {
                    for g in 0..<group { addRescaledQuery(g: g, row: i, workspace: w, region: r) }
                    rescaledKeySide(row: i, workspace: w, region: r)
                    if request.logDecay != nil {
                        let dk = w.keyInputGradient + i * d
                        if perHeadDecay {
                            var keyPart: Float = 0
                            for f in 0..<d { keyPart += dk[f] }
                            w.decaySuffix[0] += w.decayGradient[i] - keyPart
                            w.decayGradient[i] = w.decaySuffix[0]
                        } else {
                            let row = w.decayGradient + i * d
                            for f in 0..<d {
                                w.decaySuffix[f] += row[f] - dk[f]
                                row[f] = w.decaySuffix[f]
                            }
                        }
                    }
                    if decaysRescaled {
                        let lambda = w.decay + i * d
                        for f in 0..<d { r.nu[f] += lambda[f] }
                    }
                }
                if request.logDecay != nil { storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient) }
                storeRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w, region: r)
                t0 -= c
            }
        } else {
            var t0 = 0
            while t0 < span.length {
                let rows = min(c, span.length - t0)
                loadRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for i in 0..<rows { absorbRescaledKey(row: i, workspace: w, region: r) }
                t0 += rows
            }
            seedRescaledReverse(sequence: sequence, keyHead: keyHead, workspace: w, region: r)
            t0 = 0
            while t0 < span.length {
                let rows = min(c, span.length - t0)
                for g in 0..<group {
                    loadRescaledQueries(span: span, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                    for i in 0..<rows {
                        let (reference, _, framedDen) = rescaledQuerySide(g: g, row: i, workspace: w, region: r)
                        w.denominatorGradient[g * c + i] = framedDen
                        w.queryInverseNorms[g * c + i] = reference
                        addRescaledQuery(g: g, row: i, workspace: w, region: r)
                    }
                }
                storeRescaledQueries(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w, region: r)
                t0 += rows
            }
            t0 = 0
            while t0 < span.length {
                let rows = min(c, span.length - t0)
                loadRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for i in 0..<rows { rescaledKeySide(row: i, workspace: w, region: r) }
                storeRescaledKeys(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w, region: r)
                t0 += rows
            }
        }
        storeRescaledInitialGradient(sequence: sequence, keyHead: keyHead, workspace: w, region: r)
    }

    private func rescaledSlot(_ span: SequenceSpan, token: Int, queryHead: Int) -> UnsafeMutablePointer<Float> {
        scalars + (((span.batch * length) + span.start + token) * queryHeads + queryHead) * RescaledExpBackward.scalarsPerRow
    }

    /// Raw key rows, values, key gates and λ = log α + log γ per channel (causal with decay).
    private func loadRescaledKeys(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace) {
        let d = headDim
        k.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.keyInput)
        v.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.values)
        if let gates = options.keyGateLogits {
            HeadGates.fill(gates, batch: span.batch, t0: span.start + t0, rows: rows, head: keyHead, into: w.keyGates)
        } else {
            w.keyGates.update(repeating: 1, count: rows)
        }
        guard decaysRescaled else { return }
        let logGamma = options.decay.logarithm(head: keyHead)
        if let logDecay = options.logDecay {
            logDecay.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.decay)
            if logGamma != 0 { for i in 0..<(rows * d) { w.decay[i] += logGamma } }
        } else {
            w.decay.update(repeating: logGamma, count: rows * d)
        }
    }

    /// Raw query rows, dout rows and query gates of head g of the group.
    private func loadRescaledQueries(span: SequenceSpan, keyHead: Int, g: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace) {
        let (c, d, dv) = (chunk, headDim, valueDim)
        let queryHead = keyHead * group + g
        q.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows, into: w.queryInput + g * c * d)
        request.dout.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows,
                                into: w.outputGradient + g * c * dv)
        if let gates = options.queryGateLogits {
            HeadGates.fill(gates, batch: span.batch, t0: span.start + t0, rows: rows, head: queryHead, into: w.queryGates + g * c)
        } else {
            (w.queryGates + g * c).update(repeating: 1, count: rows)
        }
    }

    /// Key row i enters the framed state: μ' = max(μ + λ, k), S̃ ← e^{μ + λ − μ'} S̃ + g^K e^{k − μ'} v.
    private func absorbRescaledKey(row i: Int, workspace w: BackwardWorkspace, region r: RescaledExpBackward.Region) {
        let (d, dv) = (headDim, valueDim)
        let key = w.keyInput + i * d
        let value = w.values + i * dv
        let gate = w.keyGates[i]
        let lambda: UnsafePointer<Float>? = decaysRescaled ? UnsafePointer(w.decay + i * d) : nil
        for f in 0..<d {
            let decayed = r.mu[f] + (lambda?[f] ?? 0)
            let b = key[f]
            let raised = RescaledExpForm.larger(b, decayed)
            if raised == RescaledExpBackward.empty { continue }
            let old: Float = decayed == RescaledExpBackward.empty ? 0 : expf(decayed - raised)
            let weight: Float = b == RescaledExpBackward.empty ? 0 : gate * expf(b - raised)
            let row = w.state + f * dv
            for j in 0..<dv { row[j] = old * row[j] + weight * value[j] }
            w.normaliser[f] = old * w.normaliser[f] + weight
            r.mu[f] = raised
        }
    }

    /// Query row i of head g against the framed state: writes dq (into w.queryFeatureGradient),
    /// the query gate's gradient, Ỹ over the row's dout, and returns (r, ĩ, ỹ).
    private func rescaledQuerySide(g: Int, row i: Int, workspace w: BackwardWorkspace,
                                   region r: RescaledExpBackward.Region) -> (Float, Float, Float) {
        let (c, d, dv) = (chunk, headDim, valueDim)
        let query = w.queryInput + (g * c + i) * d
        let doutRow = w.outputGradient + (g * c + i) * dv
        let gate = w.queryGates[g * c + i]
        var reference: Float = 0
        if options.normalize {
            var top = -Float.infinity
            for f in 0..<d { top = RescaledExpForm.larger(query[f] + r.mu[f], top) }
            reference = top == -.infinity ? 0 : top
        }
        if options.normalize {
            // Every exponent is ≤ 0 here: the vector exp (clamped at ±88, like the forward's).
            for f in 0..<d { r.weights[f] = r.mu[f] == RescaledExpBackward.empty ? 0 : query[f] + r.mu[f] }
            VectorMath.expShiftedClamped(r.weights, count: d, shift: reference, limit: 88, scale: 1, output: r.weights)
            for f in 0..<d where r.mu[f] == RescaledExpBackward.empty { r.weights[f] = 0 }
        } else {
            for f in 0..<d {
                r.weights[f] = r.mu[f] == RescaledExpBackward.empty ? 0 : expf(query[f] + r.mu[f] - reference)
            }
        }
        var inverse: Float = 1
        var framedDen: Float = 0
        if options.normalize {
            // ñ = g^Q Σ_f w_f S̃_f, d̃ = g^Q Σ_f w_f z̃_f; δ moves into the frame as δ e^{−r}.
            let numerator = w.numerator
            numerator.update(repeating: 0, count: dv)
            var den: Float = 0
            for f in 0..<d {
                let weight = r.weights[f]
                if weight == 0 { continue }
                let row = w.state + f * dv
                for j in 0..<dv { numerator[j] += weight * row[j] }
                den += weight * w.normaliser[f]
            }
            for j in 0..<dv { numerator[j] *= gate }
            den *= gate
            let framedDelta = delta == 0 ? 0 : Float(Double(delta) * exp(-Double(reference)))
            inverse = options.denominator.inverse(den, delta: framedDelta)
            let dot = DecodeKernels.dot(doutRow, numerator, count: dv)
            let follows = options.denominator == .add || den > framedDelta
            framedDen = follows ? -dot * inverse * inverse : 0
            for j in 0..<dv { doutRow[j] *= inverse }
        }
        // Q_f = w_f (S̃_f·Ỹ + z̃_f ỹ): dq = g^Q Q, ∂L/∂g^Q = Σ_f Q_f.
        let dq = w.queryFeatureGradient + (g * c + i) * d
        var gateGradient: Float = 0
        for f in 0..<d {
            let weight = r.weights[f]
            if weight == 0 { dq[f] = 0; continue }
            let dot = DecodeKernels.dot(w.state + f * dv, doutRow, count: dv)
            let term = weight * (dot + w.normaliser[f] * framedDen)
            gateGradient += term
            dq[f] = gate * term
        }
        r.queryGateGradients[g * c + i] = gateGradient
        return (reference, inverse, framedDen)
    }

    /// Ĝ += g^Q e^{q − r} Ỹ (ĝ with ỹ) for query row i of head g, in the frame ν.
    private func addRescaledQuery(g: Int, row i: Int, workspace w: BackwardWorkspace, region r: RescaledExpBackward.Region) {
        let (c, d, dv) = (chunk, headDim, valueDim)
        let query = w.queryInput + (g * c + i) * d
        let framed = w.outputGradient + (g * c + i) * dv
        let framedDen = w.denominatorGradient[g * c + i]
        let reference = w.queryInverseNorms[g * c + i]
        let gate = w.queryGates[g * c + i]
        for f in 0..<d {
            let e = query[f] - reference
            if e == RescaledExpBackward.empty { continue }
            let row = w.stateGradient + f * dv
            if e > r.nu[f] {
                if r.nu[f] != RescaledExpBackward.empty {
                    let scale = expf(r.nu[f] - e)
                    for j in 0..<dv { row[j] *= scale }
                    w.normaliserGradient[f] *= scale
                }
                r.nu[f] = e
            }
            let weight = gate * expf(e - r.nu[f])
            for j in 0..<dv { row[j] += weight * framed[j] }
            w.normaliserGradient[f] += weight * framedDen
        }
    }

    /// Key row i reads Ĝ: K_f = e^{k_f + ν_f}(G̃_f·v + g̃_f); dk = g^K K, ∂L/∂g^K = Σ_f K_f,
    /// dv = g^K Σ_f e^{k_f + ν_f} G̃_f.
    private func rescaledKeySide(row i: Int, workspace w: BackwardWorkspace, region r: RescaledExpBackward.Region) {
        let (d, dv) = (headDim, valueDim)
        let key = w.keyInput + i * d
        let value = w.values + i * dv
        let gate = w.keyGates[i]
        let dk = w.keyInputGradient + i * d
        let dvRow = w.valueGradient + i * dv
        dvRow.update(repeating: 0, count: dv)
        var gateGradient: Float = 0
        // e^{k + ν}: ≤ 1 when normalised (the vector exp), possibly beyond fp32 when not (libm).
        let live: (Int) -> Bool = { r.nu[$0] != RescaledExpBackward.empty && key[$0] != RescaledExpBackward.empty }
        for f in 0..<d { r.weights[f] = live(f) ? key[f] + r.nu[f] : 0 }
        if options.normalize {
            VectorMath.expShiftedClamped(r.weights, count: d, shift: 0, limit: 88, scale: 1, output: r.weights)
        } else {
            for f in 0..<d { r.weights[f] = expf(r.weights[f]) }
        }
        for f in 0..<d {
            guard live(f) else { dk[f] = 0; continue }
            let weight = r.weights[f]
            let row = w.stateGradient + f * dv
            let dot = DecodeKernels.dot(row, value, count: dv)
            let term = weight * (dot + w.normaliserGradient[f])
            gateGradient += term
            dk[f] = gate * term
            let scaled = gate * weight
            for j in 0..<dv { dvRow[j] += scaled * row[j] }
        }
        r.keyGateGradients[i] = gateGradient
    }

    /// Ĝ ← dS_T, ĝ ← dz_T in the frame ν = 0 (empty rows: −inf); with d log α wanted, the
    /// suffix starts at the final state's term e^{μ_f}(S̃_f·dS_T,f + z̃_f dz_T,f).
    private func seedRescaledReverse(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace,
                                     region r: RescaledExpBackward.Region) {
        let (d, dv) = (headDim, valueDim)
        w.stateGradient.update(repeating: 0, count: d * dv)
        w.normaliserGradient.update(repeating: 0, count: d)
        if let ds = request.finalStateGradient {
            for f in 0..<d {
                let row = ds.base + sequence * ds.steps[0] + keyHead * ds.steps[1] + f * ds.steps[2]
                for j in 0..<dv { w.stateGradient[f * dv + j] = row[j * ds.steps[3]] }
            }
        }
        if let dz = request.finalNormaliserGradient {
            let row = dz.base + sequence * dz.steps[0] + keyHead * dz.steps[1]
            for f in 0..<d { w.normaliserGradient[f] = row[f * dz.steps[2]] }
        }
        for f in 0..<d {
            var any = w.normaliserGradient[f] != 0
            for j in 0..<dv where w.stateGradient[f * dv + j] != 0 { any = true }
            r.nu[f] = any ? 0 : RescaledExpBackward.empty
            var term = 0.0
            if request.logDecay != nil && any && r.mu[f] != RescaledExpBackward.empty {
                var dot = Double(w.normaliser[f]) * Double(w.normaliserGradient[f])
                for j in 0..<dv { dot += Double(w.state[f * dv + j]) * Double(w.stateGradient[f * dv + j]) }
                term = exp(Double(r.mu[f])) * dot
            }
            w.decaySuffix[f] = Float(term)
        }
        if perHeadDecay {
            var total: Float = 0
            for f in 0..<d { total += w.decaySuffix[f] }
            w.decaySuffix[0] = total
        }
    }

    /// dS0 = e^{ν} G̃, dz0 = e^{ν} g̃ (in double, rounded once).
    private func storeRescaledInitialGradient(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace,
                                              region r: RescaledExpBackward.Region) {
        let (d, dv) = (headDim, valueDim)
        for f in 0..<d {
            let scale = r.nu[f] == RescaledExpBackward.empty ? 0 : exp(Double(r.nu[f]))
            let row = w.stateGradient + f * dv
            for j in 0..<dv { row[j] = Float(scale * Double(row[j])) }
            w.normaliserGradient[f] = Float(scale * Double(w.normaliserGradient[f]))
        }
        storeInitialStateGradient(sequence: sequence, keyHead: keyHead, workspace: w)
    }

    /// dq rows and query gate gradients of the chunk to the request.
    private func storeRescaledQueries(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace,
                                      region r: RescaledExpBackward.Region) {
        let (c, d) = (chunk, headDim)
        for g in 0..<group {
            let queryHead = keyHead * group + g
            request.dq?.scatterRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows,
                                    from: w.queryFeatureGradient + g * c * d)
            if let target = request.queryGateLogits {
                for i in 0..<rows {
                    (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                        + queryHead * target.steps[2]).pointee = r.queryGateGradients[g * c + i]
                }
            }
        }
    }

    /// dk, dv rows and key gate gradients of the chunk to the request.
    private func storeRescaledKeys(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace,
                                   region r: RescaledExpBackward.Region) {
        request.dk?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.keyInputGradient)
        request.dv?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.valueGradient)
        if let target = request.keyGateLogits {
            for i in 0..<rows {
                (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                    + keyHead * target.steps[2]).pointee = r.keyGateGradients[i]
            }
        }
    }
}
