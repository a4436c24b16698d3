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

    /// The checked token tensors: log decay in its canonical view (a per-head tensor broadcast over
    /// the m channels by a zero stride) and whether it came per head.
    struct Checked {
        var logDecay: TensorView?
        var perHead = false
    }

    /// γ, and shapes and values of the token tensors of a call whose keys have leading extents
    /// `keys` ([B, T] for sequences, [N] for steps: `leading` = 2 or 1) and whose queries have
    /// `queries`. log α (g) must be finite and ≤ 0 (−∞ is refused so that sums of log α never
    /// meet +∞); gate logits finite (the softmax over heads is then defined).
    static func check(_ o: LinearAttentionOptions, map: FeatureMap, keys: SIMD2<Int>?, queries: SIMD2<Int>?,
                      queryHeads: Int, leading: Int) throws -> Checked {
        if o.beta != nil && o.update != .delta {
            throw SlayError.invalid("beta is the delta rule's step size; it needs update = SLAY_UPDATE_DELTA")
        }
        try o.decay.validate(heads: map.numHeads)
        let h = map.numHeads
        let lead = leading == 2 ? "[B, T, " : "[N, "
        // Not variadic: a variadic argument is an Array, and decode steps must not allocate.
        func extents(_ outer: SIMD2<Int>, _ heads: Int, _ channels: Int? = nil) -> SIMD4<Int> {
            var e = SIMD4<Int>(repeating: 1)
            for axis in 0..<leading { e[axis] = outer[axis] }
            e[leading] = heads
            if let channels { e[leading + 1] = channels }
            return e
        }
        // A per-head tensor [lead…, heads] of the call's keys or queries, every value valid.
        func checkHeads(_ view: TensorView?, _ name: String, _ outer: SIMD2<Int>, _ heads: Int, _ axis: String,
                        rule: String, isValid: (Float) -> Bool) throws {
            guard let view else { return }
            try checkShape(view, name, rank: leading + 1, extents: extents(outer, heads), layout: "\(lead)\(axis)]")
            try checkValues(view, name, rule: rule, isValid: isValid)
        }
        var checked = Checked()
        if let keys {
            if let logDecay = o.logDecay {
                checked.perHead = logDecay.rank == leading + 1
                if checked.perHead {
                    try checkShape(logDecay, "log_decay", rank: leading + 1, extents: extents(keys, h), layout: "\(lead)Hk] (per head)")
                } else {
                    try checkShape(logDecay, "log_decay", rank: leading + 2, extents: extents(keys, h, map.featureDim),
                                   layout: "\(lead)Hk, m] (m = the feature map's dim), or \(lead)Hk] per head")
                }
                try checkValues(logDecay, "log_decay", rule: "each log α (g) must be finite and <= 0") { $0.isFinite && $0 <= 0 }
                checked.logDecay = checked.perHead ? broadcast(logDecay, leading: leading, over: map.featureDim) : logDecay
            }
            try checkHeads(o.keyGateLogits, "key_gate_logits", keys, h, "Hk",
                           rule: "gate logits must be finite") { $0.isFinite }
            try checkHeads(o.beta, "beta", keys, h, "Hk", rule: "each β must be in [0, 2]") { $0 >= 0 && $0 <= 2 }
        }
        if let queries {
            try checkHeads(o.queryGateLogits, "query_gate_logits", queries, queryHeads, "Hq",
                           rule: "gate logits must be finite") { $0.isFinite }
        }
        return checked
    }

    /// Sequence calls: q [B, T, Hq, d] and k [B, T, Hk, d].
    static func check(_ o: LinearAttentionOptions, map: FeatureMap, q: TensorView?, k: TensorView?, queryHeads: Int,
                      mode: AttentionMode) throws -> Checked {
        if mode == .bidirectional && (o.logDecay != nil || o.decay.isActive) {
            throw SlayError.invalid("\(o.decay.isActive ? "decay" : "log_decay") needs causal attention (set causal = 1)")
        }
        let keys = mode == .query ? nil : k.map { SIMD2($0.extents[0], $0.extents[1]) }
        let queries = q.map { SIMD2($0.extents[0], $0.extents[1]) }
        return try check(o, map: map, keys: keys, queries: queries, queryHeads: queryHeads, leading: 2)
    }

    /// A [lead…, Hk] view as [lead…, Hk, m] with stride 0 over m.
    static func broadcast(_ view: TensorView, leading: Int, over m: Int) -> TensorView {
        var extents = view.extents
        var steps = view.steps
        extents[leading + 1] = m
        steps[leading + 1] = 0
        return view.reshaped(extents: extents, steps: steps, rank: leading + 2)
    }
}
