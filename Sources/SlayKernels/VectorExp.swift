// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// exp on 8 lanes: range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r
/// (Cephes expf coefficients, ≤ 2 ulp on the reduced range) and 2^n from the exponent bits.
/// Inputs are clamped to [−87.3, 88.7], where e^x is a normal float, so no lane over- or
/// underflows; callers that need e^x beyond that range clamp first (the PRF clamp is ±20).
public enum VectorExp {
    @inline(__always)
    public static func exp(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let x = input.clamped(lowerBound: SIMD8(repeating: -87.33654), upperBound: SIMD8(repeating: 88.72283))
        let n = (x * SIMD8(repeating: 1.442695040888963)).rounded(.toNearestOrEven)
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
        let exponent = SIMD8<Int32>(n, rounding: .towardZero) &+ 127
        let scale = unsafeBitCast(exponent &<< 23, to: SIMD8<Float>.self)
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
            let y = exp((x - shifts).clamped(lowerBound: lows, upperBound: highs)) * scales
            UnsafeMutableRawPointer(output + i).storeBytes(of: y, as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            // The tail through one padded vector, so every element takes the same code path.
            var lanes = SIMD8<Float>(repeating: 0)
            for j in 0..<(count - i) { lanes[j] = input[i + j] }
            let y = exp((lanes - shifts).clamped(lowerBound: lows, upperBound: highs)) * scales
            for j in 0..<(count - i) { output[i + j] = y[j] }
        }
    }
}
