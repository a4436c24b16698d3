/// What a pass over a sequence does.
public enum AttentionMode: Sendable {
    /// causal outputs; keys enter the state as they are passed
    case causal
    /// every query sees every key of its sequence
    case bidirectional
    /// keys and values enter the state; no queries, no outputs
    case absorb
    /// queries read the state; the state is not changed
    case query
}

/// Linear attention y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ) (docs/math.md §5) and its recurrent
/// relatives, through one driver (AttentionCall) and the recurrence forms under it.
public enum LinearAttention {
    /// Whole-sequence attention: q [B, T, Hq, d], k [B, T, Hk, d], v [B, T, Hk, dv] → out [B, T, Hq, dv].
    public static func run(map: FeatureMap, q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           options: LinearAttentionOptions) throws {
        try options.validate()
        let shapes = try AttentionShapes(q: q, k: k, v: v, out: out)
        try checkMap(map, headDim: shapes.headDim, keyHeads: shapes.keyHeads)
        let spans = try SequenceSpan.padded(batch: shapes.batch, length: shapes.length)
        try AttentionCall(map: map, q: q, k: k, v: v, out: out, queryHeads: shapes.queryHeads, valueDim: shapes.valueDim,
                          spans: spans, state: nil, slots: SlotList(pointer: nil, count: 0),
                          mode: options.causal ? .causal : .bidirectional, options: options).execute()
    }

    /// The map's head_dim and key-head count against the call's.
    static func checkMap(_ map: FeatureMap, headDim: Int, keyHeads: Int) throws {
        guard headDim == map.headDim else {
            throw SlayError.shape("q and k have head_dim \(headDim), the feature map expects \(map.headDim)")
        }
        guard keyHeads == map.numHeads else {
            throw SlayError.shape("k has \(keyHeads) heads, the feature map has \(map.numHeads)")
        }
    }
}

/// A validated call of the one attention driver: views, sequences, optional recurrent-state
/// slots, the mode, the options (whole) and the form that evaluates it.
///
/// Work is split over (sequence, key head) pairs; each pair walks its sequence in chunks of c
/// rows, so memory is O(c·m + m·dv) per thread whatever T is. The query heads of a grouped-query
/// group share the key side of a chunk and the state. Pairs are independent, so results do not
/// depend on the thread count.
public struct AttentionCall: @unchecked Sendable {
    let map: FeatureMap
    let q, k, v, out: TensorView?
    let queryHeads, valueDim: Int
    let spans: HeapArray<SequenceSpan>
    let state: RecurrentState?
    let slots: SlotList
    let mode: AttentionMode
    /// The caller's options, with the token tensors this mode does not read cleared and log_decay
    /// in its canonical [B, T, Hk, m] view (a per-head tensor broadcast over m).
    let options: LinearAttentionOptions
    let form: RecurrenceForm.Type
    /// form.keepsMaxima(map): outputs in frames, no column blocks.
    let framed: Bool
    let layout: WorkspaceLayout
    /// Token position of each span's first row, for maps that need positions: the slot's
    /// position before the call (read here, before any share updates it); nil when all are 0.
    let origins: HeapArray<Int>?

    var group: Int { queryHeads / map.numHeads }

    /// Runs the tasks of partition `ith` of `nth` on up to `nThreads` threads.
    ///
    /// With fewer (sequence, key head) pairs than threads, forms that allow it split each pair
    /// into blocks of value columns (multiples of 16): a block carries its columns of S through
    /// the whole sequence and recomputes the (cheap) key side itself. Every output element is
    /// computed by the same operations in the same order whatever the split, so results are
    /// bitwise identical for any thread count.
    public func execute() throws {
        let mine = ParallelFor.share(of: spans.count * map.numHeads, worker: options.ith, workers: options.nth)
        var blocks = 1
        if !framed && mine.count < options.nThreads && valueDim % 16 == 0 {
            blocks = min(valueDim / 16, (options.nThreads + max(mine.count, 1) - 1) / max(mine.count, 1))
        }
        let work = mine.count * blocks
        let workers = max(1, min(options.nThreads, work))
        // Allocate every worker's workspace up front: a failure is a status, never a partial write.
        let buffers = try (0..<workers).map { _ in try ScratchBuffer(floats: layout.totalFloats) }
        // Every block starts from the normaliser as it was before the call (block 0 writes the
        // final one back), so snapshot the slots' z first.
        let m = map.featureDim
        let initialNormalisers = try ScratchBuffer(floats: try CheckedSize.multiply(max(mine.count, 1), m, what: "normalisers"))
        for (index, task) in mine.enumerated() {
            let target = initialNormalisers.pointer + index * m
            target.update(repeating: 0, count: m)
            if let state {
                DecodeKernels.load(state.storageType, state.rawNormaliser(slot: slots[task / map.numHeads], head: task % map.numHeads),
                                   stride: 1, count: m, into: target)
            }
        }
        ParallelFor.run(workers: workers) { worker in
            let workspace = Workspace(layout: layout, buffer: buffers[worker].pointer)
            for item in ParallelFor.share(of: work, worker: worker, workers: workers) {
                let (index, block) = (item / blocks, item % blocks)
                let panels = ParallelFor.share(of: valueDim / 16, worker: block, workers: blocks)
                let columns = blocks == 1 ? 0..<valueDim : (panels.lowerBound * 16)..<(panels.upperBound * 16)
                runTask(mine.lowerBound + index, columns: columns, writesNormaliser: block == 0,
                        initialNormaliser: initialNormalisers.pointer + index * m, workspace: workspace)
            }
        }
        withExtendedLifetime((buffers, initialNormalisers)) {}
    }

