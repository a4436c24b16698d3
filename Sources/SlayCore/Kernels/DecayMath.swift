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
