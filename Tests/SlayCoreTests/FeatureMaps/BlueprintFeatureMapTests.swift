import XCTest
@testable import SlayCore

/// ELA safe blueprint kernel (â·b̂ + 1)(‖a‖² + 1)(‖b‖² + 1): φ(a)·ψ(b) against the definition
/// computed directly in double (zero rows have â = 0), non-negativity where the paper's
/// unsafe form is negative, symmetry of the roles, and the configuration checks.
final class BlueprintFeatureMapTests: XCTestCase {
    private func make(_ d: Int, heads: Int = 1) throws -> BlueprintFeatureMap {
        try BlueprintFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
    }

    /// The definition, from norms and the dot product (not from features).
    private func definition(_ a: [Double], _ b: [Double]) -> Double {
        let na = dot(a, a).squareRoot(), nb = dot(b, b).squareRoot()
        let cosine = na == 0 || nb == 0 ? 0 : dot(a, b) / (na * nb)
        return (cosine + 1) * (na * na + 1) * (nb * nb + 1)
    }

    func testKernelMatchesDefinition() throws {
        for d in [1, 5, 64] {
            let map = try make(d, heads: 2)
            XCTAssertEqual(map.featureDim, d + 1)
            assertExactKernel(map, pairs: kernelTestPairs(headDim: d, seed: UInt64(d) + 200), head: 1,
                              definition: definition,
                              scale: { a, b in 2 * (dot(a, a) + 1) * (dot(b, b) + 1) })
        }
    }

    func testSafeWhereThePaperFormIsNegative() throws {
        let map = try make(2)
        let a: [Float] = [3, 0], b: [Float] = [-2, 0.5]
        let unsafe = (-6.0 + 1) * (9 + 1) * (4.25 + 1)                      // (a·b + 1)(…)(…) < 0
        XCTAssertLessThan(unsafe, 0)
        XCTAssertGreaterThanOrEqual(map.kernel(a, b), 0)
        XCTAssertEqual(map.kernel(a, b), definition([3, 0], [-2, 0.5]), accuracy: 1e-4)
        XCTAssertEqual(map.kernel(a, [-1, 0]), 0, accuracy: 1e-5)         // opposite directions
    }

    func testZeroRowsAndRoles() throws {
        let map = try make(3)
        XCTAssertEqual(map.mapRows([0, 0, 0], head: 0), [0, 0, 0, 1])
        XCTAssertEqual(map.mapRows([0, 3, -4], head: 0), [0, 15.6, -20.8, 26])   // 26·[0, 0.6, −0.8, 1]
        let x: [Float] = [0.5, -1, 2]
        XCTAssertEqual(map.mapRows(x, head: 0, role: .query), map.mapRows(x, head: 0, role: .key))
        XCTAssertTrue(map.mapRows([.nan, 0, 0], head: 0).allSatisfy { $0.isNaN })
        XCTAssertFalse(map.isPositive)
    }

    func testHasNoParametersAndAStableIdentity() throws {
        let map = try make(4)
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
        XCTAssertEqual(try make(4).identity, map.identity)
        XCTAssertNotEqual(try make(3).identity, map.identity)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try make(0))
        XCTAssertThrowsSlayError(.shape, try make(4, heads: 0))
    }
}
