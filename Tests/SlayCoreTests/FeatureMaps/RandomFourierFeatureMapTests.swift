import Foundation
import XCTest
@testable import SlayCore

/// Random Fourier features against their float64 definition, the documented ω and b, checks.
final class RandomFourierFeatureMapTests: XCTestCase {
    func testFeaturesMatchFloat64Twin() throws {
        for (d, heads, m) in [(1, 1, 1), (4, 2, 12), (9, 1, 30)] {
            let map = try RandomFourierFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads, featureCount: m, seed: 8))
            let omega = map.parameterValues("omega")!
            let bias = map.parameterValues("bias")!
            let generator = ParameterGenerator(seed: 8)
            XCTAssertEqual(omega, generator.normals(stream: 5, count: heads * d * m))
            XCTAssertEqual(bias, (0..<(heads * m)).map { Float(2 * Double.pi * generator.uniform(stream: 6, index: UInt64($0))) })
            XCTAssertTrue(bias.allSatisfy { $0 >= 0 && $0 <= Float(2 * Double.pi) })
            var seeded = SeededGenerator(seed: UInt64(m))
            let x = seeded.floats(5 * d, in: -2...2)
            for head in 0..<heads {
                var expected: [Double] = []
                for i in 0..<5 {
                    for j in 0..<m {
                        let dot = (0..<d).reduce(0.0) { $0 + Double(omega[(head * d + $1) * m + j]) * Double(x[i * d + $1]) }
                        expected.append((2 / Double(m)).squareRoot() * cos(dot + Double(bias[head * m + j])))
                    }
                }
                XCTAssertClose(map.mapRows(x, head: head), expected, relative: 1e-4, absolute: 2e-6, "d=\(d) H=\(heads) m=\(m)")
            }
            XCTAssertFalse(map.isPositive)
        }
    }

    func testParameterRoundTrip() throws {
        let map = try RandomFourierFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 2, featureCount: 4))
        XCTAssertEqual(map.parameterNames, ["omega", "bias"])
        XCTAssertEqual(map.parameterShape("bias"), [2, 4])
        try assertParameterRoundTrip(map)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try RandomFourierFeatureMap(ClassicMapConfiguration(headDim: 4, featureCount: 0)))
        XCTAssertThrowsSlayError(.shape, try RandomFourierFeatureMap(ClassicMapConfiguration(headDim: 65537)))
    }
}
