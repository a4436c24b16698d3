import Foundation
import XCTest
@testable import SlayCore

/// ELU+1 against its definition, and its configuration checks.
final class EluPlusOneFeatureMapTests: XCTestCase {
    func testFeaturesMatchDefinition() throws {
        let map = try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        var generator = SeededGenerator(seed: 3)
        let input = generator.floats(7 * 5, in: -6...6) + [0, -0, 1e-30, -80, 30]
        let expected = input.map { x -> Double in let v = Double(x); return v > 0 ? v + 1 : exp(v) }
        for role in [FeatureRole.query, .key] {
            XCTAssertClose(map.mapRows(input, head: 1, role: role), expected, relative: 1e-6, absolute: 0, "\(role)")
        }
        XCTAssertEqual(map.featureDim, 5)
        XCTAssertTrue(map.isPositive)
        XCTAssertFalse(map.needsPositions)
    }

    func testHasNoParametersAndAStableIdentity() throws {
        let map = try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 4))
        XCTAssertEqual(map.parameterNames, [])
        XCTAssertNil(map.parameterShape("omega"))
        try assertParameterRoundTrip(map)
        XCTAssertEqual(try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 4, seed: 9)).identity, map.identity)
        XCTAssertNotEqual(try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 5)).identity, map.identity)
        XCTAssertNotEqual(try ReluFeatureMap(ClassicMapConfiguration(headDim: 4)).identity, map.identity)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 0)))
        XCTAssertThrowsSlayError(.shape, try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: 4, numHeads: 65537)))
    }
}
