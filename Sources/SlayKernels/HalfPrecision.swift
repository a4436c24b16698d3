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
    /// Stores v like store8 and returns what load8 would read back. bf16 skips store8's NaN
    /// repair here (a NaN whose payload sits only in the low 16 bits, which arithmetic never
    /// produces, would be stored as ±inf): the state kernels' hot loop cannot afford it.
    static func storeRounded(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) -> SIMD8<Float>
    static var stride: Int { get }
    /// 16 elements as two vectors, in the codec's lane order (see permute16).
    static func load16(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>)
    /// Stores two vectors in the codec's lane order like storeRounded, returning what load16 reads.
    static func storeRounded16(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ p: UnsafeMutableRawPointer)
        -> (SIMD8<Float>, SIMD8<Float>)
    /// Elements 0..<16 in natural order (a = 0..<8, b = 8..<16) → the codec's lane order.
    static func permute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>)
    /// The codec's lane order → natural order.
    static func unpermute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>)
}

/// Natural lane order: pairs are two plain vectors.
extension RowCodec {
    @inline(__always) static func load16(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>) {
        (load8(p), load8(p + 8 * stride))
    }
    @inline(__always) static func storeRounded16(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ p: UnsafeMutableRawPointer)
        -> (SIMD8<Float>, SIMD8<Float>) {
        (storeRounded(a, p), storeRounded(b, p + 8 * stride))
    }
    @inline(__always) static func permute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) { (a, b) }
    @inline(__always) static func unpermute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) { (a, b) }
}

enum F32Codec: RowCodec {
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> { p.loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: v, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer) -> Float { p.loadUnaligned(as: Float.self) }
    @inline(__always) static func store1(_ v: Float, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: v, as: Float.self) }
    @inline(__always) static func storeRounded(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) -> SIMD8<Float> {
        store8(v, p)
        return v
    }
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
    @inline(__always) static func storeRounded(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) -> SIMD8<Float> {
        #if SLAY_AVX2
        let half = SIMD8<Float16>(v)
        p.storeBytes(of: half, as: SIMD8<Float16>.self)
        return SIMD8<Float>(half)
        #else
        store8(v, p)
        return load8(p)
        #endif
    }
    static var stride: Int { 2 }
}

