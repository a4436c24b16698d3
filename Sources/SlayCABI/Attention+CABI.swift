import CSlay
import SlayCore

private let attentionOptionsSize = MemoryLayout<slay_attention_options>.size
private let exactOptionsSize = MemoryLayout<slay_exact_attention_options>.size

@_cdecl("slay_attention_options_init")
public func slay_attention_options_init(_ options: UnsafeMutablePointer<slay_attention_options>?) -> Int32 {
    guard let options else { return SlayStatus.invalidArgument.rawValue }
    var o = slay_attention_options()
    o.struct_size = UInt32(attentionOptionsSize)
    o.causal = 1
    o.delta = 1e-6
    o.chunk_size = 0
    o.n_threads = 1
    o.ith = 0
    o.nth = 1
    o.denominator = SLAY_DENOMINATOR_ADD
    o.normalize = 1
    o.decay = nil
    o.log_decay = nil
    o.query_gate_logits = nil
    o.key_gate_logits = nil
    o.update = SLAY_UPDATE_ADD
    o.qk_l2norm = 0
    o.beta = nil
    o.check_finite = 0
    options.pointee = o
    return SlayStatus.ok.rawValue
}

@_cdecl("slay_exact_attention_options_init")
public func slay_exact_attention_options_init(_ options: UnsafeMutablePointer<slay_exact_attention_options>?) -> Int32 {
    guard let options else { return SlayStatus.invalidArgument.rawValue }
    var o = slay_exact_attention_options()
    o.struct_size = UInt32(exactOptionsSize)
    o.kernel = SLAY_EXACT_SOFTMAX
    o.causal = 1
    o.scale = 0
    o.eps = 1e-6
    o.delta = 1e-6
    o.n_threads = 1
    options.pointee = o
    return SlayStatus.ok.rawValue
}

/// q, k, v, out validated as [B, T, H, D] tensors with out aliasing none of the inputs (the
/// options' tensors included).
private func attentionTensors(_ q: UnsafePointer<slay_tensor>?, _ k: UnsafePointer<slay_tensor>?,
                              _ v: UnsafePointer<slay_tensor>?, _ out: UnsafePointer<slay_tensor>?,
                              tokens: TokenArguments = TokenArguments())
    throws -> (TensorView, TensorView, TensorView, TensorView) {
    let query = try TensorArgument(q, name: "q", rank: 4, isOutput: false, halfPrecision: true)
    let key = try TensorArgument(k, name: "k", rank: 4, isOutput: false, halfPrecision: true)
    let value = try TensorArgument(v, name: "v", rank: 4, isOutput: false, halfPrecision: true)
    let output = try TensorArgument(out, name: "out", rank: 4, isOutput: true, halfPrecision: true)
    try TensorArgument.checkNoOverlap(output: output, inputs: [query, key, value])
    try tokens.checkNoOverlap(output: output)
    return (query.view, key.view, value.view, output.view)
}

/// The optional tensors of slay_attention_options (log decay, SLA gate logits, β), validated as
/// tensors here; SlayCore checks their shapes against the call and every value.
struct TokenArguments {
    var logDecay: TensorArgument?
    var queryGates: TensorArgument?
    var keyGates: TensorArgument?
    var beta: TensorArgument?

    /// Which tensors a call reads, and their ranks: sequence calls [B, T, …], steps [N, …].
    enum Call {
        case sequences
        case queries
        case step
    }

    init() {}

