import XCTest
@testable import SlayCore

/// Row pairs for exact-kernel tests: random rows of several magnitudes plus the edge cases
/// (zero rows, a row against itself and against its negation), so one list covers cancellation,
/// large norms and â = 0.
func kernelTestPairs(headDim d: Int, seed: UInt64) -> [(a: [Float], b: [Float])] {
    var generator = SeededGenerator(seed: seed)
    var pairs: [(a: [Float], b: [Float])] = []
    for scale: Float in [1, 1e-4, 30, 1e3] {
        for _ in 0..<4 { pairs.append((generator.floats(d, in: -2...2).map { $0 * scale }, generator.floats(d, in: -2...2))) }
        pairs.append((generator.floats(d, in: -2...2).map { $0 * scale }, generator.floats(d, in: -2...2).map { $0 * scale }))
    }
    let zero = [Float](repeating: 0, count: d)
    let row = generator.floats(d, in: -3...3)
    pairs += [(zero, zero), (zero, row), (row, zero), (row, row), (row, row.map { -$0 }),
              (row.map { $0 * 1e4 }, row.map { $0 * 1e4 })]
    return pairs
}

extension FeatureMap {
    /// φ(a)·ψ(b) in double from the map's fp32 query and key features of head `head`.
    func kernel(_ a: [Float], _ b: [Float], head: Int = 0) -> Double {
        let phi = mapRows(a, head: head, role: .query)
        let psi = mapRows(b, head: head, role: .key)
        return zip(phi, psi).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
}

/// Asserts |φ(a)·ψ(b) − k(a, b)| ≤ 4e-7 · scale(a, b) for every pair: fp32 rounding of the
/// features only, measured against the scale of the terms the factorisation adds up.
func assertExactKernel(_ map: FeatureMap, pairs: [(a: [Float], b: [Float])], head: Int = 0,
                       definition: ([Double], [Double]) -> Double, scale: ([Double], [Double]) -> Double,
                       file: StaticString = #filePath, line: UInt = #line) {
    for (index, pair) in pairs.enumerated() {
        let a = pair.a.map(Double.init), b = pair.b.map(Double.init)
        let got = map.kernel(pair.a, pair.b, head: head)
        let expected = definition(a, b)
        XCTAssertTrue(got.isFinite, "pair \(index): \(got)", file: file, line: line)
        XCTAssertLessThanOrEqual(abs(got - expected), 4e-7 * scale(a, b) + 1e-30,
                                 "pair \(index): \(got) vs \(expected)", file: file, line: line)
    }
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
