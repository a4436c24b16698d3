#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One validated backward call: the views, the per-pair work and the chunk loaders both passes
/// share. See `LinearAttentionBackward` for the algorithm and its memory.
struct BackwardPass: @unchecked Sendable {
    let map: FeatureMapGradient
    let q: TensorView
    let k: TensorView
    let v: TensorView
    let options: LinearAttentionOptions
    let request: AttentionGradientRequest
    let spans: HeapArray<SequenceSpan>
    /// Token position of each sequence's first row (maps that read positions).
    let origins: HeapArray<Int>?
    let group: Int
    let valueDim: Int
    let length: Int
    let queryHeads: Int
    let chunk: Int
    let parameters: UnsafePointer<Float>
    let parameterFloats: Int
    let headGradients: UnsafeMutablePointer<Double>?
    /// [B, T, Hq, 2]: 1/D and ∂L/∂den per query row, from the forward pass to the reverse pass.
    let scalars: UnsafeMutablePointer<Float>
    /// log_decay came per head ([B, T, Hk], broadcast over the channels in options.logDecay): its
    /// gradient is the sum over the channels, written to the [B, T, Hk] request.logDecay.
    let perHeadDecay: Bool
    /// `factorisation(map:options:)`, looked up once per call: the factor widths when the chunked
    /// passes take a factorised map's intra-chunk terms through its factors.
    let factorWidths: (poly: Int, prf: Int)?

    var featureDim: Int { map.featureDim }
    var headDim: Int { map.headDim }
    var delta: Float { Float(options.delta) }

    func parameterGradient(keyHead: Int) -> UnsafeMutablePointer<Double>? {
        headGradients.map { $0 + keyHead * parameterFloats }
    }

    func scalarSlot(_ span: SequenceSpan, token: Int, queryHead: Int) -> UnsafeMutablePointer<Float> {
        scalars + (((span.batch * length) + span.start + token) * queryHeads + queryHead) * 2
    }

    func run(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let span = spans[sequence]
        if options.update == .delta { return deltaRule(sequence: sequence, keyHead: keyHead, workspace: w) }
        if RescaledExpForm.claims(map: map, options: options) { return rescaledExp(sequence: sequence, keyHead: keyHead, workspace: w) }
        loadInitialState(sequence: sequence, keyHead: keyHead, workspace: w)
        if options.causal && (options.logDecay == nil || perHeadDecay) {
            chunkedForward(span: span, origin: origins?[sequence] ?? 0, keyHead: keyHead, workspace: w)
            seedReverse(sequence: sequence, keyHead: keyHead, workspace: w)
            chunkedReverse(span: span, origin: origins?[sequence] ?? 0, keyHead: keyHead, workspace: w)
        } else if options.causal {
            gatedForward(span: span, origin: origins?[sequence] ?? 0, keyHead: keyHead, workspace: w)
            seedReverse(sequence: sequence, keyHead: keyHead, workspace: w)
            gatedReverse(span: span, origin: origins?[sequence] ?? 0, keyHead: keyHead, workspace: w)
        } else {
            bidirectional(span: span, origin: origins?[sequence] ?? 0, sequence: sequence, keyHead: keyHead, workspace: w)
        }
        storeInitialStateGradient(sequence: sequence, keyHead: keyHead, workspace: w)
    }

    // MARK: states

    /// S ← S0, z ← z0 (zeros when the call has no initial state).
    func loadInitialState(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (m, dv) = (featureDim, valueDim)
        if let s0 = request.initialState {
            for c in 0..<m {
                let row = s0.base + sequence * s0.steps[0] + keyHead * s0.steps[1] + c * s0.steps[2]
                for j in 0..<dv { w.state[c * dv + j] = row[j * s0.steps[3]] }
            }
        } else {
            w.state.update(repeating: 0, count: m * dv)
        }
        if let z0 = request.initialNormaliser {
            let row = z0.base + sequence * z0.steps[0] + keyHead * z0.steps[1]
            for c in 0..<m { w.normaliser[c] = row[c * z0.steps[2]] }
        } else {
            w.normaliser.update(repeating: 0, count: m)
        }
    }

