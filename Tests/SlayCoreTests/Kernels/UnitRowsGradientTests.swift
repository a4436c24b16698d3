import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// The unit rows' backward kernel against its float64 twin, for both kernel builds and the
/// dispatch, over widths with and without vector tails and zero and huge rows; the two builds
/// must agree bitwise.
final class UnitRowsGradientTests: XCTestCase {
    typealias Kernel = (UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void

    private var variants: [(name: String, run: Kernel)] {
        var result: [(name: String, run: Kernel)] = [
            ("dispatch", { VectorMath.unitRowsGradient($0, rows: $1, width: $2, unitGradient: $3, into: $4) }),
            ("portable", { SlayKernels.UnitRowsGradient.inputGradient($0, rows: $1, width: $2, unitGradient: $3, into: $4) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(("avx2-fma", { SlayKernelsAVX2.UnitRowsGradient.inputGradient($0, rows: $1, width: $2,
                                                                                        unitGradient: $3, into: $4) }))
        }
        return result
    }

    /// dx = (g − û(û·g))/‖x‖ in float64, 0 for a zero row.
    private func twin(_ x: [Float], _ g: [Float], rows: Int, width: Int) -> [Double] {
        var result = [Double](repeating: 0, count: rows * width)
        for i in 0..<rows {
            let row = (0..<width).map { Double(x[i * width + $0]) }
            let grad = (0..<width).map { Double(g[i * width + $0]) }
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { continue }
            let radial = zip(row, grad).reduce(0) { $0 + $1.0 / norm * $1.1 }
            for j in 0..<width { result[i * width + j] = (grad[j] - row[j] / norm * radial) / norm }
        }
        return result
    }

    func testMatchesTheFloat64Twin() {
        var generator = SystemRandomNumberGenerator()
        for width in [1, 3, 4, 7, 8, 13, 16, 31, 64] {
            let rows = 5
            var x = (0..<(rows * width)).map { _ in Float.random(in: -2...2, using: &generator) }
            for j in 0..<width { x[width + j] = 0 }                       // a zero row
            for j in 0..<width { x[2 * width + j] *= 1e30 }               // a huge row (norm in double)
            for j in 0..<width { x[3 * width + j] *= 1e-30 }              // a tiny row
            let g = (0..<(rows * width)).map { _ in Float.random(in: -2...2, using: &generator) }
            let expected = twin(x, g, rows: rows, width: width)
            var reference: [Float]?
            for variant in variants {
                var output = [Float](repeating: .nan, count: rows * width)
                variant.run(x, rows, width, g, &output)
                for i in 0..<(rows * width) {
                    // Relative to the result's natural size max|g|/‖x‖: g − û(û·g) may cancel
                    // (to exactly 0 at width 1).
                    let start = i - i % width
                    let norm = x[start..<(start + width)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    let scale = norm > 0 ? g[start..<(start + width)].reduce(0.0) { max($0, Double(abs($1))) } / norm : 0
                    XCTAssertEqual(Double(output[i]), expected[i], accuracy: 1e-6 * scale,
                                   "\(variant.name) width \(width) element \(i)")
                }
                if let reference {
                    XCTAssertEqual(output.map(\.bitPattern), reference.map(\.bitPattern), "\(variant.name) width \(width)")
                } else {
                    reference = output
                }
            }
        }
    }
}
