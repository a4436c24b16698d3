#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
    private(set) var layout = WorkspaceLayout(chunk: 0)
    private(set) var group = 0
    /// One bit per slot of the state, all clear between calls: the slot distinctness check of a
    /// step marks its slots here, so it needs no allocation for any batch size.
    let slotMarks: HeapArray<UInt64>

    init(sequences: Int) throws {
        slotMarks = try HeapArray<UInt64>(count: (sequences + 63) / 64, what: "the slot marks of \(sequences) slots")
    }

    func ensure(group: Int, map: FeatureMap, valueDim: Int) throws -> ScratchBuffer {
        if let buffer, group <= self.group { return buffer }
        let (d, m) = (map.headDim, map.featureDim)
        var layout = WorkspaceLayout(chunk: group)
        try layout.reserve(.queryRows, group, d)
        try layout.reserve(.keyRows, d)
        try layout.reserve(.valueRows, valueDim)
        try layout.reserve(.phiQ, group, m)
        try layout.reserve(.phiK, m)
        try layout.reserve(.outputs, group, valueDim)
        try layout.reserve(.denominators, group)
        try layout.reserve(.references, group)
        // group + 1 rows: a map whose roles share features maps the key with the queries.
        try layout.reserve(.featureScratch, map.scratchFloats(rows: group + 1))
        for form in AttentionForms.registered { try form.reserveStep(&layout, map: map, valueDim: valueDim, group: group) }
        let fresh = try ScratchBuffer(floats: layout.totalFloats)
        buffer = fresh
        self.layout = layout
        self.group = group
        return fresh
    }
}

/// One decode token of one (sequence, key head) pair as a form sees it: the token's views, the
/// slot's state and the decode thread's workspace (w.queryRows [group, d], w.keyRows [d],
/// w.valueRows [dv], w.phiQ [group, m], w.phiK [m], w.outputs [group, dv], w.denominators and
/// w.references [group]).
struct StepTask {
    let state: RecurrentState
    let q, k, v, out: TensorView
    let options: LinearAttentionOptions
    let tokens: StepTokenInputs
    let sequence, head, group, slot: Int
    let w: Workspace

    var map: FeatureMap { state.map }
    var valueDim: Int { state.valueDim }
    /// S [m, dv] and z [m] of the slot and head, in the state's storage type.
    var matrix: UnsafeMutableRawPointer { state.rawMatrix(slot: slot, head: head) }
    var normaliser: UnsafeMutableRawPointer { state.rawNormaliser(slot: slot, head: head) }
    var storage: ElementType { state.storageType }
    var maxima: UnsafeMutablePointer<Float>? { state.maxima(slot: slot, head: head) }

    /// The token's key and value rows and the rows of the `group` query heads that read this key
    /// head, gathered contiguously; outputs and denominators zeroed.
    func gather() {
        // Half-precision rows are widened to fp32 here.
        func gather(_ view: TensorView, head: Int, into target: UnsafeMutablePointer<Float>) {
            view.loadRow(at: sequence * view.steps[0] + head * view.steps[1], stride: view.steps[2], count: view.extents[2],
                         into: target)
        }
        gather(k, head: head, into: w.keyRows)
        gather(v, head: head, into: w.valueRows)
        let d = q.extents[2]
        for g in 0..<group { gather(q, head: head * group + g, into: w.queryRows + g * d) }
        w.outputs.update(repeating: 0, count: group * valueDim)
        w.denominators.update(repeating: 0, count: group)
    }

    /// gather(), then φ(k) and φ(q) at the slot's position (L2-normalised with qk_l2norm, gated).
    func features() {
        gather()
        let (d, m) = (map.headDim, map.featureDim)
        if map.rolesShareFeatures && !map.needsPositions && w.keyRows == w.queryRows + group * d
            && w.phiK == w.phiQ + group * m {
            // The query rows and the key row are consecutive in the workspace (and so are their
            // features): one call maps them all, which halves the per-call cost of a step.
            map.features(role: .query, head: head, input: w.queryRows, rows: group + 1, output: w.phiQ,
                         scratch: w.featureScratch)
        } else {
            // The token's position is the slot's count before this step (incremented after all tasks).
            mapSeparately(position: Int(state.positions[slot]))
        }
        if options.qkL2Norm {
            FormTask.normaliseRows(w.phiK, rows: 1, width: m)
            FormTask.normaliseRows(w.phiQ, rows: group, width: m)
        }
        tokens.applyGates(sequence: sequence, head: head, group: group, m: m, phiQ: w.phiQ, phiK: w.phiK)
    }

    private func mapSeparately(position: Int) {
        let (d, m) = (map.headDim, map.featureDim)
        map.features(role: .key, head: head, input: w.keyRows, rows: 1, firstPosition: position, output: w.phiK,
                     scratch: w.featureScratch)
        // Every query row of the group is the same token: map them one at a time at that position
        // when the map needs positions, in one block otherwise.
        if map.needsPositions {
            for g in 0..<group {
                map.features(role: .query, head: head, input: w.queryRows + g * d, rows: 1, firstPosition: position,
                             output: w.phiQ + g * m, scratch: w.featureScratch)
            }
        } else {
            map.features(role: .query, head: head, input: w.queryRows, rows: group, output: w.phiQ, scratch: w.featureScratch)
        }
    }

