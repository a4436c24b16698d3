/// Prefill, read-only queries and decode steps on recurrent states: thin validation around the
/// one attention driver (AttentionCall) with the state's slots as initial and final states.
extension RecurrentState {
    /// The checks of every state call: scalar options, the map's identity and, for calls that move
    /// positions (`positions`), that a position-dependent map is not partitioned.
    func checkCall(_ options: LinearAttentionOptions, positions: Bool = true) throws {
        try options.validate()
        try checkMapUnchanged()
        guard positions && map.needsPositions && options.nth > 1 else { return }
        throw SlayError(.unsupported, "this feature map depends on token positions; partitioned state calls (nth > 1) "
                        + "cannot share the slots' positions, use n_threads instead")
    }

    /// The call's tensors against the state (see TokenTensors.checkShapes); returns Hq.
    func checkTokens(q: TensorView?, k: TensorView?, v: TensorView?, out: TensorView?, rank: Int) throws -> Int {
        try TokenTensors.checkShapes(q: q, k: k, v: v, out: out, rank: rank, keyHeads: numHeads, headDim: map.headDim,
                                     valueDim: valueDim)
    }

    /// `slots` has one entry per sequence, each a slot of the state, all distinct; without slots,
    /// sequence i uses slot i. `marks` (one clear bit per slot, left clear) is the calling thread's
    /// own (a decode workspace's, so concurrent partitioned calls cannot interfere); nil allocates
    /// a fresh one (fallibly).
    func checkSlots(_ slots: SlotList, sequences n: Int, marks given: HeapArray<UInt64>? = nil) throws {
        guard slots.count == n else { throw SlayError.shape("slots has \(slots.count) entries for \(n) sequences") }
        guard slots.pointer != nil else {
            guard n <= numSequences else { throw SlayError.shape("the call has \(n) sequences, the state only \(numSequences) slots") }
            return
        }
        for i in 0..<n where !(0..<numSequences).contains(slots[i]) {
            throw SlayError.invalid("slots[\(i)] is \(slots[i]); the state has slots 0..<\(numSequences)")
        }
        let marks = try given ?? HeapArray<UInt64>(count: (numSequences + 63) / 64, what: "the slot marks of \(numSequences) slots")
        let words = marks.baseAddress
        func bit(_ i: Int) -> UInt64 { 1 << UInt64(slots[i] & 63) }
        // Mark slots up to the first one already marked; then clear every mark set.
        var marked = 0
        while marked < n && words[slots[marked] >> 6] & bit(marked) == 0 {
            words[slots[marked] >> 6] |= bit(marked)
            marked += 1
        }
        for i in 0..<marked { words[slots[i] >> 6] = 0 }
        guard marked == n else {
            throw SlayError.invalid("slots must be distinct within one call; slot \(slots[marked]) appears twice")
        }
    }

    /// A call over sequences ([B, T, …] tensors) on the slots: spans from cu_seqlens or the padded
    /// batch and the slots, read in place (caller memory, valid for the call) and checked; then the
    /// driver, and (share 0 of a call that absorbs keys) the slots' positions move on.
    private func run(q: TensorView?, k: TensorView?, v: TensorView?, out: TensorView?,
                     cuSeqlens: UnsafeBufferPointer<Int64>?, slots: UnsafeBufferPointer<Int32>?, mode: AttentionMode,
                     options: LinearAttentionOptions) throws {
        let queryHeads = try checkTokens(q: q, k: k, v: v, out: out, rank: 4)
        let (batch, length) = ((k ?? q)!.extents[0], (k ?? q)!.extents[1])
        guard cuSeqlens == nil || batch == 1 else {
            throw SlayError.shape("with cu_seqlens the tensors must be packed as [1, T_total, H, D], got B = \(batch)")
        }
        let spans = try cuSeqlens.map { try SequenceSpan.packed(offsets: $0, total: length) }
            ?? SequenceSpan.padded(batch: batch, length: length)
        let list = SlotList(pointer: slots?.baseAddress, count: slots?.count ?? spans.count)
        try checkSlots(list, sequences: spans.count)
        try AttentionCall(map: map, q: q, k: k, v: v, out: out, queryHeads: queryHeads, valueDim: valueDim,
                          spans: spans, state: self, slots: list, mode: mode, options: options).execute()
        for i in 0..<spans.count where mode != .query && options.ith == 0 { positions[list[i]] += Int64(spans[i].length) }
    }

    /// Runs a prompt through the state. With q and out: causal outputs (or, when not causal, every
    /// query sees the state plus all keys of its sequence); without: keys and values are only absorbed.
    public func prefill(q: TensorView?, k: TensorView, v: TensorView, out: TensorView?, cuSeqlens: UnsafeBufferPointer<Int64>?,
                        slots: UnsafeBufferPointer<Int32>?, options: LinearAttentionOptions) throws {
        try checkCall(options)
        guard (q == nil) == (out == nil) else { throw SlayError.invalid("q and out must both be given or both be NULL") }
        let mode: AttentionMode = q == nil ? .absorb : (options.causal ? .causal : .bidirectional)
        try run(q: q, k: k, v: v, out: out, cuSeqlens: cuSeqlens, slots: slots, mode: mode, options: options)
    }

    /// Queries the states without changing them: y = φ(q)ᵀS / (φ(q)ᵀz + δ) for every query.
    /// Query gates apply; log α and key gates (options of key absorption) are not read.
    public func query(q: TensorView, out: TensorView, cuSeqlens: UnsafeBufferPointer<Int64>?,
                      slots: UnsafeBufferPointer<Int32>?, options: LinearAttentionOptions) throws {
        try checkCall(options, positions: false)
        try run(q: q, k: nil, v: nil, out: out, cuSeqlens: cuSeqlens, slots: slots, mode: .query, options: options)
    }
}
