import CSlay
import SlayCore

@_cdecl("slay_state_create")
public func slay_state_create(_ fm: OpaquePointer?, _ numSeqs: Int64, _ valueDim: Int64, _ maxThreads: Int32,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?,
                              _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    out?.pointee = nil
    return withStatus(err) {
        let map = try FeatureMapHandle.from(fm).map
        let result = try require(out, "out")
        let sequences = try sequenceCount(numSeqs)
        guard valueDim >= 1 && valueDim <= Int64(SlayConfiguration.maximumDimension) else {
            throw SlayError.shape("value_dim must be in 1...\(SlayConfiguration.maximumDimension), got \(valueDim)")
        }
        let state = try RecurrentState(map: map, numSequences: sequences, valueDim: Int(valueDim), maxThreads: Int(maxThreads))
        result.pointee = try StateHandle(state).register()
    }
}

@_cdecl("slay_state_create_v2")
public func slay_state_create_v2(_ fm: OpaquePointer?, _ numSeqs: Int64, _ valueDim: Int64, _ maxThreads: Int32,
                                 _ storageDtype: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                                 _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    out?.pointee = nil
    return withStatus(err) {
        let map = try FeatureMapHandle.from(fm).map
        let result = try require(out, "out")
        let sequences = try sequenceCount(numSeqs)
        guard valueDim >= 1 && valueDim <= Int64(SlayConfiguration.maximumDimension) else {
            throw SlayError.shape("value_dim must be in 1...\(SlayConfiguration.maximumDimension), got \(valueDim)")
        }
        guard let storage = ElementType(rawValue: storageDtype) else {
            throw SlayError(.dtype, "storage_dtype is \(storageDtype); a state stores SLAY_DTYPE_F32 (0), SLAY_DTYPE_F16 (2) or SLAY_DTYPE_BF16 (3)")
        }
        let state = try RecurrentState(map: map, numSequences: sequences, valueDim: Int(valueDim), maxThreads: Int(maxThreads),
                                       storageType: storage)
        result.pointee = try StateHandle(state).register()
    }
}

@_cdecl("slay_state_storage_dtype")
public func slay_state_storage_dtype(_ state: OpaquePointer?, _ outDtype: UnsafeMutablePointer<Int32>?,
                                     _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let result = try require(outDtype, "out_dtype")
        result.pointee = s.storageType.rawValue
    }
}

@_cdecl("slay_state_free")
public func slay_state_free(_ state: OpaquePointer?) {
    guard let state else { return }
    stateHandles.remove(state)
}

@_cdecl("slay_state_copy")
public func slay_state_copy(_ src: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                            _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    out?.pointee = nil
    return withStatus(err) {
        let source = try StateHandle.from(src, "src")
        let result = try require(out, "out")
        result.pointee = try StateHandle(try source.state.copy()).register()
    }
}

@_cdecl("slay_state_copy_slot")
public func slay_state_copy_slot(_ dst: OpaquePointer?, _ dstSlot: Int64, _ src: OpaquePointer?, _ srcSlot: Int64,
                                 _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let target = try StateHandle.from(dst, "dst")
        let source = try StateHandle.from(src, "src")
        try target.state.copySlot(Int(clamping: dstSlot), from: source.state, slot: Int(clamping: srcSlot))
    }
}

@_cdecl("slay_state_reset")
public func slay_state_reset(_ state: OpaquePointer?, _ slot: Int64, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try StateHandle.from(state)
        try handle.state.reset(slot: slot == -1 ? nil : Int(clamping: slot))
    }
}

@_cdecl("slay_state_dims")
public func slay_state_dims(_ state: OpaquePointer?, _ numSeqs: UnsafeMutablePointer<Int64>?,
                            _ numHeads: UnsafeMutablePointer<Int64>?, _ featureDim: UnsafeMutablePointer<Int64>?,
                            _ valueDim: UnsafeMutablePointer<Int64>?, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        numSeqs?.pointee = Int64(s.numSequences)
        numHeads?.pointee = Int64(s.numHeads)
        featureDim?.pointee = Int64(s.featureDim)
        valueDim?.pointee = Int64(s.valueDim)
    }
}

@_cdecl("slay_state_position")
public func slay_state_position(_ state: OpaquePointer?, _ slot: Int64, _ outPosition: UnsafeMutablePointer<Int64>?,
                                _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let target = try require(outPosition, "out_position")
        try s.checkSlot(Int(clamping: slot))
        target.pointee = s.positions[Int(slot)]
    }
}

