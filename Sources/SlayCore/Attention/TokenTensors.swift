/// Checks of the optional per-token inputs of an attention call (log decay, SLA gate logits, the
/// delta rule's β): they are read in place from the caller's tensors, so their shape and every
/// value are checked before any output or state is written. No allocation unless a check fails
/// (decode steps).
enum TokenTensors {
    /// `view` must have rank `rank` and extents `extents[0..<rank]`; `layout` names the axes. It is
    /// an autoclosure because the interpolated layout strings allocate, and a decode step that
    /// passes its checks must not.
    static func checkShape(_ view: TensorView, _ name: String, rank: Int, extents: SIMD4<Int>,
                           layout: @autoclosure () -> String) throws {
        var matches = view.rank == rank
        for axis in 0..<rank where matches { matches = view.extents[axis] == extents[axis] }
        guard matches else {
            throw SlayError.shape("\(name) has shape \(view.shape); expected \((0..<rank).map { extents[$0] }) \(layout())")
        }
    }

    /// q [lead…, Hq, d], k [lead…, Hk, d], v [lead…, Hk, dv] and out [lead…, Hq, dv] (nil ones
    /// are skipped), `lead` being the first rank − 2 extents of k (else q): rank 4 for sequences,
    /// 3 for steps, with Hq a multiple of Hk. Allocates only to report an error. Returns Hq.
    static func checkShapes(q: TensorView?, k: TensorView?, v: TensorView?, out: TensorView?, rank: Int, keyHeads: Int,
                            headDim: Int, valueDim: Int) throws -> Int {
        let lead = (k ?? q)!.extents
        let hq = q?.extents[rank - 2] ?? keyHeads
        func expect(_ view: TensorView?, _ name: String, _ heads: Int, _ width: Int) throws {
            guard let view else { return }
            var extents = lead
            (extents[rank - 2], extents[rank - 1]) = (heads, width)
            try checkShape(view, name, rank: rank, extents: extents, layout: rank == 4 ? "[B, T, H, D]" : "[N, H, D]")
        }
        try expect(k, "k", keyHeads, headDim)
        try expect(v, "v", keyHeads, valueDim)
        try expect(q, "q", hq, headDim)
        guard hq % keyHeads == 0 && hq <= SlayConfiguration.maximumDimension else {
            throw SlayError.shape("q has \(hq) heads; it needs a multiple of the \(keyHeads) key heads, at most \(SlayConfiguration.maximumDimension)")
        }
        try expect(out, "out", hq, valueDim)
        return hq
    }

    /// Every element must satisfy `isValid`; the first that does not is named with its index.
    static func checkValues(_ view: TensorView, _ name: String, rule: String, status: SlayStatus = .invalidArgument,
                            isValid: (Float) -> Bool) throws {
        let (e, s) = (view.extents, view.steps)
        // Rows along the last axis (unused axes have extent 1).
        for line in 0..<(e[0] * e[1] * e[2]) {
            let (a, b, c) = (line / (e[1] * e[2]), line / e[2] % e[1], line % e[2])
            let row = a * s[0] + b * s[1] + c * s[2]
            for d in 0..<e[3] where !isValid(view.load(row + d * s[3])) {
                let index = [a, b, c, d].prefix(view.rank).map(String.init).joined(separator: ", ")
                throw SlayError(status, "\(name)[\(index)] is \(view.load(row + d * s[3])); \(rule)")
            }
        }
    }

    /// q, k or v with check_finite: every element finite, else SLAY_ERR_NON_FINITE naming it.
    static func checkFinite(_ view: TensorView, _ name: String) throws {
        try checkValues(view, name, rule: "check_finite requires finite inputs", status: .nonFinite) { $0.isFinite }
    }

    /// γ, and shapes and values of the token tensors of a call with keys k and queries q (nil when
    /// the call has none), whose leading extents are [B, T] for sequences and [N] for steps. log α
    /// (g) must be finite and ≤ 0 (−∞ is refused so that sums of log α never meet +∞); gate logits
    /// finite (the softmax over heads is then defined). Returns log decay in its canonical view (a
    /// per-head tensor broadcast over the m channels by a zero stride) and whether it came per head.
    static func check(_ o: LinearAttentionOptions, map: FeatureMap, q: TensorView?, k: TensorView?, queryHeads: Int,
                      mode: AttentionMode) throws -> (logDecay: TensorView?, perHead: Bool) {
        if mode == .bidirectional && (o.logDecay != nil || o.decay.isActive) {
            throw SlayError.invalid("\(o.decay.isActive ? "decay" : "log_decay") needs causal attention (set causal = 1)")
        }
        if o.beta != nil && o.update != .delta {
            throw SlayError.invalid("beta is the delta rule's step size; it needs update = SLAY_UPDATE_DELTA")
        }
        try o.decay.validate(heads: map.numHeads)
        guard let tokens = k ?? q else { return (nil, false) }
        let (h, leading) = (map.numHeads, tokens.rank - 2)
        let lead = leading == 2 ? "[B, T, " : "[N, "
        // [lead…, heads, channels]; axes past a check's rank are not compared. Not variadic: a
        // variadic argument is an Array, and decode steps must not allocate.
        func extents(_ tokens: TensorView, _ heads: Int, _ channels: Int = 1) -> SIMD4<Int> {
            var e = SIMD4<Int>(repeating: channels)
            for axis in 0..<leading { e[axis] = tokens.extents[axis] }
            e[leading] = heads
            return e
        }
        // A per-head tensor [lead…, heads] of the call's keys or queries, every value valid.
        func checkHeads(_ view: TensorView?, _ name: String, _ tokens: TensorView, _ heads: Int, _ axis: String,
                        rule: String, isValid: (Float) -> Bool) throws {
            guard let view else { return }
            try checkShape(view, name, rank: leading + 1, extents: extents(tokens, heads), layout: "\(lead)\(axis)]")
            try checkValues(view, name, rule: rule, isValid: isValid)
        }
        var (logDecay, perHead): (TensorView?, Bool) = (nil, false)
        if let k {
            if let given = o.logDecay {
                perHead = given.rank == leading + 1
                try checkShape(given, "log_decay", rank: perHead ? leading + 1 : leading + 2,
                               extents: extents(k, h, map.featureDim), layout: perHead ? "\(lead)Hk] (per head)"
                                   : "\(lead)Hk, m] (m = the feature map's dim), or \(lead)Hk] per head")
                try checkValues(given, "log_decay", rule: "each log α (g) must be finite and <= 0") { $0.isFinite && $0 <= 0 }
                logDecay = perHead ? broadcast(given, leading: leading, over: map.featureDim) : given
            }
            try checkHeads(o.keyGateLogits, "key_gate_logits", k, h, "Hk", rule: "gate logits must be finite") { $0.isFinite }
            try checkHeads(o.beta, "beta", k, h, "Hk", rule: "each β must be in [0, 2]") { $0 >= 0 && $0 <= 2 }
        }
        if let q {
            try checkHeads(o.queryGateLogits, "query_gate_logits", q, queryHeads, "Hq",
                           rule: "gate logits must be finite") { $0.isFinite }
        }
        return (logDecay, perHead)
    }

    /// A [lead…, Hk] view as [lead…, Hk, m] with stride 0 over m.
    static func broadcast(_ view: TensorView, leading: Int, over m: Int) -> TensorView {
        var (extents, steps) = (view.extents, view.steps)
        (extents[leading + 1], steps[leading + 1]) = (m, 0)
        return view.reshaped(extents: extents, steps: steps, rank: leading + 2)
    }
}
