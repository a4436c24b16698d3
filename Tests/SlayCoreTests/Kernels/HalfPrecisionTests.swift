import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// fp16 and bf16 loads and stores against an exact float64 twin of round-to-nearest-even:
/// every fp16 / bf16 value, every midpoint between neighbours and the floats one ulp either side
/// of it, subnormals, the overflow threshold, ±0, ±inf and NaN; for each kernel build, through
/// the vector path (8 at a time) and the scalar path (strided), and through the dispatcher.
final class HalfPrecisionTests: XCTestCase {
    typealias Load = (ElementType, UnsafeRawPointer, Int, Int, UnsafeMutablePointer<Float>) -> Void
    typealias Store = (ElementType, UnsafePointer<Float>, Int, UnsafeMutableRawPointer, Int) -> Void

    private var variants: [(String, Load, Store)] {
        var result: [(String, Load, Store)] = [
            ("dispatch", { DecodeKernels.load($0, $1, stride: $2, count: $3, into: $4) },
             { DecodeKernels.store($0, $1, count: $2, into: $3, stride: $4) }),
            ("portable", { SlayKernels.HalfPrecision.load(SlayKernels.ElementFormat(rawValue: $0.rawValue)!, $1, stride: $2, count: $3, into: $4) },
             { SlayKernels.HalfPrecision.store(SlayKernels.ElementFormat(rawValue: $0.rawValue)!, $1, count: $2, into: $3, stride: $4) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(("avx2-fma",
                           { SlayKernelsAVX2.HalfPrecision.load(SlayKernelsAVX2.ElementFormat(rawValue: $0.rawValue)!, $1, stride: $2, count: $3, into: $4) },
                           { SlayKernelsAVX2.HalfPrecision.store(SlayKernelsAVX2.ElementFormat(rawValue: $0.rawValue)!, $1, count: $2, into: $3, stride: $4) }))
        }
        return result
    }

    /// Format parameters: significand bits (with the implicit one), smallest normal exponent,
    /// exponent bits.
    struct Format {
        let precision: Int, minExponent: Int, exponentBits: Int
        static let f16 = Format(precision: 11, minExponent: -14, exponentBits: 5)
        static let bf16 = Format(precision: 8, minExponent: -126, exponentBits: 8)

        var maxExponent: Int { (1 << (exponentBits - 1)) - 1 }
        var mantissaBits: Int { precision - 1 }

        /// The exact value of a bit pattern (NaN for NaNs).
        func value(_ bits: UInt16) -> Double {
            let sign: Double = bits & 0x8000 != 0 ? -1 : 1
            let exponentField = Int(bits >> UInt16(mantissaBits)) & ((1 << exponentBits) - 1)
            let mantissa = Double(Int(bits) & ((1 << mantissaBits) - 1))
            if exponentField == (1 << exponentBits) - 1 { return mantissa == 0 ? sign * .infinity : .nan }
            if exponentField == 0 { return sign * mantissa * pow(2, Double(minExponent - mantissaBits)) }
            return sign * (1 + mantissa / pow(2, Double(mantissaBits))) * pow(2, Double(exponentField - maxExponent))
        }

        /// Round-to-nearest-even of x in this format, as an exact double (±inf on overflow).
        func rounded(_ x: Double) -> Double {
            if x.isNaN || x.isInfinite || x == 0 { return x }
            let magnitude = abs(x)
            let exponent = max(Int(magnitude.exponent), minExponent)
            let quantum = pow(2, Double(exponent - mantissaBits))
            let scaled = magnitude / quantum                     // exact: a power-of-two division
            var integer = scaled.rounded(.down)
            let remainder = scaled - integer
            if remainder > 0.5 || (remainder == 0.5 && integer.truncatingRemainder(dividingBy: 2) == 1) { integer += 1 }
            let result = integer * quantum
            let largest = (2 - pow(2, Double(-mantissaBits))) * pow(2, Double(maxExponent))
            return (x < 0 ? -1 : 1) * (result > largest ? .infinity : result)
        }
    }

    private func format(_ type: ElementType) -> Format { type == .f16 ? .f16 : .bf16 }

    /// Every finite pattern, the midpoints between neighbours and one float ulp either side.
    private func inputs(_ type: ElementType) -> [Float] {
        let fmt = format(type)
        var result: [Float] = [0, -0, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 65504, 65519.99,
                               65520, 65520.01, 1e10, -1e10]
        for bits in UInt16(0)...UInt16.max where bits & 0x8000 == 0 {
            let low = fmt.value(bits)
            let high = fmt.value(bits + 1)
            guard low.isFinite else { continue }
            for x in [low, (high.isFinite ? (low + high) / 2 : low)] {
                let f = Float(x)
                for candidate in [f, f.nextUp, f.nextDown] where candidate.isFinite {
                    result.append(candidate)
                    result.append(-candidate)
                }
            }
        }
        return result
    }

    private func bits(of value: Float, _ type: ElementType, store: Store, vector: Bool) -> UInt16 {
        var out = [UInt16](repeating: 0xDEAD, count: 16)
        var source = [Float](repeating: 1, count: 8)
        source[3] = value
        out.withUnsafeMutableBytes { raw in
            if vector {
                store(type, source, 8, raw.baseAddress!, 1)
            } else {
                store(type, source, 8, raw.baseAddress!, 2)
            }
        }
        return out[vector ? 3 : 6]
    }

    func testStoresRoundToNearestEven() throws {
        try skipUnderSanitizer("35 s under ASan; an exhaustive rounding sweep over plain loads and stores")
        for type in [ElementType.f16, .bf16] {
            let fmt = format(type)
            let xs = inputs(type)
            for (name, _, store) in variants {
                // Vector path: 8 lanes at a time, in one call over the whole input.
                var out = [UInt16](repeating: 0, count: xs.count)
                out.withUnsafeMutableBytes { raw in store(type, xs, xs.count, raw.baseAddress!, 1) }
                // Scalar path: a stride of 2 elements.
                var strided = [UInt16](repeating: 0, count: 2 * xs.count)
                strided.withUnsafeMutableBytes { raw in store(type, xs, xs.count, raw.baseAddress!, 2) }
                var failures = 0
                for (i, x) in xs.enumerated() {
                    let expected = fmt.rounded(Double(x))
                    for (path, pattern) in [("vector", out[i]), ("scalar", strided[2 * i])] {
                        let actual = fmt.value(pattern)
                        let same = actual == expected && (actual.sign == expected.sign)
                        if !same && failures < 5 {
                            failures += 1
                            XCTFail("\(type) \(name) \(path): \(x) (bits \(String(x.bitPattern, radix: 16))) stored as \(actual) (0x\(String(pattern, radix: 16))), expected \(expected)")
                        }
                    }
                }
            }
        }
    }

    func testNaNStaysNaNAndInfinityStays() {
        let nans: [Float] = [.nan, -.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0x7FFF_FFFF),
                             Float(bitPattern: 0xFF80_0001), Float(bitPattern: 0x7F80_FFFF), .signalingNaN]
        for type in [ElementType.f16, .bf16] {
            for (name, load, store) in variants {
                for vector in [true, false] {
                    for x in nans {
                        let pattern = bits(of: x, type, store: store, vector: vector)
                        XCTAssertTrue(format(type).value(pattern).isNaN, "\(type) \(name) NaN 0x\(String(x.bitPattern, radix: 16)) → 0x\(String(pattern, radix: 16))")
                        var back: Float = 0
                        withUnsafeBytes(of: pattern) { load(type, $0.baseAddress!, 1, 1, &back) }
                        XCTAssertTrue(back.isNaN, "\(type) \(name)")
                    }
                    for x in [Float.infinity, -.infinity] {
                        XCTAssertEqual(format(type).value(bits(of: x, type, store: store, vector: vector)), Double(x), "\(type) \(name)")
                    }
                }
            }
        }
    }

    /// Loads are exact: every pattern widens to its value (NaNs to a NaN), vector and strided.
    func testLoadsAreExactForEveryPattern() {
        for type in [ElementType.f16, .bf16] {
            let fmt = format(type)
            let patterns = (0...0xFFFF).map { UInt16($0) }
            for (name, load, _) in variants {
                var vector = [Float](repeating: 0, count: patterns.count)
                patterns.withUnsafeBytes { load(type, $0.baseAddress!, 1, patterns.count, &vector) }
                var strided = [Float](repeating: 0, count: patterns.count / 2)
                patterns.withUnsafeBytes { load(type, $0.baseAddress!, 2, patterns.count / 2, &strided) }
                var failures = 0
                for (i, p) in patterns.enumerated() {
                    let expected = fmt.value(p)
                    let actual = Double(vector[i])
                    let ok = expected.isNaN ? actual.isNaN : (actual == expected && actual.sign == expected.sign)
                    if !ok && failures < 5 { failures += 1; XCTFail("\(type) \(name) 0x\(String(p, radix: 16)) → \(actual), expected \(expected)") }
                    if i % 2 == 0 {
                        let s = Double(strided[i / 2])
                        let okStrided = expected.isNaN ? s.isNaN : (s == expected && s.sign == expected.sign)
                        if !okStrided && failures < 5 { failures += 1; XCTFail("\(type) \(name) strided 0x\(String(p, radix: 16))") }
                    }
                }
            }
        }
    }

    /// fp32 rows pass through unchanged (the state's default storage uses the same entry points).
    func testFloat32IsACopy() {
        var generator = SeededGenerator(seed: 9)
        let xs = generator.floats(37) + [.infinity, -0.0, .leastNonzeroMagnitude]
        for (name, load, store) in variants {
            var raw = [Float](repeating: .nan, count: xs.count)
            raw.withUnsafeMutableBytes { store(.f32, xs, xs.count, $0.baseAddress!, 1) }
            var back = [Float](repeating: .nan, count: xs.count)
            raw.withUnsafeBytes { load(.f32, $0.baseAddress!, 1, xs.count, &back) }
            XCTAssertEqual(back.map(\.bitPattern), xs.map(\.bitPattern), name)
        }
    }

    /// storeScaled (the normalised output stores) rounds each fp32 product once: bitwise the
    /// store of the products, in every build, vector and strided, for every fp16 / bf16 rounding
    /// case (inputs() times scales that keep or move the midpoints).
    func testScaledStoresRoundTheFloat32Product() {
        typealias Scaled = (ElementType, UnsafePointer<Float>, Float, Int, UnsafeMutableRawPointer, Int) -> Void
        var scaled: [(String, Scaled)] = [
            ("dispatch", { DecodeKernels.storeScaled($0, $1, scale: $2, count: $3, into: $4, stride: $5) }),
            ("portable", { SlayKernels.HalfPrecision.storeScaled(SlayKernels.ElementFormat(rawValue: $0.rawValue)!, $1,
                                                                 scale: $2, count: $3, into: $4, stride: $5) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            scaled.append(("avx2-fma", { SlayKernelsAVX2.HalfPrecision.storeScaled(
                SlayKernelsAVX2.ElementFormat(rawValue: $0.rawValue)!, $1, scale: $2, count: $3, into: $4, stride: $5) }))
        }
        let store = variants[0].2
        for type in [ElementType.f16, .bf16] {
            let xs = inputs(type)
            for scale: Float in [1, 0.5, 1.0 / 3.0, 3, -1.75] {
                let products = xs.map { $0 * scale }
                var want = [UInt16](repeating: 0, count: xs.count)
                want.withUnsafeMutableBytes { store(type, products, products.count, $0.baseAddress!, 1) }
                for (name, storeScaled) in scaled {
                    for stride in [1, 3] {
                        var got = [UInt16](repeating: 0, count: stride * xs.count)
                        got.withUnsafeMutableBytes { storeScaled(type, xs, scale, xs.count, $0.baseAddress!, stride) }
                        let mismatches = (0..<xs.count).filter { got[stride * $0] != want[$0] }
                        XCTAssertTrue(mismatches.isEmpty, "\(type) \(name) scale \(scale) stride \(stride): \(mismatches.count) "
                                      + "differ, first at \(mismatches.first.map { xs[$0] } ?? 0)")
                    }
                }
            }
        }
    }
}