    /// out[sequence, query heads of the group] ← outputs / (den + δ), or outputs when not
    /// normalising; `framed`: rows are in the frame e^{−references[g]} (see AttentionCall.store).
    func store(framed: Bool) {
        let delta = Float(options.delta)
        for g in 0..<group {
            let inverse: Float
            if framed {
                let r = Double(w.references[g])
                inverse = options.normalize
                    ? options.denominator.inverse(w.denominators[g], delta: delta == 0 ? 0 : Float(Double(delta) * exp(-r)))
                    : Float(exp(r))
            } else {
                inverse = options.normalize ? options.denominator.inverse(w.denominators[g], delta: delta) : 1
            }
            out.storeScaled(w.outputs + g * valueDim, scale: inverse, count: valueDim,
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
        try options.validate()
        try checkMapUnchanged()
        let n = k.extents[0]
        let (d, h, dv) = (map.headDim, numHeads, valueDim)
        guard q.rank == 3 && k.rank == 3 && v.rank == 3 && out.rank == 3 else {
            throw SlayError.shape("a step takes 3-dimensional tensors [N, H, D]")
        }
        guard k.extents[1] == h && k.extents[2] == d else {
            throw SlayError.shape("k has shape \(k.shape); the state expects [N, \(h), \(d)]")
        }
        guard v.extents[0] == n && v.extents[1] == h && v.extents[2] == dv else {
            throw SlayError.shape("v has shape \(v.shape); expected [\(n), \(h), \(dv)]")
        }
        let hq = q.extents[1]
        guard q.extents[0] == n && q.extents[2] == d else {
            throw SlayError.shape("q has shape \(q.shape); expected [\(n), Hq, \(d)]")
        }
        guard hq % h == 0 && hq <= SlayConfiguration.maximumDimension else {
            throw SlayError.shape("q has \(hq) heads; it needs a multiple of the state's \(h) key heads, at most \(SlayConfiguration.maximumDimension)")
        }
        guard out.extents[0] == n && out.extents[1] == hq && out.extents[2] == dv else {
            throw SlayError.shape("out has shape \(out.shape); expected [\(n), \(hq), \(dv)]")
        }
        guard slots.count == n else { throw SlayError.shape("slots has \(slots.count) entries for \(n) sequences") }
        guard slots.pointer != nil || n <= numSequences else {
            throw SlayError.shape("the call has \(n) sequences, the state only \(numSequences) slots")
        }
        if options.nth > 1 && options.ith >= maxThreads {
            throw SlayError.invalid("partition ith = \(options.ith) needs a state created with max_threads > \(options.ith) (it has \(maxThreads))")
        }
        // The workspace of this call's thread index: partitioned calls never share one.
        try checkDistinct(slots, marks: decodeWorkspaces[options.nth > 1 ? options.ith : 0].slotMarks)
        try options.decay.validate(heads: h)
        options.logDecay = try checkStepTokenInputs(options, sequences: n, queryHeads: hq)
        try checkPartitionKeepsPositions(options)
        let form = AttentionForms.form(map: map, options: options)
        try form.check(map: map, options: options, mode: .causal)
        if options.checkFinite {
            try TokenTensors.checkFinite(q, "q")
            try TokenTensors.checkFinite(k, "k")
            try TokenTensors.checkFinite(v, "v")
        }
        let group = hq / h
        let threads = options.nth > 1 ? 1 : min(options.nThreads, maxThreads)
        let first = options.nth > 1 ? options.ith : 0
        for worker in 0..<threads {
            _ = try decodeWorkspaces[first + worker].ensure(group: group, map: map, valueDim: dv)
        }
        let tasks = ParallelFor.share(of: n * h, worker: options.ith, workers: options.nth)
        let tokens = StepTokenInputs(options)
        let settings = options
        func run(_ index: Int, _ workspace: DecodeWorkspace) {
            let sequence = index / h
            let task = StepTask(state: self, q: q, k: k, v: v, out: out, options: settings, tokens: tokens,
                                sequence: sequence, head: index % h, group: group, slot: slots[sequence],
                                w: Workspace(layout: workspace.layout, buffer: workspace.buffer!.pointer))
            form.step(task)
        }
        if threads == 1 {
            let workspace = decodeWorkspaces[first]
            for index in tasks { run(index, workspace) }
        } else {
            ParallelFor.run(workers: threads) { worker in
                for index in ParallelFor.share(of: tasks.count, worker: worker, workers: threads) {
                    run(tasks.lowerBound + index, self.decodeWorkspaces[first + worker])
                }
            }
        }
        if options.ith == 0 {
            for i in 0..<n { positions[slots[i]] += 1 }
        }
    }

    /// Slot range and distinctness. `marks` (one clear bit per slot, left clear) is the calling
    /// thread's own (a decode workspace's, so concurrent partitioned calls cannot interfere);
    /// nil allocates a fresh one (fallibly).
    func checkDistinct(_ slots: SlotList, marks given: HeapArray<UInt64>? = nil) throws {
        guard slots.pointer != nil else { return }
        for i in 0..<slots.count {
            let slot = slots[i]
            guard slot >= 0 && slot < numSequences else {
                throw SlayError.invalid("slots[\(i)] is \(slot); the state has slots 0..<\(numSequences)")
            }
        }
        guard slots.count <= numSequences else {
            throw SlayError.invalid("slots must be distinct within one call; \(slots.count) slots of a state with \(numSequences) repeat one")
        }
        let marks = try given ?? HeapArray<UInt64>(count: (numSequences + 63) / 64, what: "the slot marks of \(numSequences) slots")
        let words = marks.baseAddress
        var repeated: Int?
        var marked = 0
        while marked < slots.count {
            let slot = slots[marked]
            let bit: UInt64 = 1 << UInt64(slot & 63)
            if words[slot >> 6] & bit != 0 { repeated = slot; break }
            words[slot >> 6] |= bit
            marked += 1
        }
        for i in 0..<marked { words[slots[i] >> 6] = 0 }
        if let repeated {
            throw SlayError.invalid("slots must be distinct within one call; slot \(repeated) appears twice")
        }
    }
}
