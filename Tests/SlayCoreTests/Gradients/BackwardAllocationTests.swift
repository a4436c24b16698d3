import XCTest
@testable import SlayCore

/// Every allocation of the delta rule's, Hadamard Exp's and the Nyström anchors' backward can
/// fail with SlayError(.outOfMemory), and then no output is written: the Nyström whitening's
/// derivative (its eigen-decomposition and P × P matrices) is prepared before the pass.
final class BackwardAllocationTests: XCTestCase {
    private func filled(_ count: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> TestTensor {
        var generator = SeededGenerator(seed: seed)
        return TestTensor(generator.floats(count, in: range))
    }

    private func assertUntouchedOnFailure(_ label: String, map: FeatureMap, options: LinearAttentionOptions,
                                          parameters: Int = 0, minimum: Int) {
        let (t, h, d, dv) = (7, map.numHeads, map.headDim, 2)
        let (q, k, v, dout) = (filled(t * h * d, seed: 1), filled(t * h * d, seed: 2), filled(t * h * dv, seed: 3),
                               filled(t * h * dv, seed: 4))
        let dq = TestTensor(count: t * h * d, repeating: -7)
        let dParameters = TestTensor(count: max(parameters, 1), repeating: -7)
        let made = assertEveryAllocationFails(label, {
            let request = AttentionGradientRequest(dout: dout.view([1, t, h, dv]), dq: dq.view([1, t, h, d]),
                                                   parameters: parameters > 0 ? dParameters.pointer : nil,
                                                   parameterCount: parameters)
            try LinearAttentionBackward.run(map: map, q: q.view([1, t, h, d]), k: k.view([1, t, h, d]),
                                            v: v.view([1, t, h, dv]), options: options, request: request)
        }, untouched: {
            XCTAssertEqual(dq.bits, [UInt32](repeating: Float(-7).bitPattern, count: dq.count), label)
            XCTAssertEqual(dParameters.bits, [UInt32](repeating: Float(-7).bitPattern, count: dParameters.count), label)
        })
        XCTAssertGreaterThanOrEqual(made, minimum, label)
    }

    func testDeltaRule() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 1))
        let beta = filled(7, seed: 5, in: 0...1)
        assertUntouchedOnFailure("delta rule", map: map,
                                 options: LinearAttentionOptions(chunkSize: 2, normalize: false, update: .delta,
                                                                 beta: beta.view([1, 7, 1]), qkL2Norm: true),
                                 minimum: 2)
    }

    func testHadamardExp() throws {
        let map = try HadamardExpFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 1))
        assertUntouchedOnFailure("Hadamard Exp", map: map, options: LinearAttentionOptions(chunkSize: 2), minimum: 2)
    }

    func testNystromAnchors() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, numHeads: 1, polynomial: .nystrom, polyDim: 4, prfDim: 2))
        let count = FeatureMapParameterLayout(map).total
        assertUntouchedOnFailure("Nyström d_params", map: map,
                                 options: LinearAttentionOptions(chunkSize: 2, denominator: .clamp), parameters: count,
                                 minimum: 4)
    }
}
