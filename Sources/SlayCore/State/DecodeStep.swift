/// Slot indices of a call as the caller passed them (int32), or 0..<count when absent.
/// Read in place, so a decode step does not copy them.
public struct SlotList: @unchecked Sendable {
    public let pointer: UnsafePointer<Int32>?
    public let count: Int

    public init(pointer: UnsafePointer<Int32>?, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    @inline(__always)
    public subscript(index: Int) -> Int { pointer.map { Int($0[index]) } ?? index }
}

/// Scratch of one decode thread, owned by the state and grown only when a call needs a larger
/// grouped-query group than any before: the steady-state step allocates nothing. Its layout
/// holds the blocks of every registered form, so any form can step with it.
final class DecodeWorkspace: @unchecked Sendable {
    private(set) var buffer: ScratchBuffer?
    /// layout.chunk: the largest group it holds.
    private(set) var layout = WorkspaceLayout(chunk: 0)
    /// One bit per slot of the state, all clear between calls: the slot distinctness check of a
    /// step marks its slots here, so it needs no allocation for any batch size.
    let slotMarks: HeapArray<UInt64>

    init(sequences: Int) throws {
        slotMarks = try HeapArray<UInt64>(count: (sequences + 63) / 64, what: "the slot marks of \(sequences) slots")
    }

    func ensure(group: Int, map: FeatureMap, valueDim: Int) throws {
        if buffer != nil && group <= layout.chunk { return }
        var layout = WorkspaceLayout(chunk: group)
        try layout.reserveRows(queries: group, keys: 1, map: map, valueDim: valueDim)
        try layout.reserve(.references, group)
        // group + 1 rows: a map whose roles share features maps the key with the queries.
        try layout.reserve(.featureScratch, map.scratchFloats(rows: group + 1))
        for form in AttentionForms.registered { try form.reserve(&layout, map: map, valueDim: valueDim, step: true) }
        buffer = try ScratchBuffer(floats: layout.totalFloats)
        self.layout = layout
    }
}

/// One decode token of one (sequence, key head) pair as a form sees it: the token's views, the
/// slot's state and the decode thread's workspace (w[.queryRows] [group, d], w[.keyRows] [d],
/// w[.valueRows] [dv], w[.phiQ] [group, m], w[.phiK] [m], w[.outputs] [group, dv], w[.denominators] and
/// w[.references] [group]). The token tensors of `options` are read in place: log decay [N, Hk, m]
/// (a per-head [N, Hk] broadcast over m), gate logits [N, Hq] / [N, Hk] and β [N, Hk].
struct StepTask {
    let state: RecurrentState
    let q, k, v, out: TensorView
    let options: LinearAttentionOptions
    let sequence, head, group, slot: Int
    let w: Workspace
    /// The form keeps its outputs in frames and forms no features (exactly when the state keeps μ).
    let framed: Bool

    var map: FeatureMap { state.map }
    var valueDim: Int { state.valueDim }
    /// S [m, dv] and z [m] of the slot and head, in the state's storage type.
    var matrix: UnsafeMutableRawPointer { state.rawMatrix(slot: slot, head: head) }
    var normaliser: UnsafeMutableRawPointer { state.rawNormaliser(slot: slot, head: head) }
    var storage: ElementType { state.storageType }
    var maxima: UnsafeMutablePointer<Float>? { state.maxima(slot: slot, head: head) }

    /// The softmax gate of `head` from the token's [N, H] logits; 1 without them.
    @inline(__always)
    func gate(_ logits: TensorView?, head: Int) -> Float {
        guard let logits else { return 1 }
        return HeadGates.gate(logits, row: sequence * logits.steps[0], stride: logits.steps[1], heads: logits.extents[1],
                              head: head)
    }

    /// Entry `channel` of the token's key-head row of β [N, Hk] or log α [N, Hk, m], any element type.
    @inline(__always)
    func token(_ view: TensorView, channel: Int = 0) -> Float {
        view.load(sequence * view.steps[0] + head * view.steps[1] + channel * view.steps[2])
    }

    /// The state's decay of this token: e^{g + log γ} with a per-head log decay, else γ.
    var scalarDecay: Float {
        guard let g = options.logDecay else { return options.decay[head] }
        return ScalarDecay.weight(token(g) + options.decay.logarithm(head: head))
    }

    /// The token through `form`: its rows and features loaded, the form's step, its outputs stored
    /// (a method, so that the form borrows this task rather than a copy of it).
    func run(_ form: RecurrenceForm.Type) {
        load()
        form.step(self)
        store()
    }

