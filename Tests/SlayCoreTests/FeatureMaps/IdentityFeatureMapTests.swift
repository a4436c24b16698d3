import XCTest
@testable import SlayCore

/// The identity map: φ(x) = x for both roles, signed, no parameters.
final class IdentityFeatureMapTests: XCTestCase {
    func testFeaturesAreTheInput() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        var generator = SeededGenerator(seed: 3)
        let input = generator.floats(7 * 5, in: -6...6) + [0, -0, 1e-30, -80, 3e38]
        for role in [FeatureRole.query, .key] {
            XCTAssertEqual(map.mapRows(input, head: 1, role: role).map(\.bitPattern), input.map(\.bitPattern), "\(role)")
        }
        XCTAssertEqual(map.featureDim, 5)
        XCTAssertFalse(map.isPositive)
        XCTAssertFalse(map.needsPositions)
    }

    func testHasNoParametersAndAStableIdentity() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 4))
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
        XCTAssertEqual(try IdentityFeatureMap(ClassicMapConfiguration(headDim: 4, seed: 9)).identity, map.identity)
        XCTAssertNotEqual(try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5)).identity, map.identity)
        XCTAssertNotEqual(try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 4)).identity, map.identity)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try IdentityFeatureMap(ClassicMapConfiguration(headDim: 0)))
        XCTAssertThrowsSlayError(.shape, try IdentityFeatureMap(ClassicMapConfiguration(headDim: 4, numHeads: 65537)))
    }
}