/// bfloat16 as UInt16 bit patterns: the high half of a binary32. Loading shifts the bits up
/// (exact); storing rounds to nearest-even on the dropped 16 bits, and keeps NaNs NaN (quieted)
/// instead of letting the rounding carry turn a NaN payload into an infinity.
enum BF16Codec: RowCodec {
    // The widening and narrowing are written as lane moves of 32-bit words (the generic
    // SIMD8(truncatingIfNeeded:) is an out-of-line call inside large kernels); LLVM turns them
    // into unpack / shuffle instructions.
    @inline(__always) static func load8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
        let pairs = p.loadUnaligned(as: SIMD4<UInt32>.self)
        let (even, odd) = (pairs &<< 16, pairs & 0xFFFF_0000)
        let bits = SIMD8<UInt32>(even[0], odd[0], even[1], odd[1], even[2], odd[2], even[3], odd[3])
        return unsafeBitCast(bits, to: SIMD8<Float>.self)
    }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) {
        let r = roundedBits(v)
        let pairs = SIMD4<UInt32>(r[0] | (r[1] &<< 16), r[2] | (r[3] &<< 16), r[4] | (r[5] &<< 16), r[6] | (r[7] &<< 16))
        p.storeBytes(of: pairs, as: SIMD4<UInt32>.self)
    }

    /// The bfloat16 patterns of v's lanes, in the low 16 bits of each lane.
    @inline(__always) static func roundedBits(_ v: SIMD8<Float>) -> SIMD8<UInt32> {
        let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        // NaN: magnitude above the infinity pattern; the sign of the difference selects the lanes
        // (an integer mask, not a SIMDMask, which this build would assemble lane by lane).
        let magnitude = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Int32>.self)
        let isNaN = unsafeBitCast((SIMD8<Int32>(repeating: 0x7F80_0000) &- magnitude) &>> 31, to: SIMD8<UInt32>.self)
        let quiet = (bits &>> 16) | 0x0040
        return (rounded & ~isNaN) | (quiet & isNaN)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16)
    }
    @inline(__always) static func store1(_ v: Float, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: HalfPrecision.bfloat16Bits(v), as: UInt16.self)
    }
    // Pairs in the lane order of 256-bit unpacks: a = elements [0-3, 8-11], b = [4-7, 12-15]. One
    // unpack per vector widens them, and a pack of the two puts them back in natural order.
    @inline(__always) static func load16(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>) {
        let x = p.loadUnaligned(as: SIMD16<UInt16>.self)
        let a = SIMD16<UInt16>(0, x[0], 0, x[1], 0, x[2], 0, x[3], 0, x[8], 0, x[9], 0, x[10], 0, x[11])
        let b = SIMD16<UInt16>(0, x[4], 0, x[5], 0, x[6], 0, x[7], 0, x[12], 0, x[13], 0, x[14], 0, x[15])
        return (unsafeBitCast(a, to: SIMD8<Float>.self), unsafeBitCast(b, to: SIMD8<Float>.self))
    }
    @inline(__always) static func storeRounded16(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ p: UnsafeMutableRawPointer)
        -> (SIMD8<Float>, SIMD8<Float>) {
        let (ra, rb) = (roundedHigh(a), roundedHigh(b))
        let (x, y) = (unsafeBitCast(ra, to: SIMD16<UInt16>.self), unsafeBitCast(rb, to: SIMD16<UInt16>.self))
        let packed = SIMD16<UInt16>(x[1], x[3], x[5], x[7], y[1], y[3], y[5], y[7],
                                    x[9], x[11], x[13], x[15], y[9], y[11], y[13], y[15])
        p.storeBytes(of: packed, as: SIMD16<UInt16>.self)
        return (unsafeBitCast(ra, to: SIMD8<Float>.self), unsafeBitCast(rb, to: SIMD8<Float>.self))
    }
    @inline(__always) static func permute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        (SIMD8(lowHalf: a.lowHalf, highHalf: b.lowHalf), SIMD8(lowHalf: a.highHalf, highHalf: b.highHalf))
    }
    @inline(__always) static func unpermute16(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        (SIMD8(lowHalf: a.lowHalf, highHalf: b.lowHalf), SIMD8(lowHalf: a.highHalf, highHalf: b.highHalf))
    }

    /// Round-to-nearest-even to bf16, the result left in the high 16 bits (low bits zero).
    @inline(__always) static func roundedHigh(_ v: SIMD8<Float>) -> SIMD8<UInt32> {
        let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        return (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) & 0xFFFF_0000
    }

    @inline(__always) static func storeRounded(_ v: SIMD8<Float>, _ p: UnsafeMutableRawPointer) -> SIMD8<Float> {
        let high = roundedHigh(v)
        // The high halves of the 32-bit lanes, in order (LLVM makes this a pack).
        let h = unsafeBitCast(high, to: SIMD16<UInt16>.self)
        p.storeBytes(of: SIMD8<UInt16>(h[1], h[3], h[5], h[7], h[9], h[11], h[13], h[15]), as: SIMD8<UInt16>.self)
        return unsafeBitCast(high, to: SIMD8<Float>.self)
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

    /// `rows` rows of `width` elements, row r at source + r·rowStride elements (columns
    /// `columnStride` apart), as fp32 into contiguous target rows of `width`: the gathers of a
    /// chunk's rows, in one call (one dispatch per chunk instead of one per row).
    public static func loadRows(_ type: ElementFormat, _ source: UnsafeRawPointer, rowStride: Int, columnStride: Int,
                                rows: Int, width: Int, into target: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            for r in 0..<rows {
                load(F32Codec.self, source + r * rowStride * 4, stride: columnStride, count: width, into: target + r * width)
            }
        case .f16:
            for r in 0..<rows {
                load(F16Codec.self, source + r * rowStride * 2, stride: columnStride, count: width, into: target + r * width)
            }
        case .bf16:
            for r in 0..<rows {
                load(BF16Codec.self, source + r * rowStride * 2, stride: columnStride, count: width, into: target + r * width)
            }
        }
    }

    /// The inverse of loadRows: contiguous fp32 rows of `width` rounded (nearest-even) into rows
    /// `rowStride` elements apart.
    public static func storeRows(_ type: ElementFormat, _ source: UnsafePointer<Float>, rows: Int, width: Int,
                                 into target: UnsafeMutableRawPointer, rowStride: Int, columnStride: Int) {
        switch type {
        case .f32:
            for r in 0..<rows {
                store(F32Codec.self, source + r * width, count: width, into: target + r * rowStride * 4, stride: columnStride)
            }
        case .f16:
            for r in 0..<rows {
                store(F16Codec.self, source + r * width, count: width, into: target + r * rowStride * 2, stride: columnStride)
            }
        case .bf16:
            for r in 0..<rows {
                store(BF16Codec.self, source + r * width, count: width, into: target + r * rowStride * 2, stride: columnStride)
            }
        }
    }

    /// target[i·targetStride] = source[i]·scale rounded to `type` (nearest-even), for i < count:
    /// each product is formed in fp32 and rounded once, so the result is the fp32 product rounded.
    public static func storeScaled(_ type: ElementFormat, _ source: UnsafePointer<Float>, scale: Float, count: Int,
                                   into target: UnsafeMutableRawPointer, stride targetStride: Int) {
        switch type {
        case .f32: storeScaled(F32Codec.self, source, scale: scale, count: count, into: target, stride: targetStride)
        case .f16: storeScaled(F16Codec.self, source, scale: scale, count: count, into: target, stride: targetStride)
        case .bf16: storeScaled(BF16Codec.self, source, scale: scale, count: count, into: target, stride: targetStride)
        }
    }

    @inline(__always)
    static func storeScaled<C: RowCodec>(_: C.Type, _ source: UnsafePointer<Float>, scale: Float, count: Int,
                                         into target: UnsafeMutableRawPointer, stride targetStride: Int) {
        var i = 0
        if targetStride == 1 {
            let factor = SIMD8<Float>(repeating: scale)
            while i + 8 <= count {
                C.store8(F32Codec.load8(source + i) * factor, target + i * C.stride)
                i += 8
            }
        }
        while i < count {
            C.store1(source[i] * scale, target + i * targetStride * C.stride)
            i += 1
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
