#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The causal backward of the scalar-decay additive form (plain, RetNet γ, per-head GLA log
/// decay) in chunks of c rows, every chunk product a GEMM on the packed kernels. With b_i the
/// cumulative log decay of row i within the chunk, p_i = e^{b_i}, Γ_ij = e^{b_i − b_j} (j ≤ i),
/// w_j = e^{b_last − b_j} (every exponent ≤ 0), A = tril(Φ_Q Φ_Kᵀ ∘ Γ) and B = dO Vᵀ:
///   forward pass:  X = dO S_prevᵀ; D = p∘(Φ_Q z) + rowsum A, dout·num = p∘rowdot(Φ_Q, X) + rowsum(A∘B);
///                  dnum = dO/D, dA = tril((B/D + dden 1ᵀ) ∘ Γ), dΦ_Q = p∘(X/D + dden zᵀ) + dA Φ_K,
///                  S ← e^{b_last} S + Φ_Kᵀ(w∘V);
///   reverse pass:  dΦ_K = Σ_g dA_gᵀ Φ_Q,g + w∘(V Ŝᵀ + 1 ẑᵀ),  dV = Σ_g A_gᵀ dnum_g + w∘(Φ_K Ŝ),
///                  Ŝ ← e^{b_last} Ŝ + Σ_g Φ_Q,gᵀ (p∘dnum_g),  ẑ ← e^{b_last} ẑ + Σ_g Φ_Q,gᵀ (p∘dden_g).
/// A factorised map (FactorisedFeatureGradient: SLAY, Φ = poly ⊗ prf per row) never forms the
/// m-wide intra-chunk products: A = (P_Q P_Kᵀ) ∘ (R_Q R_Kᵀ) ∘ Γ from the factors, and dA Φ_K
/// reaches the map's derivative as ∂poly_Q = (dA ∘ R_Q R_Kᵀ) P_K, ∂prf_Q = (dA ∘ P_Q P_Kᵀ) R_K
/// (keys alike with dAᵀ), O(c²·(P' + R·M)) instead of O(c²·m) per product.
/// d log α (per head) comes from ∂L/∂b_t = φ(q_t)·dφ(q_t) − φ(k_t)·dφ(k_t), summed backwards.
extension BackwardPass {
    /// Factor widths when the intra-chunk terms go through the map's factors: a factorised map
    /// and no SLA gates or qk_l2norm (gated or normalised features take the m-wide products).
    static func factorisation(map: FeatureMapGradient, options: LinearAttentionOptions) -> (poly: Int, prf: Int)? {
        guard options.queryGateLogits == nil && options.keyGateLogits == nil && !options.qkL2Norm,
              let factorised = map as? FactorisedFeatureGradient else { return nil }
        return factorised.factorWidths
    }

    var factorisedMap: FactorisedFeatureGradient? {
        factorWidths == nil ? nil : map as? FactorisedFeatureGradient
    }

    /// Γ (w.decayMatrix, rows × rows, lower triangle), p (w.rowScale) and w (w.keyScale) of the
    /// chunk's rows from γ of the key head and the per-head log decay; returns e^{b_last}, or nil
    /// when the head does not decay (every factor 1).
    func fillChunkDecay(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, workspace w: BackwardWorkspace) -> Float? {
        let perToken = options.logDecay
        guard perToken != nil || options.decay.decays(head: keyHead) else { return nil }
        let logGamma = options.decay.logarithm(head: keyHead)
        let b = w.powers
        var running: Float = 0
        for i in 0..<rows {
            var step = logGamma
            if let view = perToken {
                step += (view.base + span.batch * view.steps[0] + (span.start + t0 + i) * view.steps[1]
                    + keyHead * view.steps[2]).pointee
            }
            running += step
            b[i] = min(running, 0)
        }
        let last = b[rows - 1]
        for i in 0..<rows {
            w.rowScale[i] = expf(b[i])
            w.keyScale[i] = expf(min(last - b[i], 0))
        }
        let matrix = w.decayMatrix
        if perToken == nil {
            // γ only: Γ_ij = γ^{i−j}, from a table of powers (in the unused upper triangle's row 0).
            for n in 0..<rows { matrix[n] = expf(Float(n) * logGamma) }
            for i in stride(from: rows - 1, through: 1, by: -1) {
                for j in 0...i { matrix[i * rows + j] = matrix[i - j] }
            }
        } else {
            for i in 0..<rows {
                for j in 0..<rows { matrix[i * rows + j] = j <= i ? min(b[i] - b[j], 0) : 0 }
            }
            DecayMath.expNonPositive(matrix, count: rows * rows, output: matrix)
        }
        return expf(last)
    }

