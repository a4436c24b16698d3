import XCTest
@testable import SlayCore

/// SLAY_EXPANSION_TAYLOR: φ(q)·φ(k) against the truncated Maclaurin series of x²/(C − 2x)
/// computed in double from the definition, the factorised scores shortcut against the features,
/// the monomial count and the configuration checks.
final class YatTaylorFeatureMapTests: XCTestCase {
    private func make(_ d: Int, degree: Int, eps: Double = 1e-6, heads: Int = 1) throws -> YatTaylorFeatureMap {
        try YatTaylorFeatureMap(YatTaylorConfiguration(headDim: d, numHeads: heads, eps: eps, degree: degree))
    }

    /// Σ_{k=2..N} 2^{k−2} x^k / C^{k−1}, x = â·b̂ (0 for a zero row).
    private func series(_ a: [Double], _ b: [Double], degree: Int, eps: Double) -> Double {
        let na = dot(a, a).squareRoot(), nb = dot(b, b).squareRoot()
        let x = na == 0 || nb == 0 ? 0 : dot(a, b) / (na * nb)
        let c = 2 + eps
        var total = 0.0
        for k in 2...degree {
            let power = Double(k)
            total += pow(2.0, power - 2) * pow(x, power) / pow(c, power - 1)
        }
        return total
    }

    func testKernelMatchesTheTruncatedSeries() throws {
        for (d, degree) in [(1, 2), (4, 2), (5, 3), (3, 6), (16, 2)] {
            let map = try make(d, degree: degree, eps: 1e-3, heads: 2)
            assertExactKernel(map, pairs: kernelTestPairs(headDim: d, seed: UInt64(d * 10 + degree)), head: 1,
                              definition: { self.series($0, $1, degree: degree, eps: 1e-3) }, scale: { _, _ in 1 })
        }
    }

    func testFeatureCountIsTheNumberOfMonomials() throws {
        XCTAssertEqual(try make(16, degree: 2).featureDim, 136)
        XCTAssertEqual(try make(16, degree: 3).featureDim, 136 + 816)
        XCTAssertEqual(try make(1, degree: 8).featureDim, 7)
        XCTAssertEqual(try make(64, degree: 2).featureDim, 2080)
    }

    func testScoresShortcutEqualsFeatureProducts() throws {
        let (d, rows) = (5, 9)
        let map = try make(d, degree: 4)
        var generator = SeededGenerator(seed: 3)
        let queries = generator.floats(rows * d, in: -2...2), keys = generator.floats(rows * d, in: -2...2)
        var queryScratch = [Float](repeating: 0, count: map.scratchFloats(rows: rows))
        var keyScratch = queryScratch
        var phiQ = [Float](repeating: 0, count: rows * map.featureDim), phiK = phiQ
        map.features(role: .query, head: 0, input: queries, rows: rows, output: &phiQ, scratch: &queryScratch)
        map.features(role: .key, head: 0, input: keys, rows: rows, output: &phiK, scratch: &keyScratch)
        var scores = [Float](repeating: 0, count: rows * rows)
        var work = [Float](repeating: 0, count: map.scoreScratchFloats(rows: rows))
        XCTAssertTrue(map.scores(head: 0, rows: rows, queryScratch: queryScratch, keyScratch: keyScratch,
                                 output: &scores, scratch: &work))
        let m = map.featureDim
        for i in 0..<rows {
            for j in 0..<rows {
                let product = (0..<m).reduce(0.0) { $0 + Double(phiQ[i * m + $1]) * Double(phiK[j * m + $1]) }
                XCTAssertEqual(Double(scores[i * rows + j]), product, accuracy: 1e-6)
            }
        }
    }

    func testConfigurationChecks() throws {
        XCTAssertThrowsSlayError(.invalidArgument, try make(4, degree: 1))
        XCTAssertThrowsSlayError(.invalidArgument, try make(4, degree: 9))
        XCTAssertThrowsSlayError(.invalidArgument, try make(4, degree: 2, eps: 0))
        XCTAssertThrowsSlayError(.invalidArgument, try make(4, degree: 2, eps: .infinity))
        XCTAssertThrowsSlayError(.shape, try make(0, degree: 2))
        XCTAssertThrowsSlayError(.overflow, try make(65536, degree: 8))
        XCTAssertThrowsSlayError(.overflow, try make(4096, degree: 2))
    }

    func testIdentityDependsOnSettingsOnly() throws {
        XCTAssertEqual(try make(4, degree: 3).identity, try make(4, degree: 3).identity)
        XCTAssertNotEqual(try make(4, degree: 3).identity, try make(4, degree: 2).identity)
        XCTAssertNotEqual(try make(4, degree: 3).identity, try make(4, degree: 3, eps: 1e-3).identity)
        XCTAssertTrue(try make(4, degree: 2).parameterNames.isEmpty)
    }
}
