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
/// grouped-query group than any before: the steady-state step allocates nothing.
final class DecodeWorkspace: @unchecked Sendable {
    private(set) var buffer: ScratchBuffer?
    private(set) var group = 0

    func ensure(group: Int, map: FeatureMap, valueDim: Int) throws -> ScratchBuffer {
        if let buffer, group <= self.group { return buffer }
        let (d, m) = (map.headDim, map.featureDim)
        var total = 0
        let pieces = [try CheckedSize.multiply(group, d, what: "decode workspace"), d, valueDim,
                      try CheckedSize.multiply(group, m, what: "decode workspace"), m,
                      try CheckedSize.multiply(group, valueDim, what: "decode workspace"), group, m,
                      map.scratchFloats(rows: max(group, 1))]
        for piece in pieces {
            total = try CheckedSize.add(total, ScratchBuffer.footprint(piece), what: "decode workspace")
        }
        let fresh = try ScratchBuffer(floats: total)
        buffer = fresh
        self.group = group
        return fresh
    }
}

extension RecurrentState {
    /// One decode token for `n` sequences: q [n, Hq, d], k [n, H, d], v [n, H, dv], out [n, Hq, dv].
    ///
    /// Per (sequence, key head) the state is streamed once: each row f of S is read, updated with
    /// φ(k)_f·v and immediately read out into every query head of the group, then written back.
    /// Validation reads shapes in place and the workspaces belong to the state, so the steady-state
    /// step performs no allocation (threads are started only when nThreads > 1).
    public func step(q: TensorView, k: TensorView, v: TensorView, out: TensorView, slots: SlotList,
                     options: LinearAttentionOptions) throws {
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
        try checkDistinct(slots)
        try options.decay.validate(heads: h)
        try checkStepTokenInputs(options, sequences: n, queryHeads: hq)
        try checkPartitionKeepsPositions(options)
        if maximaStorage != nil {
            try RescaledExpAttention.checkOptions(normalize: options.normalize, decay: options.decay,
                                                  channelDecay: options.logDecay != nil,
                                                  gates: options.queryGateLogits != nil || options.keyGateLogits != nil)
        }
        let group = hq / h
        let threads = options.nth > 1 ? 1 : min(options.nThreads, maxThreads)
        if options.nth > 1 && options.ith >= maxThreads {
            throw SlayError.invalid("partition ith = \(options.ith) needs a state created with max_threads > \(options.ith) (it has \(maxThreads))")
        }
        let first = options.nth > 1 ? options.ith : 0
        var buffers: [ScratchBuffer] = []
        if threads > 1 { buffers.reserveCapacity(threads) }
        for worker in 0..<threads {
            let buffer = try decodeWorkspaces[first + worker].ensure(group: group, map: map, valueDim: dv)
            if threads > 1 { buffers.append(buffer) }
        }
        let tasks = ParallelFor.share(of: n * h, worker: options.ith, workers: options.nth)
        let delta = Float(options.delta)
        let tokens = StepTokenInputs(options)
        if threads == 1 {
            let buffer = decodeWorkspaces[first].buffer!
            for task in tasks {
                decode(task: task, group: group, q: q, k: k, v: v, out: out, slots: slots, delta: delta, denominator: options.denominator, normalize: options.normalize,
                       decay: options.decay, tokens: tokens, buffer: buffer)
            }
        } else {
            let scratch = buffers
            ParallelFor.run(workers: threads) { worker in
                let share = ParallelFor.share(of: tasks.count, worker: worker, workers: threads)
                for index in share {
                    self.decode(task: tasks.lowerBound + index, group: group, q: q, k: k, v: v, out: out, slots: slots,
                                delta: delta, denominator: options.denominator, normalize: options.normalize,
                                decay: options.decay, tokens: tokens, buffer: scratch[worker])
                }
            }
        }
        if options.ith == 0 {
            for i in 0..<n { positions[slots[i]] += 1 }
        }
    }