    /// rows × m feature rows into w.paddedRows at the padded stride: read down a column (the state
    /// products' k index), rows 2 KiB apart (m = 512) share a few L1 sets and evict each other.
    func padRows(_ source: UnsafePointer<Float>, rows: Int, workspace w: BackwardWorkspace) {
        let (m, ts) = (featureDim, BackwardWorkspace.transposedStride(featureDim: featureDim))
        for i in 0..<rows { (w.paddedRows + i * ts).update(from: source + i * m, count: m) }
    }

    /// Zeroes the strict upper triangle and multiplies entry (i, j ≤ i) by Γ_ij.
    func maskAndDecay(_ block: UnsafeMutablePointer<Float>, rows: Int, decayed: Bool, workspace w: BackwardWorkspace) {
        for i in 0..<rows {
            let row = block + i * rows
            if decayed {
                let gamma = w.decayMatrix + i * rows
                for j in 0...i { row[j] *= gamma[j] }
            }
            for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
        }
    }

    /// Rows of the lower-triangular blocks: the intra-chunk products run in blocks of this many
    /// rows, each over the columns (or terms) its triangle needs (about half the c × c work).
    static let triangleBlock = 16

    /// Vᵀ, and for a factorised map P_Kᵀ and R_Kᵀ, into w.keyTransposed (row stride c), so the
    /// intra-chunk products read them without packing.
    func transposeKeys(rows: Int, factorised: FactorisedFeatureGradient?, workspace w: BackwardWorkspace) {
        let (c, dv) = (chunk, valueDim)
        BlockTranspose.transpose(w.values, rows: rows, columns: dv, sourceStride: dv, into: w.keyTransposed, targetStride: c)
        if let factorised, let widths = factorWidths {
            let key = factorised.factors(scratch: w.keyScratch, rows: rows)
            BlockTranspose.transpose(key.poly, rows: rows, columns: widths.poly, sourceStride: widths.poly,
                                     into: w.keyTransposed + c * dv, targetStride: c)
            BlockTranspose.transpose(key.prf, rows: rows, columns: widths.prf, sourceStride: widths.prf,
                                     into: w.keyTransposed + c * (dv + widths.poly), targetStride: c)
        }
    }

    /// C[i, j] = Σ_p A[i, p]·Bᵀ[p, j] (C rows × rows, row stride rows) for j ≤ i at least: in
    /// blocks of `triangleBlock` rows, each over the columns up to its last row. Entries further
    /// right are left as they were (callers read or mask only the lower triangle).
    func lowerProduct(rows: Int, k: Int, a: UnsafePointer<Float>, rowStrideA: Int, transposedB: UnsafePointer<Float>,
                      rowStrideB: Int, c: UnsafeMutablePointer<Float>, workspace w: BackwardWorkspace) {
        var r0 = 0
        while r0 < rows {
            let height = min(Self.triangleBlock, rows - r0)
            Gemm.multiply(m: height, n: r0 + height, k: k, a: a + r0 * rowStrideA, rowStrideA: rowStrideA, columnStrideA: 1,
                          b: transposedB, rowStrideB: rowStrideB, columnStrideB: 1, c: c + r0 * rows, ldc: rows,
                          accumulate: false, workspace: w.gemm)
            r0 += height
        }
    }

