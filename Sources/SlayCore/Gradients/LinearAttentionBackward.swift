#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The backward pass of linear attention (docs/math.md §5): from dL/dout, the gradients of q, k,
/// v, the GLA log decay, the SLA gate logits, the initial state and the map's parameters, for the
/// forms the forward runs — additive (with RetNet γ) and gated (GLA per-channel log decay) —
/// causal or bidirectional, normalised (add / clamp denominators, δ) or not, with grouped-query
/// heads and packed sequences, qk_l2norm (`RowNormalisation`) — and the delta rule, causal and
/// unnormalised, with its checkpointed token-level reverse pass (`DeltaRuleBackward`).
///
/// Memory: nothing of size T × m is kept. Each (sequence, key head) pair runs
/// - a forward pass over its chunks that rebuilds the prefix states S_t, z_t and emits the query
///   side: dφ(q_t) = S_t·dnum_t + z_t·dden_t (so dq needs no stored state);
/// - a reverse pass that recomputes the chunk features and accumulates Ŝ = ∂L/∂S_t backwards
///   (Ŝ_t = α_{t+1}∘Ŝ_{t+1} + φ(q_t) dnum_tᵀ), emitting dφ(k_t) = Ŝ_t v_t + ẑ_t and dv_t = Ŝ_tᵀ φ(k_t).
/// Every form runs in chunks whose products are GEMMs: the scalar-decay additive form (plain,
/// RetNet γ, per-head log decay) in BackwardPass+Chunked, GLA's per-channel decay in
/// BackwardPass+Gated, the bidirectional form in BackwardPass+Bidirectional. The only per-token values carried
/// between the passes are two floats per token and query head
/// (1/D_t and ∂L/∂den_t of the normalised output). Workspace per thread: O(G·c·(d + m + dv) + m·dv).
///
/// d log α needs S_t and Ŝ_t at once in the direct formula; it is computed instead from the
/// identity ∂L/∂b_t = φ(q_t)∘dφ(q_t) − φ(k_t)∘dφ(k_t) for the cumulative log decay b_t (the kernel
/// depends on b only through φ(q_t)e^{b_t} and φ(k_s)e^{−b_s}), plus S_T∘dS_T at the last token;
/// d log α_t is the suffix sum of ∂L/∂b over t' ≥ t.
///
/// Determinism: pairs write disjoint rows; GQA sums over the query heads of a group run inside one
/// pair in a fixed order; parameter gradients are accumulated per key head (in double) and summed
/// over heads in order. Results are bitwise identical for any n_threads.
public enum LinearAttentionBackward {
    public static func run(map: FeatureMap, q: TensorView, k: TensorView, v: TensorView,
                           options: LinearAttentionOptions, request: AttentionGradientRequest,
                           positions: HeapArray<Int>? = nil) throws {
        try options.validate()
        let dout = request.dout
        if q.rank == 4 && v.rank == 4 {
            let expected = [q.extents[0], q.extents[1], q.extents[2], v.extents[3]]
            guard dout.shape == expected else {
                throw SlayError.shape("dout has shape \(dout.shape), expected \(expected) [B, T, Hq, dv] like the forward's out")
            }
        }
        let shapes = try AttentionShapes(q: q, k: k, v: v, out: dout)
        try LinearAttention.checkMap(map, headDim: shapes.headDim, keyHeads: shapes.keyHeads)
        guard let differentiable = map as? FeatureMapGradient else {
            throw SlayError(.unsupported, "this feature map has no backward pass (slay_linear_attention_backward in slay.h lists the maps that have one)")
        }
        if request.wantsParameters, let reason = differentiable.parameterGradientUnavailable {
            throw SlayError(.unsupported, reason)
        }
        guard options.nth == 1 else {
            throw SlayError(.unsupported, "the backward pass has no partitioned form (ith/nth); use n_threads")
        }
        let spans: HeapArray<SequenceSpan>
        if let packed = request.spans {
            guard shapes.batch == 1 else { throw SlayError.shape("cu_seqlens needs B = 1 (packed sequences), got B = \(shapes.batch)") }
            spans = packed
        } else {
            spans = try SequenceSpan.padded(batch: shapes.batch, length: shapes.length)
        }
        if let positions {
            guard positions.count == spans.count else {
                throw SlayError.shape("positions has \(positions.count) entries for \(spans.count) sequences")
            }
            guard positions.allSatisfy({ $0 >= 0 }) else { throw SlayError.invalid("positions must be >= 0") }
        }
        guard options.causal || !options.decay.isActive else {
            throw SlayError.invalid("decay needs causal attention (set causal = 1)")
        }
        try options.decay.validate(heads: map.numHeads)
        let (b, t, hq, hk, m) = (shapes.batch, shapes.length, shapes.queryHeads, shapes.keyHeads, map.featureDim)
        let checked = try TokenTensors.check(options, map: map, q: q, k: k, queryHeads: hq,
                                             mode: options.causal ? .causal : .bidirectional)
        if options.checkFinite {
            for (view, name) in [(q, "q"), (k, "k"), (v, "v")] { try TokenTensors.checkFinite(view, name) }
        }
        var options = options
        options.logDecay = checked.logDecay
        let rescaled = RescaledExpForm.claims(map: map, options: options)
        if rescaled {
            try RescaledExpForm.check(options, mode: options.causal ? .causal : .bidirectional)
        }
        if options.update == .delta {
            try DeltaRuleForm.check(options, mode: options.causal ? .causal : .bidirectional)
            if options.logDecay != nil && !checked.perHead {
                throw SlayError(.unsupported, "the delta rule's backward takes log_decay per head, [B, T, Hk]")
            }
        }
        try request.validate(map: map, q: q, k: k, v: v, shapes: shapes, options: options, sequences: spans.count,
                             perHeadDecay: checked.perHead)

        // Automatic chunk: 64 rows; 8 under per-channel decay (as in the forward), whose intra-chunk terms
        // cost O(c²·m) per chunk; the delta rule's chunk has c² and c³ terms (its WY inverse): the
        // forward's 16 is fastest there too.
        let channelDecay = options.causal && options.logDecay != nil && !checked.perHead && options.update == .add
        let automatic = options.update == .delta ? DeltaRuleForm.preferredChunk : (channelDecay ? 8 : 64)
        let chunk = min(options.chunkSize > 0 ? options.chunkSize : automatic, max(shapes.length, 1))
        let parameterLayout = FeatureMapParameterLayout(map)
        let parameters = try parameterLayout.values(of: map)
        let scratchRows = max(map.scratchFloats(rows: chunk), differentiable.gradientScratchFloats(rows: chunk))
        let factors = BackwardPass.factorisation(map: differentiable, options: options)
        var layout = BackwardWorkspace.Layout(chunk: chunk, group: shapes.group, headDim: shapes.headDim, featureDim: m,
                                              valueDim: shapes.valueDim, mapScratch: scratchRows,
                                              keyScratch: map.scratchFloats(rows: chunk),
                                              factorPoly: factors?.poly ?? 0, factorPrf: factors?.prf ?? 0,
                                              channelDecay: channelDecay)
        if rescaled {
            layout.formScratch = RescaledExpBackward.floats(headDim: shapes.headDim, group: shapes.group, chunk: chunk)
        }
        if options.update == .delta {
            layout.formScratch = try DeltaRuleBackward.floats(chunk: chunk, length: shapes.length, featureDim: m,
                                                              valueDim: shapes.valueDim)
        }
        let workspaceFloats = try layout.totalFloats()
        // The delta rule keeps nothing per token (it is unnormalised and reads dout directly).
        let scalarsPerRow = rescaled ? RescaledExpBackward.scalarsPerRow : options.update == .delta ? 0 : 2
        let scalars = try ScratchBuffer(floats: try CheckedSize.multiply(b, t, hq, scalarsPerRow, what: "per-token denominators"))
        let wantsParameters = request.wantsParameters
        // Per head: the flat parameter layout, then the map's accumulation space (Nyström: ∂L/∂W).
        let headStride = max(parameterLayout.total + differentiable.parameterGradientExtraFloats, 1)
        let headGradients = wantsParameters
            ? try DoubleBuffer(count: try CheckedSize.multiply(hk, headStride, what: "parameter gradients"))
            : nil
        headGradients?.pointer.update(repeating: 0, count: hk * headStride)
        // Prepared now: it may allocate (and fail) only while the outputs are untouched.
        let finish = wantsParameters ? try differentiable.parameterGradientFinisher() : nil

        let pass = BackwardPass(map: differentiable, q: q, k: k, v: v, options: options, request: request,
                                spans: spans, origins: positions,
                                group: shapes.group, valueDim: shapes.valueDim, length: shapes.length,
                                queryHeads: hq, chunk: chunk, parameters: parameters.pointer,
                                parameterFloats: headStride, headGradients: headGradients?.pointer,
                                scalars: scalars.pointer, perHeadDecay: checked.perHead,
                                factorWidths: factors.map { (poly: $0.poly, prf: $0.prf) })
        // Units of work: (sequence, key head) pairs, or whole key heads when parameter gradients
        // are accumulated per head (one writer per head buffer, sequences in order).
        let units = wantsParameters ? hk : hk * spans.count
        let workers = max(1, min(options.nThreads, units))
        var buffers: [ScratchBuffer] = []
        for _ in 0..<workers { buffers.append(try ScratchBuffer(floats: workspaceFloats)) }
        let regions = buffers.map { $0.pointer }
        ParallelFor.run(workers: workers) { worker in
            let w = BackwardWorkspace(regions[worker], layout: layout)
            for unit in ParallelFor.share(of: units, worker: worker, workers: workers) {
                if wantsParameters {
                    for sequence in 0..<spans.count { pass.run(sequence: sequence, keyHead: unit, workspace: w) }
                } else {
                    pass.run(sequence: unit % spans.count, keyHead: unit / spans.count, workspace: w)
                }
            }
        }
        withExtendedLifetime((buffers, scalars, parameters)) {}

        if let gradient = request.queryGateLogits, let logits = options.queryGateLogits {
            GateGradients.softmaxBackward(logits: logits, gradient: gradient)
        }
        if let gradient = request.keyGateLogits, let logits = options.keyGateLogits {
            GateGradients.softmaxBackward(logits: logits, gradient: gradient)
        }
        if let headGradients, let target = request.parameters {
            let total = parameterLayout.total
            if let finish { for head in 0..<hk { finish(headGradients.pointer + head * headStride) } }
            for i in 0..<total {
                var sum = 0.0
                for head in 0..<hk { sum += headGradients.pointer[head * headStride + i] }
                target[i] = Float(sum)
            }
        }
        withExtendedLifetime(headGradients) {}
    }
}

