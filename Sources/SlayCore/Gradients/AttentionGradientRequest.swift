/// What a backward call reads besides q, k, v and the forward's options, and where it writes.
///
/// Shapes (N sequences: B, or the cu_seqlens count; Hk key heads; m the map's feature dim):
/// - dout [B, T, Hq, dv] (the gradient of the forward's output);
/// - initialState S0 [N, Hk, m, dv] and initialNormaliser z0 [N, Hk, m] (nil: zeros);
/// - finalStateGradient dS_T [N, Hk, m, dv] and finalNormaliserGradient dz_T [N, Hk, m] (nil: 0);
/// - every gradient output is optional (nil: not computed) and has the shape of what it is the
///   gradient of: dq, dk, dv like q, k, v; logDecay like options.logDecay; gate logits like the
///   options' logits; initialState / initialNormaliser like S0 / z0; parameters the flat
///   `FeatureMapParameterLayout` of the map (`parameterCount` floats); beta (d_beta) like
///   options.beta [B, T, Hk] (the delta rule).
public struct AttentionGradientRequest: @unchecked Sendable {
    public var dout: TensorView
    public var spans: HeapArray<SequenceSpan>?
    public var initialState: TensorView?
    public var initialNormaliser: TensorView?
    public var finalStateGradient: TensorView?
    public var finalNormaliserGradient: TensorView?

    public var dq: TensorView?
    public var dk: TensorView?
    public var dv: TensorView?
    public var logDecay: TensorView?
    public var queryGateLogits: TensorView?
    public var keyGateLogits: TensorView?
    public var initialStateGradient: TensorView?
    public var initialNormaliserGradient: TensorView?
    public var parameters: UnsafeMutablePointer<Float>?
    public var parameterCount: Int
    /// ∂L/∂β of the delta rule, [B, T, Hk] like options.beta.
    public var beta: TensorView?

    public init(dout: TensorView, spans: HeapArray<SequenceSpan>? = nil, initialState: TensorView? = nil,
                initialNormaliser: TensorView? = nil, finalStateGradient: TensorView? = nil,
                finalNormaliserGradient: TensorView? = nil, dq: TensorView? = nil, dk: TensorView? = nil,
                dv: TensorView? = nil, logDecay: TensorView? = nil, queryGateLogits: TensorView? = nil,
                keyGateLogits: TensorView? = nil, initialStateGradient: TensorView? = nil,
                initialNormaliserGradient: TensorView? = nil, parameters: UnsafeMutablePointer<Float>? = nil,
                parameterCount: Int = 0, beta: TensorView? = nil) {
        self.dout = dout
        self.spans = spans
        self.initialState = initialState
        self.initialNormaliser = initialNormaliser
        self.finalStateGradient = finalStateGradient
        self.finalNormaliserGradient = finalNormaliserGradient
        self.dq = dq
        self.dk = dk
        self.dv = dv
        self.logDecay = logDecay
        self.queryGateLogits = queryGateLogits
        self.keyGateLogits = keyGateLogits
        self.initialStateGradient = initialStateGradient
        self.initialNormaliserGradient = initialNormaliserGradient
        self.parameters = parameters
        self.parameterCount = parameterCount
        self.beta = beta
    }

    /// Checks every shape against the call; `options` are the forward's (already validated).
    func validate(map: FeatureMap, q: TensorView, k: TensorView, v: TensorView, shapes: AttentionShapes,
                  options: LinearAttentionOptions, sequences: Int, perHeadDecay: Bool) throws {
        let (b, t, hq, hk, d, dv) = (shapes.batch, shapes.length, shapes.queryHeads, shapes.keyHeads, shapes.headDim,
                                     shapes.valueDim)
        let m = map.featureDim
        func expect(_ view: TensorView?, _ name: String, _ shape: [Int], _ layout: String) throws {
            guard let view else { return }
            guard view.shape == shape else {
                throw SlayError.shape("\(name) has shape \(view.shape); expected \(shape) \(layout)")
            }
        }
        try expect(dq, "dq", [b, t, hq, d], "[B, T, Hq, d] like q")
        try expect(dk, "dk", [b, t, hk, d], "[B, T, Hk, d] like k")
        try expect(self.dv, "dv", [b, t, hk, dv], "[B, T, Hk, dv] like v")
        try expect(initialState, "initial_state", [sequences, hk, m, dv], "[N, Hk, m, dv]")
        try expect(initialNormaliser, "initial_normaliser", [sequences, hk, m], "[N, Hk, m]")
        try expect(finalStateGradient, "d_final_state", [sequences, hk, m, dv], "[N, Hk, m, dv]")
        try expect(finalNormaliserGradient, "d_final_normaliser", [sequences, hk, m], "[N, Hk, m]")
        try expect(initialStateGradient, "d_initial_state", [sequences, hk, m, dv], "[N, Hk, m, dv]")
        try expect(initialNormaliserGradient, "d_initial_normaliser", [sequences, hk, m], "[N, Hk, m]")
        if perHeadDecay {
            try expect(logDecay, "d_log_decay", [b, t, hk], "[B, T, Hk] like options.log_decay (per head)")
        } else {
            try expect(logDecay, "d_log_decay", [b, t, hk, m], "[B, T, Hk, m] like options.log_decay")
        }
        try expect(queryGateLogits, "d_query_gate_logits", [b, t, hq], "[B, T, Hq] like options.query_gate_logits")
        try expect(keyGateLogits, "d_key_gate_logits", [b, t, hk], "[B, T, Hk] like options.key_gate_logits")
        if logDecay != nil && options.logDecay == nil {
            throw SlayError.invalid("d_log_decay is given but options.log_decay is not")
        }
        if queryGateLogits != nil && options.queryGateLogits == nil {
            throw SlayError.invalid("d_query_gate_logits is given but options.query_gate_logits is not")
        }
        if keyGateLogits != nil && options.keyGateLogits == nil {
            throw SlayError.invalid("d_key_gate_logits is given but options.key_gate_logits is not")
        }
        try expect(beta, "d_beta", [b, t, hk], "[B, T, Hk] like options.beta")
        if beta != nil && options.beta == nil {
            throw SlayError.invalid("d_beta is given but options.beta is not (the delta rule's β, update = SLAY_UPDATE_DELTA)")
        }
        if let state = initialState {
            try TokenTensors.checkValues(state, "initial_state", rule: "states must be finite") { $0.isFinite }
        }
        if let normaliser = initialNormaliser {
            try TokenTensors.checkValues(normaliser, "initial_normaliser", rule: "states must be finite") { $0.isFinite }
        }
        if parameters != nil || parameterCount != 0 {
            let layout = FeatureMapParameterLayout(map)
            guard parameters != nil else { throw SlayError.invalid("d_params is NULL but d_params_count is \(parameterCount)") }
            guard parameterCount == layout.total else {
                throw SlayError.shape("d_params has \(parameterCount) floats; the map's parameters (\(layout.names.joined(separator: ", "))) have \(layout.total)")
            }
        }
    }

    /// Whether any output needs the parameters' gradient.
    var wantsParameters: Bool { parameters != nil && parameterCount > 0 }
}
