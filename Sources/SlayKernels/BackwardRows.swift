// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// The row loops of the backward pass's chunks (SlayCore's Gradients), vectorised. Every element
/// gets exactly the arithmetic of the scalar loop it replaces, in the same order and without
/// fused multiply-adds, so results are bitwise those of the scalar loops in both builds.
public enum BackwardRows {
    /// sums[f] ← (…((sums[f] + w_0·x_0[f]) + w_1·x_1[f]) …) over the rows j < rows in order,
    /// x_j = x + j·rowStride; w_j = weights[j], or 1 when `weights` is nil (the row is added
    /// without a product, which 1·x equals bitwise). With `skipZero`, rows whose weight is 0 are
    /// left out. The sums stay in registers across the rows, 64 columns at a time.
    public static func addWeightedRows(_ x: UnsafePointer<Float>, rows: Int, rowStride: Int, width: Int,
                                       weights: UnsafePointer<Float>?, skipZero: Bool,
                                       into sums: UnsafeMutablePointer<Float>) {
        var f = 0
        while f + 64 <= width {
            var s = InlineArray<8, SIMD8<Float>>(repeating: SIMD8<Float>())
            for v in 0..<8 { s[v] = PackedGemm.load8(sums + f + 8 * v) }
            for j in 0..<rows {
                let row = x + j * rowStride + f
                if let weights {
                    let weight = weights[j]
                    if skipZero && weight == 0 { continue }
                    let lanes = SIMD8<Float>(repeating: weight)
                    for v in 0..<8 { s[v] = s[v] + lanes * PackedGemm.load8(row + 8 * v) }
                } else {
                    for v in 0..<8 { s[v] = s[v] + PackedGemm.load8(row + 8 * v) }
                }
            }
            for v in 0..<8 { PackedGemm.store8(s[v], sums + f + 8 * v) }
            f += 64
        }
        while f + 8 <= width {
            var s = PackedGemm.load8(sums + f)
            for j in 0..<rows {
                let row = x + j * rowStride + f
                if let weights {
                    let weight = weights[j]
                    if skipZero && weight == 0 { continue }
                    s = s + SIMD8<Float>(repeating: weight) * PackedGemm.load8(row)
                } else {
                    s = s + PackedGemm.load8(row)
                }
            }
            PackedGemm.store8(s, sums + f)
            f += 8
        }
        while f < width {
            var s = sums[f]
            for j in 0..<rows {
                if let weights {
                    let weight = weights[j]
                    if skipZero && weight == 0 { continue }
                    s = s + weight * x[j * rowStride + f]
                } else {
                    s = s + x[j * rowStride + f]
                }
            }
            sums[f] = s
            f += 1
        }
    }

    /// x[f] ← a·x[f] + b·y[f] for f < count (two products, then their sum).
    public static func combine(_ x: UnsafeMutablePointer<Float>, _ a: Float, _ y: UnsafePointer<Float>, _ b: Float,
                               count: Int) {
        let (va, vb) = (SIMD8<Float>(repeating: a), SIMD8<Float>(repeating: b))
        var f = 0
        while f + 8 <= count {
            PackedGemm.store8(va * PackedGemm.load8(x + f) + vb * PackedGemm.load8(y + f), x + f)
            f += 8
        }
        while f < count {
            x[f] = a * x[f] + b * y[f]
            f += 1
        }
    }

    /// x[f] ← a·(x[f] + y[f]) for f < count.
    public static func addThenScale(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ a: Float, count: Int) {
        let va = SIMD8<Float>(repeating: a)
        var f = 0
        while f + 8 <= count {
            PackedGemm.store8(va * (PackedGemm.load8(x + f) + PackedGemm.load8(y + f)), x + f)
            f += 8
        }
        while f < count {
            x[f] = a * (x[f] + y[f])
            f += 1
        }
    }

    /// The lower-triangular rows of an elementwise product: for each row i < rows of the
    /// rows × rows blocks (row stride `rows`), out[i, j] = a[i, j]·b[i, j] for j ≤ i and 0 for
    /// j > i. With `second`, also out2[i, j] = a[i, j]·second[i, j] in the same pass over a.
    public static func lowerProducts(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, rows: Int,
                                     into out: UnsafeMutablePointer<Float>,
                                     second: UnsafePointer<Float>? = nil, into2 out2: UnsafeMutablePointer<Float>? = nil) {
        // Lane indices as floats: a float comparison compiles to one vector compare, while the
        // Int32 one went through memory lane by lane in this build.
        let lane = SIMD8<Float>(0, 1, 2, 3, 4, 5, 6, 7)
        for i in 0..<rows {
            let base = i * rows
            var j = 0
            while j + 8 <= rows {
                let keep = lane .<= SIMD8<Float>(repeating: Float(i - j))
                let x = PackedGemm.load8(a + base + j)
                let zero = SIMD8<Float>()
                PackedGemm.store8(zero.replacing(with: x * PackedGemm.load8(b + base + j), where: keep), out + base + j)
                if let second, let out2 {
                    PackedGemm.store8(zero.replacing(with: x * PackedGemm.load8(second + base + j), where: keep), out2 + base + j)
                }
                j += 8
            }
            while j < rows {
                out[base + j] = j <= i ? a[base + j] * b[base + j] : 0
                if let second, let out2 { out2[base + j] = j <= i ? a[base + j] * second[base + j] : 0 }
                j += 1
            }
        }
    }

    /// out[j] ← 0 where value[j] equals one of the two edges, else (s·gradient[j])·value[j], for
    /// j < count: the PRF exponent's gradient, 0 where the forward clamped the exponent.
    public static func clampedExponentGradient(_ value: UnsafePointer<Float>, gradient: UnsafePointer<Float>, scale s: Float,
                                               edges: (Float, Float), count: Int, into out: UnsafeMutablePointer<Float>) {
        let (vs, e0, e1) = (SIMD8<Float>(repeating: s), SIMD8<Float>(repeating: edges.0), SIMD8<Float>(repeating: edges.1))
        var j = 0
        while j + 8 <= count {
            let v = PackedGemm.load8(value + j)
            let product = (vs * PackedGemm.load8(gradient + j)) * v
            PackedGemm.store8(product.replacing(with: 0, where: (v .== e0) .| (v .== e1)), out + j)
            j += 8
        }
        while j < count {
            let v = value[j]
            out[j] = v == edges.0 || v == edges.1 ? 0 : s * gradient[j] * v
            j += 1
        }
    }
}
