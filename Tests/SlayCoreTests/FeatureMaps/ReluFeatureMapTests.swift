import XCTest
@testable import SlayCore

/// ReLU against its definition, and its configuration checks.
final class ReluFeatureMapTests: XCTestCase {
    func testFeaturesMatchDefinition() throws {
        let map = try ReluFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 2))
        var generator = SeededGenerator(seed: 4)
        let input = generator.floats(9 * 3, in: -3...3) + [0, -0, -1e-30]
        let expected = input.map { max(Double($0), 0) }
        for role in [FeatureRole.query, .key] {
            XCTAssertClose(map.mapRows(input, head: 0, role: role), expected, relative: 0, absolute: 0, "\(role)")
        }
        XCTAssertEqual(map.featureDim, 3)
        XCTAssertTrue(map.isPositive)
    }

    func testHasNoParameters() throws {
        let map = try ReluFeatureMap(ClassicMapConfiguration(headDim: 2, numHeads: 3))
        XCTAssertEqual(map.parameterNames, [])
        try assertParameterRoundTrip(map)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try ReluFeatureMap(ClassicMapConfiguration(headDim: -1)))
        XCTAssertThrowsSlayError(.shape, try ReluFeatureMap(ClassicMapConfiguration(headDim: 2, numHeads: 0)))
    }
}
