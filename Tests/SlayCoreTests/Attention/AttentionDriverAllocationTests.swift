import XCTest
@testable import SlayCore

/// Every allocation of a whole-sequence call (spans, workspaces, the normaliser snapshot) and of
/// the backward pass can fail with SlayError(.outOfMemory), and then nothing is written.
final class AttentionDriverAllocationTests: XCTestCase {
    private func filled(_ count: Int, seed: UInt64) -> TestTensor {
        var generator = SeededGenerator(seed: seed)
        return TestTensor(generator.floats(count))
    }

    func testLinearAttention() throws {
        let (b, t, h, d, dv) = (3, 9, 2, 4, 3)
        let map = try SlayFeatureMap(SlayConfiguration(headDim: d, numHeads: h, nodes: 2, polynomial: .tensorSketch, polyDim: 6))
        let (q, k, v) = (filled(b * t * h * d, seed: 1), filled(b * t * h * d, seed: 2), filled(b * t * h * dv, seed: 3))
        for (causal, threads) in [(true, 1), (true, 2), (false, 2)] {
            let out = TestTensor(count: b * t * h * dv, repeating: -7)
            let made = assertEveryAllocationFails("causal \(causal), \(threads) threads", {
                try LinearAttention.run(map: map, q: q.view([b, t, h, d]), k: k.view([b, t, h, d]), v: v.view([b, t, h, dv]),
                                        out: out.view([b, t, h, dv]),
                                        options: LinearAttentionOptions(causal: causal, chunkSize: 4, nThreads: threads))
            }, untouched: {
                XCTAssertEqual(out.bits, [UInt32](repeating: Float(-7).bitPattern, count: out.count))
            })
            XCTAssertGreaterThanOrEqual(made, 2 + min(threads, 2), "spans, each worker's workspace, the normaliser snapshot")
        }
    }

    func testBackward() throws {
        let (t, h, d, dv) = (7, 1, 3, 2)
        let map = try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: h))
        let (q, k, v, dout) = (filled(t * h * d, seed: 4), filled(t * h * d, seed: 5), filled(t * h * dv, seed: 6),
                               filled(t * h * dv, seed: 7))
        let dq = TestTensor(count: t * h * d, repeating: -7)
        let offsets: [Int64] = [0, 3, 3, 7]
        let made = assertEveryAllocationFails("backward", {
            var request = AttentionGradientRequest(dout: dout.view([1, t, h, dv]), dq: dq.view([1, t, h, d]))
            request.spans = try offsets.withUnsafeBufferPointer { try SequenceSpan.packed(offsets: $0, total: t) }
            let positions = try HeapArray<Int>([0, 2, 5])
            try LinearAttentionBackward.run(map: map, q: q.view([1, t, h, d]), k: k.view([1, t, h, d]), v: v.view([1, t, h, dv]),
                                            options: LinearAttentionOptions(chunkSize: 2), request: request, positions: positions)
        }, untouched: {
            XCTAssertEqual(dq.bits, [UInt32](repeating: Float(-7).bitPattern, count: dq.count))
        })
        XCTAssertGreaterThanOrEqual(made, 3)
    }

    func testSpansOfPaddedAndPackedBatches() throws {
        XCTAssertEqual(Array(try SequenceSpan.padded(batch: 2, length: 5)),
                       [SequenceSpan(batch: 0, start: 0, length: 5), SequenceSpan(batch: 1, start: 0, length: 5)])
        XCTAssertEqual(Array(try SequenceSpan.packed(offsets: [0, 2, 2, 6], total: 6)),
                       [SequenceSpan(batch: 0, start: 0, length: 2), SequenceSpan(batch: 0, start: 2, length: 0),
                        SequenceSpan(batch: 0, start: 2, length: 4)])
        XCTAssertThrowsSlayError(.shape, try SequenceSpan.packed(offsets: [0, 3, 2], total: 2))
        XCTAssertThrowsSlayError(.shape, try SequenceSpan.packed(offsets: [1, 3], total: 3))
        XCTAssertThrowsSlayError(.shape, try SequenceSpan.packed(offsets: [0], total: 0))
        XCTAssertThrowsSlayError(.shape, try SequenceSpan.packed(offsets: [0, 3], total: 4))
        assertEveryAllocationFails("packed") { _ = try SequenceSpan.packed(offsets: [0, 1], total: 1) }
    }
}
