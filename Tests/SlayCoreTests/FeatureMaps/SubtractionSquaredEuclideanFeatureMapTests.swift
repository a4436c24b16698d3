import XCTest
@testable import SlayCore

/// ELA ‖a − b‖²: φ(a)·ψ(b) against the definition computed directly in double (including the
/// cancelling case b = a), the query/key asymmetry, and the configuration checks.
final class SubtractionSquaredEuclideanFeatureMapTests: XCTestCase {
    private func make(_ d: Int, heads: Int = 1) throws -> SubtractionSquaredEuclideanFeatureMap {
        try SubtractionSquaredEuclideanFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
    }

    func testKernelMatchesDefinition() throws {
        for d in [1, 5, 64] {
            let map = try make(d, heads: 3)
            XCTAssertEqual(map.featureDim, d + 2)
            assertExactKernel(map, pairs: kernelTestPairs(headDim: d, seed: UInt64(d) + 100), head: 2,
                              definition: { a, b in zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } },
                              scale: { a, b in dot(a, a) + dot(b, b) + 2 * abs(dot(a, b)) })
        }
    }

    func testQueryAndKeyFeaturesDiffer() throws {
        let map = try make(3)
        let x: [Float] = [1, -2, 0.5]
        XCTAssertEqual(map.mapRows(x, head: 0, role: .query), [1, -2, 0.5, 5.25, 1])
        XCTAssertEqual(map.mapRows(x, head: 0, role: .key), [-2, 4, -1, 1, 5.25])
        // Representable inputs: the cancelling case k(x, x) is exactly 0 here.
        XCTAssertEqual(map.kernel(x, x), 0)
        let y: [Float] = [0.25, 3, -1]
        XCTAssertEqual(map.kernel(x, y), 0.75 * 0.75 + 25 + 2.25, accuracy: 1e-5)
        XCTAssertNotEqual(map.kernel(x, y),
                          try SummationSquaredEuclideanFeatureMap(ClassicMapConfiguration(headDim: 3)).kernel(x, y), accuracy: 1)
        XCTAssertFalse(map.isPositive)
    }

    func testHasNoParametersAndAStableIdentity() throws {
        let map = try make(4)
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
        XCTAssertEqual(try make(4).identity, map.identity)
        XCTAssertNotEqual(try make(4, heads: 2).identity, map.identity)
        XCTAssertNotEqual(try BlueprintFeatureMap(ClassicMapConfiguration(headDim: 4)).identity, map.identity)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try make(0))
        XCTAssertThrowsSlayError(.shape, try make(65537))
    }
}