    /// C[i, :] = Σ_{j ≤ i} L[i, j]·B[j, :] for a lower-triangular L (rows × rows; its upper triangle
    /// must hold zeros, since a block's terms reach past its diagonal).
    func lowerTimes(rows: Int, width: Int, lower: UnsafePointer<Float>, b: UnsafePointer<Float>,
                    c: UnsafeMutablePointer<Float>, workspace w: BackwardWorkspace) {
        var r0 = 0
        while r0 < rows {
            let height = min(Self.triangleBlock, rows - r0)
            Gemm.multiply(m: height, n: width, k: r0 + height, a: lower + r0 * rows, rowStrideA: rows, columnStrideA: 1,
                          b: b, rowStrideB: width, columnStrideB: 1, c: c + r0 * width, ldc: width,
                          accumulate: false, workspace: w.gemm)
            r0 += height
        }
    }

    /// C[j, :] += Σ_{i ≥ j} L[i, j]·B[i, :] (Lᵀ B) for a lower-triangular L whose upper triangle
    /// holds zeros.
    func lowerTransposedTimes(rows: Int, width: Int, lower: UnsafePointer<Float>, b: UnsafePointer<Float>,
                              c: UnsafeMutablePointer<Float>, workspace w: BackwardWorkspace) {
        var r0 = 0
        while r0 < rows {
            let height = min(Self.triangleBlock, rows - r0)
            Gemm.multiply(m: height, n: width, k: rows - r0, a: lower + r0 * rows + r0, rowStrideA: 1, columnStrideA: rows,
                          b: b + r0 * width, rowStrideB: width, columnStrideB: 1, c: c + r0 * width, ldc: width,
                          accumulate: true, workspace: w.gemm)
            r0 += height
        }
    }

    /// A = tril(Φ_Q Φ_Kᵀ ∘ Γ) of query head g into w.scores; factorised, from the factor Grams
    /// (their lower triangles left in w.polyGram and w.prfGram for the gradient terms).
    func intraScores(g: Int, rows: Int, decayed: Bool, factorised: FactorisedFeatureGradient?, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        if let factorised, let widths = factorWidths {
            let query = factorised.factors(scratch: w.queryScratch + g * w.queryScratchStride, rows: rows)
            lowerProduct(rows: rows, k: widths.poly, a: query.poly, rowStrideA: widths.poly,
                         transposedB: w.keyTransposed + c * dv, rowStrideB: c, c: w.polyGram, workspace: w)
            lowerProduct(rows: rows, k: widths.prf, a: query.prf, rowStrideA: widths.prf,
                         transposedB: w.keyTransposed + c * (dv + widths.poly), rowStrideB: c, c: w.prfGram, workspace: w)
            // Zeros above the diagonal already: only a decay is left to apply.
            BackwardKernels.lowerProducts(w.polyGram, w.prfGram, rows: rows, into: w.scores)
            if decayed { maskAndDecay(w.scores, rows: rows, decayed: decayed, workspace: w) }
        } else {
            Gemm.multiply(m: rows, n: rows, k: m, a: w.queryFeatures + g * c * m, rowStrideA: m, columnStrideA: 1,
                          b: w.keyFeatures, rowStrideB: 1, columnStrideB: m, c: w.scores, ldc: rows,
                          accumulate: false, workspace: w.gemm)
            maskAndDecay(w.scores, rows: rows, decayed: decayed, workspace: w)
        }
    }

    /// w.scoreGradient = dO Vᵀ (rows × rows) of query head g: its lower triangle (the rest is
    /// masked later).
    func valueProducts(g: Int, rows: Int, workspace w: BackwardWorkspace) {
        lowerProduct(rows: rows, k: valueDim, a: w.outputGradient + g * chunk * valueDim, rowStrideA: valueDim,
                     transposedB: w.keyTransposed, rowStrideB: chunk, c: w.scoreGradient, workspace: w)
    }

    /// w.scoreGradient = dO Vᵀ (rows × rows, in full) of query head g (the per-channel GLA path).
    func fullValueProducts(g: Int, rows: Int, workspace w: BackwardWorkspace) {
        let dv = valueDim
        Gemm.multiply(m: rows, n: rows, k: dv, a: w.outputGradient + g * chunk * dv, rowStrideA: dv, columnStrideA: 1,
                      b: w.values, rowStrideB: 1, columnStrideB: dv, c: w.scoreGradient, ldc: rows,
                      accumulate: false, workspace: w.gemm)
    }