    /// `halfPrecision`: the tensors may be F16 / BF16 (the forward calls; the backward reads them
    /// as fp32 only).
    init(_ o: slay_attention_options, call: Call, keyHeads: Int, halfPrecision: Bool = false) throws {
        decay = o.decay
        self.keyHeads = keyHeads
        let rank = call == .step ? 3 : 4
        if call != .queries, let pointer = o.log_decay {
            // Per channel [.., Hk, m] or per head [.., Hk].
            let given = Int(pointer.pointee.ndim) == rank - 1 ? rank - 1 : rank
            logDecay = try TensorArgument(pointer, name: "options.log_decay", rank: given, isOutput: false, halfPrecision: halfPrecision)
        }
        if let pointer = o.query_gate_logits {
            queryGates = try TensorArgument(pointer, name: "options.query_gate_logits", rank: rank - 1, isOutput: false, halfPrecision: halfPrecision)
        }
        if call != .queries, let pointer = o.key_gate_logits {
            keyGates = try TensorArgument(pointer, name: "options.key_gate_logits", rank: rank - 1, isOutput: false, halfPrecision: halfPrecision)
        }
        if call != .queries, let pointer = o.beta {
            beta = try TensorArgument(pointer, name: "options.beta", rank: rank - 1, isOutput: false, halfPrecision: halfPrecision)
        }
    }

    /// options.decay: one γ per key head, read in place (null when absent).
    var decay: UnsafePointer<Float>?
    var keyHeads = 0

    /// Outputs must not alias these inputs either.
    func checkNoOverlap(output: TensorArgument) throws {
        try TensorArgument.checkNoOverlap(output: output, array: decay.map(UnsafeRawPointer.init),
                                          bytes: keyHeads * MemoryLayout<Float>.stride, name: "options.decay")
        if let logDecay { try TensorArgument.checkNoOverlap(output: output, input: logDecay) }
        if let queryGates { try TensorArgument.checkNoOverlap(output: output, input: queryGates) }
        if let keyGates { try TensorArgument.checkNoOverlap(output: output, input: keyGates) }
        if let beta { try TensorArgument.checkNoOverlap(output: output, input: beta) }
    }
}

/// Bytes of the first published slay_attention_options (up to key_gate_logits): older callers
/// pass this size and get the defaults of every later field.
private let firstAttentionOptionsSize = MemoryLayout<slay_attention_options>.offset(of: \slay_attention_options.update)!

/// Reads slay_attention_options of any published size (struct_size versioning).
private func readAttentionOptions(_ pointer: UnsafePointer<slay_attention_options>) throws -> slay_attention_options {
    let size = Int(UnsafeRawPointer(pointer).load(as: UInt32.self))
    if size == attentionOptionsSize { return pointer.pointee }
    guard size <= attentionOptionsSize else {
        throw SlayError(.versionMismatch, "options.struct_size is \(size) but this libslay knows \(attentionOptionsSize) bytes; the caller was built against a newer slay.h")
    }
    guard size == firstAttentionOptionsSize else {
        throw SlayError.invalid("options.struct_size is \(size); expected \(attentionOptionsSize) (or \(firstAttentionOptionsSize), "
                                + "the first published size; call slay_attention_options_init)")
    }
    var o = slay_attention_options()
    _ = slay_attention_options_init(&o)
    withUnsafeMutableBytes(of: &o) { target in
        target.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: size))
    }
    o.struct_size = UInt32(attentionOptionsSize)
    return o
}

/// The options struct as SlayCore's options (converted, not range-checked: the driver validates
/// every value once) and the tensors it points to.
func linearAttentionOptions(_ pointer: UnsafePointer<slay_attention_options>?, keyHeads: Int,
                            call: TokenArguments.Call = .sequences,
                            halfPrecision: Bool = false) throws -> (LinearAttentionOptions, TokenArguments) {
    guard let pointer else { return (LinearAttentionOptions.defaults, TokenArguments()) }
    let o = try readAttentionOptions(pointer)
    let tokens = try TokenArguments(o, call: call, keyHeads: keyHeads, halfPrecision: halfPrecision)
    guard let update = UpdateRule(rawValue: o.update) else {
        throw SlayError.invalid("options.update is \(o.update); expected SLAY_UPDATE_ADD (0) or SLAY_UPDATE_DELTA (1)")
    }
    var options = LinearAttentionOptions.defaults
    options.causal = try flag(o.causal, "options.causal")
    (options.delta, options.chunkSize, options.nThreads) = (o.delta, Int(o.chunk_size), Int(o.n_threads))
    (options.ith, options.nth) = (Int(o.ith), Int(o.nth))
    options.denominator = try denominatorMode(o.denominator)
    options.normalize = try flag(o.normalize, "options.normalize")
    options.decay = HeadDecay(pointer: o.decay, count: keyHeads)
    (options.logDecay, options.queryGateLogits) = (tokens.logDecay?.view, tokens.queryGates?.view)
    (options.keyGateLogits, options.update, options.beta) = (tokens.keyGates?.view, update, tokens.beta?.view)
    options.qkL2Norm = try flag(o.qk_l2norm, "options.qk_l2norm")
    options.checkFinite = try flag(o.check_finite, "options.check_finite")
    return (options, tokens)
}

