// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// Element types a kernel can load into fp32 registers and store back from them. The raw codes
/// are SLAY_DTYPE_* of slay.h, so SlayCore maps its own type to this one by value.
public enum ElementFormat: Int32, Sendable {
    case f32 = 0
    case f16 = 2
    case bf16 = 3

    public var bytes: Int { self == .f32 ? 4 : 2 }
}

/// Loads 8 elements into fp32 lanes and stores 8 fp32 lanes back, rounding to nearest-even.
/// One conforming type per ElementFormat; the kernels are generic over it and specialised.
protocol RowCodec {
    static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float>
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer)
    static func load1(_ p: UnsafeRawPointer) -> Float
    static func store1(_ v: Float, _ p: UnsafeMutableRawPointer)
    static var stride: Int { get }
}

enum F32Codec: RowCodec {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> { p.loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: v, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer) -> Float { p.loadUnaligned(as: Float.self) }
    @inline(__always) static func store1(_ v: Float, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: v, as: Float.self) }
    static var stride: Int { 4 }
}

/// IEEE binary16. The AVX2 build converts 8 lanes with F16C (vcvtph2ps / vcvtps2ph, rounding to
/// nearest-even); the baseline build converts one element at a time through the runtime's
/// correctly rounded conversions (no F16C there).
enum F16Codec: RowCodec {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
        #if SLAY_AVX2
        return SIMD8<Float>(p.loadUnaligned(as: SIMD8<Float16>.self))
        #else
        var lanes = SIMD8<Float>()
        for i in 0..<8 { lanes[i] = load1(p + 2 * i) }
        return lanes
        #endif
    }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        #if SLAY_AVX2
        p.storeBytes(of: SIMD8<Float16>(v), as: SIMD8<Float16>.self)
        #else
        for i in 0..<8 { store1(v[i], p + 2 * i) }
        #endif
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
    }
    @inline(__always) static func store1(_ v: Float, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: Float16(v).bitPattern, as: UInt16.self)
    }
    static var stride: Int { 2 }
}

/// bfloat16 as UInt16 bit patterns: the high half of a binary32. Loading shifts the bits up
/// (exact); storing rounds to nearest-even on the dropped 16 bits, and keeps NaNs NaN (quieted)
/// instead of letting the rounding carry turn a NaN payload into an infinity.
enum BF16Codec: RowCodec {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD8<UInt16>.self)) &<< 16
        return unsafeBitCast(bits, to: SIMD8<Float>.self)
    }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        // NaN: magnitude above the infinity pattern; the sign of the difference selects the lanes
        // (an integer mask, not a SIMDMask, which this build would assemble lane by lane).
        let magnitude = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Int32>.self)
        let isNaN = unsafeBitCast((SIMD8<Int32>(repeating: 0x7F80_0000) &- magnitude) &>> 31, to: SIMD8<UInt32>.self)
        let quiet = (bits &>> 16) | 0x0040
        let result = (rounded & ~isNaN) | (quiet & isNaN)
        p.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: result), as: SIMD8<UInt16>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16)
    }
    @inline(__always) static func store1(_ v: Float, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: HalfPrecision.bfloat16Bits(v), as: UInt16.self)
    }
    static var stride: Int { 2 }
}

/// Conversions between fp32 and the half-precision element types, for rows of tensors and
/// states: the loads and stores the kernels use, exposed for row-wise use by SlayCore.
public enum HalfPrecision {
    /// The bfloat16 bit pattern nearest to v (ties to even); NaN stays NaN (quiet), ±inf stays.
    @inline(__always)
    public static func bfloat16Bits(_ v: Float) -> UInt16 {
        let bits = v.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// target[i] = source[i·sourceStride] as fp32, for i < count (stride in elements).
    public static func load(_ type: ElementFormat, _ source: UnsafeRawPointer, stride sourceStride: Int, count: Int,
                            into target: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32: load(F32Codec.self, source, stride: sourceStride, count: count, into: target)
        case .f16: load(F16Codec.self, source, stride: sourceStride, count: count, into: target)
        case .bf16: load(BF16Codec.self, source, stride: sourceStride, count: count, into: target)
        }
    }

    /// target[i·targetStride] = source[i] rounded to `type` (nearest-even), for i < count.
    public static func store(_ type: ElementFormat, _ source: UnsafePointer<Float>, count: Int,
                             into target: UnsafeMutableRawPointer, stride targetStride: Int) {
        switch type {
        case .f32: store(F32Codec.self, source, count: count, into: target, stride: targetStride)
        case .f16: store(F16Codec.self, source, count: count, into: target, stride: targetStride)
        case .bf16: store(BF16Codec.self, source, count: count, into: target, stride: targetStride)
        }
    }

    @inline(__always)
    static func load<C: RowCodec>(_: C.Type, _ source: UnsafeRawPointer, stride sourceStride: Int, count: Int,
                                  into target: UnsafeMutablePointer<Float>) {
        var i = 0
        if sourceStride == 1 {
            while i + 8 <= count {
                F32Codec.store8(C.load8(source + i * C.stride), target + i)
                i += 8
            }
        }
        while i < count {
            target[i] = C.load1(source + i * sourceStride * C.stride)
            i += 1
        }
    }

    @inline(__always)
    static func store<C: RowCodec>(_: C.Type, _ source: UnsafePointer<Float>, count: Int,
                                   into target: UnsafeMutableRawPointer, stride targetStride: Int) {
        var i = 0
        if targetStride == 1 {
            while i + 8 <= count {
                C.store8(F32Codec.load8(source + i), target + i * C.stride)
                i += 8
            }
        }
        while i < count {
            C.store1(source[i], target + i * targetStride * C.stride)
            i += 1
        }
    }
}
