// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// exp on 8 lanes: range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r
/// (Cephes expf coefficients, ≤ 2 ulp on the reduced range) and 2^n from the exponent bits.
/// Inputs are clamped to [−87.3, 88.7], where e^x is a normal float, so no lane over- or
/// underflows; callers that need e^x beyond that range clamp first (the PRF clamp is ±20).
public enum VectorExp {
    /// Lane-wise clamp written with comparisons and blends: the standard library's generic
    /// pointwiseMin/Max and rounding conversions are out-of-line calls in this build.
    @inline(__always)
    static func clamp(_ x: SIMD8<Float>, _ low: SIMD8<Float>, _ high: SIMD8<Float>) -> SIMD8<Float> {
        let raised = x.replacing(with: low, where: x .< low)
        return raised.replacing(with: high, where: raised .> high)
    }

    @inline(__always)
    public static func exp(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let x = clamp(input, SIMD8(repeating: -87.33654), SIMD8(repeating: 88.72283))
        // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick: after adding it, the
        // integer sits in the low mantissa bits (exact for |n| < 2^22), so no conversion call.
        let magic = SIMD8<Float>(repeating: 12582912)
        let shifted = x * SIMD8(repeating: 1.442695040888963) + magic
        let n = shifted - magic
        // Cody–Waite: ln2 split in a high part exact in float and a low correction.
        var r = x - n * SIMD8(repeating: 0.693359375)
        r = r - n * SIMD8(repeating: -2.12194440e-4)
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + SIMD8(repeating: 1.3981999507e-3)
        p = p * r + SIMD8(repeating: 8.3334519073e-3)
        p = p * r + SIMD8(repeating: 4.1665795894e-2)
        p = p * r + SIMD8(repeating: 1.6666665459e-1)
        p = p * r + SIMD8(repeating: 5.0000001201e-1)
        p = p * (r * r) + r + SIMD8(repeating: 1)
        // 2^n: the integer n is the difference of the bit patterns; add the bias and shift it
        // into the exponent field.
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: SIMD8<Float>.self)
        return p * scale
    }

    /// output[i] = e^(clamp(input[i] − shift, −limit, limit)) · scale for i < count.
    public static func expShiftedClamped(_ input: UnsafePointer<Float>, count: Int, shift: Float, limit: Float,
                                         scale: Float, output: UnsafeMutablePointer<Float>) {
        let (shifts, lows, highs, scales) = (SIMD8<Float>(repeating: shift), SIMD8<Float>(repeating: -limit),
                                             SIMD8<Float>(repeating: limit), SIMD8<Float>(repeating: scale))
        var i = 0
        while i + 8 <= count {
            let x = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<Float>.self)
            let y = exp(clamp(x - shifts, lows, highs)) * scales
            UnsafeMutableRawPointer(output + i).storeBytes(of: y, as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            // The tail through one padded vector, so every element takes the same code path.
            var lanes = SIMD8<Float>(repeating: 0)
            for j in 0..<(count - i) { lanes[j] = input[i + j] }
            let y = exp(clamp(lanes - shifts, lows, highs)) * scales
            for j in 0..<(count - i) { output[i + j] = y[j] }
        }
    }
}