/// A malloc'd array of doubles, so that running out of memory is a status.
final class DoubleBuffer {
    let pointer: UnsafeMutablePointer<Double>

    init(count: Int) throws {
        let bytes = try CheckedSize.multiply(max(count, 1), MemoryLayout<Double>.stride, what: "gradient buffer")
        let memory = try FallibleMemory.allocate(bytes: bytes, what: "gradients")
        pointer = memory.bindMemory(to: Double.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }
}

/// The SLA gates' backward: g = softmax_h(l) per token, so dl_h = g_h (dg_h − Σ_h' g_h' dg_h').
enum GateGradients {
    /// `gradient` [B, T, H] holds ∂L/∂g on entry and ∂L/∂l on return.
    static func softmaxBackward(logits: TensorView, gradient: TensorView) {
        let (b, t, h) = (logits.extents[0], logits.extents[1], logits.extents[2])
        for batch in 0..<b {
            for token in 0..<t {
                let row = logits.base + batch * logits.steps[0] + token * logits.steps[1]
                let target = gradient.base + batch * gradient.steps[0] + token * gradient.steps[1]
                var weighted = 0.0
                for head in 0..<h {
                    let g = Double(HeadGates.gate(row, stride: logits.steps[2], heads: h, head: head))
                    weighted += g * Double(target[head * gradient.steps[2]])
                }
                for head in 0..<h {
                    let g = Double(HeadGates.gate(row, stride: logits.steps[2], heads: h, head: head))
                    let slot = target + head * gradient.steps[2]
                    slot.pointee = Float(g * (Double(slot.pointee) - weighted))
                }
            }
        }
    }
}
