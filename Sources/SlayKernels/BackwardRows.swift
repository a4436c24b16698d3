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

extension BackwardRows {
    /// a·b + c rounded as `Lanes.fma` rounds each lane: fused on AVX2/FMA, two roundings on the
    /// baseline.
    @inline(__always)
    static func fma1(_ a: Float, _ b: Float, _ c: Float) -> Float {
        #if SLAY_AVX2
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    /// `VectorProducts.outerGradient` for many rows at once, with the rows as lanes: the blocks
    /// are transposed (column i is row i of the chunk). Feature f = (r·P + p)·M + j of row i is
    /// g[f·ldg + i], poly_p of row i is poly[p·ldp + i], prf_{r,j} of row i is prf[(r·M + j)·ldr + i].
    /// For every row i < lanes and node r < nodes:
    ///   prfGradient[(r·M + j)·ldrg + i] += Σ_p g·poly_p (one fused chain over p, as the row
    ///   kernel's), and polyGradient[p·ldpg + i] += Σ_j g·prf_{r,j} summed in the row kernel's
    ///   8-lane tree (the j-halves fused first when M = 16),
    /// so each row's results are bitwise those of `outerGradient` on that row (node by node),
    /// without its per-p horizontal sums. M must be a multiple of 8.
    public static func outerGradientColumns(_ g: UnsafePointer<Float>, ldg: Int, poly: UnsafePointer<Float>, ldp: Int,
                                            prf: UnsafePointer<Float>, ldr: Int, nodes: Int, polyWidth: Int,
                                            prfWidth: Int, lanes: Int,
                                            polyGradient: UnsafeMutablePointer<Float>, ldpg: Int,
                                            prfGradient: UnsafeMutablePointer<Float>, ldrg: Int) {
        let (pw, mw) = (polyWidth, prfWidth)
        let vectorLanes = lanes & ~7
        // Whole transposed rows at a time (every lane of a row, so each row of g is read once per
        // pass and whole cache lines are used); the last lanes one by one.
        for r in 0..<nodes {
            // ∂prf: per column j, a fused chain over p, 64 lanes in registers at a time.
            for j in 0..<mw {
                let target = prfGradient + (r * mw + j) * ldrg
                var i0 = 0
                while i0 + 64 <= vectorLanes {
                    let t = target + i0
                    var a0 = PackedGemm.load8(t), a1 = PackedGemm.load8(t + 8), a2 = PackedGemm.load8(t + 16)
                    var a3 = PackedGemm.load8(t + 24), a4 = PackedGemm.load8(t + 32), a5 = PackedGemm.load8(t + 40)
                    var a6 = PackedGemm.load8(t + 48), a7 = PackedGemm.load8(t + 56)
                    for p in 0..<pw {
                        let (row, s) = (g + ((r * pw + p) * mw + j) * ldg + i0, poly + p * ldp + i0)
                        a0 = Lanes.fma(PackedGemm.load8(row), PackedGemm.load8(s), a0)
                        a1 = Lanes.fma(PackedGemm.load8(row + 8), PackedGemm.load8(s + 8), a1)
                        a2 = Lanes.fma(PackedGemm.load8(row + 16), PackedGemm.load8(s + 16), a2)
                        a3 = Lanes.fma(PackedGemm.load8(row + 24), PackedGemm.load8(s + 24), a3)
                        a4 = Lanes.fma(PackedGemm.load8(row + 32), PackedGemm.load8(s + 32), a4)
                        a5 = Lanes.fma(PackedGemm.load8(row + 40), PackedGemm.load8(s + 40), a5)
                        a6 = Lanes.fma(PackedGemm.load8(row + 48), PackedGemm.load8(s + 48), a6)
                        a7 = Lanes.fma(PackedGemm.load8(row + 56), PackedGemm.load8(s + 56), a7)
                    }
                    PackedGemm.store8(a0, t); PackedGemm.store8(a1, t + 8); PackedGemm.store8(a2, t + 16)
                    PackedGemm.store8(a3, t + 24); PackedGemm.store8(a4, t + 32); PackedGemm.store8(a5, t + 40)
                    PackedGemm.store8(a6, t + 48); PackedGemm.store8(a7, t + 56)
                    i0 += 64
                }
                while i0 < vectorLanes {
                    var a = PackedGemm.load8(target + i0)
                    for p in 0..<pw {
                        a = Lanes.fma(PackedGemm.load8(g + ((r * pw + p) * mw + j) * ldg + i0),
                                      PackedGemm.load8(poly + p * ldp + i0), a)
                    }
                    PackedGemm.store8(a, target + i0)
                    i0 += 8
                }
                for i in vectorLanes..<lanes {
                    var a = target[i]
                    for p in 0..<pw { a = fma1(g[((r * pw + p) * mw + j) * ldg + i], poly[p * ldp + i], a) }
                    target[i] = a
                }
            }
            // ∂poly: per p, the row kernel's sums over j, 8 lanes at a time (the p's M rows of g
            // stay in L1 across the lane vectors).
            let base = prf + r * mw * ldr
            for p in 0..<pw {
                let row = g + (r * pw + p) * mw * ldg
                let target = polyGradient + p * ldpg
                var i0 = 0
                while i0 < vectorLanes {
                    let (x, y) = (row + i0, base + i0)
                    var total = PackedGemm.load8(target + i0)
                    if mw == 16 {
                        total = total + fusedHalvesTree(x, ldg: ldg, y, ldr: ldr)
                    } else {
                        var jb = 0
                        while jb < mw {
                            let (xb, yb) = (x + jb * ldg, y + jb * ldr)
                            let v0 = PackedGemm.load8(xb) * PackedGemm.load8(yb)
                            let v1 = PackedGemm.load8(xb + ldg) * PackedGemm.load8(yb + ldr)
                            let v2 = PackedGemm.load8(xb + 2 * ldg) * PackedGemm.load8(yb + 2 * ldr)
                            let v3 = PackedGemm.load8(xb + 3 * ldg) * PackedGemm.load8(yb + 3 * ldr)
                            let v4 = PackedGemm.load8(xb + 4 * ldg) * PackedGemm.load8(yb + 4 * ldr)
                            let v5 = PackedGemm.load8(xb + 5 * ldg) * PackedGemm.load8(yb + 5 * ldr)
                            let v6 = PackedGemm.load8(xb + 6 * ldg) * PackedGemm.load8(yb + 6 * ldr)
                            let v7 = PackedGemm.load8(xb + 7 * ldg) * PackedGemm.load8(yb + 7 * ldr)
                            let (h0, h1, h2, h3) = (v0 + v4, v1 + v5, v2 + v6, v3 + v7)
                            total = total + ((h0 + h2) + (h1 + h3))
                            jb += 8
                        }
                    }
                    PackedGemm.store8(total, target + i0)
                    i0 += 8
                }
                for i in vectorLanes..<lanes {
                    var total = target[i]
                    var jb = 0
                    while jb < mw {
                        func v(_ l: Int) -> Float {
                            let low = row[(jb + l) * ldg + i] * base[(jb + l) * ldr + i]
                            return mw == 16 ? fma1(row[(l + 8) * ldg + i], base[(l + 8) * ldr + i], low) : low
                        }
                        total = total + (((v(0) + v(4)) + (v(2) + v(6))) + ((v(1) + v(5)) + (v(3) + v(7))))
                        jb += mw == 16 ? 16 : 8
                    }
                    target[i] = total
                }
            }
        }
    }

    /// The 8-lane tree of `outerGradient`'s M = 16 path for 8 lanes: v_l = x_{l+8}·y_{l+8} +
    /// x_l·y_l (fused), then ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)). Kept out of line:
    /// inlined into its loop, the compiler split these vectors into lanes.
    @inline(never)
    static func fusedHalvesTree(_ x: UnsafePointer<Float>, ldg: Int, _ y: UnsafePointer<Float>, ldr: Int) -> SIMD8<Float> {
        /// v_l, with the products of the halves l + 8 and l.
        @inline(__always)
        func half(_ l: Int) -> SIMD8<Float> {
            Lanes.fma(PackedGemm.load8(x + (l + 8) * ldg), PackedGemm.load8(y + (l + 8) * ldr),
                      PackedGemm.load8(x + l * ldg) * PackedGemm.load8(y + l * ldr))
        }
        let (v0, v1) = (half(0) + half(4), half(1) + half(5))
        let (v2, v3) = (half(2) + half(6), half(3) + half(7))
        return (v0 + v2) + (v1 + v3)
    }

    /// x[f·ld + i] ← w_i·(x[f·ld + i] + z[f]) for f < rows, i < columns (w_i = 1 without
    /// weights: x + z); the transposed form of a row loop x_i ← w_i·(x_i + z).
    public static func addColumnThenScale(_ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int,
                                          z: UnsafePointer<Float>, weights: UnsafePointer<Float>?) {
        for f in 0..<rows {
            let row = x + f * ld
            let (zf, vz) = (z[f], SIMD8<Float>(repeating: z[f]))
            var i = 0
            if let weights {
                while i + 8 <= columns {
                    PackedGemm.store8(PackedGemm.load8(weights + i) * (PackedGemm.load8(row + i) + vz), row + i)
                    i += 8
                }
                while i < columns { row[i] = weights[i] * (row[i] + zf); i += 1 }
            } else {
                while i + 8 <= columns {
                    PackedGemm.store8(PackedGemm.load8(row + i) + vz, row + i)
                    i += 8
                }
                while i < columns { row[i] = row[i] + zf; i += 1 }
            }
        }
    }
}
