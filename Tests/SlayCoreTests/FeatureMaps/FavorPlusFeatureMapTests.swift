import Foundation
import XCTest
@testable import SlayCore

/// FAVOR+ against its float64 definition, the block-orthogonal ω, parameters and checks.
final class FavorPlusFeatureMapTests: XCTestCase {
    /// exp(ωᵀx' − ‖x'‖²/2)/√m with x' = x·d^(−1/4), minus the row's largest exponent for queries.
    private func twin(_ map: FavorPlusFeatureMap, _ x: [Float], head: Int, role: FeatureRole) -> [Double] {
        let (d, m) = (map.headDim, map.featureDim)
        let omega = map.parameterValues("omega")!
        let scale = pow(Double(d), -0.25)
        var out: [Double] = []
        for i in 0..<(x.count / d) {
            let row = (0..<d).map { Double(x[i * d + $0]) * scale }
            let half = row.reduce(0) { $0 + $1 * $1 } / 2
            let exponents = (0..<m).map { j in
                (0..<d).reduce(0.0) { $0 + Double(omega[(head * d + $1) * m + j]) * row[$1] } - half
            }
            let shift = role == .query ? exponents.max()! : 0
            out += exponents.map { exp($0 - shift) / Double(m).squareRoot() }
        }
        return out
    }

    func testFeaturesMatchFloat64Twin() throws {
        for (d, heads, m) in [(1, 1, 1), (4, 2, 10), (7, 3, 5), (16, 1, 40)] {
            let map = try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads, featureCount: m, seed: UInt64(d)))
            var generator = SeededGenerator(seed: UInt64(m))
            let x = generator.floats(9 * d, in: -2...2)
            for head in 0..<heads {
                for role in [FeatureRole.query, .key] {
                    XCTAssertClose(map.mapRows(x, head: head, role: role), twin(map, x, head: head, role: role),
                                   relative: 2e-5, absolute: 1e-30, "d=\(d) H=\(heads) m=\(m) \(role)")
                }
            }
            XCTAssertEqual(map.featureDim, m)
            XCTAssertTrue(map.isPositive)
        }
    }

    /// Within a block of d features the directions are orthogonal; their norms are chi draws.
    func testOmegaIsBlockOrthogonal() throws {
        let (d, m) = (6, 15)
        let map = try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: 2, featureCount: m, seed: 5))
        let omega = map.parameterValues("omega")!
        XCTAssertEqual(map.parameterShape("omega"), [2, d, m])
        func column(_ h: Int, _ j: Int) -> [Double] { (0..<d).map { Double(omega[(h * d + $0) * m + j]) } }
        for h in 0..<2 {
            var norms: [Double] = []
            for j in 0..<m {
                let a = column(h, j)
                let norm = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
                norms.append(norm)
                for k in (j + 1)..<max(j + 1, m) where k / d == j / d {
                    let b = column(h, k)
                    let cosine = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (norm * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
                    XCTAssertLessThan(abs(cosine), 1e-6, "head \(h) features \(j), \(k)")
                }
            }
            XCTAssertGreaterThan(Set(norms).count, m - 1, "norms are drawn per feature, not fixed")
            XCTAssertTrue(norms.allSatisfy { $0 > 0.05 && $0 < 6 * Double(d).squareRoot() })
        }
        // Same seed, same ω; another seed, another ω.
        XCTAssertEqual(try FavorPlusFeatureMap(map.configuration).parameterValues("omega")!, omega)
        var other = map.configuration
        other.seed = 6
        XCTAssertNotEqual(try FavorPlusFeatureMap(other).parameterValues("omega")!, omega)
    }

    /// The query shift cancels: normalised attention weights equal those of unshifted features.
    func testQueryShiftIsARowScale() throws {
        let map = try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 4, featureCount: 8, seed: 1))
        let x: [Float] = [3, -2, 4, 1, 0.5, 0.25, -1, 2]
        let query = map.mapRows(x, head: 0, role: .query)
        let key = map.mapRows(x, head: 0, role: .key)
        for i in 0..<2 {
            let ratios = (0..<8).map { Double(key[i * 8 + $0]) / Double(query[i * 8 + $0]) }
            for r in ratios { XCTAssertEqual(r, ratios[0], accuracy: 1e-5 * ratios[0]) }
            XCTAssertEqual(Double(query[(i * 8)..<(i * 8 + 8)].max()!), 1 / 8.0.squareRoot(), accuracy: 1e-6)
        }
    }

    func testParameterRoundTrip() throws {
        try assertParameterRoundTrip(try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 2, featureCount: 4)))
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsSlayError(.shape, try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 4, featureCount: 0)))
        XCTAssertThrowsSlayError(.shape, try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 4, featureCount: 65537)))
        XCTAssertThrowsSlayError(.shape, try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 0)))
        XCTAssertThrowsSlayError(.overflow, try FavorPlusFeatureMap(ClassicMapConfiguration(headDim: 65536, numHeads: 64,
                                                                                             featureCount: 65536)))
    }
}
