// This file is compiled twice: as module SlayKernels for the x86-64 baseline and as
// SlayKernelsAVX2 (Sources/SlayKernelsAVX2 is a symlink to this folder) with -target-cpu haswell
// and SLAY_AVX2 defined. SlayCore picks one at run time from the CPU's features.

/// Single-precision matrix product C = A·B (+ C), packed and register-blocked.
///
/// A and B are read through arbitrary row/column strides, so transposed operands (Φ_Kᵀ·V,
/// Φ_Q·Φ_Kᵀ) need no separate transpose. Panels of A (mr rows) and B (nr columns) are packed
/// into contiguous, zero-padded buffers so the micro-kernel streams both with unit stride and
/// keeps an mr × nr tile of C in registers. The AVX2 build uses a 6 × 16 tile with fused
/// multiply-adds (12 accumulators + 2 B vectors + 1 broadcast of 16 ymm registers); the baseline
/// build a 4 × 16 tile with `a * b + c`, because fused `addingProduct` is scalarised without FMA.
public enum PackedGemm {
    #if SLAY_AVX2
    static let mr = 6
    #else
    static let mr = 4
    #endif
    static let nr = 16
    static let kc = 256
    /// A multiple of mr: packA writes whole mr-row panels.
    static let mc = 12 * mr
    static let nc = 512

    /// Scratch floats one `multiply` call needs.
    public static let workspaceFloats = mc * kc + nc * kc

