/// The dimensions of one attention call, checked once: q [B, T, Hq, d], k [B, T, Hk, d],
/// v [B, T, Hk, dv], out [B, T, Hq, dv], with Hq a multiple of Hk (grouped-query attention).
public struct AttentionShapes: Sendable, Equatable {
    public let batch: Int
    public let length: Int
    public let queryHeads: Int
    public let keyHeads: Int
    public let headDim: Int
    public let valueDim: Int

    public var group: Int { queryHeads / keyHeads }

    public init(q: TensorView, k: TensorView, v: TensorView, out: TensorView) throws {
        for (name, view) in [("q", q), ("k", k), ("v", v), ("out", out)] {
            guard view.rank == 4 else { throw SlayError.shape("\(name) must have 4 dimensions [B, T, H, D], got \(view.rank)") }
            if let bad = view.shape.firstIndex(where: { $0 < 1 }) {
                throw SlayError.shape("\(name) dimension \(bad) is \(view.extents[bad]); every extent must be >= 1")
            }
        }
        let (b, t, hq, d) = (q.extents[0], q.extents[1], q.extents[2], q.extents[3])
        let hk = k.extents[2]
        let dv = v.extents[3]
        func expect(_ name: String, _ view: TensorView, _ shape: [Int]) throws {
            guard view.shape == shape else {
                throw SlayError.shape("\(name) has shape \(view.shape), expected \(shape) [B, T, H, D] from q\(name == "k" ? "" : " and k/v")")
            }
        }
        try expect("k", k, [b, t, hk, d])
        try expect("v", v, [b, t, hk, dv])
        guard hq <= SlayConfiguration.maximumDimension else {
            throw SlayError.shape("q has \(hq) heads; at most \(SlayConfiguration.maximumDimension) are supported")
        }
        guard hq % hk == 0 else {
            throw SlayError.shape("q has \(hq) heads, not a multiple of k's \(hk) heads")
        }
        try expect("out", out, [b, t, hq, dv])
        self.batch = b
        self.length = t
        self.queryHeads = hq
        self.keyHeads = hk
        self.headDim = d
        self.valueDim = dv
    }
}
