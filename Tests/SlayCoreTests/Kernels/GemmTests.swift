import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// C = A·B (+ C) in float32 with strided operands, against a float64 twin: the dispatching
/// Gemm.multiply and each kernel build (baseline 4 × 16 tile, AVX2/FMA 6 × 16 tile) directly.
final class GemmTests: XCTestCase {
    typealias Multiply = (Int, Int, Int, UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int,
                          UnsafeMutablePointer<Float>, Int, Bool, UnsafeMutablePointer<Float>) -> Void

    /// The kernels this CPU can run, by name.
    private var variants: [(String, Multiply)] {
        var result: [(String, Multiply)] = [
            ("dispatch (\(KernelVariant.active.rawValue))", {
                Gemm.multiply(m: $0, n: $1, k: $2, a: $3, rowStrideA: $4, columnStrideA: $5, b: $6, rowStrideB: $7,
                              columnStrideB: $8, c: $9, ldc: $10, accumulate: $11, workspace: $12)
            }),
            ("portable", {
                SlayKernels.PackedGemm.multiply(m: $0, n: $1, k: $2, a: $3, rowStrideA: $4, columnStrideA: $5, b: $6,
                                                rowStrideB: $7, columnStrideB: $8, c: $9, ldc: $10, accumulate: $11, workspace: $12)
            }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(("avx2-fma", {
                SlayKernelsAVX2.PackedGemm.multiply(m: $0, n: $1, k: $2, a: $3, rowStrideA: $4, columnStrideA: $5, b: $6,
                                                    rowStrideB: $7, columnStrideB: $8, c: $9, ldc: $10, accumulate: $11,
                                                    workspace: $12)
            }))
        }
        return result
    }

    struct Case {
        let m: Int, n: Int, k: Int
        var transposeA = false
        var transposeB = false
        var accumulate = false
    }

    /// Runs one product with A stored as (m × k) or, transposed, as (k × m); B as (k × n) or (n × k);
    /// C with a padded leading dimension whose padding must stay untouched.
    private func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        for (name, multiply) in variants { check(c, seed: seed, name, multiply, file: file, line: line) }
    }

    private func check(_ c: Case, seed: UInt64, _ name: String, _ multiply: Multiply,
                       file: StaticString, line: UInt) {
        var generator = SeededGenerator(seed: seed)
        let a = generator.floats(c.m * c.k)
        let b = generator.floats(c.k * c.n)
        let ldc = c.n + 3
        let initial = generator.floats(c.m * ldc)
        var output = initial
        var workspace = [Float](repeating: .nan, count: Gemm.workspaceFloats)
        let (rowStrideA, columnStrideA) = c.transposeA ? (1, c.m) : (c.k, 1)
        let (rowStrideB, columnStrideB) = c.transposeB ? (1, c.k) : (c.n, 1)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                output.withUnsafeMutableBufferPointer { pc in
                    workspace.withUnsafeMutableBufferPointer { pw in
                        multiply(c.m, c.n, c.k, pa.baseAddress!, rowStrideA, columnStrideA, pb.baseAddress!,
                                 rowStrideB, columnStrideB, pc.baseAddress!, ldc, c.accumulate, pw.baseAddress!)
                    }
                }
            }
        }
        var worst = 0.0
        for i in 0..<c.m {
            for j in 0..<c.n {
                var expected = c.accumulate ? Double(initial[i * ldc + j]) : 0
                var magnitude = abs(expected)
                for p in 0..<c.k {
                    let av = Double(a[i * rowStrideA + p * columnStrideA])
                    let bv = Double(b[p * rowStrideB + j * columnStrideB])
                    expected += av * bv
                    magnitude += abs(av * bv)
                }
                let actual = Double(output[i * ldc + j])
                XCTAssertTrue(actual.isFinite, "C[\(i), \(j)] = \(actual) in \(c) [\(name)]", file: file, line: line)
                worst = max(worst, abs(actual - expected) / (1e-6 * Double(c.k) * magnitude + 1e-30))
            }
            for j in c.n..<ldc {
                XCTAssertEqual(output[i * ldc + j].bitPattern, initial[i * ldc + j].bitPattern,
                               "padding C[\(i), \(j)] was written in \(c) [\(name)]", file: file, line: line)
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "worst error / (1e-6·k·Σ|a·b|) in \(c) [\(name)]", file: file, line: line)
    }

    private let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 16, 1), (4, 16, 4), (3, 5, 7), (5, 17, 3), (6, 16, 8), (7, 9, 11), (12, 32, 5),
        (13, 31, 19), (9, 20, 300), (6, 7, 600), (3, 530, 20), (70, 515, 9), (2, 1, 1000),
        // Full row blocks (mc = 48 baseline, 72 AVX2) at full depth kc = 256, and one more of each.
        (48, 16, 256), (49, 17, 257), (64, 16, 256), (65, 33, 257), (72, 8, 256), (73, 20, 300),
    ]

    func testPlainOperands() {
        for (index, (m, n, k)) in shapes.enumerated() {
            check(Case(m: m, n: n, k: k), seed: UInt64(index))
            check(Case(m: m, n: n, k: k, accumulate: true), seed: UInt64(100 + index))
        }
    }

    func testTransposedOperandsThroughStrides() {
        for (index, (m, n, k)) in shapes.enumerated() {
            check(Case(m: m, n: n, k: k, transposeA: true), seed: UInt64(200 + index))
            check(Case(m: m, n: n, k: k, transposeB: true, accumulate: true), seed: UInt64(300 + index))
            check(Case(m: m, n: n, k: k, transposeA: true, transposeB: true), seed: UInt64(400 + index))
        }
    }

    func testRandomShapes() {
        var generator = SeededGenerator(seed: 77)
        for trial in 0..<24 {
            let m = Int.random(in: 1...70, using: &generator)
            let n = Int.random(in: 1...40, using: &generator)
            let k = Int.random(in: 1...300, using: &generator)
            check(Case(m: m, n: n, k: k, transposeA: trial % 2 == 1, transposeB: trial % 3 == 1,
                       accumulate: trial % 4 < 2), seed: UInt64(500 + trial))
        }
    }

    /// k = 0: C = 0, or C unchanged when accumulating.
    func testEmptyInnerDimension() {
        let a: [Float] = [1], b: [Float] = [1]
        for accumulate in [false, true] {
            for (name, multiply) in variants {
                var output: [Float] = [3, 4, 5, 6, -1, -2]   // 2 × 2 with ldc 3
                var workspace = [Float](repeating: 0, count: Gemm.workspaceFloats)
                output.withUnsafeMutableBufferPointer { pc in
                    workspace.withUnsafeMutableBufferPointer { pw in
                        multiply(2, 2, 0, a, 0, 1, b, 2, 1, pc.baseAddress!, 3, accumulate, pw.baseAddress!)
                    }
                }
                XCTAssertEqual(output, accumulate ? [3, 4, 5, 6, -1, -2] : [0, 0, 5, 0, 0, -2], name)
            }
        }
    }
}
