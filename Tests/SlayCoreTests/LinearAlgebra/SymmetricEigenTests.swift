import XCTest
@testable import SlayCore

/// The Jacobi eigen-decomposition behind the Nyström whitening: A = V diag(λ) Vᵀ with orthonormal V.
final class SymmetricEigenTests: XCTestCase {
    /// The decomposition of an array, as arrays (nil: no decomposition).
    private func decompose(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double])? {
        guard let result = try? SymmetricEigen.decompose(HeapArray(a), n: n) else { return nil }
        return (Array(result.values), Array(result.vectors))
    }

    private func symmetric(_ n: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        var generator = SeededGenerator(seed: seed)
        let raw = generator.floats(n * n).map(Double.init)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { a[i * n + j] = scale * (raw[i * n + j] + raw[j * n + i]) } }
        return a
    }

    private func assertDecomposes(_ a: [Double], n: Int, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let (values, v) = decompose(a, n: n) else {
            return XCTFail("no decomposition: \(message)", file: file, line: line)
        }
        let size = a.map(abs).max() ?? 0
        var worstA = 0.0, worstI = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var rebuilt = 0.0, gram = 0.0
                for e in 0..<n { rebuilt += v[i * n + e] * values[e] * v[j * n + e]; gram += v[e * n + i] * v[e * n + j] }
                worstA = max(worstA, abs(rebuilt - a[i * n + j]))
                worstI = max(worstI, abs(gram - (i == j ? 1 : 0)))
            }
        }
        XCTAssertLessThanOrEqual(worstA, 1e-12 * max(size, 1e-300) * Double(n), "A = V Λ Vᵀ, \(message)", file: file, line: line)
        XCTAssertLessThan(worstI, 1e-12 * Double(n), "VᵀV = I, \(message)", file: file, line: line)
    }

    func testRandomSymmetricMatrices() {
        for n in [1, 2, 3, 10, 40] { assertDecomposes(symmetric(n, seed: UInt64(n)), n: n, "n = \(n)") }
    }

    func testKnownEigenvalues() throws {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (values, _) = try XCTUnwrap(decompose([2, 1, 1, 2], n: 2))
        XCTAssertEqual(values.sorted()[0], 1, accuracy: 1e-14)
        XCTAssertEqual(values.sorted()[1], 3, accuracy: 1e-14)
    }

    func testDegenerateAndExtremeInputs() {
        assertDecomposes([Double](repeating: 0, count: 16), n: 4, "zero matrix")
        assertDecomposes([1, 0, 0, 0, 1, 0, 0, 0, 1], n: 3, "identity")
        assertDecomposes([Double](repeating: 1, count: 25), n: 5, "rank one, four equal eigenvalues")
        assertDecomposes(symmetric(6, seed: 9, scale: 1e200), n: 6, "entries near 1e200 (sums of squares would overflow)")
        assertDecomposes(symmetric(6, seed: 9, scale: 1e-200), n: 6, "entries near 1e-200")
        XCTAssertNotNil(decompose([], n: 0))
        XCTAssertNil(decompose([1, .nan, .nan, 1], n: 2))
        XCTAssertNil(decompose([1, .infinity, .infinity, 1], n: 2))
        XCTAssertNil(decompose([1, 2, 3], n: 2), "wrong count")
    }

    /// Its n² work arrays are fallibly allocated: each failure is a status, not an abort.
    func testEveryWorkArrayFailsWithAStatus() throws {
        let a = try HeapArray(symmetric(8, seed: 3))
        let allocations = assertEveryAllocationFails("decompose") { _ = try SymmetricEigen.decompose(a, n: 8) }
        XCTAssertEqual(allocations, 4, "work matrix, rotations, eigenvectors, eigenvalues")
    }
}
