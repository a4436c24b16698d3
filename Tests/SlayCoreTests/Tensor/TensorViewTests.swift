import XCTest
@testable import SlayCore

/// Half-precision tensor views: element reads and writes, row gathers and scatters (strided and
/// contiguous) and scaled stores, each against the row conversions HalfPrecisionTests checks
/// exhaustively, for every fp16 / bf16 bit pattern.
final class TensorViewTests: XCTestCase {
    func testElementLoadsAndStoresMatchTheRowConversions() {
        for type in [ElementType.f16, .bf16] {
            var patterns = (0...0xFFFF).map { UInt16($0) }
            let count = patterns.count
            var rows = [Float](repeating: 0, count: count)
            patterns.withUnsafeBytes { DecodeKernels.load(type, $0.baseAddress!, stride: 1, count: count, into: &rows) }
            patterns.withUnsafeMutableBytes { raw in
                let view = TensorView(raw: raw.baseAddress!, element: type, extents: SIMD4(count, 1, 1, 1),
                                      steps: SIMD4(1, 0, 0, 0), rank: 1)
                for i in 0..<count {
                    let x = view.load(i)
                    XCTAssertTrue(x.bitPattern == rows[i].bitPattern || (x.isNaN && rows[i].isNaN), "\(type) load 0x\(String(i, radix: 16))")
                }
            }
            // Scalar stores of values between the patterns round like the row stores.
            let values = (0..<4000).map { Float(bitPattern: UInt32($0) &* 1_073_741 &+ 12_345) }.filter { !$0.isNaN }
            var scalar = [UInt16](repeating: 0, count: values.count)
            var row = [UInt16](repeating: 0, count: values.count)
            row.withUnsafeMutableBytes { DecodeKernels.store(type, values, count: values.count, into: $0.baseAddress!, stride: 1) }
            scalar.withUnsafeMutableBytes { raw in
                let view = TensorView(raw: raw.baseAddress!, element: type, extents: SIMD4(values.count, 1, 1, 1),
                                      steps: SIMD4(1, 0, 0, 0), rank: 1)
                for (i, x) in values.enumerated() { view.store(x, at: i) }
            }
            XCTAssertEqual(scalar, row, "\(type)")
        }
    }

    /// gatherRows / scatterRows on a [B, T, H, D] half view with a column stride of 2 and with
    /// contiguous rows: the gathered block is the fp32 value of each element, and scattering it
    /// back restores every pattern (values read from a half tensor are exact in its type).
    func testHalfRowsGatherAndScatterExactly() {
        var generator = SeededGenerator(seed: 4)
        for type in [ElementType.f16, .bf16] {
            for columnStride in [1, 2] {
                let (b, t, h, d) = (2, 5, 3, 19)
                let count = b * t * h * d * columnStride
                var storage = (0..<count).map { _ in UInt16(truncatingIfNeeded: Int(generator.floats(1)[0] * 8000)) & 0x3FFF }
                let original = storage
                storage.withUnsafeMutableBytes { raw in
                    let steps = SIMD4(t * h * d * columnStride, h * d * columnStride, d * columnStride, columnStride)
                    let view = TensorView(raw: raw.baseAddress!, element: type, extents: SIMD4(b, t, h, d), steps: steps, rank: 4)
                    var block = [Float](repeating: .nan, count: 3 * d)
                    view.gatherRows(batch: 1, head: 2, t0: 1, rows: 3, into: &block)
                    for i in 0..<3 {
                        for j in 0..<d {
                            let offset = 1 * steps[0] + (1 + i) * steps[1] + 2 * steps[2] + j * steps[3]
                            XCTAssertEqual(block[i * d + j].bitPattern, view.load(offset).bitPattern)
                        }
                    }
                    view.scatterRows(batch: 1, head: 2, t0: 1, rows: 3, from: block)
                    // storeScaled by 1 is the same store.
                    view.storeScaled(block, scale: 1, count: d, at: 1 * steps[0] + 1 * steps[1] + 2 * steps[2], stride: columnStride)
                }
                XCTAssertEqual(storage, original, "\(type) stride \(columnStride)")
            }
        }
    }
}