    /// w.product = dA ∘ R_Q R_Kᵀ and w.secondProduct = dA ∘ P_Q P_Kᵀ (zeros above the diagonal),
    /// the weights of the poly and prf factors' intra-chunk gradients, in one pass over dA.
    func weightedGradients(rows: Int, workspace w: BackwardWorkspace) {
        BackwardKernels.lowerProducts(w.scoreGradient, w.prfGram, rows: rows, into: w.product,
                                      second: w.polyGram, into2: w.secondProduct)
    }

    /// Σ_j dA_ij·Ã_ij of row i (transposed: Σ_i of column j when `columns`), Ã = P_Q P_Kᵀ ∘ R_Q R_Kᵀ
    /// the undecayed scores: the intra-chunk part of φ·dφ that the factorised path never forms.
    func intraDot(row i: Int, rows: Int, columns: Bool, workspace w: BackwardWorkspace) -> Float {
        var dot: Float = 0
        if columns {
            for r in i..<rows {
                let index = r * rows + i
                dot += w.scoreGradient[index] * w.polyGram[index] * w.prfGram[index]
            }
        } else {
            for j in 0...i {
                let index = i * rows + j
                dot += w.scoreGradient[index] * w.polyGram[index] * w.prfGram[index]
            }
        }
        return dot
    }

