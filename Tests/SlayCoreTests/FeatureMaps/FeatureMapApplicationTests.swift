import XCTest
@testable import SlayCore

/// FeatureMapApplication: [B, T, H, d] → [B, T, H, m] in blocks of 64 rows, any strides.
final class FeatureMapApplicationTests: XCTestCase {
    func testApplyEqualsPerHeadFeaturesAcrossRowBlocks() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, numHeads: 2, nodes: 2, polynomial: .anchor,
                                                       polyDim: 3, prfDim: 4, seed: 12))
        let m = map.featureDim
        for t in [1, 63, 64, 65, 130] {
            var generator = SeededGenerator(seed: UInt64(t))
            let x = BTHD(b: 2, t: t, h: 2, d: 3, generator: &generator)
            // x head-first, out contiguous.
            let stored = x.headFirst()
            let out = TestTensor(count: 2 * t * 2 * m)
            try FeatureMapApplication.apply(map: map, role: .key, x: stored.view(x.shape, strides: x.headFirstStrides),
                                            out: out.view([2, t, 2, m]))
            for batch in 0..<2 {
                for head in 0..<2 {
                    var rows: [Float] = []
                    for i in 0..<t { rows += x.row(batch, i, head) }
                    let expected = map.computeFeatures(rows, head: head, role: .key)
                    for i in 0..<t {
                        let start = ((batch * t + i) * 2 + head) * m
                        // Blocks of fewer rows may take another GEMM path: equal up to fp32 rounding.
                        XCTAssertClose(Array(out.values[start..<(start + m)]),
                                       expected[(i * m)..<((i + 1) * m)].map(Double.init), relative: 1e-5, absolute: 1e-9,
                                       "T = \(t), batch \(batch), head \(head), row \(i)")
                    }
                }
            }
        }
    }

    func testShapeErrorsLeaveOutputUntouched() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, numHeads: 2, nodes: 1, polyDim: 2, prfDim: 2))
        let m = map.featureDim
        let x = TestTensor(count: 2 * 4 * 2 * 3, repeating: 0.5)
        let out = TestTensor(count: 2 * 4 * 2 * m, repeating: 7)
        let cases: [([Int], [Int], String)] = [
            ([2, 4, 2, 2], [2, 4, 2, m], "d = 2"),
            ([2, 4, 1, 3], [2, 4, 1, m], "1 head"),
            ([2, 4, 2, 3], [2, 4, 2, m - 1], "m - 1"),
            ([2, 4, 2, 3], [2, 3, 2, m], "out T = 3"),
            ([8, 2, 3], [2, 4, 2, m], "x rank 3"),
        ]
        for (xShape, outShape, label) in cases {
            XCTAssertThrowsSlayError(.shape, try FeatureMapApplication.apply(
                map: map, role: .query, x: TensorView(base: x.pointer, shape: xShape, strides: Array(repeating: 0, count: xShape.count)),
                out: TensorView(base: out.pointer, shape: outShape, strides: Array(repeating: 0, count: outShape.count))), label)
            XCTAssertTrue(out.values.allSatisfy { $0 == 7 }, label)
        }
    }
}
