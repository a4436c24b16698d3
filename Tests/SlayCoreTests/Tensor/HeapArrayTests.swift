import XCTest
@testable import SlayCore

/// The fallible storage behind feature-map parameters: a size that cannot be allocated is a
/// status (out of memory or overflow), never an abort.
final class HeapArrayTests: XCTestCase {
    func testStartsZeroedAndReadsLikeAnArray() throws {
        let values = try HeapArray<Float>(count: 5)
        XCTAssertEqual(Array(values), [0, 0, 0, 0, 0])
        values[2] = 7
        XCTAssertEqual(values.count, 5)
        XCTAssertEqual(values[2], 7)
        XCTAssertEqual(values.withUnsafeBufferPointer { $0.reduce(0, +) }, 7)
        XCTAssertEqual(Array(try HeapArray<Float>(count: 0)), [])
        XCTAssertEqual(Array(try HeapArray<Int32>(repeating: 3, count: 2)), [3, 3])
        let source: [Float] = [1, 2, 3]
        XCTAssertEqual(Array(try source.withUnsafeBufferPointer { try HeapArray(copying: $0) }), source)
        XCTAssertEqual(Array(try HeapArray(source).mapped { Double($0) * 2 }), [2, 4, 6])
    }

    func testStorageIs64ByteAligned() throws {
        for count in [1, 3, 17, 1000] {
            XCTAssertEqual(Int(bitPattern: try HeapArray<Float>(count: count).baseAddress) % 64, 0)
        }
    }

    /// 2^60 bytes passes the size arithmetic but no allocator can provide it.
    func testAnAllocationThatDoesNotFitIsOutOfMemory() {
        XCTAssertThrowsSlayError(.outOfMemory, try HeapArray<Float>(count: 1 << 58, what: "omega"))
    }

    func testAByteSizeBeyond64BitsIsOverflow() {
        XCTAssertThrowsSlayError(.overflow, try HeapArray<Double>(count: Int.max / 4))
        XCTAssertThrowsSlayError(.invalidArgument, try HeapArray<Float>(count: -1))
    }

    func testTransposedBlocks() throws {
        // Two stacked (2, 3) blocks.
        let values = try HeapArray<Float>([1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60])
        XCTAssertEqual(Array(try values.transposedBlocks(2, rows: 2, cols: 3)), [1, 4, 2, 5, 3, 6, 10, 40, 20, 50, 30, 60])
    }
}
