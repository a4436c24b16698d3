import SlayKernels
import SlayKernelsAVX2

/// The decay kernels through the active variant (see KernelVariant).
enum DecayMath {
    @inline(__always)
    static func expNonPositive(_ input: UnsafePointer<Float>, count: Int, output: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.DecayKernels.expNonPositive(input, count: count, output: output)
        case .portable: SlayKernels.DecayKernels.expNonPositive(input, count: count, output: output)
        }
    }

    @inline(__always)
    static func decayedScores(q: UnsafePointer<Float>, k: UnsafePointer<Float>, logDecay: UnsafePointer<Float>,
                              rows: Int, m: Int, output: UnsafeMutablePointer<Float>, running: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m, output: output,
                                                       running: running)
        case .portable:
            SlayKernels.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m, output: output,
                                                   running: running)
        }
    }
}

/// Per-row scalar decay within a chunk: with λ_t the log decay of row t (per-head g_t + log γ),
/// b_i = Σ_{t ≤ i} λ_t. Row i reads the state before the chunk with weight e^{b_i}, key j ≤ i
/// with e^{b_i − b_j}, and the state moves on as e^{b_last} S + Σ_j e^{b_last − b_j} k_j v_jᵀ.
/// Every exponent is ≤ 0. RetNet's constant γ uses powers γ^n computed once in double.
enum ScalarDecay {
    /// powers[n] = γ^n for n < count, in double and rounded once (no drift from repeated products).
    static func fillPowers(_ gamma: Float, count: Int, into powers: UnsafeMutablePointer<Float>) {
        let logGamma = log(Double(gamma))
        for n in 0..<count { powers[n] = Float(exp(Double(n) * logGamma)) }
    }

    /// e^{x} for x ≤ 0, 0 below the smallest normal float (the chunked forms' bound): the scalar
    /// counterpart of DecayMath.expNonPositive.
    @inline(__always)
    static func weight(_ x: Float) -> Float {
        let x = min(x, 0)
        return x < SlayKernels.DecayKernels.underflow ? 0 : expf(x)
    }
}
