/// Materialises features for a [B, T, H, d] tensor into [B, T, H, m]: the explicit form users
/// inspect or feed to their own code. Attention never calls this (it keeps features per chunk).
public enum FeatureMapApplication {
    static let blockRows = 64

    public static func apply(map: FeatureMap, role: FeatureRole, x: TensorView, out: TensorView) throws {
        guard x.rank == 4 && out.rank == 4 else {
            throw SlayError.shape("x and out must have 4 dimensions [B, T, H, D], got \(x.rank) and \(out.rank)")
        }
        let (b, t, h, d) = (x.extents[0], x.extents[1], x.extents[2], x.extents[3])
        guard d == map.headDim else { throw SlayError.shape("x has head_dim \(d), the feature map expects \(map.headDim)") }
        guard h == map.numHeads else { throw SlayError.shape("x has \(h) heads, the feature map has \(map.numHeads)") }
        let m = map.featureDim
        guard out.shape == [b, t, h, m] else {
            throw SlayError.shape("out has shape \(out.shape), expected \([b, t, h, m]) (m = feature dim)")
        }
        let rows = min(blockRows, t)
        let inputFloats = try CheckedSize.multiply(rows, d, what: "workspace")
        let featureFloats = try CheckedSize.multiply(rows, m, what: "workspace")
        let scratchFloats = map.scratchFloats(rows: rows)
        var total = ScratchBuffer.footprint(inputFloats)
        total = try CheckedSize.add(total, ScratchBuffer.footprint(featureFloats), what: "workspace")
        total = try CheckedSize.add(total, ScratchBuffer.footprint(scratchFloats), what: "workspace")
        let buffer = try ScratchBuffer(floats: total)
        var carver = ScratchCarver(buffer.pointer)
        let input = carver.take(inputFloats)
        let features = carver.take(featureFloats)
        let scratch = carver.take(scratchFloats)
        for batch in 0..<b {
            for head in 0..<h {
                var t0 = 0
                while t0 < t {
                    let count = min(rows, t - t0)
                    x.gatherRows(batch: batch, head: head, t0: t0, rows: count, into: input)
                    map.features(role: role, head: head, input: input, rows: count, firstPosition: t0, output: features,
                                 scratch: scratch)
                    out.scatterRows(batch: batch, head: head, t0: t0, rows: count, from: features)
                    t0 += count
                }
            }
        }
    }
}
