#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The causal backward of GLA's per-channel decay in chunks of c rows. With ℓ_t = log α_t (+ log γ)
/// per channel, b_i = Σ_{t ≤ i} ℓ_t within the chunk, B = b_last, Q̃ = Φ_Q ∘ e^{b}, K̃ = Φ_K ∘ e^{B − b}
/// and the intra-chunk scores A_ij = Σ_f φq_if φk_jf e^{b_if − b_jf} (j ≤ i, DecayMath.decayedScores):
///   forward pass:  X = dO S_prevᵀ; D = Q̃ z + rowsum A, dout·num = rowdot(Q̃, X) + rowsum(A∘dO Vᵀ);
///                  dA = tril(dO Vᵀ/D + dden 1ᵀ), dφq_i = e^{b_i}∘(X_i/D_i + dden_i z) + Σ_{j≤i} dA_ij φk_j∘e^{b_i − b_j},
///                  S ← e^{B}∘S + K̃ᵀ V;
///   reverse pass:  dφk_j = e^{B − b_j}∘(Ŝ v_j + ẑ) + Σ_g Σ_{i≥j} dA_ij φq_i∘e^{b_i − b_j},
///                  dV = K̃ Ŝ + Σ_g Aᵀ dnum,  Ŝ ← e^{B}∘Ŝ + Σ_g Q̃ᵀ dnum,  ẑ alike with dden.
/// The state products are GEMMs; the pairwise terms run along j with a running product of the α
/// (every factor ≤ 1, every exponent ≤ 0: any α gives finite results). d log α per channel
/// is the suffix sum of φ(q)∘dφ(q) − φ(k)∘dφ(k) (see LinearAttentionBackward).
extension BackwardPass {
    /// ℓ (w.decay), α = e^{ℓ} (w.gatedAlpha), b (w.gatedCumulative), e^{b} (w.gatedQueryScale),
    /// e^{B − b} (w.gatedKeyScale) of the chunk's rows, and e^{B} into w.pairFactors.
    func fillChannelDecay(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace) {
        let m = featureDim
        guard let logDecay = options.logDecay else { return }
        logDecay.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.decay)
        let logGamma = options.decay.logarithm(head: keyHead)
        let (steps, cumulative) = (w.decay, w.gatedCumulative)
        for i in 0..<rows {
            let (row, target) = (steps + i * m, cumulative + i * m)
            for f in 0..<m { row[f] = min(row[f] + logGamma, 0) }
            if i == 0 {
                target.update(from: row, count: m)
            } else {
                let previous = cumulative + (i - 1) * m
                for f in 0..<m { target[f] = previous[f] + row[f] }
            }
        }
        let last = cumulative + (rows - 1) * m
        for i in 0..<rows {
            let (source, target) = (cumulative + i * m, w.gatedKeyScale + i * m)
            for f in 0..<m { target[f] = min(last[f] - source[f], 0) }
        }
        DecayMath.expNonPositive(steps, count: rows * m, output: w.gatedAlpha)
        DecayMath.expNonPositive(cumulative, count: rows * m, output: w.gatedQueryScale)
        DecayMath.expNonPositive(w.gatedKeyScale, count: rows * m, output: w.gatedKeyScale)
        DecayMath.expNonPositive(last, count: m, output: w.pairFactors)
    }

    /// Adds Σ_{j ≤ i} dA_ij φk_j∘e^{b_i − b_j} to row i of `queryGradient` (queries) or
    /// Σ_{i ≥ j} dA_ij φq_i∘e^{b_i − b_j} to row j of `keyGradient` (keys), dA in w.scoreGradient.
    func pairwiseGradient(rows: Int, query: UnsafePointer<Float>, queryGradient: UnsafeMutablePointer<Float>?,
                          keyGradient: UnsafeMutablePointer<Float>?, workspace w: BackwardWorkspace) {
        let m = featureDim
        // e^{b_i − b_j} = Π_{t = j+1 … i} α_t, a running product of factors <= 1 (it underflows to 0,
        // never overflows), so the pairs cost no exponential.
        let weights = w.gatedPair
        for i in 0..<rows {
            weights.update(repeating: 1, count: m)
            var j = i
            while j >= 0 {
                if j < i {
                    let alpha = w.gatedAlpha + (j + 1) * m
                    for f in 0..<m { weights[f] *= alpha[f] }
                }
                let weight = w.scoreGradient[i * rows + j]
                if weight != 0 {
                    if let queryGradient {
                        let (target, key) = (queryGradient + i * m, w.keyFeatures + j * m)
                        for f in 0..<m { target[f] += weight * key[f] * weights[f] }
                    }
                    if let keyGradient {
                        let (target, row) = (keyGradient + j * m, query + i * m)
                        for f in 0..<m { target[f] += weight * row[f] * weights[f] }
                    }
                }
                j -= 1
            }
        }
    }

    /// A of query head g (decayed pairwise) into w.scores and dO Vᵀ into w.scoreGradient.
    func gatedScores(g: Int, rows: Int, workspace w: BackwardWorkspace) {
        let (c, m) = (chunk, featureDim)
        DecayMath.decayedScores(q: w.queryFeatures + g * c * m, k: w.keyFeatures, logDecay: w.decay, rows: rows, m: m,
                                output: w.scores, running: w.gatedRunning)
        fullValueProducts(g: g, rows: rows, workspace: w)
    }

    func gatedForward(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let wantsDecay = request.logDecay != nil
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            fillChannelDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            if wantsDecay { w.decayGradient.update(repeating: 0, count: rows * m) }
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                let query = w.queryFeatures + g * c * m
                let dnum = w.outputGradient + g * c * dv
                let gradient = w.queryFeatureGradient + g * c * m
                gatedScores(g: g, rows: rows, workspace: w)
                Gemm.multiply(m: rows, n: m, k: dv, a: dnum, rowStrideA: dv, columnStrideA: 1,
                              b: w.state, rowStrideB: 1, columnStrideB: dv, c: gradient, ldc: m,
                              accumulate: false, workspace: w.gemm)
                let scaled = w.gatedScaled
                for i in 0..<(rows * m) { scaled[i] = query[i] * w.gatedQueryScale[i] }
                for i in 0..<rows {
                    let (x, scale) = (gradient + i * m, w.gatedQueryScale + i * m)
                    var inverse: Float = 1
                    var dden: Float = 0
                    if options.normalize {
                        let row = scaled + i * m
                        let qz = DecodeKernels.dot(row, w.normaliser, count: m)
                        let qx = DecodeKernels.dot(row, x, count: m)
                        let (scores, products) = (w.scores + i * rows, w.scoreGradient + i * rows)
                        var intraDen: Float = 0
                        var intraDot: Float = 0
                        for j in 0...i {
                            intraDen += scores[j]
                            intraDot += scores[j] * products[j]
                        }
                        let den = qz + intraDen
                        inverse = options.denominator.inverse(den, delta: delta)
                        let follows = options.denominator == .add || den > delta
                        dden = follows ? -(qx + intraDot) * inverse * inverse : 0
                        let doutRow = dnum + i * dv
                        for j in 0..<dv { doutRow[j] *= inverse }
                    }
                    for f in 0..<m { x[f] = scale[f] * (inverse * x[f] + dden * w.normaliser[f]) }
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    slot[0] = inverse
                    slot[1] = dden
                    let products = w.scoreGradient + i * rows
                    for j in 0...i { products[j] = products[j] * inverse + dden }
                    for j in (i + 1)..<max(i + 1, rows) { products[j] = 0 }
                }
                pairwiseGradient(rows: rows, query: query, queryGradient: gradient, keyGradient: nil, workspace: w)
                if wantsDecay {
                    for i in 0..<(rows * m) { w.decayGradient[i] += query[i] * gradient[i] }
                }
            }
            // S ← e^{B}∘S + K̃ᵀ V, z alike.
            for f in 0..<m {
                let (factor, row) = (w.pairFactors[f], w.state + f * dv)
                for e in 0..<dv { row[e] *= factor }
                w.normaliser[f] *= factor
            }
            let scaledKeys = w.gatedScaled
            for i in 0..<(rows * m) { scaledKeys[i] = w.keyFeatures[i] * w.gatedKeyScale[i] }
            for j in 0..<rows {
                let key = scaledKeys + j * m
                for f in 0..<m { w.normaliser[f] += key[f] }
            }
            Gemm.multiply(m: m, n: dv, k: rows, a: scaledKeys, rowStrideA: 1, columnStrideA: m,
                          b: w.values, rowStrideB: dv, columnStrideB: 1, c: w.state, ldc: dv,
                          accumulate: true, workspace: w.gemm)
            if wantsDecay { storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient) }
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 += rows
        }
    }

    func gatedReverse(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let wantsDecay = request.logDecay != nil
        guard span.length > 0 else { return }
        var t0 = ((span.length - 1) / c) * c
        while t0 >= 0 {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            fillChannelDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            // Inter-chunk terms with Ŝ at the chunk's end: dφk = e^{B − b}∘(V Ŝᵀ + 1 ẑᵀ), dV = K̃ Ŝ.
            Gemm.multiply(m: rows, n: m, k: dv, a: w.values, rowStrideA: dv, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: 1, columnStrideB: dv, c: w.keyFeatureGradient, ldc: m,
                          accumulate: false, workspace: w.gemm)
            let scaledKeys = w.gatedScaled
            for i in 0..<(rows * m) { scaledKeys[i] = w.keyFeatures[i] * w.gatedKeyScale[i] }
            Gemm.multiply(m: rows, n: dv, k: m, a: scaledKeys, rowStrideA: m, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                          accumulate: false, workspace: w.gemm)
            for j in 0..<rows {
                let (row, scale) = (w.keyFeatureGradient + j * m, w.gatedKeyScale + j * m)
                for f in 0..<m { row[f] = scale[f] * (row[f] + w.normaliserGradient[f]) }
            }
            for f in 0..<m {
                let (factor, row) = (w.pairFactors[f], w.stateGradient + f * dv)
                for e in 0..<dv { row[e] *= factor }
                w.normaliserGradient[f] *= factor
            }
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, workspace: w)
                let query = w.queryFeatures + g * c * m
                let dnum = w.outputGradient + g * c * dv
                for i in 0..<rows {
                    if options.normalize {
                        let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                        let row = dnum + i * dv
                        for j in 0..<dv { row[j] *= slot[0] }
                        w.denominatorGradient[g * c + i] = slot[1]
                    } else {
                        w.denominatorGradient[g * c + i] = 0
                    }
                }
                gatedScores(g: g, rows: rows, workspace: w)
                for i in 0..<rows {
                    let dden = w.denominatorGradient[g * c + i]
                    let products = w.scoreGradient + i * rows
                    for j in 0...i { products[j] += dden }
                    for j in (i + 1)..<max(i + 1, rows) { products[j] = 0 }
                }
                pairwiseGradient(rows: rows, query: query, queryGradient: nil, keyGradient: w.keyFeatureGradient, workspace: w)
                Gemm.multiply(m: rows, n: dv, k: rows, a: w.scores, rowStrideA: 1, columnStrideA: rows,
                              b: dnum, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
                // Ŝ += Q̃ᵀ dnum, ẑ += Q̃ᵀ dden.
                let scaled = w.gatedScaled
                for i in 0..<(rows * m) { scaled[i] = query[i] * w.gatedQueryScale[i] }
                for i in 0..<rows {
                    let dden = w.denominatorGradient[g * c + i]
                    if dden != 0 {
                        let row = scaled + i * m
                        for f in 0..<m { w.normaliserGradient[f] += dden * row[f] }
                    }
                }
                Gemm.multiply(m: m, n: dv, k: rows, a: scaled, rowStrideA: 1, columnStrideA: m,
                              b: dnum, rowStrideB: dv, columnStrideB: 1, c: w.stateGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
            }
            if wantsDecay {
                loadDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, into: w.decayGradient)
                for j in stride(from: rows - 1, through: 0, by: -1) {
                    let (row, key, gradient) = (w.decayGradient + j * m, w.keyFeatures + j * m, w.keyFeatureGradient + j * m)
                    for f in 0..<m {
                        w.decaySuffix[f] += row[f] - key[f] * gradient[f]
                        row[f] = w.decaySuffix[f]
                    }
                }
                storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient)
            }
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            t0 -= c
        }
    }
}
