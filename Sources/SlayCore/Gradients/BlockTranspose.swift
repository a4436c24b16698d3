/// Out-of-place matrix transposes for the backward's GEMM operands: the packed GEMM reads a
/// transposed B (unit row stride) through a scalar gather while it packs, on every call; one
/// transpose per chunk (or per state) lets the unpacked kernel read B's rows directly instead.
enum BlockTranspose {
    /// target[j · targetStride + i] = source[i · sourceStride + j] for i < rows, j < columns,
    /// in 4 × 4 tiles of 4-lane vectors (the remainders element by element).
    static func transpose(_ source: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int,
                          into target: UnsafeMutablePointer<Float>, targetStride: Int) {
        let (fullRows, fullColumns) = (rows & ~3, columns & ~3)
        var i = 0
        while i < fullRows {
            let (s0, s1, s2, s3) = (source + i * sourceStride, source + (i + 1) * sourceStride,
                                    source + (i + 2) * sourceStride, source + (i + 3) * sourceStride)
            var j = 0
            while j < fullColumns {
                let r0 = load4(s0 + j), r1 = load4(s1 + j), r2 = load4(s2 + j), r3 = load4(s3 + j)
                let t = target + j * targetStride + i
                store4(SIMD4(r0[0], r1[0], r2[0], r3[0]), t)
                store4(SIMD4(r0[1], r1[1], r2[1], r3[1]), t + targetStride)
                store4(SIMD4(r0[2], r1[2], r2[2], r3[2]), t + 2 * targetStride)
                store4(SIMD4(r0[3], r1[3], r2[3], r3[3]), t + 3 * targetStride)
                j += 4
            }
            for j in fullColumns..<columns {
                for r in 0..<4 { target[j * targetStride + i + r] = source[(i + r) * sourceStride + j] }
            }
            i += 4
        }
        for i in fullRows..<rows {
            for j in 0..<columns { target[j * targetStride + i] = source[i * sourceStride + j] }
        }
    }

    @inline(__always)
    static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
    }

    @inline(__always)
    static func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
    }
}