    public static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, rowStrideA: Int, columnStrideA: Int,
        b: UnsafePointer<Float>, rowStrideB: Int, columnStrideB: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool,
        workspace: UnsafeMutablePointer<Float>
    ) {
        guard m > 0 && n > 0 else { return }
        if k == 0 {
            if !accumulate {
                for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            }
            return
        }
        if m < mr && columnStrideB == 1 {
            // A few rows times a matrix (decode steps, tiny chunks): packing would cost more than
            // the product, so stream the rows of B directly.
            rowsTimesMatrix(m: m, n: n, k: k, a: a, rowStrideA: rowStrideA, columnStrideA: columnStrideA,
                            b: b, rowStrideB: rowStrideB, c: c, ldc: ldc, accumulate: accumulate)
            return
        }
        if columnStrideB == 1 && n % nr == 0 {
            directMultiply(m: m, n: n, k: k, a: a, rowStrideA: rowStrideA, columnStrideA: columnStrideA,
                           b: b, rowStrideB: rowStrideB, c: c, ldc: ldc, accumulate: accumulate)
            return
        }
        let packedA = workspace
        let packedB = workspace + mc * kc
        var jc = 0
        while jc < n {
            let nb = min(nc, n - jc)
            var pc = 0
            while pc < k {
                let kb = min(kc, k - pc)
                let addToC = accumulate || pc > 0
                packB(b + pc * rowStrideB + jc * columnStrideB, rowStride: rowStrideB,
                      columnStride: columnStrideB, k: kb, n: nb, into: packedB)
                var ic = 0
                while ic < m {
                    let mb = min(mc, m - ic)
                    packA(a + ic * rowStrideA + pc * columnStrideA, rowStride: rowStrideA,
                          columnStride: columnStrideA, m: mb, k: kb, into: packedA)
                    var jr = 0
                    while jr < nb {
                        var ir = 0
                        while ir < mb {
                            microKernel(k: kb,
                                        a: packedA + ir * kb,
                                        b: packedB + jr * kb,
                                        c: c + (ic + ir) * ldc + jc + jr, ldc: ldc,
                                        rows: min(mr, mb - ir), columns: min(nr, nb - jr),
                                        accumulate: addToC)
                            ir += mr
                        }
                        jr += nr
                    }
                    ic += mc
                }
                pc += kc
            }
            jc += nc
        }
    }

    /// Without packing: B's rows are already 16-float vectors (unit column stride, n a multiple
    /// of 16) and A is read through its strides with one broadcast per row and step, so neither
    /// operand is copied. This suits the engine's shapes (k up to m, n = dv), where packing cost
    /// as much as the multiply.
    static func directMultiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, rowStrideA: Int, columnStrideA: Int,
                               b: UnsafePointer<Float>, rowStrideB: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                               accumulate: Bool) {
        var jr = 0
        while jr < n {
            var ir = 0
            while ir < m {
                let rows = min(directRows, m - ir)
                directKernel(k: k, a: a + ir * rowStrideA, rowStrideA: rowStrideA, columnStrideA: columnStrideA,
                             rows: rows, b: b + jr, ldb: rowStrideB, c: c + ir * ldc + jr, ldc: ldc,
                             accumulate: accumulate)
                ir += directRows
            }
            jr += nr
        }
    }

    /// Rows per direct tile: 4 × 16 keeps 8 accumulators, 2 B vectors and 4 broadcasts in 14 of
    /// the 16 vector registers; a 6-row tile here made the compiler spill accumulators.
    static let directRows = 4

    /// A 4 × 16 tile of C = A·B (+ C) from unpacked operands. Rows of A beyond `rows` repeat the
    /// last valid row (their results are dropped), so every load stays inside A.
    @inline(__always)
    static func directKernel(k: Int, a: UnsafePointer<Float>, rowStrideA: Int, columnStrideA: Int, rows: Int,
                             b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                             accumulate: Bool) {
        var a0 = a
        var a1 = a + min(1, rows - 1) * rowStrideA
        var a2 = a + min(2, rows - 1) * rowStrideA
        var a3 = a + min(3, rows - 1) * rowStrideA
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var bp = b
        for _ in 0..<k {
            let b0 = load8(bp)
            let b1 = load8(bp + 8)
            let x0 = SIMD8<Float>(repeating: a0.pointee)
            let x1 = SIMD8<Float>(repeating: a1.pointee)
            let x2 = SIMD8<Float>(repeating: a2.pointee)
            let x3 = SIMD8<Float>(repeating: a3.pointee)
            #if SLAY_AVX2
            c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
            c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
            c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1)
            c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1)
            #else
            c00 = x0 * b0 + c00; c01 = x0 * b1 + c01
            c10 = x1 * b0 + c10; c11 = x1 * b1 + c11
            c20 = x2 * b0 + c20; c21 = x2 * b1 + c21
            c30 = x3 * b0 + c30; c31 = x3 * b1 + c31
            #endif
            a0 += columnStrideA; a1 += columnStrideA; a2 += columnStrideA; a3 += columnStrideA
            bp += ldb
        }
        storeRow(c00, c01, row: 0, c: c, ldc: ldc, rows: rows, columns: nr, accumulate: accumulate)
        storeRow(c10, c11, row: 1, c: c, ldc: ldc, rows: rows, columns: nr, accumulate: accumulate)
        storeRow(c20, c21, row: 2, c: c, ldc: ldc, rows: rows, columns: nr, accumulate: accumulate)
        storeRow(c30, c31, row: 3, c: c, ldc: ldc, rows: rows, columns: nr, accumulate: accumulate)
    }

    /// Each row of C in column blocks of up to 16 floats whose sums stay in registers across k
    /// (accumulating through memory made every step wait for the previous store).
    static func rowsTimesMatrix(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, rowStrideA: Int, columnStrideA: Int,
                                b: UnsafePointer<Float>, rowStrideB: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                                accumulate: Bool) {
        for i in 0..<m {
            let row = c + i * ldc
            let x = a + i * rowStrideA
            var j = 0
            // Blocks of at most 16 columns, so every column is summed in the same 4 chains
            // whatever the width of the call (a call on part of the columns gives bitwise the
            // same columns: the engine splits value columns between threads).
            while j + 16 <= n {
                rowBlock(k: k, x: x, columnStrideA: columnStrideA, b: b + j, rowStrideB: rowStrideB, c: row + j,
                         vectors: 2, accumulate: accumulate)
                j += 16
            }
            if j + 8 <= n {
                rowBlock(k: k, x: x, columnStrideA: columnStrideA, b: b + j, rowStrideB: rowStrideB, c: row + j,
                         vectors: 1, accumulate: accumulate)
                j += 8
            }
            while j < n {
                var sum: Float = accumulate ? row[j] : 0
                for p in 0..<k { sum += x[p * columnStrideA] * b[p * rowStrideB + j] }
                row[j] = sum
                j += 1
            }
        }
    }

    /// c[0 ..< 8·vectors] (+)= Σ_p x[p]·B[p, 0 ..< 8·vectors] for 1 or 2 vectors, the sums in
    /// registers: p is split over 4 accumulators per vector (p mod 4), so up to 8 independent
    /// chains hide the FMA latency, and they are added in a fixed order.
    @inline(__always)
    static func rowBlock(k: Int, x: UnsafePointer<Float>, columnStrideA: Int, b: UnsafePointer<Float>, rowStrideB: Int,
                         c: UnsafeMutablePointer<Float>, vectors: Int, accumulate: Bool) {
        let chains = 4
        // Accumulator (chain, w) is sums[chain · vectors + w].
        var sums = InlineArray<8, SIMD8<Float>>(repeating: SIMD8<Float>())
        if accumulate {
            for w in 0..<vectors { sums[w] = load8(c + 8 * w) }
        }
        var bp = b
        var xp = x
        var p = 0
        while p + chains <= k {
            for chain in 0..<chains {
                let xc = SIMD8<Float>(repeating: xp[chain * columnStrideA])
                for w in 0..<vectors {
                    sums[chain * vectors + w] = Lanes.fma(xc, load8(bp + chain * rowStrideB + 8 * w), sums[chain * vectors + w])
                }
            }
            bp += chains * rowStrideB
            xp += chains * columnStrideA
            p += chains
        }
        var chain = 0
        while p < k {
            let xc = SIMD8<Float>(repeating: xp.pointee)
            for w in 0..<vectors { sums[chain * vectors + w] = Lanes.fma(xc, load8(bp + 8 * w), sums[chain * vectors + w]) }
            bp += rowStrideB
            xp += columnStrideA
            p += 1
            chain += 1
        }
        for w in 0..<vectors {
            store8((sums[w] + sums[vectors + w]) + (sums[2 * vectors + w] + sums[3 * vectors + w]), c + 8 * w)
        }
    }

    /// Packs an m × k block of A into panels of mr rows: panel i holds A[i·mr + r, p] at
    /// [(p · mr) + r], zero beyond m.
    @inline(__always)
    static func packA(_ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int, m: Int, k: Int,
                      into out: UnsafeMutablePointer<Float>) {
        var panel = 0
        while panel < m {
            let rows = min(mr, m - panel)
            let target = out + panel * k
            for r in 0..<mr {
                if r < rows {
                    let source = a + (panel + r) * rowStride
                    for p in 0..<k { target[p * mr + r] = source[p * columnStride] }
                } else {
                    for p in 0..<k { target[p * mr + r] = 0 }
                }
            }
            panel += mr
        }
    }

    /// Packs a k × n block of B into panels of nr columns: panel j holds B[p, j·nr + q] at
    /// [(p · nr) + q], zero beyond n.
    @inline(__always)
    static func packB(_ b: UnsafePointer<Float>, rowStride: Int, columnStride: Int, k: Int, n: Int,
                      into out: UnsafeMutablePointer<Float>) {
        var panel = 0
        while panel < n {
            let columns = min(nr, n - panel)
            let target = out + panel * k
            if columnStride == 1 && columns == nr {
                for p in 0..<k {
                    (target + p * nr).update(from: b + p * rowStride + panel, count: nr)
                }
            } else {
                for p in 0..<k {
                    let source = b + p * rowStride + panel * columnStride
                    let row = target + p * nr
                    for q in 0..<nr { row[q] = q < columns ? source[q * columnStride] : 0 }
                }
            }
            panel += nr
        }
    }

    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// An mr × 16 tile of C from packed panels; partial tiles go through a small local tile.
    @inline(__always)
    static func microKernel(k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                            accumulate: Bool) {
        #if SLAY_AVX2
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>(), c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        var ap = a
        var bp = b
        for _ in 0..<k {
            let b0 = load8(bp)
            let b1 = load8(bp + 8)
            var x = SIMD8<Float>(repeating: ap[0])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: ap[1])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: ap[2])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: ap[3])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: ap[4])
            c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: ap[5])
            c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            ap += mr
            bp += nr
        }
        storeRow(c00, c01, row: 0, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c10, c11, row: 1, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c20, c21, row: 2, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c30, c31, row: 3, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c40, c41, row: 4, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c50, c51, row: 5, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        #else
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var ap = a
        var bp = b
        for _ in 0..<k {
            let b0 = load8(bp)
            let b1 = load8(bp + 8)
            let a0 = SIMD8<Float>(repeating: ap[0])
            let a1 = SIMD8<Float>(repeating: ap[1])
            let a2 = SIMD8<Float>(repeating: ap[2])
            let a3 = SIMD8<Float>(repeating: ap[3])
            c00 = a0 * b0 + c00; c01 = a0 * b1 + c01
            c10 = a1 * b0 + c10; c11 = a1 * b1 + c11
            c20 = a2 * b0 + c20; c21 = a2 * b1 + c21
            c30 = a3 * b0 + c30; c31 = a3 * b1 + c31
            ap += mr
            bp += nr
        }
        storeRow(c00, c01, row: 0, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c10, c11, row: 1, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c20, c21, row: 2, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        storeRow(c30, c31, row: 3, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        #endif
    }

    /// Writes (or adds) one row of a register tile; rows and columns beyond C's edge are dropped.
    @inline(__always)
    static func storeRow(_ low: SIMD8<Float>, _ high: SIMD8<Float>, row: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                         rows: Int, columns: Int, accumulate: Bool) {
        guard row < rows else { return }
        let target = c + row * ldc
        if columns == nr {
            if accumulate {
                store8(low + load8(target), target)
                store8(high + load8(target + 8), target + 8)
            } else {
                store8(low, target)
                store8(high, target + 8)
            }
            return
        }
        for q in 0..<columns {
            let value = q < 8 ? low[q] : high[q - 8]
            target[q] = accumulate ? target[q] + value : value
        }
    }
}
