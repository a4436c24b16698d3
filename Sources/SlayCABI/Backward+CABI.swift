import CSlay
import SlayCore

private let backwardParamsSize = MemoryLayout<slay_attention_backward_params>.size

/// Bytes of the first published slay_attention_backward_params (up to d_params_count): older
/// callers pass this size and get NULL for every later field (d_beta).
private let firstBackwardParamsSize = MemoryLayout<slay_attention_backward_params>.offset(of: \slay_attention_backward_params.d_beta)!

/// Reads slay_attention_backward_params of any published size (struct_size versioning).
private func readBackwardParams(_ pointer: UnsafePointer<slay_attention_backward_params>) throws -> slay_attention_backward_params {
    let size = Int(UnsafeRawPointer(pointer).load(as: UInt32.self))
    if size == backwardParamsSize { return pointer.pointee }
    guard size <= backwardParamsSize else {
        throw SlayError(.versionMismatch, "params.struct_size is \(size) but this libslay knows \(backwardParamsSize) bytes; the caller was built against a newer slay.h")
    }
    guard size == firstBackwardParamsSize else {
        throw SlayError.invalid("params.struct_size is \(size); expected \(backwardParamsSize) (or \(firstBackwardParamsSize), "
                                + "the first published size; call slay_attention_backward_params_init)")
    }
    var p = slay_attention_backward_params()
    withUnsafeMutableBytes(of: &p) { target in
        target.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: size))
    }
    p.struct_size = UInt32(backwardParamsSize)
    return p
}

@_cdecl("slay_attention_backward_params_init")
public func slay_attention_backward_params_init(_ params: UnsafeMutablePointer<slay_attention_backward_params>?) -> Int32 {
    guard let params else { return SlayStatus.invalidArgument.rawValue }
    var p = slay_attention_backward_params()
    p.struct_size = UInt32(backwardParamsSize)
    params.pointee = p
    return SlayStatus.ok.rawValue
}

/// The tensors of a backward call, validated: inputs, then outputs, which must overlap neither
/// each other nor any input (dout and the options' tensors included).
private struct BackwardArguments {
    var inputs: [TensorArgument] = []
    var outputs: [TensorArgument] = []

    /// `halfPrecision`: F16 / BF16 accepted (q, k, v, dout, dq, dk, dv: read and written through
    /// the row gathers and scatters, fp32 arithmetic); the other tensors are fp32 only.
    mutating func input(_ pointer: UnsafePointer<slay_tensor>?, _ name: String, rank: Int,
                        halfPrecision: Bool = false) throws -> TensorView? {
        guard pointer != nil else { return nil }
        let argument = try TensorArgument(pointer, name: name, rank: rank, isOutput: false, halfPrecision: halfPrecision)
        inputs.append(argument)
        return argument.view
    }

    mutating func output(_ pointer: UnsafePointer<slay_tensor>?, _ name: String, rank: Int,
                         halfPrecision: Bool = false) throws -> TensorView? {
        guard pointer != nil else { return nil }
        let argument = try TensorArgument(pointer, name: name, rank: rank, isOutput: true, halfPrecision: halfPrecision)
        outputs.append(argument)
        return argument.view
    }

    func checkOverlaps(tokens: TokenArguments, parameters: UnsafeMutablePointer<Float>?, parameterCount: Int,
                       arrays: [(UnsafeRawPointer?, Int, String)]) throws {
        for (index, output) in outputs.enumerated() {
            try TensorArgument.checkNoOverlap(output: output, inputs: inputs)
            try tokens.checkNoOverlap(output: output)
            for other in outputs[(index + 1)...] where output.overlaps(other) {
                throw SlayError.layout("\(output.name) overlaps \(other.name); gradient outputs must not share memory")
            }
            try TensorArgument.checkNoOverlap(output: output, array: parameters.map(UnsafeRawPointer.init),
                                              bytes: parameterCount * MemoryLayout<Float>.stride, name: "d_params")
            for (array, bytes, name) in arrays {
                try TensorArgument.checkNoOverlap(output: output, array: array, bytes: bytes, name: name)
            }
        }
    }
}