    /// The token's key and value rows and the rows of the `group` query heads that read this key
    /// head, gathered contiguously (half-precision rows widened to fp32), outputs and denominators
    /// zeroed; then, unless framed, φ(k) and φ(q) at the slot's position (L2-normalised with
    /// qk_l2norm, gated).
    func load() {
        func gather(_ view: TensorView, head: Int, into target: UnsafeMutablePointer<Float>) {
            view.loadRow(at: sequence * view.steps[0] + head * view.steps[1], stride: view.steps[2], count: view.extents[2],
                         into: target)
        }
        let d = q.extents[2]
        gather(k, head: head, into: w[.keyRows])
        gather(v, head: head, into: w[.valueRows])
        for g in 0..<group { gather(q, head: head * group + g, into: w[.queryRows] + g * d) }
        w[.outputs].update(repeating: 0, count: group * valueDim)
        w[.denominators].update(repeating: 0, count: group)
        guard !framed else { return }
        let m = map.featureDim
        // The token's position is the slot's count before this step (incremented after all tasks).
        let position = Int(state.positions[slot])
        if map.rolesShareFeatures && !map.needsPositions && w[.keyRows] == w[.queryRows] + group * d
            && w[.phiK] == w[.phiQ] + group * m {
            // The query rows and the key row are consecutive in the workspace (and so are their
            // features): one call maps them all, which halves the per-call cost of a step.
            map.features(role: .query, head: head, input: w[.queryRows], rows: group + 1, output: w[.phiQ],
                         scratch: w[.featureScratch])
        } else {
            map.features(role: .key, head: head, input: w[.keyRows], rows: 1, firstPosition: position, output: w[.phiK],
                         scratch: w[.featureScratch])
            // Every query row of the group is the same token: map them one at a time at that position
            // when the map needs positions, in one block otherwise.
            let block = map.needsPositions ? 1 : group
            for g in stride(from: 0, to: group, by: block) {
                map.features(role: .query, head: head, input: w[.queryRows] + g * d, rows: block,
                             firstPosition: position, output: w[.phiQ] + g * m, scratch: w[.featureScratch])
            }
        }
        if options.qkL2Norm {
            FormTask.normaliseRows(w[.phiK], rows: 1, width: m)
            FormTask.normaliseRows(w[.phiQ], rows: group, width: m)
        }
        func scale(_ row: UnsafeMutablePointer<Float>, by factor: Float) { for f in 0..<m { row[f] *= factor } }
        if let gates = options.keyGateLogits { scale(w[.phiK], by: gate(gates, head: head)) }
        if let gates = options.queryGateLogits {
            for g in 0..<group { scale(w[.phiQ] + g * m, by: gate(gates, head: head * group + g)) }
        }
    }

    /// One pass over S of the additive kernels (DecodeKernels): z and S rows f ← scale_f·row +
    /// keyScale_f·(1, v), read out by every query head of the group. Stride 0: one scale for all rows.
    func additive(rows: Int, stateScales: UnsafePointer<Float>?, stride: Int, keyScales: UnsafePointer<Float>) {
        DecodeKernels.normaliser(normaliser, storage: storage, rows: rows, stateScales: stateScales, stateScaleStride: stride,
                                 keyScales: keyScales, queries: w[.phiQ], queryStride: rows, group: group,
                                 denominators: w[.denominators])
        DecodeKernels.additive(state: matrix, storage: storage, rows: rows, columns: valueDim, rowStride: valueDim,
                               stateScales: stateScales, stateScaleStride: stride, keyScales: keyScales,
                               value: w[.valueRows], queries: w[.phiQ], queryStride: rows, group: group, outputs: w[.outputs])
    }

    /// out[sequence, query heads of the group] ← outputs scaled as AttentionCall.store does (framed
    /// rows are in the frame e^{−references[g]}).
    func store() {
        for g in 0..<group {
            let scale = options.outputScale(denominator: w[.denominators][g], reference: framed ? w[.references][g] : nil)
            out.storeScaled(w[.outputs] + g * valueDim, scale: scale, count: valueDim,
                            at: sequence * out.steps[0] + (head * group + g) * out.steps[1], stride: out.steps[2])
        }
    }
}

extension RecurrentState {
    /// One decode token for `n` sequences: q [n, Hq, d], k [n, H, d], v [n, H, dv], out [n, Hq, dv].
    ///
    /// Validation reads shapes in place and the workspaces belong to the state, so the steady-state
    /// step performs no allocation (threads are started only when nThreads > 1). The form of the
    /// call (AttentionForms) updates each (sequence, key head) state and reads it out.
    public func step(q: TensorView, k: TensorView, v: TensorView, out: TensorView, slots: SlotList,
                     options given: LinearAttentionOptions) throws {
        var options = given
        try checkCall(options)
        let hq = try checkTokens(q: q, k: k, v: v, out: out, rank: 3)
        let (n, h, group) = (k.extents[0], numHeads, hq / numHeads)
        if options.nth > 1 && options.ith >= maxThreads {
            throw SlayError.invalid("partition ith = \(options.ith) needs a state created with max_threads > \(options.ith) (it has \(maxThreads))")
        }
        // The workspaces from this call's thread index on: partitioned calls never share one.
        let (first, threads) = options.nth > 1 ? (options.ith, 1) : (0, min(options.nThreads, maxThreads))
        try checkSlots(slots, sequences: n, marks: decodeWorkspaces[first].slotMarks)
        options.logDecay = try TokenTensors.check(options, map: map, q: q, k: k, queryHeads: hq, mode: .causal).logDecay
        let form = try AttentionForms.select(map: map, options: options, mode: .causal, q: q, k: k, v: v)
        for workspace in decodeWorkspaces[first..<(first + threads)] {
            try workspace.ensure(group: group, map: map, valueDim: valueDim)
        }
        let tasks = ParallelFor.share(of: n * h, worker: options.ith, workers: options.nth)
        let settings = options
        let framed = maximaStorage != nil
        func run(_ index: Int, _ workspace: DecodeWorkspace) {
            let sequence = index / h
            StepTask(state: self, q: q, k: k, v: v, out: out, options: settings, sequence: sequence, head: index % h,
                     group: group, slot: slots[sequence], w: Workspace(layout: workspace.layout, buffer: workspace.buffer!.pointer),
                     framed: framed).run(form)
        }
        if threads == 1 {
            for index in tasks { run(index, decodeWorkspaces[first]) }
        } else {
            ParallelFor.run(workers: threads) { worker in
                for index in ParallelFor.share(of: tasks.count, worker: worker, workers: threads) {
                    run(tasks.lowerBound + index, self.decodeWorkspaces[first + worker])
                }
            }
        }
        for i in 0..<n where options.ith == 0 { positions[slots[i]] += 1 }
    }
}
