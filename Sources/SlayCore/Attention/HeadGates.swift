/// SLA head-level softmax gates (docs/math.md §3): per token, g_h = softmax over the heads of the
/// token's logits, and φ(q_{t,h}) ← g^Q_{t,h} φ(q_{t,h}), φ(k_{t,h}) ← g^K_{t,h} φ(k_{t,h}).
/// Gates are per-token scalars, so they fold into the feature rows and the chunked algorithm is
/// unchanged. Each (token, head) recomputes its softmax from the logits in place (O(H), no
/// buffer), in the same order whichever thread or column block asks, so results stay bitwise
/// independent of the thread count.
enum HeadGates {
    /// softmax over `heads` logits (elements row, row + stride, … of `logits`, any element type)
    /// evaluated at `head`, in double.
    @inline(__always)
    static func gate(_ logits: TensorView, row: Int, stride: Int, heads: Int, head: Int) -> Float {
        gate(heads: heads, head: head) { logits.load(row + $0 * stride) }
    }

    /// The same over fp32 logits row[0], row[stride], … (the backward's gate gradients).
    @inline(__always)
    static func gate(_ row: UnsafePointer<Float>, stride: Int, heads: Int, head: Int) -> Float {
        gate(heads: heads, head: head) { row[$0 * stride] }
    }

    @inline(__always)
    static func gate(heads: Int, head: Int, logit: (Int) -> Float) -> Float {
        var top = -Double.infinity
        for h in 0..<heads { top = max(top, Double(logit(h))) }
        var sum = 0.0
        for h in 0..<heads { sum += exp(Double(logit(h)) - top) }
        return Float(exp(Double(logit(head)) - top) / sum)
    }

    /// Gates of rows t0 ..< t0 + rows of batch entry `batch` at `head`, from logits [B, T, H].
    static func fill(_ logits: TensorView, batch: Int, t0: Int, rows: Int, head: Int, into gates: UnsafeMutablePointer<Float>) {
        let base = batch * logits.steps[0]
        for i in 0..<rows {
            gates[i] = gate(logits, row: base + (t0 + i) * logits.steps[1], stride: logits.steps[2], heads: logits.extents[2],
                            head: head)
        }
    }

    /// rows × width block ← each row i times gates[i].
    @inline(__always)
    static func scaleRows(_ block: UnsafeMutablePointer<Float>, rows: Int, width: Int, by gates: UnsafePointer<Float>) {
        for i in 0..<rows {
            let row = block + i * width
            let g = gates[i]
            for f in 0..<width { row[f] *= g }
        }
    }
}