@_cdecl("slay_linear_attention_backward")
public func slay_linear_attention_backward(_ fm: OpaquePointer?, _ q: UnsafePointer<slay_tensor>?,
                                           _ k: UnsafePointer<slay_tensor>?, _ v: UnsafePointer<slay_tensor>?,
                                           _ dout: UnsafePointer<slay_tensor>?,
                                           _ options: UnsafePointer<slay_attention_options>?,
                                           _ params: UnsafePointer<slay_attention_backward_params>?,
                                           _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let (settings, tokens) = try linearAttentionOptions(options, keyHeads: handle.map.numHeads)
        let p = try readBackwardParams(try require(params, "params"))
        var arguments = BackwardArguments()
        let query = try arguments.input(try require(q, "q"), "q", rank: 4, halfPrecision: true)!
        let key = try arguments.input(try require(k, "k"), "k", rank: 4, halfPrecision: true)!
        let value = try arguments.input(try require(v, "v"), "v", rank: 4, halfPrecision: true)!
        let outputGradient = try arguments.input(try require(dout, "dout"), "dout", rank: 4, halfPrecision: true)!
        var spans: HeapArray<SequenceSpan>?
        var sequences = query.shape[0]
        if let cu = p.cu_seqlens {
            sequences = try sequenceCount(p.num_seqs)
            spans = try SequenceSpan.packed(offsets: UnsafeBufferPointer(start: cu, count: sequences + 1), total: key.shape[1])
        } else if p.num_seqs != 0 && p.num_seqs != Int64(sequences) {
            throw SlayError.shape("params.num_seqs is \(p.num_seqs) but q has B = \(sequences) (padded batch without cu_seqlens)")
        }
        let positions = try p.positions.map { pointer in
            try HeapArray<Int>(UnsafeBufferPointer(start: pointer, count: sequences).lazy.map { Int($0) }, what: "params.positions")
        }
        var request = AttentionGradientRequest(dout: outputGradient, spans: spans)
        request.initialState = try arguments.input(p.initial_state, "params.initial_state", rank: 4)
        request.initialNormaliser = try arguments.input(p.initial_normaliser, "params.initial_normaliser", rank: 3)
        request.finalStateGradient = try arguments.input(p.d_final_state, "params.d_final_state", rank: 4)
        request.finalNormaliserGradient = try arguments.input(p.d_final_normaliser, "params.d_final_normaliser", rank: 3)
        request.dq = try arguments.output(p.dq, "params.dq", rank: 4, halfPrecision: true)
        request.dk = try arguments.output(p.dk, "params.dk", rank: 4, halfPrecision: true)
        request.dv = try arguments.output(p.dv, "params.dv", rank: 4, halfPrecision: true)
        // [B, T, Hk, m] or, for a per-head log_decay, [B, T, Hk] (SlayCore checks it against options.log_decay).
        let decayRank = p.d_log_decay.map { $0.pointee.ndim == 3 ? 3 : 4 } ?? 4
        request.logDecay = try arguments.output(p.d_log_decay, "params.d_log_decay", rank: decayRank)
        request.queryGateLogits = try arguments.output(p.d_query_gate_logits, "params.d_query_gate_logits", rank: 3)
        request.keyGateLogits = try arguments.output(p.d_key_gate_logits, "params.d_key_gate_logits", rank: 3)
        request.initialStateGradient = try arguments.output(p.d_initial_state, "params.d_initial_state", rank: 4)
        request.initialNormaliserGradient = try arguments.output(p.d_initial_normaliser, "params.d_initial_normaliser", rank: 3)
        request.beta = try arguments.output(p.d_beta, "params.d_beta", rank: 3)
        guard p.d_params_count >= 0 && p.d_params_count <= Int64(Int32.max) else {
            throw SlayError.shape("params.d_params_count is \(p.d_params_count)")
        }
        request.parameters = p.d_params
        request.parameterCount = Int(p.d_params_count)
        let intBytes = MemoryLayout<Int64>.stride
        try arguments.checkOverlaps(tokens: tokens, parameters: p.d_params, parameterCount: Int(p.d_params_count), arrays: [
            (p.cu_seqlens.map(UnsafeRawPointer.init), spans == nil ? 0 : (sequences + 1) * intBytes, "params.cu_seqlens"),
            (p.positions.map(UnsafeRawPointer.init), p.positions == nil ? 0 : sequences * intBytes, "params.positions"),
        ])
        if let parameters = p.d_params, p.d_params_count > 0 {
            // d_params itself must not alias any input tensor either.
            let first = UInt(bitPattern: parameters)
            let end = first + UInt(p.d_params_count) * UInt(MemoryLayout<Float>.stride)
            for input in arguments.inputs where first < input.endByte && input.firstByte < end {
                throw SlayError.layout("params.d_params overlaps input \(input.name); outputs must not alias inputs")
            }
        }
        try LinearAttentionBackward.run(map: handle.map, q: query, k: key, v: value, options: settings, request: request,
                                        positions: positions)
    }
}
