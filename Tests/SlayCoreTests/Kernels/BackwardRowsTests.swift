import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// The backward pass's row kernels (BackwardRows) against float64 twins, in both builds and
/// through the dispatch: the elementwise ones are exact per element (one fp32 rounding of the
/// float64 value, or the scalar loop's two), the sums within rounding; and the column form of
/// the outer product's gradient is bitwise the row kernel (`outerGradient`) on every row.
final class BackwardRowsTests: XCTestCase {
    private var hasAVX2: Bool { slaycpu_has_avx2_fma() != 0 }

    private func random(_ count: Int, _ range: ClosedRange<Float> = -2...2) -> [Float] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in Float.random(in: range, using: &generator) }
    }

    func testAddWeightedRowsMatchesTheFloat64TwinAndTheScalarLoop() {
        for width in [1, 7, 8, 63, 64, 65, 130] {
            for rows in [0, 1, 5] {
                let stride = width + 3
                let x = random(rows * stride), start = random(width)
                var weights = random(rows)
                if rows > 1 { weights[1] = 0 }
                for (useWeights, skipZero) in [(false, false), (true, false), (true, true)] {
                    // The scalar loop the kernel replaces: exact reference for the bits.
                    var scalar = start
                    for j in 0..<rows {
                        let w: Float = useWeights ? weights[j] : 1
                        if skipZero && w == 0 { continue }
                        for f in 0..<width { scalar[f] += w * x[j * stride + f] }
                    }
                    var results: [[Float]] = []
                    let call: [(UnsafePointer<Float>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>) -> Void] = [
                        { BackwardKernels.addWeightedRows($0, rows: rows, rowStride: stride, width: width, weights: $1,
                                                          skipZero: skipZero, into: $2) },
                        { SlayKernels.BackwardRows.addWeightedRows($0, rows: rows, rowStride: stride, width: width, weights: $1,
                                                                   skipZero: skipZero, into: $2) },
                    ] + (hasAVX2 ? [{ SlayKernelsAVX2.BackwardRows.addWeightedRows($0, rows: rows, rowStride: stride, width: width,
                                                                                 weights: $1, skipZero: skipZero, into: $2) }] : [])
                    for variant in call {
                        var sums = start
                        weights.withUnsafeBufferPointer { w in variant(x, useWeights ? w.baseAddress : nil, &sums) }
                        results.append(sums)
                    }
                    for (index, sums) in results.enumerated() {
                        XCTAssertEqual(sums.map(\.bitPattern), scalar.map(\.bitPattern), "variant \(index) \(width)×\(rows)")
                        for f in 0..<width {
                            var expected = Double(start[f])
                            for j in 0..<rows where !(skipZero && weights[j] == 0) {
                                expected += (useWeights ? Double(weights[j]) : 1) * Double(x[j * stride + f])
                            }
                            XCTAssertEqual(Double(sums[f]), expected, accuracy: 1e-5 * Double(rows + 1))
                        }
                    }
                }
            }
        }
    }

    func testElementwiseKernelsAreExactPerElement() {
        for count in [0, 1, 7, 8, 9, 16, 33] {
            let (x, y) = (random(count), random(count))
            let (a, b) = (Float(1.25), Float(-0.75))
            var variants: [(String, (UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Void,
                            (UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Void)] = [
                ("dispatch", { BackwardKernels.combine($0, a, $1, b, count: count) },
                 { BackwardKernels.addThenScale($0, $1, a, count: count) }),
                ("portable", { SlayKernels.BackwardRows.combine($0, a, $1, b, count: count) },
                 { SlayKernels.BackwardRows.addThenScale($0, $1, a, count: count) }),
            ]
            if hasAVX2 {
                variants.append(("avx2-fma", { SlayKernelsAVX2.BackwardRows.combine($0, a, $1, b, count: count) },
                                 { SlayKernelsAVX2.BackwardRows.addThenScale($0, $1, a, count: count) }))
            }
            for (name, combine, addThenScale) in variants {
                var combined = x, scaled = x
                combine(&combined, y)
                addThenScale(&scaled, y)
                for f in 0..<count {
                    // Twin: each product and sum rounded to fp32 once, as the scalar loop does.
                    XCTAssertEqual(combined[f], Float(Double(Float(Double(a) * Double(x[f]))) + Double(Float(Double(b) * Double(y[f])))),
                                   "\(name) combine \(count) [\(f)]")
                    XCTAssertEqual(scaled[f], Float(Double(a) * Double(Float(Double(x[f]) + Double(y[f])))), "\(name) addThenScale [\(f)]")
                }
            }
        }
    }

    func testLowerProductsZeroTheUpperTriangle() {
        for rows in [1, 5, 8, 13, 16, 64] {
            var a = random(rows * rows)
            let (b, c) = (random(rows * rows), random(rows * rows))
            // Garbage above the diagonal must not leak (the backward's blocks leave it there).
            for i in 0..<rows { for j in (i + 1)..<max(i + 1, rows) { a[i * rows + j] = .nan } }
            var variants: [(String, (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                     UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void)] = [
                ("dispatch", { BackwardKernels.lowerProducts($0, $1, rows: rows, into: $3, second: $2, into2: $4) }),
                ("portable", { SlayKernels.BackwardRows.lowerProducts($0, $1, rows: rows, into: $3, second: $2, into2: $4) }),
            ]
            if hasAVX2 {
                variants.append(("avx2-fma", { SlayKernelsAVX2.BackwardRows.lowerProducts($0, $1, rows: rows, into: $3, second: $2,
                                                                                          into2: $4) }))
            }
            for (name, call) in variants {
                var (out, out2) = ([Float](repeating: .nan, count: rows * rows), [Float](repeating: .nan, count: rows * rows))
                call(a, b, c, &out, &out2)
                for i in 0..<rows {
                    for j in 0..<rows {
                        let index = i * rows + j
                        XCTAssertEqual(out[index], j <= i ? Float(Double(a[index]) * Double(b[index])) : 0, "\(name) \(rows) [\(i), \(j)]")
                        XCTAssertEqual(out2[index], j <= i ? Float(Double(a[index]) * Double(c[index])) : 0, "\(name) \(rows) [\(i), \(j)]")
                    }
                }
            }
        }
    }

    func testClampedExponentGradientMatchesTheScalarLoop() {
        for count in [1, 8, 16, 21] {
            var (value, gradient) = (random(count, 0.1...3), random(count))
            let edges: (Float, Float) = (2.5, 0.25)
            value[0] = edges.0
            if count > 9 { value[9] = edges.1 }
            gradient[count - 1] = .nan
            value[count - 1] = edges.1          // clamped: 0 even where the gradient is NaN
            let s: Float = 1.7
            var outputs: [[Float]] = []
            for call in [{ BackwardKernels.clampedExponentGradient($0, gradient: $1, scale: s, edges: edges, count: count, into: $2) },
                         { SlayKernels.BackwardRows.clampedExponentGradient($0, gradient: $1, scale: s, edges: edges, count: count,
                                                                            into: $2) }]
                    + (hasAVX2 ? [{ SlayKernelsAVX2.BackwardRows.clampedExponentGradient($0, gradient: $1, scale: s, edges: edges,
                                                                                         count: count, into: $2) }] : []) {
                var out = [Float](repeating: .nan, count: count)
                call(value, gradient, &out)
                outputs.append(out)
            }
            for out in outputs {
                for j in 0..<count {
                    let clamped = value[j] == edges.0 || value[j] == edges.1
                    let expected: Float = clamped ? 0 : Float(Double(Float(Double(s) * Double(gradient[j]))) * Double(value[j]))
                    XCTAssertEqual(out[j].bitPattern, expected.bitPattern, "count \(count) [\(j)]")
                }
            }
        }
    }

    /// Column form vs `outerGradient` row by row (bitwise), and both vs the float64 twin.
    func testOuterGradientColumnsIsTheRowKernelOnEveryRow() {
        for (nodes, pw, mw) in [(2, 16, 16), (1, 3, 8), (2, 5, 24)] {
            for lanes in [1, 7, 8, 9, 16, 64, 67] {
                let m = nodes * pw * mw
                let ld = lanes + 5
                let g = random(m * ld), poly = random(pw * ld), prf = random(nodes * mw * ld, 0...2)
                let polyStart = random(pw * ld), prfStart = random(nodes * mw * ld)
                // Row-kernel references, row by row and node by node: each build's own row kernel
                // (the column kernel of a build must give that build's bits).
                typealias RowKernel = (UnsafePointer<Float>, Int, UnsafePointer<Float>, UnsafePointer<Float>, Int,
                                       UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
                func reference(_ kernel: RowKernel) -> (poly: [Float], prf: [Float]) {
                    var rowPoly = [Float](repeating: 0, count: pw * lanes), rowPrf = [Float](repeating: 0, count: nodes * mw * lanes)
                    for i in 0..<lanes {
                        var gRow = [Float](repeating: 0, count: m)
                        for f in 0..<m { gRow[f] = g[f * ld + i] }
                        let polyRow = (0..<pw).map { poly[$0 * ld + i] }
                        var scales = (0..<pw).map { polyStart[$0 * ld + i] }
                        for r in 0..<nodes {
                            let prfRow = (0..<mw).map { prf[(r * mw + $0) * ld + i] }
                            var rowGradient = (0..<mw).map { prfStart[(r * mw + $0) * ld + i] }
                            gRow.withUnsafeBufferPointer { gp in
                                kernel(gp.baseAddress! + r * pw * mw, pw, polyRow, prfRow, mw, &scales, &rowGradient)
                            }
                            for j in 0..<mw { rowPrf[(r * mw + j) * lanes + i] = rowGradient[j] }
                        }
                        for p in 0..<pw { rowPoly[p * lanes + i] = scales[p] }
                    }
                    return (rowPoly, rowPrf)
                }
                let portableRows = reference { SlayKernels.VectorProducts.outerGradient($0, count: $1, scales: $2, row: $3, width: $4,
                                                                                          scalesGradient: $5, rowGradient: $6) }
                let avx2Rows = hasAVX2
                    ? reference { SlayKernelsAVX2.VectorProducts.outerGradient($0, count: $1, scales: $2, row: $3, width: $4,
                                                                                scalesGradient: $5, rowGradient: $6) }
                    : portableRows
                let activeRows = KernelVariant.active == .avx2 ? avx2Rows : portableRows
                var variants: [(String, (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void)] = [
                    ("dispatch", { BackwardKernels.outerGradientColumns(g, ldg: ld, poly: poly, ldp: ld, prf: prf, ldr: ld, nodes: nodes,
                                                                        polyWidth: pw, prfWidth: mw, lanes: lanes, polyGradient: $0,
                                                                        ldpg: ld, prfGradient: $1, ldrg: ld) }),
                    ("portable", { SlayKernels.BackwardRows.outerGradientColumns(g, ldg: ld, poly: poly, ldp: ld, prf: prf, ldr: ld,
                                                                                 nodes: nodes, polyWidth: pw, prfWidth: mw, lanes: lanes,
                                                                                 polyGradient: $0, ldpg: ld, prfGradient: $1, ldrg: ld) }),
                ]
                if hasAVX2 {
                    variants.append(("avx2-fma", { SlayKernelsAVX2.BackwardRows.outerGradientColumns(
                        g, ldg: ld, poly: poly, ldp: ld, prf: prf, ldr: ld, nodes: nodes, polyWidth: pw, prfWidth: mw, lanes: lanes,
                        polyGradient: $0, ldpg: ld, prfGradient: $1, ldrg: ld) }))
                }
                for (name, call) in variants {
                    var (polyGradient, prfGradient) = (polyStart, prfStart)
                    call(&polyGradient, &prfGradient)
                    let (rowPoly, rowPrf) = name == "dispatch" ? activeRows : name == "portable" ? portableRows : avx2Rows
                    for i in 0..<lanes {
                        for p in 0..<pw {
                            let value = polyGradient[p * ld + i]
                            XCTAssertEqual(value.bitPattern, rowPoly[p * lanes + i].bitPattern, "\(name) poly")
                            var expected = Double(polyStart[p * ld + i])
                            for r in 0..<nodes {
                                for j in 0..<mw { expected += Double(g[((r * pw + p) * mw + j) * ld + i]) * Double(prf[(r * mw + j) * ld + i]) }
                            }
                            XCTAssertEqual(Double(value), expected, accuracy: 1e-4, "\(name) \(nodes)×\(pw)×\(mw) lanes \(lanes) poly")
                        }
                        for r in 0..<nodes {
                            for j in 0..<mw {
                                let value = prfGradient[(r * mw + j) * ld + i]
                                XCTAssertEqual(value.bitPattern, rowPrf[(r * mw + j) * lanes + i].bitPattern, "\(name) prf")
                                var expected = Double(prfStart[(r * mw + j) * ld + i])
                                for p in 0..<pw { expected += Double(g[((r * pw + p) * mw + j) * ld + i]) * Double(poly[p * ld + i]) }
                                XCTAssertEqual(Double(value), expected, accuracy: 1e-4, "\(name) prf")
                            }
                        }
                    }
                    // Lanes beyond `lanes` are not written.
                    for i in lanes..<ld { XCTAssertEqual(polyGradient[i].bitPattern, polyStart[i].bitPattern) }
                }
            }
        }
    }

    func testAddColumnThenScaleIsTheRowLoopTransposed() {
        for columns in [1, 8, 13, 64] {
            let (rows, ld) = (5, columns + 3)
            let x = random(rows * ld), z = random(rows), weights = random(columns)
            for useWeights in [false, true] {
                var variants: [(UnsafeMutablePointer<Float>) -> Void] = [
                    { p in weights.withUnsafeBufferPointer {
                        BackwardKernels.addColumnThenScale(p, rows: rows, columns: columns, ld: ld, z: z,
                                                           weights: useWeights ? $0.baseAddress : nil) } },
                    { p in weights.withUnsafeBufferPointer {
                        SlayKernels.BackwardRows.addColumnThenScale(p, rows: rows, columns: columns, ld: ld, z: z,
                                                                    weights: useWeights ? $0.baseAddress : nil) } },
                ]
                if hasAVX2 {
                    variants.append { p in weights.withUnsafeBufferPointer {
                        SlayKernelsAVX2.BackwardRows.addColumnThenScale(p, rows: rows, columns: columns, ld: ld, z: z,
                                                                        weights: useWeights ? $0.baseAddress : nil) } }
                }
                for call in variants {
                    var out = x
                    call(&out)
                    for f in 0..<rows {
                        for i in 0..<ld {
                            let index = f * ld + i
                            guard i < columns else { XCTAssertEqual(out[index].bitPattern, x[index].bitPattern); continue }
                            let sum = Float(Double(x[index]) + Double(z[f]))
                            let expected = useWeights ? Float(Double(weights[i]) * Double(sum)) : sum
                            XCTAssertEqual(out[index].bitPattern, expected.bitPattern, "columns \(columns) [\(f), \(i)]")
                        }
                    }
                }
            }
        }
    }
}