    func runTask(_ index: Int, columns: Range<Int>, writesNormaliser: Bool, initialNormaliser: UnsafePointer<Float>,
                 workspace w: Workspace) {
        let (sequence, keyHead) = (index / map.numHeads, index % map.numHeads)
        let (m, dv, slot) = (map.featureDim, valueDim, slots[sequence])
        // A half-precision state: the task's columns of S in fp32 workspace, stored back (rounded) at the end.
        let half = state.map { $0.storageType == .f32 ? nil : $0.storageType } ?? nil
        let matrix = half == nil ? state?.matrix(slot: slot, head: keyHead) ?? w[.state] : w[.state]
        let maxima = state == nil ? (framed ? w[.maxima] : nil) : state?.maxima(slot: slot, head: keyHead)
        if let half, let stored = state?.rawMatrix(slot: slot, head: keyHead) {
            for f in 0..<m {
                DecodeKernels.load(half, stored + (f * dv + columns.lowerBound) * half.bytes, stride: 1, count: columns.count,
                                   into: matrix + f * dv + columns.lowerBound)
            }
        } else if state == nil {
            for f in 0..<m { (matrix + f * dv + columns.lowerBound).update(repeating: 0, count: columns.count) }
            maxima?.update(repeating: AttentionForms.emptyMaximum, count: m)
        }
        // z is private to the task (every column block needs all of it).
        w[.normaliser].update(from: initialNormaliser, count: m)
        let task = FormTask(call: self, span: spans[sequence], origin: origins?[sequence] ?? 0, keyHead: keyHead,
                            columns: columns, state: matrix, normaliser: w[.normaliser], maxima: maxima, w: w)
        func chunks(_ body: (inout ChunkRows) -> Void) {
            for t0 in stride(from: 0, to: task.span.length, by: w.layout.chunk) {
                let rows = min(w.layout.chunk, task.span.length - t0)
                var chunk = ChunkRows(t0: t0, rows: rows, finiteRows: rows)
                body(&chunk)
            }
        }
        func query(_ g: Int, _ chunk: ChunkRows, causal: Bool) {
            task.loadRows(role: .query, head: keyHead * group + g, chunk)
            form.queryChunk(task, chunk, causal: causal)
            store(task, queryHead: keyHead * group + g, chunk)
        }
        if mode != .query {
            chunks { chunk in
                task.loadKeys(&chunk)
                form.prepareKeys(task, &chunk)
                for g in 0..<group where mode == .causal { query(g, chunk, causal: true) }
                form.absorbChunk(task, chunk)
            }
        }
        if mode == .bidirectional || mode == .query {
            for g in 0..<group { chunks { query(g, $0, causal: false) } }
        }
        if let state, mode != .query {
            if let half {
                let stored = state.rawMatrix(slot: slot, head: keyHead)
                for f in 0..<m {
                    DecodeKernels.store(half, matrix + f * dv + columns.lowerBound, count: columns.count,
                                        into: stored + (f * dv + columns.lowerBound) * half.bytes, stride: 1)
                }
            }
            if writesNormaliser {
                DecodeKernels.store(state.storageType, w[.normaliser], count: m, into: state.rawNormaliser(slot: slot, head: keyHead),
                                    stride: 1)
            }
        }
    }

    /// The chunk's outputs of `queryHead` into `out`, scaled by options.outputScale.
    func store(_ task: FormTask, queryHead: Int, _ chunk: ChunkRows) {
        let (w, width, out, framed) = (task.w, task.columns.count, self.out!, framed)
        let base = task.span.batch * out.steps[0] + queryHead * out.steps[2] + task.columns.lowerBound * out.steps[3]
        for i in 0..<chunk.rows {
            let scale = options.outputScale(denominator: w[.denominators][i], reference: framed ? w[.references][i] : nil)
            // Rounded to out's element type in the store (fp16 / bf16 outputs).
            out.storeScaled(w[.outputs] + i * width, scale: scale, count: width,
                            at: base + (task.span.start + chunk.t0 + i) * out.steps[1], stride: out.steps[3])
        }
    }
}

