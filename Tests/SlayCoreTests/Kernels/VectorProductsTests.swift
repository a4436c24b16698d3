import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// The feature maps' vector kernels (outer products and their gradient, unit rows) against float64 twins, for both
/// kernel builds and the dispatch, over widths with and without vector tails and adversarial rows
/// (zero, huge, tiny, non-finite); where a kernel avoids fused multiply-adds, the two builds must
/// agree bitwise.
final class VectorProductsTests: XCTestCase {
    typealias Outer = (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void
    typealias Units = (UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void

    private var variants: [(name: String, outer: Outer, units: Units)] {
        var result: [(name: String, outer: Outer, units: Units)] = [
            ("dispatch", { VectorMath.outer($0, count: $1, $2, width: $3, output: $4) },
             { VectorMath.unitRows($0, rows: $1, width: $2, into: $3) }),
            ("portable", { SlayKernels.VectorProducts.outer($0, count: $1, $2, width: $3, output: $4) },
             { SlayKernels.VectorProducts.unitRows($0, rows: $1, width: $2, into: $3) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(("avx2-fma", { SlayKernelsAVX2.VectorProducts.outer($0, count: $1, $2, width: $3, output: $4) },
                           { SlayKernelsAVX2.VectorProducts.unitRows($0, rows: $1, width: $2, into: $3) }))
        }
        return result
    }

    func testOuterProductIsExactPerElement() {
        var generator = SystemRandomNumberGenerator()
        for width in [1, 7, 8, 15, 16, 17, 24, 33, 64] {
            for count in [1, 3, 16] {
                let scales = (0..<count).map { _ in Float.random(in: -3...3, using: &generator) }
                let row = (0..<width).map { _ in Float.random(in: -3...3, using: &generator) }
                for variant in variants {
                    var output = [Float](repeating: .nan, count: count * width)
                    variant.outer(scales, count, row, width, &output)
                    for p in 0..<count {
                        for j in 0..<width {
                            // One fp32 product: the float64 twin rounded once.
                            XCTAssertEqual(output[p * width + j], Float(Double(scales[p]) * Double(row[j])),
                                           "\(variant.name) width \(width) count \(count) [\(p), \(j)]")
                        }
                    }
                }
            }
        }
    }

    func testDotsMatchTheFloat64TwinInBothBuilds() {
        var generator = SystemRandomNumberGenerator()
        for count in [0, 1, 7, 8, 31, 32, 33, 45, 100, 512] {
            let (x, y, z) = ((0..<count).map { _ in Float.random(in: -2...2, using: &generator) },
                             (0..<count).map { _ in Float.random(in: -2...2, using: &generator) },
                             (0..<count).map { _ in Float.random(in: -2...2, using: &generator) })
            let expected = ((0..<count).reduce(0.0) { $0 + Double(x[$1]) * Double(y[$1]) },
                            (0..<count).reduce(0.0) { $0 + Double(x[$1]) * Double(z[$1]) })
            var results = [VectorMath.dots(x, y, z, count: count), SlayKernels.VectorProducts.dots(x, y, z, count: count)]
            if slaycpu_has_avx2_fma() != 0 { results.append(SlayKernelsAVX2.VectorProducts.dots(x, y, z, count: count)) }
            for (index, result) in results.enumerated() {
                XCTAssertEqual(Double(result.0), expected.0, accuracy: 1e-5 * Double(max(count, 1)), "variant \(index) count \(count)")
                XCTAssertEqual(Double(result.1), expected.1, accuracy: 1e-5 * Double(max(count, 1)), "variant \(index) count \(count)")
            }
        }
    }

    func testOuterGradientMatchesTheFloat64Twin() {
        var generator = SystemRandomNumberGenerator()
        for width in [1, 7, 8, 15, 16, 17, 24, 33] {
            for count in [1, 3, 16] {
                let g = (0..<(count * width)).map { _ in Float.random(in: -2...2, using: &generator) }
                let scales = (0..<count).map { _ in Float.random(in: -2...2, using: &generator) }
                let row = (0..<width).map { _ in Float.random(in: -2...2, using: &generator) }
                let scalesStart = (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
                let rowStart = (0..<width).map { _ in Float.random(in: -1...1, using: &generator) }
                // Accumulates into the given gradients.
                let expectedScales = (0..<count).map { p in
                    Double(scalesStart[p]) + (0..<width).reduce(0.0) { $0 + Double(g[p * width + $1]) * Double(row[$1]) }
                }
                let expectedRow = (0..<width).map { j in
                    Double(rowStart[j]) + (0..<count).reduce(0.0) { $0 + Double(g[$1 * width + j]) * Double(scales[$1]) }
                }
                for variant in gradientVariants {
                    var (scalesGradient, rowGradient) = (scalesStart, rowStart)
                    variant.1(g, count, scales, row, width, &scalesGradient, &rowGradient)
                    for p in 0..<count {
                        XCTAssertEqual(Double(scalesGradient[p]), expectedScales[p], accuracy: 1e-5, "\(variant.0) \(width)×\(count) p \(p)")
                    }
                    for j in 0..<width {
                        XCTAssertEqual(Double(rowGradient[j]), expectedRow[j], accuracy: 1e-5, "\(variant.0) \(width)×\(count) j \(j)")
                    }
                }
            }
        }
    }

    typealias OuterGradient = (UnsafePointer<Float>, Int, UnsafePointer<Float>, UnsafePointer<Float>, Int,
                               UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void

    private var gradientVariants: [(String, OuterGradient)] {
        var result: [(String, OuterGradient)] = [
            ("dispatch", { VectorMath.outerGradient($0, count: $1, scales: $2, row: $3, width: $4, scalesGradient: $5, rowGradient: $6) }),
            ("portable", { SlayKernels.VectorProducts.outerGradient($0, count: $1, scales: $2, row: $3, width: $4,
                                                                    scalesGradient: $5, rowGradient: $6) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(("avx2-fma", { SlayKernelsAVX2.VectorProducts.outerGradient($0, count: $1, scales: $2, row: $3, width: $4,
                                                                                   scalesGradient: $5, rowGradient: $6) }))
        }
        return result
    }

    func testUnitRowsMatchTheFloat64TwinAndAgreeAcrossBuilds() {
        var generator = SystemRandomNumberGenerator()
        for width in [1, 3, 8, 12, 16, 64, 67] {
            var rows: [[Float]] = (0..<4).map { _ in (0..<width).map { _ in Float.random(in: -2...2, using: &generator) } }
            rows.append([Float](repeating: 0, count: width))                                    // no direction: 0
            rows.append((0..<width).map { 1e38 / Float($0 % 3 + 1) })                            // ‖x‖² overflows fp32
            rows.append((0..<width).map { Float($0 % 5 + 1) * 1e-44 })                           // subnormal
            var flat = rows.flatMap { $0 }
            var results: [[Float]] = []
            for variant in variants {
                var units = [Float](repeating: .nan, count: flat.count)
                variant.units(&flat, rows.count, width, &units)
                results.append(units)
                for (i, row) in rows.enumerated() {
                    let norm = row.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    for j in 0..<width {
                        let expected = norm > 0 ? Double(row[j]) / norm : 0
                        XCTAssertEqual(Double(units[i * width + j]), expected, accuracy: 1e-6 * max(1, abs(expected)),
                                       "\(variant.name) width \(width) row \(i) [\(j)]")
                    }
                }
            }
            for other in results.dropFirst() { XCTAssertEqual(other.map(\.bitPattern), results[0].map(\.bitPattern)) }
            // A non-finite element keeps its row non-finite.
            var poisoned = [Float](repeating: 1, count: width)
            poisoned[width - 1] = .infinity
            for variant in variants {
                var units = [Float](repeating: 0, count: width)
                variant.units(&poisoned, 1, width, &units)
                XCTAssertTrue(units.contains { !$0.isFinite }, "\(variant.name) width \(width)")
            }
        }
    }
}