    /// Ŝ ← dS_T, ẑ ← dz_T (zeros when not given); with d log α wanted, the suffix sum starts at
    /// the final state's own term rowsum(S_T ∘ dS_T) + z_T ∘ dz_T.
    func seedReverse(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (m, dv) = (featureDim, valueDim)
        if let ds = request.finalStateGradient {
            for c in 0..<m {
                let row = ds.base + sequence * ds.steps[0] + keyHead * ds.steps[1] + c * ds.steps[2]
                for j in 0..<dv { w.stateGradient[c * dv + j] = row[j * ds.steps[3]] }
            }
        } else {
            w.stateGradient.update(repeating: 0, count: m * dv)
        }
        if let dz = request.finalNormaliserGradient {
            let row = dz.base + sequence * dz.steps[0] + keyHead * dz.steps[1]
            for c in 0..<m { w.normaliserGradient[c] = row[c * dz.steps[2]] }
        } else {
            w.normaliserGradient.update(repeating: 0, count: m)
        }
        for c in 0..<m {
            var term: Float = 0
            if request.logDecay != nil {
                let s = w.state + c * dv
                let g = w.stateGradient + c * dv
                for j in 0..<dv { term += s[j] * g[j] }
                term += w.normaliser[c] * w.normaliserGradient[c]
            }
            w.decaySuffix[c] = term
        }
        if perHeadDecay {
            var total: Float = 0
            for c in 0..<m { total += w.decaySuffix[c] }
            w.decaySuffix[0] = total
        }
    }

    func storeInitialStateGradient(sequence: Int, keyHead: Int, workspace w: BackwardWorkspace) {
        let (m, dv) = (featureDim, valueDim)
        if let ds = request.initialStateGradient {
            for c in 0..<m {
                let row = ds.base + sequence * ds.steps[0] + keyHead * ds.steps[1] + c * ds.steps[2]
                for j in 0..<dv { row[j * ds.steps[3]] = w.stateGradient[c * dv + j] }
            }
        }
        if let dz = request.initialNormaliserGradient {
            let row = dz.base + sequence * dz.steps[0] + keyHead * dz.steps[1]
            for c in 0..<m { row[c * dz.steps[2]] = w.normaliserGradient[c] }
        }
    }

