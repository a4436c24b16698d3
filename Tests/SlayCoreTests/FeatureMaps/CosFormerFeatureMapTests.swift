import Foundation
import XCTest
@testable import SlayCore

/// cosFormer against its definition with positions, clamping beyond L, and checks.
final class CosFormerFeatureMapTests: XCTestCase {
    private func twin(_ x: [Float], d: Int, firstPosition: Int, length: Int) -> [Double] {
        var out: [Double] = []
        for i in 0..<(x.count / d) {
            let position = min(firstPosition + i, length - 1)
            let angle = Double.pi * Double(position) / (2 * Double(length))
            let relu = (0..<d).map { max(Double(x[i * d + $0]), 0) }
            out += relu.map { $0 * cos(angle) } + relu.map { $0 * sin(angle) }
        }
        return out
    }

    func testFeaturesMatchDefinitionAtEveryPosition() throws {
        let (d, length) = (5, 40)
        let map = try CosFormerFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: 2, maxLength: length))
        var generator = SeededGenerator(seed: 2)
        let x = generator.floats(12 * d, in: -2...2)
        for first in [0, 7, 30, 38, 39, 45] {   // the last ones run past L and are clamped to L − 1
            for role in [FeatureRole.query, .key] {
                XCTAssertClose(map.mapRows(x, head: 1, role: role, firstPosition: first),
                               twin(x, d: d, firstPosition: first, length: length),
                               relative: 1e-6, absolute: 1e-7, "first \(first) \(role)")
            }
        }
        XCTAssertEqual(map.mapRows(x, head: 0), map.mapRows(x, head: 0, firstPosition: 0), "no positions means from 0")
        XCTAssertEqual(map.featureDim, 2 * d)
        XCTAssertTrue(map.needsPositions)
        XCTAssertTrue(map.isPositive)
    }

    /// φ(q_i)·φ(k_j) = relu(q)·relu(k)·cos(π (i − j) / (2L)).
    func testKernelDependsOnTheDistance() throws {
        let map = try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 2, maxLength: 10))
        let (q, k): ([Float], [Float]) = ([1, 2], [3, -1])
        let phiQ = map.mapRows(q, head: 0, firstPosition: 7)
        let phiK = map.mapRows(k, head: 0, role: .key, firstPosition: 3)
        let dot = zip(phiQ, phiK).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(dot, 3 * cos(Double.pi * 4 / 20), accuracy: 1e-6)
    }

    func testNoParametersIdentityDependsOnLength() throws {
        let map = try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 2, maxLength: 10))
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
        XCTAssertNotEqual(try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 2, maxLength: 11)).identity, map.identity)
    }

    /// Partitioned state calls cannot agree on slot positions (share 0 advances them), so they are
    /// refused for a map that reads positions; plain multi-threaded calls are fine.
    func testPartitionedStateCallsAreRefused() throws {
        let map = try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 2, maxLength: 10))
        let state = try RecurrentState(map: map, numSequences: 1, valueDim: 3, maxThreads: 2)
        let (q, k, v, out) = (TestTensor(count: 2, repeating: 1), TestTensor(count: 2, repeating: 1),
                              TestTensor(count: 3, repeating: 1), TestTensor(count: 3))
        let partitioned = LinearAttentionOptions(ith: 0, nth: 2)
        XCTAssertThrowsSlayError(.unsupported, try state.step(q: q.view([1, 1, 2]), k: k.view([1, 1, 2]), v: v.view([1, 1, 3]),
                                                              out: out.view([1, 1, 3]), slots: SlotList(pointer: nil, count: 1),
                                                              options: partitioned))
        XCTAssertThrowsSlayError(.unsupported, try state.prefill(q: nil, k: k.view([1, 1, 1, 2]), v: v.view([1, 1, 1, 3]),
                                                                 out: nil, cuSeqlens: nil, slots: nil, options: partitioned))
        XCTAssertEqual(Array(state.positions), [0], "a refused call leaves the state unchanged")
        try state.step(q: q.view([1, 1, 2]), k: k.view([1, 1, 2]), v: v.view([1, 1, 3]), out: out.view([1, 1, 3]),
                       slots: SlotList(pointer: nil, count: 1), options: LinearAttentionOptions(nThreads: 2))
        XCTAssertEqual(Array(state.positions), [1])
        for value in out.values { XCTAssertEqual(value, 1, accuracy: 1e-5) }
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.invalidArgument, try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 4, maxLength: 0)))
        XCTAssertThrowsSlayError(.invalidArgument, try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 4, maxLength: -5)))
        XCTAssertThrowsSlayError(.shape, try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 0, maxLength: 5)))
    }
}
