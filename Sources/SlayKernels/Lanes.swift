// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// The lane arithmetic every kernel shares, written once so both builds and every kernel round the
/// same way.
enum Lanes {
    /// a·b + c: fused on AVX2/FMA; `a * b + c` on the baseline, where the fused form would be
    /// scalarised (no FMA instruction).
    @inline(__always)
    static func fma(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
        #if SLAY_AVX2
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    /// The 8 lanes summed in a fixed order: halves, then quarters, then the last pair.
    @inline(__always)
    static func sum(_ v: SIMD8<Float>) -> Float {
        let half = v.lowHalf + v.highHalf
        let quarter = half.lowHalf + half.highHalf
        return quarter[0] + quarter[1]
    }
}