@_cdecl("slay_state_read")
public func slay_state_read(_ state: OpaquePointer?, _ slot: Int64, _ matrix: UnsafeMutablePointer<Float>?,
                            _ matrixCount: Int64, _ normaliser: UnsafeMutablePointer<Float>?, _ normaliserCount: Int64,
                            _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        try checkSlotArrays(s, slot: slot, matrix: matrix != nil, matrixCount: matrixCount,
                            normaliser: normaliser != nil, normaliserCount: normaliserCount)
        s.readSlot(Int(slot), matrix: matrix, normaliser: normaliser)
    }
}

/// Optional tensors: NULL is nil, otherwise validated like any other.
private func optionalTensor(_ pointer: UnsafePointer<slay_tensor>?, _ name: String, rank: Int, isOutput: Bool) throws -> TensorArgument? {
    guard pointer != nil else { return nil }
    return try TensorArgument(pointer, name: name, rank: rank, isOutput: isOutput, halfPrecision: true)
}

@_cdecl("slay_state_prefill")
public func slay_state_prefill(_ state: OpaquePointer?, _ q: UnsafePointer<slay_tensor>?, _ k: UnsafePointer<slay_tensor>?,
                               _ v: UnsafePointer<slay_tensor>?, _ out: UnsafePointer<slay_tensor>?,
                               _ cuSeqlens: UnsafePointer<Int64>?, _ slots: UnsafePointer<Int32>?, _ numSeqs: Int64,
                               _ options: UnsafePointer<slay_attention_options>?,
                               _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let (settings, tokens) = try linearAttentionOptions(options, keyHeads: s.numHeads, halfPrecision: true)
        let sequences = try sequenceCount(numSeqs)
        let query = try optionalTensor(q, "q", rank: 4, isOutput: false)
        let key = try TensorArgument(k, name: "k", rank: 4, isOutput: false, halfPrecision: true)
        let value = try TensorArgument(v, name: "v", rank: 4, isOutput: false, halfPrecision: true)
        let output = try optionalTensor(out, "out", rank: 4, isOutput: true)
        if let output {
            try TensorArgument.checkNoOverlap(output: output, inputs: [key, value] + (query.map { [$0] } ?? []))
            try tokens.checkNoOverlap(output: output)
        }
        let offsets = callerArray(cuSeqlens, count: sequences + 1)
        if offsets == nil && key.view.shape[0] != sequences {
            throw SlayError.shape("num_seqs is \(sequences) but k has B = \(key.view.shape[0]) (padded batch without cu_seqlens)")
        }
        try s.prefill(q: query?.view, k: key.view, v: value.view, out: output?.view, cuSeqlens: offsets,
                      slots: callerArray(slots, count: sequences), options: settings)
    }
}

@_cdecl("slay_state_query")
public func slay_state_query(_ state: OpaquePointer?, _ q: UnsafePointer<slay_tensor>?, _ out: UnsafePointer<slay_tensor>?,
                             _ cuSeqlens: UnsafePointer<Int64>?, _ slots: UnsafePointer<Int32>?, _ numSeqs: Int64,
                             _ options: UnsafePointer<slay_attention_options>?,
                             _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let (settings, tokens) = try linearAttentionOptions(options, keyHeads: s.numHeads, call: .queries, halfPrecision: true)
        let sequences = try sequenceCount(numSeqs)
        let query = try TensorArgument(q, name: "q", rank: 4, isOutput: false, halfPrecision: true)
        let output = try TensorArgument(out, name: "out", rank: 4, isOutput: true, halfPrecision: true)
        try TensorArgument.checkNoOverlap(output: output, inputs: [query])
        try tokens.checkNoOverlap(output: output)
        let offsets = callerArray(cuSeqlens, count: sequences + 1)
        if offsets == nil && query.view.shape[0] != sequences {
            throw SlayError.shape("num_seqs is \(sequences) but q has B = \(query.view.shape[0]) (padded batch without cu_seqlens)")
        }
        try s.query(q: query.view, out: output.view, cuSeqlens: offsets, slots: callerArray(slots, count: sequences),
                    options: settings)
    }
}