    /// d log α rows of a chunk to the request: per channel [rows, m], or per head (the sums over
    /// the channels, which `perHeadDecay` callers left in the first `rows` entries).
    func storeDecayGradient(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, from block: UnsafePointer<Float>) {
        guard let target = request.logDecay else { return }
        if perHeadDecay {
            for i in 0..<rows {
                (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                    + keyHead * target.steps[2]).pointee = block[i]
            }
        } else {
            target.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: block)
        }
    }

    func loadDecayGradient(span: SequenceSpan, keyHead: Int, t0: Int, rows: Int, into block: UnsafeMutablePointer<Float>) {
        guard let target = request.logDecay else { return }
        if perHeadDecay {
            for i in 0..<rows {
                block[i] = (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                    + keyHead * target.steps[2]).pointee
            }
        } else {
            target.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: block)
        }
    }

    // MARK: chunk loaders

    /// Key rows, values, raw and gated key features of rows t0 ..< t0 + rows. The features' scratch
    /// is w.keyScratch, kept through the chunk (a factorised map's factors). With `padded`, that
    /// map's features land `transposedStride` floats apart (BackwardPass+Chunked).
    func loadKeys(span: SequenceSpan, origin: Int, keyHead: Int, t0: Int, rows: Int,
                  padded: FactorisedFeatureGradient? = nil, workspace w: BackwardWorkspace) {
        let m = featureDim
        k.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.keyInput)
        v.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.values)
        if let padded {
            padded.features(head: keyHead, input: w.keyInput, rows: rows, output: w.keyFeatures,
                            rowStride: BackwardWorkspace.transposedStride(featureDim: m), scratch: w.keyScratch)
            return
        }
        // Straight into the block the passes read, unless the raw features are needed apart.
        let direct = options.keyGateLogits == nil && !options.qkL2Norm
        map.features(role: .key, head: keyHead, input: w.keyInput, rows: rows, firstPosition: origin + t0,
                     output: direct ? w.keyFeatures : w.keyRaw, scratch: w.keyScratch)
        if options.qkL2Norm { RowNormalisation.forward(w.keyRaw, rows: rows, width: m, inverseNorms: w.keyInverseNorms) }
        if !direct { w.keyFeatures.update(from: w.keyRaw, count: rows * m) }
        if let gates = options.keyGateLogits {
            HeadGates.fill(gates, batch: span.batch, t0: span.start + t0, rows: rows, head: keyHead, into: w.keyGates)
            HeadGates.scaleRows(w.keyFeatures, rows: rows, width: m, by: w.keyGates)
        }
    }

    /// Query rows, raw and gated features and dout rows of query head g of the group. The features'
    /// scratch is head g's part of w.queryScratch, kept through the chunk (a factorised map's factors).
    /// With `padded`, as in `loadKeys`.
    func loadQueries(span: SequenceSpan, origin: Int, keyHead: Int, g: Int, t0: Int, rows: Int,
                     padded: FactorisedFeatureGradient? = nil, workspace w: BackwardWorkspace) {
        let (c, d, m, dv) = (chunk, headDim, featureDim, valueDim)
        let queryHead = keyHead * group + g
        let input = w.queryInput + g * c * d
        q.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows, into: input)
        request.dout.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows,
                                into: w.outputGradient + g * c * dv)
        if let padded {
            let ts = BackwardWorkspace.transposedStride(featureDim: m)
            padded.features(head: keyHead, input: input, rows: rows, output: w.queryFeatures + g * c * ts, rowStride: ts,
                            scratch: w.queryScratch + g * w.queryScratchStride)
            return
        }
        let direct = options.queryGateLogits == nil && !options.qkL2Norm
        map.features(role: .query, head: keyHead, input: input, rows: rows, firstPosition: origin + t0,
                     output: (direct ? w.queryFeatures : w.queryRaw) + g * c * m,
                     scratch: w.queryScratch + g * w.queryScratchStride)
        if options.qkL2Norm {
            RowNormalisation.forward(w.queryRaw + g * c * m, rows: rows, width: m, inverseNorms: w.queryInverseNorms + g * c)
        }
        let gated = w.queryFeatures + g * c * m
        if !direct { gated.update(from: w.queryRaw + g * c * m, count: rows * m) }
        if let gates = options.queryGateLogits {
            HeadGates.fill(gates, batch: span.batch, t0: span.start + t0, rows: rows, head: queryHead, into: w.queryGates + g * c)
            HeadGates.scaleRows(gated, rows: rows, width: m, by: w.queryGates + g * c)
        }
    }

    /// Query side of a chunk once dφ(q) (of the gated features) is complete: the gate gradient
    /// φ_raw·dφ, then dq through the map.
    /// With `factorised`, the intra-chunk terms wait in w.queryPolyGradient / w.queryPrfGradient.
    func finishQueries(span: SequenceSpan, origin: Int, keyHead: Int, t0: Int, rows: Int,
                       factorised: FactorisedFeatureGradient? = nil, workspace w: BackwardWorkspace) {
        let (c, d, m) = (chunk, headDim, featureDim)
        let wantsInput = request.dq != nil || headGradients != nil
        for g in 0..<group {
            let queryHead = keyHead * group + g
            let gradient = w.queryFeatureGradient + g * c * m
            let raw = w.queryRaw + g * c * m
            if options.queryGateLogits != nil {
                let gates = w.queryGates + g * c
                let target = request.queryGateLogits
                for i in 0..<rows {
                    var dot: Float = 0
                    for f in 0..<m { dot += raw[i * m + f] * gradient[i * m + f] }
                    if let target {
                        (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                            + queryHead * target.steps[2]).pointee = dot
                    }
                    let gate = gates[i]
                    for f in 0..<m { gradient[i * m + f] *= gate }
                }
            }
            guard wantsInput else { continue }
            if options.qkL2Norm {
                RowNormalisation.backward(normalised: raw, inverseNorms: w.queryInverseNorms + g * c, gradient: gradient,
                                          rows: rows, width: m)
            }
            if let factorised, let widths = factorWidths {
                factorised.factorisedGradient(head: keyHead, input: w.queryInput + g * c * d, rows: rows,
                                              outputGradient: gradient, extraPoly: w.queryPolyGradient + g * c * widths.poly,
                                              extraPrf: w.queryPrfGradient + g * c * widths.prf,
                                              inputGradient: w.queryInputGradient,
                                              parameterGradient: parameterGradient(keyHead: keyHead), scratch: w.mapScratch,
                                              features: w.queryScratch + g * w.queryScratchStride)
                request.dq?.scatterRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows,
                                        from: w.queryInputGradient)
                continue
            }
            map.featureGradient(role: .query, head: keyHead, input: w.queryInput + g * c * d, rows: rows,
                                firstPosition: origin + t0, parameters: parameters, outputGradient: gradient,
                                inputGradient: w.queryInputGradient, parameterGradient: parameterGradient(keyHead: keyHead),
                                scratch: w.mapScratch)
            request.dq?.scatterRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows, from: w.queryInputGradient)
        }
    }

    /// Key side of a chunk once dφ(k) and dv are complete.
    /// With `factorised`, the intra-chunk terms wait in w.keyPolyGradient / w.keyPrfGradient; with
    /// `columns` too, dφ(k) is transposed (w.keyColumnGradient, BackwardPass+Chunked) and so are the key
    /// factors (w.keyTransposed after Vᵀ, from transposeKeys).
    func finishKeys(span: SequenceSpan, origin: Int, keyHead: Int, t0: Int, rows: Int,
                    factorised: FactorisedFeatureGradient? = nil, columns: Bool = false, workspace w: BackwardWorkspace) {
        let m = featureDim
        request.dv?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.valueGradient)
        if options.keyGateLogits != nil {
            let target = request.keyGateLogits
            for i in 0..<rows {
                var dot: Float = 0
                for f in 0..<m { dot += w.keyRaw[i * m + f] * w.keyFeatureGradient[i * m + f] }
                if let target {
                    (target.base + span.batch * target.steps[0] + (span.start + t0 + i) * target.steps[1]
                        + keyHead * target.steps[2]).pointee = dot
                }
                let gate = w.keyGates[i]
                for f in 0..<m { w.keyFeatureGradient[i * m + f] *= gate }
            }
        }
        guard request.dk != nil || headGradients != nil else { return }
        if options.qkL2Norm {
            RowNormalisation.backward(normalised: w.keyRaw, inverseNorms: w.keyInverseNorms, gradient: w.keyFeatureGradient,
                                      rows: rows, width: m)
        }
        if let factorised, columns, let widths = factorWidths {
            let factors = w.keyTransposed + chunk * valueDim
            factorised.factorisedGradientColumns(head: keyHead, input: w.keyInput, rows: rows, outputGradient: w.keyColumnGradient,
                                                 ld: BackwardWorkspace.columnStride(rows: rows), polyColumns: factors, prfColumns: factors + chunk * widths.poly,
                                                 factorStride: chunk, extraPoly: w.keyPolyGradient, extraPrf: w.keyPrfGradient,
                                                 inputGradient: w.keyInputGradient,
                                                 parameterGradient: parameterGradient(keyHead: keyHead), scratch: w.mapScratch,
                                                 features: w.keyScratch)
            request.dk?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.keyInputGradient)
            return
        }
        if let factorised {
            factorised.factorisedGradient(head: keyHead, input: w.keyInput, rows: rows, outputGradient: w.keyFeatureGradient,
                                          extraPoly: w.keyPolyGradient, extraPrf: w.keyPrfGradient,
                                          inputGradient: w.keyInputGradient,
                                          parameterGradient: parameterGradient(keyHead: keyHead), scratch: w.mapScratch,
                                          features: w.keyScratch)
            request.dk?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.keyInputGradient)
            return
        }
        map.featureGradient(role: .key, head: keyHead, input: w.keyInput, rows: rows, firstPosition: origin + t0,
                            parameters: parameters, outputGradient: w.keyFeatureGradient, inputGradient: w.keyInputGradient,
                            parameterGradient: parameterGradient(keyHead: keyHead), scratch: w.mapScratch)
        request.dk?.scatterRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, from: w.keyInputGradient)
    }
}