extension AttentionCall {
    /// Checks the call (token tensors, the form's refusals) and sizes its workspace.
    init(map: FeatureMap, q: TensorView?, k: TensorView?, v: TensorView?, out: TensorView?, queryHeads: Int,
         valueDim: Int, spans: HeapArray<SequenceSpan>, state: RecurrentState?, slots: SlotList, mode: AttentionMode,
         options given: LinearAttentionOptions) throws {
        var options = given
        if mode == .query {
            // Queries alone read none of the key side's tensors.
            (options.logDecay, options.keyGateLogits, options.beta) = (nil, nil, nil)
        }
        options.logDecay = try TokenTensors.check(options, map: map, q: q, k: k, queryHeads: queryHeads, mode: mode).logDecay
        let form = try AttentionForms.select(map: map, options: options, mode: mode, q: q, k: k, v: v)
        // options.chunkSize (0: the form's preferred chunk), at most the longest sequence.
        let longest = spans.reduce(1) { max($0, $1.length) }
        let chunk = min(options.chunkSize > 0 ? options.chunkSize : form.preferredChunk, longest)
        var layout = WorkspaceLayout(chunk: chunk)
        try layout.reserveRows(queries: chunk, keys: chunk, map: map, valueDim: valueDim)
        try layout.reserve(.scores, chunk, chunk)
        try layout.reserve(.state, map.featureDim, valueDim)
        try layout.reserve(.normaliser, map.featureDim)
        try layout.reserve(.featureScratch, map.scratchFloats(rows: chunk))
        try layout.reserve(.keyScratch, map.scratchFloats(rows: chunk))
        try layout.reserve(.scoreScratch, map.scoreScratchFloats(rows: chunk))
        try layout.reserve(.gemm, Gemm.workspaceFloats)
        try layout.reserve(.maskedRows, chunk, max(map.featureDim, valueDim))
        if options.queryGateLogits != nil { try layout.reserve(.queryGates, chunk) }
        if options.keyGateLogits != nil { try layout.reserve(.keyGates, chunk) }
        try form.reserve(&layout, map: map, valueDim: valueDim, step: false)
        var origins: HeapArray<Int>? = nil
        if map.needsPositions, let state {
            origins = try HeapArray<Int>(count: spans.count, what: "the positions of \(spans.count) sequences")
            for i in 0..<spans.count { origins![i] = Int(state.positions[slots[i]]) }
        }
        self.init(map: map, q: q, k: k, v: v, out: out, queryHeads: queryHeads, valueDim: valueDim, spans: spans,
                  state: state, slots: slots, mode: mode, options: options, form: form, framed: form.keepsMaxima(map),
                  layout: layout, origins: origins)
    }
}

extension LinearAttentionOptions {
    /// What an output row num (with denominator den) is multiplied by: 1 / (den + δ) (clamp:
    /// 1 / max(den, δ)), or 1 when not normalising. Forms with frames keep the row scaled by
    /// e^{−r} (`reference` r): δ moves into that frame (δ·e^{−r}) and unnormalised rows are scaled
    /// back by e^{r}, both in double (a frame beyond fp32 range rounds to 0 or inf, as the exact
    /// result would).
    @inline(__always)
    func outputScale(denominator den: Float, reference: Float?) -> Float {
        let delta = Float(self.delta)
        guard let reference else { return normalize ? denominator.inverse(den, delta: delta) : 1 }
        let r = Double(reference)
        return normalize ? denominator.inverse(den, delta: delta == 0 ? 0 : Float(Double(delta) * exp(-r))) : Float(exp(r))
    }
}

/// One (sequence, key head) task as a form sees it: where its rows are, its state and its
/// worker's workspace. `columns` is the block of value columns this task carries.
struct FormTask {
    let call: AttentionCall
    let span: SequenceSpan
    let origin, keyHead: Int
    let columns: Range<Int>
    /// S [m, dv] and z [m] of the slot (or the worker's private ones).
    let state, normaliser: UnsafeMutablePointer<Float>
    /// μ [m] for forms that keep maxima, else nil.
    let maxima: UnsafeMutablePointer<Float>?
    let w: Workspace

    var map: FeatureMap { call.map }
    var options: LinearAttentionOptions { call.options }
}

/// Rows t0 ..< t0 + rows of a task's sequence. `finiteRows`: how many leading rows have finite
/// values (and, for forms that multiply by them, key features), set by loadKeys, so that products
/// with masked coefficients keep the rows after a non-finite one away from earlier outputs
/// (0 · NaN would otherwise reach them).
struct ChunkRows {
    let t0, rows: Int
    var finiteRows: Int
}
