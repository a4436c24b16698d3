// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// Kernels of data-dependent per-channel decay (GLA). Every exponent they take is ≤ 0: a decay
/// weight is a product of α ∈ (0, 1] formed as e^(sum of log α over the rows between two tokens),
/// never as a quotient e^(b_i) / e^(b_j), which overflows once the decay is strong.
public enum DecayKernels {
    /// Below this e^x is not a normal float: such weights are flushed to 0 (VectorExp alone would
    /// clamp them to e^−87.3, a tiny but wrong weight for α = e^−10000).
    public static let underflow: Float = -87.33654

    /// All ones in the lanes where x < the underflow bound, zeros elsewhere: the sign of
    /// x − bound spread by an arithmetic shift. (A SIMDMask comparison here is built lane by lane
    /// on the stack in this build, which made the whole kernel ten times slower.)
    @inline(__always)
    static func underflowLanes(_ x: SIMD8<Float>) -> SIMD8<Int32> {
        unsafeBitCast(x - SIMD8(repeating: underflow), to: SIMD8<Int32>.self) &>> 31
    }

    @inline(__always)
    static func weights(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(VectorExp.exp(x), to: SIMD8<Int32>.self)
        return unsafeBitCast(bits & ~underflowLanes(x), to: SIMD8<Float>.self)
    }

    /// True when every lane of `lanes` (an AND of underflowLanes) is all ones.
    @inline(__always)
    static func allUnderflow(_ lanes: SIMD8<Int32>) -> Bool {
        let half = lanes.lowHalf & lanes.highHalf
        let quarter = half.lowHalf & half.highHalf
        return (quarter[0] & quarter[1]) == -1
    }

    /// The first `count` lanes of p, zeros after (the tail of a row that is not a multiple of 8).
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> SIMD8<Float> {
        var lanes = SIMD8<Float>(repeating: 0)
        for j in 0..<count { lanes[j] = p[j] }
        return lanes
    }

    /// A fixed summation order (the generic reduction is an out-of-line call in this build).
    @inline(__always)
    static func total(_ v: SIMD8<Float>) -> Float {
        let half = v.lowHalf + v.highHalf
        let quarter = half.lowHalf + half.highHalf
        return quarter[0] + quarter[1]
    }

    /// output[i] = e^input[i] for inputs ≤ 0, flushed to 0 below e^−87.3.
    public static func expNonPositive(_ input: UnsafePointer<Float>, count: Int, output: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= count {
            PackedGemm.store8(weights(PackedGemm.load8(input + i)), output + i)
            i += 8
        }
        if i < count {
            let y = weights(loadPartial(input + i, count - i))
            for j in 0..<(count - i) { output[i + j] = y[j] }
        }
    }

    /// Causal intra-chunk scores under per-channel decay, rows × rows, row-major:
    /// output[i, j] = Σ_f q[i, f]·k[j, f]·e^(Σ_{t=j+1…i} logDecay[t, f]) for j ≤ i, 0 for j > i.
    /// q, k and logDecay are [rows, m]. Each channel's exponent is accumulated from j = i downwards,
    /// so it only decreases; once every channel is below the underflow bound the rest of the row
    /// is 0 (strong decay makes the block cheap). `running` holds m rounded up to 8 floats.
    public static func decayedScores(q: UnsafePointer<Float>, k: UnsafePointer<Float>, logDecay: UnsafePointer<Float>,
                                     rows: Int, m: Int, output: UnsafeMutablePointer<Float>,
                                     running: UnsafeMutablePointer<Float>) {
        let full = m & ~7
        let tail = m - full
        for i in 0..<rows {
            let row = output + i * rows
            let qi = q + i * m
            for t in (i + 1)..<max(i + 1, rows) { row[t] = 0 }
            // j = i: every weight is e^0 = 1.
            var diagonal = SIMD8<Float>(repeating: 0)
            var f = 0
            while f < full {
                diagonal += PackedGemm.load8(qi + f) * PackedGemm.load8(k + i * m + f)
                f += 8
            }
            if tail > 0 { diagonal += loadPartial(qi + full, tail) * loadPartial(k + i * m + full, tail) }
            row[i] = total(diagonal)
            guard i > 0 else { continue }
            f = 0
            while f < full {
                PackedGemm.store8(SIMD8(repeating: 0), running + f)
                f += 8
            }
            // Padding lanes start at −∞, so they never keep a row alive (their q and k are 0).
            var tailRunning = SIMD8<Float>(repeating: -.infinity)
            for lane in 0..<tail { tailRunning[lane] = 0 }
            var j = i - 1
            while j >= 0 {
                let kj = k + j * m
                let step = logDecay + (j + 1) * m
                var sum = SIMD8<Float>(repeating: 0)
                var dead = SIMD8<Int32>(repeating: -1)
                f = 0
                while f < full {
                    let r = PackedGemm.load8(running + f) + PackedGemm.load8(step + f)
                    PackedGemm.store8(r, running + f)
                    dead &= underflowLanes(r)
                    sum += PackedGemm.load8(qi + f) * PackedGemm.load8(kj + f) * weights(r)
                    f += 8
                }
                if tail > 0 {
                    tailRunning += loadPartial(step + full, tail)
                    dead &= underflowLanes(tailRunning)
                    sum += loadPartial(qi + full, tail) * loadPartial(kj + full, tail) * weights(tailRunning)
                }
                row[j] = total(sum)
                if allUnderflow(dead) {
                    // Every channel has decayed below the smallest normal float for all j' ≤ j.
                    for t in 0..<j { row[t] = 0 }
                    break
                }
                j -= 1
            }
        }
    }
}
