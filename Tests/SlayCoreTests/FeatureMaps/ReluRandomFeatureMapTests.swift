import Foundation
import XCTest
@testable import SlayCore

/// ReLU random features against their float64 definition, the documented ω, parameters, checks.
final class ReluRandomFeatureMapTests: XCTestCase {
    func testFeaturesMatchFloat64Twin() throws {
        for (d, heads, m) in [(1, 1, 1), (5, 2, 9), (8, 3, 33)] {
            let map = try ReluRandomFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads, featureCount: m, seed: 3))
            let omega = map.parameterValues("omega")!
            XCTAssertEqual(omega, ParameterGenerator(seed: 3).normals(stream: 4, count: heads * d * m))
            var generator = SeededGenerator(seed: UInt64(d))
            let x = generator.floats(6 * d, in: -2...2)
            for head in 0..<heads {
                var expected: [Double] = []
                for i in 0..<6 {
                    for j in 0..<m {
                        let dot = (0..<d).reduce(0.0) { $0 + Double(omega[(head * d + $1) * m + j]) * Double(x[i * d + $1]) }
                        expected.append(max(dot, 0) / Double(m).squareRoot())
                    }
                }
                XCTAssertClose(map.mapRows(x, head: head, role: .key), expected, relative: 1e-5, absolute: 1e-6,
                               "d=\(d) H=\(heads) m=\(m)")
            }
            XCTAssertTrue(map.isPositive)
        }
    }

    func testParameterRoundTrip() throws {
        try assertParameterRoundTrip(try ReluRandomFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 2, featureCount: 4)))
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try ReluRandomFeatureMap(ClassicMapConfiguration(headDim: 4, featureCount: 0)))
        XCTAssertThrowsSlayError(.shape, try ReluRandomFeatureMap(ClassicMapConfiguration(headDim: 4, numHeads: 0)))
    }
}
