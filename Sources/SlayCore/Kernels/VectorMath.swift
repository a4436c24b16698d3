import SlayKernels
import SlayKernelsAVX2

/// Elementwise kernels through the active variant (see KernelVariant).
public enum VectorMath {
    /// output[i] = e^(clamp(input[i] − shift, −limit, limit)) · scale, vectorised (VectorExp).
    @inline(__always)
    public static func expShiftedClamped(_ input: UnsafePointer<Float>, count: Int, shift: Float, limit: Float,
                                         scale: Float, output: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.VectorExp.expShiftedClamped(input, count: count, shift: shift, limit: limit, scale: scale,
                                                        output: output)
        case .portable:
            SlayKernels.VectorExp.expShiftedClamped(input, count: count, shift: shift, limit: limit, scale: scale,
                                                    output: output)
        }
    }

    /// output[p·width + j] = scales[p] · row[j] (VectorProducts.outer).
    @inline(__always)
    public static func outer(_ scales: UnsafePointer<Float>, count: Int, _ row: UnsafePointer<Float>, width: Int,
                             output: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.VectorProducts.outer(scales, count: count, row, width: width, output: output)
        case .portable: SlayKernels.VectorProducts.outer(scales, count: count, row, width: width, output: output)
        }
    }

    /// û = x/‖x‖ per row, the norm in double (VectorProducts.unitRows).
    @inline(__always)
    public static func unitRows(_ input: UnsafePointer<Float>, rows: Int, width: Int, into units: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.VectorProducts.unitRows(input, rows: rows, width: width, into: units)
        case .portable: SlayKernels.VectorProducts.unitRows(input, rows: rows, width: width, into: units)
        }
    }

    /// The backward of `unitRows`: dx = (g − û (û·g))/‖x‖ per row (UnitRowsGradient).
    @inline(__always)
    public static func unitRowsGradient(_ input: UnsafePointer<Float>, rows: Int, width: Int,
                                        unitGradient: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.UnitRowsGradient.inputGradient(input, rows: rows, width: width, unitGradient: unitGradient, into: output)
        case .portable:
            SlayKernels.UnitRowsGradient.inputGradient(input, rows: rows, width: width, unitGradient: unitGradient, into: output)
        }
    }

    /// (x·y, x·z) in one pass over x (VectorProducts.dots).
    @inline(__always)
    public static func dots(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                            count: Int) -> (Float, Float) {
        switch KernelVariant.active {
        case .avx2: return SlayKernelsAVX2.VectorProducts.dots(x, y, z, count: count)
        case .portable: return SlayKernels.VectorProducts.dots(x, y, z, count: count)
        }
    }

    /// The gradient of `outer`'s rows (VectorProducts.outerGradient).
    @inline(__always)
    public static func outerGradient(_ g: UnsafePointer<Float>, count: Int, scales: UnsafePointer<Float>,
                                     row: UnsafePointer<Float>, width: Int,
                                     scalesGradient: UnsafeMutablePointer<Float>, rowGradient: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.VectorProducts.outerGradient(g, count: count, scales: scales, row: row, width: width,
                                                         scalesGradient: scalesGradient, rowGradient: rowGradient)
        case .portable:
            SlayKernels.VectorProducts.outerGradient(g, count: count, scales: scales, row: row, width: width,
                                                     scalesGradient: scalesGradient, rowGradient: rowGradient)
        }
    }
}