func denominatorMode(_ value: Int32) throws -> DenominatorMode {
    guard let mode = DenominatorMode(rawValue: value) else {
        throw SlayError.invalid("options.denominator is \(value); expected SLAY_DENOMINATOR_ADD (0) or SLAY_DENOMINATOR_CLAMP (1)")
    }
    return mode
}

@_cdecl("slay_linear_attention")
public func slay_linear_attention(_ fm: OpaquePointer?, _ q: UnsafePointer<slay_tensor>?,
                                  _ k: UnsafePointer<slay_tensor>?, _ v: UnsafePointer<slay_tensor>?,
                                  _ out: UnsafePointer<slay_tensor>?,
                                  _ options: UnsafePointer<slay_attention_options>?,
                                  _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let (settings, tokens) = try linearAttentionOptions(options, keyHeads: handle.map.numHeads, halfPrecision: true)
        let (query, key, value, output) = try attentionTensors(q, k, v, out, tokens: tokens)
        try LinearAttention.run(map: handle.map, q: query, k: key, v: value, out: output, options: settings)
    }
}

@_cdecl("slay_exact_attention")
public func slay_exact_attention(_ q: UnsafePointer<slay_tensor>?, _ k: UnsafePointer<slay_tensor>?,
                                 _ v: UnsafePointer<slay_tensor>?, _ out: UnsafePointer<slay_tensor>?,
                                 _ options: UnsafePointer<slay_exact_attention_options>?,
                                 _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        var settings = ExactAttentionOptions()
        if let options {
            let o = try readVersioned(options, name: "options")
            guard let kernel = ExactKernel(rawValue: o.kernel) else {
                throw SlayError.invalid("options.kernel is \(o.kernel); expected SLAY_EXACT_SOFTMAX (1), SLAY_EXACT_YAT_SPHERICAL (2) or SLAY_EXACT_YAT (3)")
            }
            guard o.scale.isFinite else { throw SlayError.invalid("options.scale must be finite, got \(o.scale)") }
            settings = ExactAttentionOptions(kernel: kernel, causal: try flag(o.causal, "options.causal"),
                                             scale: o.scale == 0 ? nil : o.scale, eps: o.eps, delta: o.delta,
                                             nThreads: Int(o.n_threads))
        }
        try settings.validate()
        let (query, key, value, output) = try attentionTensors(q, k, v, out)
        try ExactAttention.run(q: query, k: key, v: value, out: output, options: settings)
    }
}

@_cdecl("slay_gauss_laguerre")
public func slay_gauss_laguerre(_ count: Int32, _ nodes: UnsafeMutablePointer<Double>?,
                                _ weights: UnsafeMutablePointer<Double>?,
                                _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        guard count >= 1 && Int(count) <= GaussLaguerreRule.maximumNodes else {
            throw SlayError.invalid("R must be in 1...\(GaussLaguerreRule.maximumNodes), got \(count)")
        }
        let nodeTarget = try require(nodes, "nodes")
        let weightTarget = try require(weights, "weights")
        let rule = try GaussLaguerreRule(count: Int(count))
        for r in 0..<Int(count) {
            nodeTarget[r] = rule.nodes[r]
            weightTarget[r] = rule.weights[r]
        }
    }
}
