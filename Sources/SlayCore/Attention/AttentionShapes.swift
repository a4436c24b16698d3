/// The dimensions of one attention call, checked once: q [B, T, Hq, d], k [B, T, Hk, d],
/// v [B, T, Hk, dv], out [B, T, Hq, dv], with Hq a multiple of Hk (grouped-query attention).
public struct AttentionShapes: Sendable, Equatable {
    public let batch, length, queryHeads, keyHeads, headDim, valueDim: Int

    public var group: Int { queryHeads / keyHeads }

    public init(q: TensorView, k: TensorView, v: TensorView, out: TensorView) throws {
        for (name, view) in [("q", q), ("k", k), ("v", v), ("out", out)] {
            guard view.rank == 4 else { throw SlayError.shape("\(name) must have 4 dimensions [B, T, H, D], got \(view.rank)") }
            if let bad = view.shape.firstIndex(where: { $0 < 1 }) {
                throw SlayError.shape("\(name) dimension \(bad) is \(view.extents[bad]); every extent must be >= 1")
            }
        }
        (batch, length, keyHeads, headDim, valueDim) = (k.extents[0], k.extents[1], k.extents[2], k.extents[3], v.extents[3])
        queryHeads = try TokenTensors.checkShapes(q: q, k: k, v: v, out: out, rank: 4, keyHeads: keyHeads, headDim: headDim,
                                                  valueDim: valueDim)
    }
}