@_cdecl("slay_state_step")
public func slay_state_step(_ state: OpaquePointer?, _ q: UnsafePointer<slay_tensor>?, _ k: UnsafePointer<slay_tensor>?,
                            _ v: UnsafePointer<slay_tensor>?, _ out: UnsafePointer<slay_tensor>?,
                            _ slots: UnsafePointer<Int32>?, _ numSeqs: Int64,
                            _ options: UnsafePointer<slay_attention_options>?,
                            _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let (settings, tokens) = try linearAttentionOptions(options, keyHeads: s.numHeads, call: .step, halfPrecision: true)
        let sequences = try sequenceCount(numSeqs)
        let query = try TensorArgument(q, name: "q", rank: 3, isOutput: false, halfPrecision: true)
        let key = try TensorArgument(k, name: "k", rank: 3, isOutput: false, halfPrecision: true)
        let value = try TensorArgument(v, name: "v", rank: 3, isOutput: false, halfPrecision: true)
        let output = try TensorArgument(out, name: "out", rank: 3, isOutput: true, halfPrecision: true)
        // Pairwise, without building an array: this path runs once per decoded token.
        try TensorArgument.checkNoOverlap(output: output, input: query)
        try TensorArgument.checkNoOverlap(output: output, input: key)
        try TensorArgument.checkNoOverlap(output: output, input: value)
        try tokens.checkNoOverlap(output: output)
        // The slots are read in place while outputs are written.
        try TensorArgument.checkNoOverlap(output: output, array: slots.map(UnsafeRawPointer.init),
                                          bytes: sequences * MemoryLayout<Int32>.stride, name: "slots")
        guard query.view.extents[0] == sequences else {
            throw SlayError.shape("num_seqs is \(sequences) but q has N = \(query.view.extents[0])")
        }
        try s.step(q: query.view, k: key.view, v: value.view, out: output.view,
                   slots: SlotList(pointer: slots, count: sequences), options: settings)
    }
}

@_cdecl("slay_state_serialized_size")
public func slay_state_serialized_size(_ state: OpaquePointer?, _ outBytes: UnsafeMutablePointer<UInt>?,
                                       _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        try require(outBytes, "out_bytes").pointee = UInt(try StateBlob.size(of: s))
    }
}

@_cdecl("slay_state_save")
public func slay_state_save(_ state: OpaquePointer?, _ dst: UnsafeMutableRawPointer?, _ capacity: UInt,
                            _ written: UnsafeMutablePointer<UInt>?, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let target = try require(dst, "dst")
        let bytes = try StateBlob.write(s, to: UnsafeMutableRawBufferPointer(start: target, count: Int(clamping: capacity)))
        written?.pointee = UInt(bytes)
    }
}

@_cdecl("slay_state_load")
public func slay_state_load(_ fm: OpaquePointer?, _ src: UnsafeRawPointer?, _ size: UInt, _ maxThreads: Int32,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    out?.pointee = nil
    return withStatus(err) {
        let map = try FeatureMapHandle.from(fm).map
        let source = try require(src, "src")
        let result = try require(out, "out")
        guard maxThreads >= 1 && Int(maxThreads) <= LinearAttentionOptions.maximumThreads else {
            throw SlayError.invalid("max_threads must be in 1...\(LinearAttentionOptions.maximumThreads), got \(maxThreads)")
        }
        let state = try StateBlob.load(map: map, from: UnsafeRawBufferPointer(start: source, count: Int(clamping: size)),
                                       maxThreads: Int(maxThreads))
        result.pointee = try StateHandle(state).register()
    }
}

@_cdecl("slay_state_restore")
public func slay_state_restore(_ state: OpaquePointer?, _ src: UnsafeRawPointer?, _ size: UInt,
                               _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        let source = try require(src, "src")
        try StateBlob.restore(s, from: UnsafeRawBufferPointer(start: source, count: Int(clamping: size)))
    }
}

/// The slot of slay_state_read / slay_state_write exists, and each array given has the slot's
/// size: S [H, m, dv] and z [H, m] floats.
func checkSlotArrays(_ s: RecurrentState, slot: Int64, matrix: Bool, matrixCount: Int64, normaliser: Bool,
                     normaliserCount: Int64) throws {
    try s.checkSlot(Int(clamping: slot))
    let matrixFloats = s.numHeads * s.featureDim * s.valueDim
    let normaliserFloats = s.numHeads * s.featureDim
    if matrix && matrixCount != Int64(matrixFloats) {
        throw SlayError.shape("matrix_count is \(matrixCount); the slot's matrix [H, m, dv] has \(matrixFloats) floats")
    }
    if normaliser && normaliserCount != Int64(normaliserFloats) {
        throw SlayError.shape("normaliser_count is \(normaliserCount); the slot's normaliser [H, m] has \(normaliserFloats) floats")
    }
}
