// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// Products of small vectors that feature maps form per row: in SlayCore (baseline x86-64) these
/// loops ran as SSE halves, and for a decode step (one row per head) they cost as much as the
/// projections that feed them.
public enum VectorProducts {
    /// output[p·width + j] = scales[p] · row[j] for p < count, j < width: the rows of an outer
    /// product, each element one fp32 product (bitwise the same in both builds).
    public static func outer(_ scales: UnsafePointer<Float>, count: Int, _ row: UnsafePointer<Float>, width: Int,
                             output: UnsafeMutablePointer<Float>) {
        if width == 16 {
            // The SLAY default (M = 16): both vectors of the row stay in registers.
            let (r0, r1) = (PackedGemm.load8(row), PackedGemm.load8(row + 8))
            for p in 0..<count {
                let s = SIMD8<Float>(repeating: scales[p])
                PackedGemm.store8(s * r0, output + p * 16)
                PackedGemm.store8(s * r1, output + p * 16 + 8)
            }
            return
        }
        for p in 0..<count {
            let s = scales[p]
            let target = output + p * width
            var j = 0
            while j + 8 <= width {
                PackedGemm.store8(SIMD8<Float>(repeating: s) * PackedGemm.load8(row + j), target + j)
                j += 8
            }
            while j < width {
                target[j] = s * row[j]
                j += 1
            }
        }
    }

    /// (x·y, x·z) in one pass over x. Each dot runs in four independent 8-lane sums, added in a
    /// fixed order at the end: a single chain of FMAs waits on its own latency (about 4 cycles per
    /// 8 floats), which bounded the backward's per-row dots over m = 512 features.
    public static func dots(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                            count: Int) -> (Float, Float) {
        var (y0, y1, y2, y3) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
        var (z0, z1, z2, z3) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
        var i = 0
        while i + 32 <= count {
            let (x0, x1) = (PackedGemm.load8(x + i), PackedGemm.load8(x + i + 8))
            let (x2, x3) = (PackedGemm.load8(x + i + 16), PackedGemm.load8(x + i + 24))
            y0 = Lanes.fma(x0, PackedGemm.load8(y + i), y0); z0 = Lanes.fma(x0, PackedGemm.load8(z + i), z0)
            y1 = Lanes.fma(x1, PackedGemm.load8(y + i + 8), y1); z1 = Lanes.fma(x1, PackedGemm.load8(z + i + 8), z1)
            y2 = Lanes.fma(x2, PackedGemm.load8(y + i + 16), y2); z2 = Lanes.fma(x2, PackedGemm.load8(z + i + 16), z2)
            y3 = Lanes.fma(x3, PackedGemm.load8(y + i + 24), y3); z3 = Lanes.fma(x3, PackedGemm.load8(z + i + 24), z3)
            i += 32
        }
        while i + 8 <= count {
            let lanes = PackedGemm.load8(x + i)
            y0 = Lanes.fma(lanes, PackedGemm.load8(y + i), y0)
            z0 = Lanes.fma(lanes, PackedGemm.load8(z + i), z0)
            i += 8
        }
        var (dy, dz) = (Lanes.sum((y0 + y1) + (y2 + y3)), Lanes.sum((z0 + z1) + (z2 + z3)))
        while i < count {
            dy += x[i] * y[i]
            dz += x[i] * z[i]
            i += 1
        }
        return (dy, dz)
    }

    /// The gradient of an outer product's rows (`outer`), given g[p·width + j] = ∂L/∂output:
    /// scalesGradient[p] += Σ_j g[p, j]·row[j] and rowGradient[j] += Σ_p g[p, j]·scales[p], in one
    /// pass over g. Each p's sum is formed in 8 lanes and then reduced in a fixed order.
    public static func outerGradient(_ g: UnsafePointer<Float>, count: Int, scales: UnsafePointer<Float>,
                                     row: UnsafePointer<Float>, width: Int,
                                     scalesGradient: UnsafeMutablePointer<Float>, rowGradient: UnsafeMutablePointer<Float>) {
        if width == 16 {
            // The SLAY default (M = 16): the row and its gradient stay in registers.
            let (r0, r1) = (PackedGemm.load8(row), PackedGemm.load8(row + 8))
            var (a0, a1) = (PackedGemm.load8(rowGradient), PackedGemm.load8(rowGradient + 8))
            for p in 0..<count {
                let (g0, g1) = (PackedGemm.load8(g + p * 16), PackedGemm.load8(g + p * 16 + 8))
                let s = SIMD8<Float>(repeating: scales[p])
                a0 = Lanes.fma(g0, s, a0)
                a1 = Lanes.fma(g1, s, a1)
                scalesGradient[p] += Lanes.sum(Lanes.fma(g1, r1, g0 * r0))
            }
            PackedGemm.store8(a0, rowGradient)
            PackedGemm.store8(a1, rowGradient + 8)
            return
        }
        var j = 0
        while j + 8 <= width {
            let r = PackedGemm.load8(row + j)
            var a = PackedGemm.load8(rowGradient + j)
            for p in 0..<count {
                let lanes = PackedGemm.load8(g + p * width + j)
                a = Lanes.fma(lanes, SIMD8<Float>(repeating: scales[p]), a)
                scalesGradient[p] += Lanes.sum(lanes * r)
            }
            PackedGemm.store8(a, rowGradient + j)
            j += 8
        }
        while j < width {
            var sum = rowGradient[j]
            for p in 0..<count {
                let value = g[p * width + j]
                sum += value * scales[p]
                scalesGradient[p] += value * row[j]
            }
            rowGradient[j] = sum
            j += 1
        }
    }

    /// û = x/‖x‖ for `rows` rows of `width` floats, the norm in double (huge inputs do not
    /// overflow, tiny ones do not underflow); a zero row maps to 0 and a row with NaN or inf stays
    /// non-finite. The squares are summed in 8 double lanes (two vectors of 4), then the lanes and
    /// the tail in a fixed order, so both builds give the same bits.
    public static func unitRows(_ input: UnsafePointer<Float>, rows: Int, width: Int, into units: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let x = input + i * width
            var low = SIMD4<Double>(), high = SIMD4<Double>()
            var j = 0
            while j + 8 <= width {
                let a = SIMD4<Double>(load4(x + j)), b = SIMD4<Double>(load4(x + j + 4))
                low += a * a
                high += b * b
                j += 8
            }
            let lanes = low + high
            var sumSquares = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
            while j < width { let v = Double(x[j]); sumSquares += v * v; j += 1 }
            let norm = sumSquares.squareRoot()
            let inverse = norm > 0 ? 1 / norm : 0
            let target = units + i * width
            j = 0
            while j + 4 <= width {
                store4(SIMD4<Float>(SIMD4<Double>(load4(x + j)) * inverse), target + j)
                j += 4
            }
            while j < width { target[j] = Float(Double(x[j]) * inverse); j += 1 }
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