    func chunkedForward(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let factorised = factorisedMap
        let wantsDecay = request.logDecay != nil
        // The forward pass keeps the state transposed, Sᵀ [dv, m]: both of its state products
        // then read B's rows directly (no packing).
        let (transposed, ts) = (w.transposedState, BackwardWorkspace.transposedStride(featureDim: m))
        // A factorised map writes its feature rows at the padded stride the state products read.
        let fs = factorised != nil ? ts : m
        BlockTranspose.transpose(w.state, rows: m, columns: dv, sourceStride: dv, into: transposed, targetStride: ts)
        var t0 = 0
        while t0 < span.length {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, padded: factorised, workspace: w)
            transposeKeys(rows: rows, factorised: factorised, workspace: w)
            let chunkDecay = fillChunkDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            let decayed = chunkDecay != nil
            if wantsDecay { w.decayGradient.update(repeating: 0, count: rows) }
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, padded: factorised,
                            workspace: w)
                let query = w.queryFeatures + g * c * fs
                let dnum = w.outputGradient + g * c * dv
                let gradient = w.queryFeatureGradient + g * c * m
                intraScores(g: g, rows: rows, decayed: decayed, factorised: factorised, workspace: w)
                // X = dO S_prevᵀ serves both dout·num (through X_i·φ(q_i)) and dΦ_Q's state term.
                Gemm.multiply(m: rows, n: m, k: dv, a: dnum, rowStrideA: dv, columnStrideA: 1,
                              b: transposed, rowStrideB: ts, columnStrideB: 1, c: gradient, ldc: m,
                              accumulate: false, workspace: w.gemm)
                valueProducts(g: g, rows: rows, workspace: w)
                for i in 0..<rows {
                    let p: Float = decayed ? w.rowScale[i] : 1
                    let x = gradient + i * m
                    var inverse: Float = 1
                    var dden: Float = 0
                    if options.normalize {
                        let row = query + i * fs
                        let (qz, qx) = VectorMath.dots(row, w.normaliser, x, count: m)
                        let scores = w.scores + i * rows
                        let products = w.scoreGradient + i * rows
                        var intraDen: Float = 0
                        var intraDot: Float = 0
                        for j in 0...i {
                            intraDen += scores[j]
                            intraDot += scores[j] * products[j]
                        }
                        let den = p * qz + intraDen
                        inverse = options.denominator.inverse(den, delta: delta)
                        let follows = options.denominator == .add || den > delta
                        dden = follows ? -(p * qx + intraDot) * inverse * inverse : 0
                        let doutRow = dnum + i * dv
                        for j in 0..<dv { doutRow[j] *= inverse }
                        let (pi, pd) = (p * inverse, p * dden)
                        BackwardKernels.combine(x, pi, w.normaliser, pd, count: m)
                    } else if p != 1 {
                        for f in 0..<m { x[f] *= p }
                    }
                    let slot = scalarSlot(span, token: t0 + i, queryHead: keyHead * group + g)
                    slot[0] = inverse
                    slot[1] = dden
                    w.denominatorGradient[g * c + i] = dden
                    // dA row i = (B_ij/D_i + dden_i)·Γ_ij for j ≤ i.
                    let products = w.scoreGradient + i * rows
                    for j in 0...i { products[j] = products[j] * inverse + dden }
                }
                // The factorised path reads only dA's lower triangle (its weighted products are
                // zeroed above the diagonal): the mask is needed there only to apply a decay.
                if factorised == nil || decayed { maskAndDecay(w.scoreGradient, rows: rows, decayed: decayed, workspace: w) }
                if let factorised, let widths = factorWidths {
                    let key = factorised.factors(scratch: w.keyScratch, rows: rows)
                    weightedGradients(rows: rows, workspace: w)
                    lowerTimes(rows: rows, width: widths.poly, lower: w.product, b: key.poly,
                               c: w.queryPolyGradient + g * c * widths.poly, workspace: w)
                    lowerTimes(rows: rows, width: widths.prf, lower: w.secondProduct, b: key.prf,
                               c: w.queryPrfGradient + g * c * widths.prf, workspace: w)
                } else {
                    // dΦ_Q += dA Φ_K.
                    Gemm.multiply(m: rows, n: m, k: rows, a: w.scoreGradient, rowStrideA: rows, columnStrideA: 1,
                                  b: w.keyFeatures, rowStrideB: fs, columnStrideB: 1, c: gradient, ldc: m,
                                  accumulate: true, workspace: w.gemm)
                }
                if wantsDecay {
                    // Query part of ∂L/∂b_t: Σ_g φ(q)·dφ(q) (gated features), summed over the channels.
                    for i in 0..<rows {
                        let (row, x) = (query + i * fs, gradient + i * m)
                        var dot = DecodeKernels.dot(row, x, count: m)
                        if factorised != nil { dot += intraDot(row: i, rows: rows, columns: false, workspace: w) }
                        w.decayGradient[i] += dot
                    }
                }
            }
            // While dφ(q) is still in L2 (the state update streams S and Φ_K through it).
            finishQueries(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, factorised: factorised,
                          workspace: w)
            // S ← e^{b_last} S + Φ_Kᵀ (w∘V), z alike.
            if let decayAll = chunkDecay {
                for j in 0..<dv {
                    let row = transposed + j * ts
                    for f in 0..<m { row[f] *= decayAll }
                }
                for f in 0..<m { w.normaliser[f] *= decayAll }
            }
            let weighted = decayed ? UnsafePointer(w.block) : UnsafePointer(w.values)
            if decayed {
                for j in 0..<rows {
                    let weight = w.keyScale[j]
                    for e in 0..<dv { w.block[j * dv + e] = weight * w.values[j * dv + e] }
                }
            }
            BackwardKernels.addWeightedRows(w.keyFeatures, rows: rows, rowStride: fs, width: m,
                                            weights: decayed ? UnsafePointer(w.keyScale) : nil, skipZero: false,
                                            into: w.normaliser)
            // Sᵀ += (w∘V)ᵀ Φ_K.
            if factorised == nil { padRows(w.keyFeatures, rows: rows, workspace: w) }
            Gemm.multiply(m: dv, n: m, k: rows, a: weighted, rowStrideA: 1, columnStrideA: dv,
                          b: factorised == nil ? w.paddedRows : w.keyFeatures, rowStrideB: ts, columnStrideB: 1, c: transposed, ldc: ts,
                          accumulate: true, workspace: w.gemm)
            if wantsDecay { storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient) }
            t0 += rows
        }
        // S_T back in its own layout (seedReverse reads it for d log α).
        BlockTranspose.transpose(transposed, rows: dv, columns: m, sourceStride: ts, into: w.state, targetStride: dv)
    }

    func chunkedReverse(span: SequenceSpan, origin: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (c, m, dv) = (chunk, featureDim, valueDim)
        let factorised = factorisedMap
        let wantsDecay = request.logDecay != nil
        let ts = BackwardWorkspace.transposedStride(featureDim: m)
        let fs = factorised != nil ? ts : m
        // dφ(k) transposed, [m, rows] (column j is key row j), when the map's gradient takes it
        // that way: then Ŝ is never transposed (dΦ_Kᵀ = Ŝ Vᵀ reads Vᵀ's rows), and the map's
        // gradient runs with the rows as lanes. d log α reads dφ(k) by rows: not then.
        let columnKeys = factorised?.takesColumnGradients == true && !wantsDecay
        guard span.length > 0 else { return }
        var t0 = ((span.length - 1) / c) * c
        while t0 >= 0 {
            let rows = min(c, span.length - t0)
            loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, padded: factorised, workspace: w)
            transposeKeys(rows: rows, factorised: factorised, workspace: w)
            let chunkDecay = fillChunkDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
            let decayed = chunkDecay != nil
            // Inter-chunk terms first, while Ŝ is the gradient of the state at the chunk's end:
            // dΦ_K = w∘(V Ŝᵀ + 1 ẑᵀ), dV = w∘(Φ_K Ŝ).
            let ld = BackwardWorkspace.columnStride(rows: rows)
            if columnKeys {
                // dΦ_Kᵀ = Ŝ Vᵀ [m, rows], Vᵀ from transposeKeys.
                Gemm.multiply(m: m, n: rows, k: dv, a: w.stateGradient, rowStrideA: dv, columnStrideA: 1,
                              b: w.keyTransposed, rowStrideB: c, columnStrideB: 1, c: w.keyColumnGradient, ldc: ld,
                              accumulate: false, workspace: w.gemm)
            } else {
                // Ŝᵀ [dv, m], so that V Ŝᵀ reads B's rows directly.
                BlockTranspose.transpose(w.stateGradient, rows: m, columns: dv, sourceStride: dv, into: w.transposedState,
                                         targetStride: ts)
                Gemm.multiply(m: rows, n: m, k: dv, a: w.values, rowStrideA: dv, columnStrideA: 1,
                              b: w.transposedState, rowStrideB: ts, columnStrideB: 1, c: w.keyFeatureGradient, ldc: m,
                              accumulate: false, workspace: w.gemm)
            }
            Gemm.multiply(m: rows, n: dv, k: m, a: w.keyFeatures, rowStrideA: fs, columnStrideA: 1,
                          b: w.stateGradient, rowStrideB: dv, columnStrideB: 1, c: w.valueGradient, ldc: dv,
                          accumulate: false, workspace: w.gemm)
            if columnKeys {
                BackwardKernels.addColumnThenScale(w.keyColumnGradient, rows: m, columns: rows, ld: ld,
                                                   z: w.normaliserGradient, weights: decayed ? UnsafePointer(w.keyScale) : nil)
            }
            for j in 0..<rows {
                let weight: Float = decayed ? w.keyScale[j] : 1
                if !columnKeys { BackwardKernels.addThenScale(w.keyFeatureGradient + j * m, w.normaliserGradient, weight, count: m) }
                if decayed {
                    let valueRow = w.valueGradient + j * dv
                    for e in 0..<dv { valueRow[e] *= weight }
                }
            }
            if let decayAll = chunkDecay {
                for i in 0..<(m * dv) { w.stateGradient[i] *= decayAll }
                for f in 0..<m { w.normaliserGradient[f] *= decayAll }
            }
            if factorised != nil, let widths = factorWidths {
                w.keyPolyGradient.update(repeating: 0, count: rows * widths.poly)
                w.keyPrfGradient.update(repeating: 0, count: rows * widths.prf)
            }
            if wantsDecay { w.keyIntraDot.update(repeating: 0, count: rows) }
            for g in 0..<group {
                loadQueries(span: span, origin: origin, keyHead: keyHead, g: g, t0: t0, rows: rows, padded: factorised,
                            workspace: w)
                let query = w.queryFeatures + g * c * fs
                let dnum = w.outputGradient + g * c * dv
                // The forward pass stored 1/D and ∂L/∂den of normalised rows (unnormalised: dnum = dout).
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
                intraScores(g: g, rows: rows, decayed: decayed, factorised: factorised, workspace: w)
                valueProducts(g: g, rows: rows, workspace: w)
                for i in 0..<rows {
                    let dden = w.denominatorGradient[g * c + i]
                    if dden != 0 {
                        let products = w.scoreGradient + i * rows
                        for j in 0...i { products[j] += dden }
                    }
                }
                if factorised == nil || decayed { maskAndDecay(w.scoreGradient, rows: rows, decayed: decayed, workspace: w) }
                if let factorised, let widths = factorWidths {
                    let queryFactors = factorised.factors(scratch: w.queryScratch + g * w.queryScratchStride, rows: rows)
                    weightedGradients(rows: rows, workspace: w)
                    lowerTransposedTimes(rows: rows, width: widths.poly, lower: w.product, b: queryFactors.poly,
                                         c: w.keyPolyGradient, workspace: w)
                    lowerTransposedTimes(rows: rows, width: widths.prf, lower: w.secondProduct, b: queryFactors.prf,
                                         c: w.keyPrfGradient, workspace: w)
                    if wantsDecay {
                        for j in 0..<rows { w.keyIntraDot[j] += intraDot(row: j, rows: rows, columns: true, workspace: w) }
                    }
                } else {
                    Gemm.multiply(m: rows, n: m, k: rows, a: w.scoreGradient, rowStrideA: 1, columnStrideA: rows,
                                  b: query, rowStrideB: fs, columnStrideB: 1, c: w.keyFeatureGradient, ldc: m,
                                  accumulate: true, workspace: w.gemm)
                }
                lowerTransposedTimes(rows: rows, width: dv, lower: w.scores, b: dnum, c: w.valueGradient, workspace: w)
            }
            if wantsDecay {
                // d log α_t = Σ_{t' ≥ t} (φ(q)·dφ(q) − φ(k)·dφ(k)) + the final state's term, per head.
                loadDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, into: w.decayGradient)
                for j in stride(from: rows - 1, through: 0, by: -1) {
                    let (key, gradient) = (w.keyFeatures + j * fs, w.keyFeatureGradient + j * m)
                    var keyPart = DecodeKernels.dot(key, gradient, count: m)
                    if factorised != nil { keyPart += w.keyIntraDot[j] }
                    w.decaySuffix[0] += w.decayGradient[j] - keyPart
                    w.decayGradient[j] = w.decaySuffix[0]
                }
                storeDecayGradient(span: span, keyHead: keyHead, t0: t0, rows: rows, from: w.decayGradient)
            }
            // dφ(k) is complete: finish the keys while it is still in L2, before the state
            // updates stream Ŝ and Φ_Q through it.
            finishKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, factorised: factorised,
                       columns: columnKeys, workspace: w)
            for g in 0..<group {
                let query = w.queryFeatures + g * c * fs
                let dnum = w.outputGradient + g * c * dv
                // Ŝ += Φ_Qᵀ (p∘dnum), ẑ += Φ_Qᵀ (p∘dden).
                var scaled = UnsafePointer(dnum)
                if decayed {
                    for i in 0..<rows {
                        let p = w.rowScale[i]
                        for j in 0..<dv { w.block[i * dv + j] = p * dnum[i * dv + j] }
                    }
                    scaled = UnsafePointer(w.block)
                }
                var ddens = UnsafePointer(w.denominatorGradient + g * c)
                if decayed {
                    for i in 0..<rows { w.rowWeights[i] = w.denominatorGradient[g * c + i] * w.rowScale[i] }
                    ddens = UnsafePointer(w.rowWeights)
                }
                BackwardKernels.addWeightedRows(query, rows: rows, rowStride: fs, width: m, weights: ddens, skipZero: true,
                                                into: w.normaliserGradient)
                if factorised == nil { padRows(query, rows: rows, workspace: w) }
                Gemm.multiply(m: m, n: dv, k: rows, a: factorised == nil ? w.paddedRows : query, rowStrideA: 1, columnStrideA: ts,
                              b: scaled, rowStrideB: dv, columnStrideB: 1, c: w.stateGradient, ldc: dv,
                              accumulate: true, workspace: w.gemm)
            }
            t0 -= c
        }
    }
}
