/// Checks of the optional per-token inputs of an attention call (GLA log decay, SLA gate logits):
/// they are read in place from the caller's tensors, so their shape and every value are checked
/// before any output or state is written. No allocation unless a check fails (decode steps).
enum TokenTensors {
    /// `view` must have rank `rank` and extents `extents[0..<rank]`; `layout` names the axes.
    static func checkShape(_ view: TensorView, _ name: String, rank: Int, extents: SIMD4<Int>, layout: String) throws {
        var matches = view.rank == rank
        for axis in 0..<rank where matches { matches = view.extents[axis] == extents[axis] }
        guard matches else {
            throw SlayError.shape("\(name) has shape \(view.shape); expected \((0..<rank).map { extents[$0] }) \(layout)")
        }
    }

    /// Every element must satisfy `isValid`; the first that does not is named with its index.
    static func checkValues(_ view: TensorView, _ name: String, rule: String, isValid: (Float) -> Bool) throws {
        let e = view.extents
        let s = view.steps
        for a in 0..<e[0] {
            for b in 0..<e[1] {
                for c in 0..<e[2] {
                    let row = view.base + a * s[0] + b * s[1] + c * s[2]
                    for d in 0..<e[3] where !isValid(row[d * s[3]]) {
                        let index = [a, b, c, d].prefix(view.rank).map(String.init).joined(separator: ", ")
                        throw SlayError.invalid("\(name)[\(index)] is \(row[d * s[3]]); \(rule)")
                    }
                }
            }
        }
    }

    /// log α: finite and ≤ 0 (α ∈ (0, 1]); −∞ is refused so that sums of log α stay finite or −∞
    /// without ever meeting +∞.
    static func checkLogDecay(_ view: TensorView, rank: Int, extents: SIMD4<Int>, layout: String) throws {
        try checkShape(view, "log_decay", rank: rank, extents: extents, layout: layout)
        try checkValues(view, "log_decay", rule: "each log α must be finite and <= 0") { $0.isFinite && $0 <= 0 }
    }

    /// Gate logits: finite (the softmax over heads is then well defined).
    static func checkGateLogits(_ view: TensorView, _ name: String, rank: Int, extents: SIMD4<Int>, layout: String) throws {
        try checkShape(view, name, rank: rank, extents: extents, layout: layout)
        try checkValues(view, name, rule: "gate logits must be finite") { $0.isFinite }
    }
}
