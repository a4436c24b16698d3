// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// Products of small vectors that feature maps form per row: in SlayCore (baseline x86-64) these
/// loops ran as SSE halves, and for a decode step (one row per head) they cost as much as the
/// projections that feed them.
public enum VectorProducts {
    /// output[p·width + j] = scales[p] · row[j] for p < count, j < width: the rows of an outer
    /// product, each element one fp32 product (bitwise the same in both builds).
    public static func outer(_ scales: UnsafePointer<Float>, count: Int, _ row: UnsafePointer<Float>, width: Int,
                             output: UnsafeMutablePointer<Float>) {
        let vectors = width / 8
        if vectors == 2 {
            // The SLAY default (M = 16): both vectors of the row stay in registers.
            let (r0, r1) = (load8(row), load8(row + 8))
            for p in 0..<count {
                let s = SIMD8<Float>(repeating: scales[p])
                store8(s * r0, output + p * 16)
                store8(s * r1, output + p * 16 + 8)
            }
            return
        }
        for p in 0..<count {
            let s = scales[p]
            let target = output + p * width
            var j = 0
            while j + 8 <= width {
                store8(SIMD8<Float>(repeating: s) * load8(row + j), target + j)
                j += 8
            }
            while j < width {
                target[j] = s * row[j]
                j += 1
            }
        }
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}
