import SlayKernels
import SlayKernelsAVX2

/// Element type of tensors and of state storage; raw values are slay.h's SLAY_DTYPE_*.
/// Arithmetic is fp32 for all of them: half-precision elements are converted in loads and
/// rounded to nearest-even in stores.
public enum ElementType: Int32, Sendable {
    case f32 = 0
    case f16 = 2
    case bf16 = 3

    public var bytes: Int { self == .f32 ? 4 : 2 }
    public var name: String {
        switch self {
        case .f32: return "fp32"
        case .f16: return "fp16"
        case .bf16: return "bf16"
        }
    }
}

/// The decode row streams (DecodeRows, DeltaRows) and half-precision row conversions
/// (HalfPrecision) through the active kernel variant (see KernelVariant).
public enum DecodeKernels {
    /// S_f ← a_f·S_f + b_f·v, outputs[g] = Σ_f w[g, f]·S_f: see SlayKernels.DecodeRows.additive.
    @inline(__always)
    public static func additive(state: UnsafeMutableRawPointer, storage: ElementType, rows: Int, columns: Int,
                                rowStride: Int, stateScales: UnsafePointer<Float>?, stateScaleStride: Int,
                                keyScales: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                queries: UnsafePointer<Float>, queryStride: Int, group: Int,
                                outputs: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.DecodeRows.additive(
                state: state, storage: SlayKernelsAVX2.ElementFormat(rawValue: storage.rawValue)!, rows: rows,
                columns: columns, rowStride: rowStride, stateScales: stateScales, stateScaleStride: stateScaleStride,
                keyScales: keyScales, value: value, queries: queries, queryStride: queryStride, group: group,
                outputs: outputs)
        case .portable:
            SlayKernels.DecodeRows.additive(
                state: state, storage: SlayKernels.ElementFormat(rawValue: storage.rawValue)!, rows: rows,
                columns: columns, rowStride: rowStride, stateScales: stateScales, stateScaleStride: stateScaleStride,
                keyScales: keyScales, value: value, queries: queries, queryStride: queryStride, group: group,
                outputs: outputs)
        }
    }

    /// z_f ← a_f·z_f + b_f, denominators[g] = Σ_f w[g, f]·z_f: see SlayKernels.DecodeRows.normaliser.
    @inline(__always)
    public static func normaliser(_ z: UnsafeMutableRawPointer, storage: ElementType, rows: Int,
                                  stateScales: UnsafePointer<Float>?, stateScaleStride: Int,
                                  keyScales: UnsafePointer<Float>, queries: UnsafePointer<Float>, queryStride: Int,
                                  group: Int, denominators: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.DecodeRows.normaliser(z, storage: SlayKernelsAVX2.ElementFormat(rawValue: storage.rawValue)!,
                                                  rows: rows, stateScales: stateScales, stateScaleStride: stateScaleStride,
                                                  keyScales: keyScales, queries: queries, queryStride: queryStride,
                                                  group: group, denominators: denominators)
        case .portable:
            SlayKernels.DecodeRows.normaliser(z, storage: SlayKernels.ElementFormat(rawValue: storage.rawValue)!,
                                              rows: rows, stateScales: stateScales, stateScaleStride: stateScaleStride,
                                              keyScales: keyScales, queries: queries, queryStride: queryStride,
                                              group: group, denominators: denominators)
        }
    }

    /// The delta rule's step on S: see SlayKernels.DeltaRows.step.
    @inline(__always)
    public static func delta(state: UnsafeMutableRawPointer, storage: ElementType, rows: Int, columns: Int,
                             rowStride: Int, keys: UnsafePointer<Float>, alpha: Float, beta: Float,
                             value: UnsafePointer<Float>, queries: UnsafePointer<Float>, queryStride: Int, group: Int,
                             outputs: UnsafeMutablePointer<Float>, queryKey: UnsafeMutablePointer<Float>? = nil) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.DeltaRows.step(
                state: state, storage: SlayKernelsAVX2.ElementFormat(rawValue: storage.rawValue)!, rows: rows,
                columns: columns, rowStride: rowStride, keys: keys, alpha: alpha, beta: beta, value: value,
                queries: queries, queryStride: queryStride, group: group, outputs: outputs, queryKey: queryKey)
        case .portable:
            SlayKernels.DeltaRows.step(
                state: state, storage: SlayKernels.ElementFormat(rawValue: storage.rawValue)!, rows: rows,
                columns: columns, rowStride: rowStride, keys: keys, alpha: alpha, beta: beta, value: value,
                queries: queries, queryStride: queryStride, group: group, outputs: outputs, queryKey: queryKey)
        }
    }

    /// Σ_i x[i]·y[i] for i < count, in 8 lanes then the lanes in a fixed order.
    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        switch KernelVariant.active {
        case .avx2: return SlayKernelsAVX2.DecodeRows.dot(x, y, count: count)
        case .portable: return SlayKernels.DecodeRows.dot(x, y, count: count)
        }
    }

    /// target[i] = source[i·stride] converted to fp32 (stride in elements of `type`).
    @inline(__always)
    public static func load(_ type: ElementType, _ source: UnsafeRawPointer, stride: Int, count: Int,
                            into target: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.HalfPrecision.load(SlayKernelsAVX2.ElementFormat(rawValue: type.rawValue)!, source,
                                               stride: stride, count: count, into: target)
        case .portable:
            SlayKernels.HalfPrecision.load(SlayKernels.ElementFormat(rawValue: type.rawValue)!, source,
                                           stride: stride, count: count, into: target)
        }
    }

    /// target[i·stride] = source[i] rounded to `type` (nearest-even).
    @inline(__always)
    public static func store(_ type: ElementType, _ source: UnsafePointer<Float>, count: Int,
                             into target: UnsafeMutableRawPointer, stride: Int) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.HalfPrecision.store(SlayKernelsAVX2.ElementFormat(rawValue: type.rawValue)!, source,
                                                count: count, into: target, stride: stride)
        case .portable:
            SlayKernels.HalfPrecision.store(SlayKernels.ElementFormat(rawValue: type.rawValue)!, source,
                                            count: count, into: target, stride: stride)
        }
    }

    /// target[i·stride] = source[i]·scale rounded to `type` (nearest-even): output stores.
    @inline(__always)
    public static func storeScaled(_ type: ElementType, _ source: UnsafePointer<Float>, scale: Float, count: Int,
                                   into target: UnsafeMutableRawPointer, stride: Int) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.HalfPrecision.storeScaled(SlayKernelsAVX2.ElementFormat(rawValue: type.rawValue)!, source,
                                                      scale: scale, count: count, into: target, stride: stride)
        case .portable:
            SlayKernels.HalfPrecision.storeScaled(SlayKernels.ElementFormat(rawValue: type.rawValue)!, source,
                                                  scale: scale, count: count, into: target, stride: stride)
        }
    }

    /// `rows` rows of `width` elements (rows `rowStride`, columns `columnStride` elements apart)
    /// as contiguous fp32 rows: see SlayKernels.HalfPrecision.loadRows.
    @inline(__always)
    public static func loadRows(_ type: ElementType, _ source: UnsafeRawPointer, rowStride: Int, columnStride: Int,
                                rows: Int, width: Int, into target: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.HalfPrecision.loadRows(SlayKernelsAVX2.ElementFormat(rawValue: type.rawValue)!, source,
                                                   rowStride: rowStride, columnStride: columnStride, rows: rows,
                                                   width: width, into: target)
        case .portable:
            SlayKernels.HalfPrecision.loadRows(SlayKernels.ElementFormat(rawValue: type.rawValue)!, source,
                                               rowStride: rowStride, columnStride: columnStride, rows: rows,
                                               width: width, into: target)
        }
    }

    /// Contiguous fp32 rows rounded into strided rows of `type`: see SlayKernels.HalfPrecision.storeRows.
    @inline(__always)
    public static func storeRows(_ type: ElementType, _ source: UnsafePointer<Float>, rows: Int, width: Int,
                                 into target: UnsafeMutableRawPointer, rowStride: Int, columnStride: Int) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.HalfPrecision.storeRows(SlayKernelsAVX2.ElementFormat(rawValue: type.rawValue)!, source,
                                                    rows: rows, width: width, into: target, rowStride: rowStride,
                                                    columnStride: columnStride)
        case .portable:
            SlayKernels.HalfPrecision.storeRows(SlayKernels.ElementFormat(rawValue: type.rawValue)!, source,
                                                rows: rows, width: width, into: target, rowStride: rowStride,
                                                columnStride: columnStride)
        }
    }
}
