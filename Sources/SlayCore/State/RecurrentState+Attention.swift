/// Prefill, read-only queries and decode steps on recurrent states: thin validation around the
/// one attention driver (AttentionCall) with the state's slots as initial and final states.
extension RecurrentState {
    /// Sequence spans and their slots for a call over `batch` × `length` rows. cu_seqlens and slots
    /// are read in place (caller memory, valid for the call); the spans are fallibly allocated.
    func resolveSequences(batch: Int, length: Int, cuSeqlens: UnsafeBufferPointer<Int64>?,
                          slots: UnsafeBufferPointer<Int32>?) throws -> (HeapArray<SequenceSpan>, SlotList) {
        let spans: HeapArray<SequenceSpan>
        if let cuSeqlens {
            guard batch == 1 else {
                throw SlayError.shape("with cu_seqlens the tensors must be packed as [1, T_total, H, D], got B = \(batch)")
            }
            spans = try SequenceSpan.packed(offsets: cuSeqlens, total: length)
        } else {
            guard batch <= numSequences || slots != nil else {
                throw SlayError.shape("the call has \(batch) sequences, the state only \(numSequences) slots")
            }
            spans = try SequenceSpan.padded(batch: batch, length: length)
        }
        if let slots {
            guard slots.count == spans.count else {
                throw SlayError.shape("slots has \(slots.count) entries for \(spans.count) sequences")
            }
            let list = SlotList(pointer: slots.baseAddress, count: slots.count)
            try checkDistinct(list)
            return (spans, list)
        }
        guard spans.count <= numSequences else {
            throw SlayError.shape("the call has \(spans.count) sequences, the state only \(numSequences) slots")
        }
        return (spans, SlotList(pointer: nil, count: spans.count))
    }

    func checkPartitionKeepsPositions(_ options: LinearAttentionOptions) throws {
        guard map.needsPositions && options.nth > 1 else { return }
        throw SlayError(.unsupported, "this feature map depends on token positions; partitioned state calls (nth > 1) "
                        + "cannot share the slots' positions, use n_threads instead")
    }

    func checkKeys(_ k: TensorView, _ v: TensorView) throws {
        guard k.rank == 4 && v.rank == 4 else { throw SlayError.shape("k and v must have 4 dimensions [B, T, H, D]") }
        guard k.extents[2] == numHeads && k.extents[3] == map.headDim else {
            throw SlayError.shape("k has shape \(k.shape); the state expects [B, T, \(numHeads), \(map.headDim)]")
        }
        guard v.shape == [k.extents[0], k.extents[1], numHeads, valueDim] else {
            throw SlayError.shape("v has shape \(v.shape); expected \([k.extents[0], k.extents[1], numHeads, valueDim])")
        }
    }

    func checkQueries(_ q: TensorView, _ out: TensorView, batch: Int, length: Int) throws -> Int {
        guard q.rank == 4 && out.rank == 4 else { throw SlayError.shape("q and out must have 4 dimensions [B, T, H, D]") }
        let hq = q.extents[2]
        guard q.extents[0] == batch && q.extents[1] == length && q.extents[3] == map.headDim else {
            throw SlayError.shape("q has shape \(q.shape); expected [\(batch), \(length), Hq, \(map.headDim)]")
        }
        guard hq % numHeads == 0 && hq <= SlayConfiguration.maximumDimension else { throw SlayError.shape("q has \(hq) heads, not a multiple of the state's \(numHeads) key heads") }
        guard out.shape == [batch, length, hq, valueDim] else {
            throw SlayError.shape("out has shape \(out.shape); expected \([batch, length, hq, valueDim])")
        }
        return hq
    }

    /// Runs a prompt through the state. With q and out: causal outputs (or, when not causal, every
    /// query sees the state plus all keys of its sequence); without: keys and values are only absorbed.
    public func prefill(q: TensorView?, k: TensorView, v: TensorView, out: TensorView?, cuSeqlens: UnsafeBufferPointer<Int64>?,
                        slots: UnsafeBufferPointer<Int32>?, options: LinearAttentionOptions) throws {
        try options.validate()
        try checkMapUnchanged()
        try checkKeys(k, v)
        try checkPartitionKeepsPositions(options)
        let (batch, length) = (k.extents[0], k.extents[1])
        guard (q == nil) == (out == nil) else { throw SlayError.invalid("q and out must both be given or both be NULL") }
        var queryHeads = numHeads
        if let q, let out { queryHeads = try checkQueries(q, out, batch: batch, length: length) }
        let (spans, resolved) = try resolveSequences(batch: batch, length: length, cuSeqlens: cuSeqlens, slots: slots)
        let mode: AttentionMode = q == nil ? .absorb : (options.causal ? .causal : .bidirectional)
        let call = try AttentionCall(map: map, q: q, k: k, v: v, out: out, queryHeads: queryHeads, valueDim: valueDim,
                                     spans: spans, state: self, slots: resolved, mode: mode, options: options)
        try call.execute(workspaces: nil)
        if options.ith == 0 {
            for i in 0..<spans.count { positions[resolved[i]] += Int64(spans[i].length) }
        }
    }

    /// Queries the states without changing them: y = φ(q)ᵀS / (φ(q)ᵀz + δ) for every query.
    /// Query gates apply; log α and key gates (options of key absorption) are not read.
    public func query(q: TensorView, out: TensorView, cuSeqlens: UnsafeBufferPointer<Int64>?,
                      slots: UnsafeBufferPointer<Int32>?, options: LinearAttentionOptions) throws {
        try options.validate()
        try checkMapUnchanged()
        guard q.rank == 4 else { throw SlayError.shape("q must have 4 dimensions [B, T, H, D], got \(q.rank)") }
        let queryHeads = try checkQueries(q, out, batch: q.extents[0], length: q.extents[1])
        let (spans, resolved) = try resolveSequences(batch: q.extents[0], length: q.extents[1], cuSeqlens: cuSeqlens, slots: slots)
        let call = try AttentionCall(map: map, q: q, k: nil, v: nil, out: out, queryHeads: queryHeads, valueDim: valueDim,
                                     spans: spans, state: self, slots: resolved, mode: .query, options: options)
        try call.execute(workspaces: nil)
    }
}