    /// Slot range and distinctness. A sorted copy in temporary (stack, for small calls) memory
    /// keeps the check free of shared state, so concurrent partitioned calls cannot interfere.
    func checkDistinct(_ slots: SlotList) throws {
        guard slots.pointer != nil else { return }
        for i in 0..<slots.count {
            let slot = slots[i]
            guard slot >= 0 && slot < numSequences else {
                throw SlayError.invalid("slots[\(i)] is \(slot); the state has slots 0..<\(numSequences)")
            }
        }
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: slots.count) { buffer in
            var sorted = buffer
            for i in 0..<slots.count { sorted[i] = slots[i] }
            sorted.sort()
            for i in 1..<max(1, slots.count) where sorted[i] == sorted[i - 1] {
                throw SlayError.invalid("slots must be distinct within one call; slot \(sorted[i]) appears twice")
            }
        }
    }

    func decode(task: Int, group: Int, q: TensorView, k: TensorView, v: TensorView, out: TensorView, slots: SlotList,
                delta: Float, denominator: DenominatorMode, normalize: Bool, decay: HeadDecay, tokens: StepTokenInputs,
                buffer: ScratchBuffer) {
        if maximaStorage != nil {
            return decodeRescaledExp(task: task, group: group, q: q, k: k, v: v, out: out, slots: slots, delta: delta,
                                     denominator: denominator, buffer: buffer)
        }
        let (d, m, dv) = (map.headDim, featureDim, valueDim)
        let sequence = task / numHeads
        let head = task % numHeads
        let slot = slots[sequence]
        var carver = ScratchCarver(buffer.pointer)
        let queryRows = carver.take(group * d), keyRow = carver.take(d), valueRow = carver.take(dv), phiQ = carver.take(group * m),
            phiK = carver.take(m), outputs = carver.take(group * dv), denominators = carver.take(group),
            scales = carver.take(m)
        let featureScratch = carver.take(map.scratchFloats(rows: max(group, 1)))
        RecurrentState.gatherStepToken(q: q, k: k, v: v, sequence: sequence, head: head, group: group,
                                       queryRows: queryRows, keyRow: keyRow, valueRow: valueRow)
        // The token's position is the slot's count before this step (incremented after all tasks).
        let position = Int(positions[slot])
        map.features(role: .key, head: head, input: keyRow, rows: 1, firstPosition: position, output: phiK,
                     scratch: featureScratch)
        // Every query row of the group is the same token: map them one at a time at that position
        // when the map needs positions, in one block otherwise.
        if map.needsPositions {
            for g in 0..<group {
                map.features(role: .query, head: head, input: queryRows + g * d, rows: 1, firstPosition: position,
                             output: phiQ + g * m, scratch: featureScratch)
            }
        } else {
            map.features(role: .query, head: head, input: queryRows, rows: group, output: phiQ, scratch: featureScratch)
        }
        tokens.applyGates(sequence: sequence, head: head, group: group, m: m, phiQ: phiQ, phiK: phiK)

        let state = rawMatrix(slot: slot, head: head)
        let z = rawNormaliser(slot: slot, head: head)
        // RetNet decay: S ← γ S + φ(k) vᵀ, z ← γ z + φ(k), in the same single pass over S; GLA
        // decay (per channel α_f, times γ when both are given) takes the same pass.
        let gamma = decay[head]
        var stateScales: UnsafePointer<Float>? = nil
        var scaleStride = 0
        if let channels = tokens.logDecayRow(sequence: sequence, head: head) {
            let logGamma = decay.logarithm(head: head)
            for f in 0..<m { scales[f] = channels.pointer[f * channels.stride] + logGamma }
            DecayMath.expNonPositive(scales, count: m, output: scales)
            (stateScales, scaleStride) = (UnsafePointer(scales), 1)
        } else if gamma != 1 {
            scales[0] = gamma
            (stateScales, scaleStride) = (UnsafePointer(scales), 0)
        }
        DecodeKernels.normaliser(z, storage: storageType, rows: m, stateScales: stateScales, stateScaleStride: scaleStride, keyScales: phiK,
                                 queries: phiQ, queryStride: m, group: group, denominators: denominators)
        DecodeKernels.additive(state: state, storage: storageType, rows: m, columns: dv, rowStride: dv,
                               stateScales: stateScales, stateScaleStride: scaleStride, keyScales: phiK, value: valueRow,
                               queries: phiQ, queryStride: m, group: group, outputs: outputs)
        for g in 0..<group {
            let inverse = normalize ? denominator.inverse(denominators[g], delta: delta) : 1
            let target = out.base + sequence * out.steps[0] + (head * group + g) * out.steps[1]
            for j in 0..<dv { target[j * out.steps[2]] = outputs[g * dv + j] * inverse }
        }
    }
}

extension RecurrentState {
    /// The step's token for (sequence, key head) gathered contiguously from the [N, H, D] views:
    /// its key and value rows, and the rows of the `group` query heads that read this key head.
    static func gatherStepToken(q: TensorView, k: TensorView, v: TensorView, sequence: Int, head: Int, group: Int,
                                queryRows: UnsafeMutablePointer<Float>, keyRow: UnsafeMutablePointer<Float>,
                                valueRow: UnsafeMutablePointer<Float>) {
        func gather(_ view: TensorView, head: Int, into target: UnsafeMutablePointer<Float>) {
            let source = view.base + sequence * view.steps[0] + head * view.steps[1]
            let (width, stride) = (view.extents[2], view.steps[2])
            for j in 0..<width { target[j] = source[j * stride] }
        }
        gather(k, head: head, into: keyRow)
        gather(v, head: head, into: valueRow)
        let d = q.extents[2]
        for g in 0..<group { gather(q, head: head * group + g, into: queryRows + g * d) }
    }
}
