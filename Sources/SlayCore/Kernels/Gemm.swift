#if canImport(Glibc)
import Glibc
#endif
import CSlayCPU
import SlayKernels
import SlayKernelsAVX2

/// The compute kernels SlayCore calls, dispatched once per process to the AVX2/FMA build when
/// the CPU has it and to the x86-64 baseline build otherwise, so the library never executes an
/// instruction the CPU lacks. `SLAY_KERNELS=portable` forces the baseline (to bisect a wrong
/// answer or compare the two); `SLAY_KERNELS=avx2` is honoured only when the CPU supports it.
public enum KernelVariant: String, Sendable {
    case portable
    case avx2 = "avx2-fma"

    public static let active: KernelVariant = {
        let supported = slaycpu_has_avx2_fma() != 0
        if let request = getenv("SLAY_KERNELS").map({ String(cString: $0) }), request == "portable" {
            return .portable
        }
        return supported ? .avx2 : .portable
    }()
}

/// C = A·B (+ C) through the active kernel variant (see PackedGemm).
public enum Gemm {
    public static let workspaceFloats = max(SlayKernels.PackedGemm.workspaceFloats,
                                            SlayKernelsAVX2.PackedGemm.workspaceFloats)

    @inline(__always)
    public static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, rowStrideA: Int, columnStrideA: Int,
        b: UnsafePointer<Float>, rowStrideB: Int, columnStrideB: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool,
        workspace: UnsafeMutablePointer<Float>
    ) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.PackedGemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: rowStrideA, columnStrideA: columnStrideA,
                                                b: b, rowStrideB: rowStrideB, columnStrideB: columnStrideB, c: c, ldc: ldc,
                                                accumulate: accumulate, workspace: workspace)
        case .portable:
            SlayKernels.PackedGemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: rowStrideA, columnStrideA: columnStrideA,
                                            b: b, rowStrideB: rowStrideB, columnStrideB: columnStrideB, c: c, ldc: ldc,
                                            accumulate: accumulate, workspace: workspace)
        }
    }

    /// Unaligned 8-lane load and store, for SlayCore's own vector loops (the kernels' helpers).
    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { SlayKernels.PackedGemm.load8(p) }

    @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { SlayKernels.PackedGemm.store8(v, p) }
}
