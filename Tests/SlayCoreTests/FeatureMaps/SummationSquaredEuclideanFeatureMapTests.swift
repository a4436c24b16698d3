import XCTest
@testable import SlayCore

/// ELA ‖a + b‖²: φ(a)·ψ(b) against the definition computed directly in double, the query/key
/// asymmetry, and the configuration checks.
final class SummationSquaredEuclideanFeatureMapTests: XCTestCase {
    private func make(_ d: Int, heads: Int = 1) throws -> SummationSquaredEuclideanFeatureMap {
        try SummationSquaredEuclideanFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
    }

    func testKernelMatchesDefinition() throws {
        for d in [1, 5, 64] {
            let map = try make(d, heads: 2)
            XCTAssertEqual(map.featureDim, d + 2)
            assertExactKernel(map, pairs: kernelTestPairs(headDim: d, seed: UInt64(d)), head: 1,
                              definition: { a, b in zip(a, b).reduce(0) { $0 + ($1.0 + $1.1) * ($1.0 + $1.1) } },
                              scale: { a, b in dot(a, a) + dot(b, b) + 2 * abs(dot(a, b)) })
        }
    }

    func testQueryAndKeyFeaturesDiffer() throws {
        let map = try make(3)
        let x: [Float] = [1, -2, 0.5]
        XCTAssertEqual(map.mapRows(x, head: 0, role: .query), [1, -2, 0.5, 5.25, 1])
        XCTAssertEqual(map.mapRows(x, head: 0, role: .key), [2, -4, 1, 1, 5.25])
        // Query features on both sides would give a·b + ‖a‖² + ‖b‖², not ‖a + b‖²: role matters.
        let y: [Float] = [0.25, 3, -1]
        let symmetric = zip(map.mapRows(x, head: 0, role: .query), map.mapRows(y, head: 0, role: .query))
            .reduce(0.0) { $0 + Double($1.0 * $1.1) }
        XCTAssertNotEqual(symmetric, map.kernel(x, y), accuracy: 1)
        XCTAssertEqual(map.kernel(x, y), 1.25 * 1.25 + 1 + 0.25, accuracy: 1e-5)
        XCTAssertFalse(map.isPositive)
    }

    func testHasNoParametersAndAStableIdentity() throws {
        let map = try make(4)
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
        XCTAssertEqual(try SummationSquaredEuclideanFeatureMap(ClassicMapConfiguration(headDim: 4, seed: 9)).identity, map.identity)
        XCTAssertNotEqual(try make(5).identity, map.identity)
        XCTAssertNotEqual(try SubtractionSquaredEuclideanFeatureMap(ClassicMapConfiguration(headDim: 4)).identity, map.identity)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try make(0))
        XCTAssertThrowsSlayError(.shape, try make(4, heads: 0))
    }
}
