import Foundation
import XCTest
@testable import SlayCore

/// The TensorSketch and Nyström polynomials of SLAY (docs/math.md §1): features against the float64
/// twin, the documented parameters, the estimator each converges to, the whitening itself, the
/// factorised scores and parameter validation.
final class SlaySketchPolynomialTests: XCTestCase {
    private func rows(_ count: Int, _ d: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        var values = generator.floats(count * d, in: -2...2)
        values.replaceSubrange(0..<d, with: [Float](repeating: 0, count: d))   // a zero row maps to 0
        return values
    }

    private func assertMatchesTwin(_ map: SlayFeatureMap, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let twin = try SlayFeatureTwin(map: map)
        XCTAssertEqual(map.featureDim, twin.featureDim, message, file: file, line: line)
        let d = map.headDim
        let input = rows(9, d, seed: UInt64(map.featureDim))
        for head in 0..<map.numHeads {
            for role in [FeatureRole.query, .key] {
                let actual = map.computeFeatures(input, head: head, role: role)
                var expected: [Double] = []
                for i in 0..<9 { expected += twin.features(Array(input[(i * d)..<((i + 1) * d)]), head: head) }
                let scale = expected.map(abs).max() ?? 1
                XCTAssertTrue(scale > 0, message, file: file, line: line)
                XCTAssertClose(actual, expected, relative: 1e-4, absolute: 1e-5 * scale,
                               "\(message), head \(head), role \(role)", file: file, line: line)
            }
        }
    }

    private func unitPair(_ d: Int, cosine x: Double, seed: UInt64) -> ([Double], [Double]) {
        var generator = SeededGenerator(seed: seed)
        var a = generator.floats(d).map(Double.init)
        let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        a = a.map { $0 / na }
        var b = generator.floats(d).map(Double.init)
        let along = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        b = zip(b, a).map { $0 - along * $1 }
        let nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        b = b.map { $0 / nb }
        return (a, zip(a, b).map { x * $0 + (1 - x * x).squareRoot() * $1 })
    }

    // MARK: TensorSketch

    func testTensorSketchFeaturesMatchFloat64Twin() throws {
        // P < d, P = d, P > d and the degenerate sizes: the twin sums the d² pairs directly.
        for (d, heads, p, m) in [(1, 1, 1, 1), (6, 2, 3, 4), (5, 1, 5, 2), (4, 2, 16, 3), (16, 1, 64, 2)] {
            for nodes in [1, 2] {
                let map = try SlayFeatureMap(SlayConfiguration(
                    headDim: d, numHeads: heads, nodes: nodes, polynomial: .tensorSketch, polyDim: p, prfDim: m,
                    eps: 1e-3, seed: UInt64(7 * d + p)))
                XCTAssertEqual(map.featureDim, nodes * p * m)
                XCTAssertFalse(map.isPositive)
                try assertMatchesTwin(map, "tensorsketch R=\(nodes) d=\(d) H=\(heads) P=\(p) M=\(m)")
            }
        }
    }

    /// Element i of "sketch" (2, 2, d) comes from uniform(i) of stream 9: buckets ⌊P·u⌋, signs u < 1/2.
    func testTensorSketchParameterComesFromTheDocumentedGenerator() throws {
        let (d, p, seed) = (7, 5, UInt64(99))
        let map = try SlayFeatureMap(SlayConfiguration(headDim: d, nodes: 2, polynomial: .tensorSketch, polyDim: p, prfDim: 3, seed: seed))
        XCTAssertEqual(map.parameterNames, ["sketch", "omega"])
        XCTAssertEqual(map.parameterShape("sketch"), [2, 2, d])
        XCTAssertNil(map.parameterShape("anchors"))
        let generator = ParameterGenerator(seed: seed)
        var expected: [Float] = []
        for k in 0..<2 {
            for i in 0..<d { expected.append(Float(min((Double(p) * generator.uniform(stream: 9, index: UInt64(2 * k * d + i))).rounded(.down), Double(p - 1)))) }
            for i in 0..<d { expected.append(generator.uniform(stream: 9, index: UInt64((2 * k + 1) * d + i)) < 0.5 ? 1 : -1) }
        }
        XCTAssertEqual(map.parameterValues("sketch"), expected)
        XCTAssertEqual(map.parameterValues("omega"), generator.normals(stream: 2, count: 2 * d * 3))
        let values = map.parameterValues("sketch")!
        XCTAssertTrue(values.contains(1) && values.contains(-1))
        XCTAssertEqual(try SlayFeatureMap(map.configuration).identity, map.identity)
    }

    /// E over hashes and signs of ⟨TS(a), TS(b)⟩ = (a·b)², for any P: the mean over 3000 sketches
    /// is within a few standard errors of x², while the P = 4 estimate alone spreads widely.
    func testTensorSketchIsUnbiasedForXSquared() throws {
        let d = 8
        for (x, p) in [(0.0, 4), (0.5, 4), (-0.7, 16), (0.95, 8)] {
            let (a, b) = unitPair(d, cosine: x, seed: UInt64(p * 10) + 3)
            let input = (a + b).map(Float.init)
            var estimates: [Double] = []
            for seed in 0..<3000 {
                let parameter = try SlayTensorSketchPolynomial.generate(ParameterGenerator(seed: UInt64(seed)), stream: 9, headDim: d, polyDim: p)
                let sketch = try SlayTensorSketchPolynomial(parameter: parameter, headDim: d, polyDim: p)
                var poly = [Float](repeating: .nan, count: 2 * p)
                var spare = [Float](repeating: 0, count: 2 * p)
                var gemmSpace = [Float](repeating: 0, count: 1)
                input.withUnsafeBufferPointer { u in
                    sketch.features(u.baseAddress!, rows: 2, into: &poly, spare: &spare, gemmSpace: &gemmSpace)
                }
                estimates.append((0..<p).reduce(0.0) { $0 + Double(poly[$1]) * Double(poly[p + $1]) })
            }
            let mean = estimates.reduce(0, +) / Double(estimates.count)
            let variance = estimates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(estimates.count - 1)
            let standardError = (variance / Double(estimates.count)).squareRoot()
            XCTAssertEqual(mean, x * x, accuracy: 4 * standardError + 1e-6, "x = \(x), P = \(p)")
            XCTAssertGreaterThan(variance, 1e-4, "x = \(x), P = \(p): a random estimator")
        }
    }

    func testTensorSketchSetParameterValidation() throws {
        let (d, p) = (3, 4)
        let map = try SlayFeatureMap(SlayConfiguration(headDim: d, nodes: 1, polynomial: .tensorSketch, polyDim: p, prfDim: 2, seed: 5))
        let identity = map.identity
        let original = map.parameterValues("sketch")!
        func set(_ values: [Float]) throws { try values.withUnsafeBufferPointer { try map.setParameter("sketch", values: $0) } }
        let valid: [Float] = [0, 3, 1, 1, -1, 1, 2, 2, 0, -1, -1, 1]
        func edited(_ index: Int, _ value: Float) -> [Float] { var v = valid; v[index] = value; return v }
        XCTAssertThrowsSlayError(.shape, try set(Array(valid.dropLast())))
        XCTAssertThrowsSlayError(.shape, try set(valid + [1]))
        for (index, value, what) in [(0, Float(0.5), "non-integral bucket"), (1, 4, "bucket P"), (2, -1, "bucket −1"),
                                     (6, 1e9, "huge bucket"), (3, 0, "sign 0"), (4, 0.5, "sign 0.5"), (11, -2, "sign −2"),
                                     (0, .nan, "NaN bucket"), (9, .infinity, "inf sign")] {
            XCTAssertThrowsSlayError(.invalidArgument, try set(edited(index, value)), what)
        }
        XCTAssertEqual(map.identity, identity)
        XCTAssertEqual(map.parameterValues("sketch"), original)
        XCTAssertThrowsSlayError(.invalidArgument,
                                 try original.withUnsafeBufferPointer { try map.setParameter("anchors", values: $0) })
        try set(valid)
        XCTAssertEqual(map.parameterValues("sketch"), valid)
        XCTAssertNotEqual(map.identity, identity)
        try assertMatchesTwin(map, "sketch as set")
        try set(original)
        XCTAssertEqual(map.identity, identity)
    }

    // MARK: Nyström

    /// K_AA + λI written out in double from the anchors.
    private func regularisedKernel(_ anchors: [Float], p: Int, d: Int) -> [Double] {
        var k = [Double](repeating: 0, count: p * p)
        for i in 0..<p {
            for j in 0..<p {
                var dot = 0.0
                for c in 0..<d { dot += Double(anchors[i * d + c]) * Double(anchors[j * d + c]) }
                k[i * p + j] = dot * dot + (i == j ? NystromWhitening.lambda : 0)
            }
        }
        return k
    }

    /// W (K_AA + λI) W = I: W is the inverse square root (symmetric, and it whitens the kernel).
    private func assertWhitens(_ map: SlayFeatureMap, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let (p, d) = (map.configuration.polyDim, map.headDim)
        let w = map.nystromWhitening.map(Double.init)
        XCTAssertEqual(w.count, p * p, message, file: file, line: line)
        let k = regularisedKernel(map.parameterValues("anchors")!, p: p, d: d)
        var kw = [Double](repeating: 0, count: p * p)
        for i in 0..<p { for j in 0..<p { for e in 0..<p { kw[i * p + j] += k[i * p + e] * w[e * p + j] } } }
        var worst = 0.0
        for i in 0..<p {
            for j in 0..<p {
                XCTAssertEqual(w[i * p + j], w[j * p + i], message, file: file, line: line)
                var value = 0.0
                for e in 0..<p { value += w[i * p + e] * kw[e * p + j] }
                worst = max(worst, abs(value - (i == j ? 1 : 0)))
            }
        }
        // W is rounded to float and its entries reach λ^(−1/2) ≈ 32: a few 1e-5 of rounding.
        XCTAssertLessThan(worst, 2e-3, message, file: file, line: line)
    }

    func testNystromWhiteningInvertsTheRegularisedKernel() throws {
        for (d, p) in [(1, 1), (2, 5), (4, 8), (4, 32), (16, 64)] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: d, nodes: 1, polynomial: .nystrom, polyDim: p, prfDim: 1, seed: UInt64(d + p)))
            assertWhitens(map, "d=\(d) P=\(p)")
        }
    }

    func testNystromFeaturesMatchFloat64Twin() throws {
        for (d, heads, p, m) in [(1, 1, 1, 1), (3, 2, 5, 4), (6, 1, 8, 3), (4, 1, 20, 2)] {
            for nodes in [1, 2] {
                let map = try SlayFeatureMap(SlayConfiguration(
                    headDim: d, numHeads: heads, nodes: nodes, polynomial: .nystrom, polyDim: p, prfDim: m,
                    eps: 1e-3, seed: UInt64(nodes * 10 + d)))
                XCTAssertEqual(map.featureDim, nodes * p * m)
                XCTAssertFalse(map.isPositive)
                try assertMatchesTwin(map, "nystrom R=\(nodes) d=\(d) H=\(heads) P=\(p) M=\(m)")
            }
        }
    }

    /// Anchors are the anchor polynomial's (stream 1 unit rows), and parameter "anchors".
    func testNystromAnchorsComeFromTheDocumentedGenerator() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 5, numHeads: 2, nodes: 2, polynomial: .nystrom, polyDim: 6, prfDim: 3, seed: 12))
        XCTAssertEqual(map.parameterNames, ["anchors", "omega"])
        XCTAssertEqual(map.parameterShape("anchors"), [6, 5])
        XCTAssertEqual(map.parameterValues("anchors"), ParameterGenerator(seed: 12).unitRows(stream: 1, rows: 6, cols: 5))
        XCTAssertNil(map.parameterShape("sketch"))
    }

    /// With P well above d(d+1)/2 = 6 (d = 3) the anchors span every quadratic form and the
    /// poly kernel is x² up to the λ shrinkage; with P = 2 it is a projection, visibly below x².
    func testNystromPolyKernelApproachesXSquared() throws {
        let d = 3
        func polyKernel(_ p: Int, _ x: Double) throws -> Double {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: d, nodes: 1, polynomial: .nystrom, polyDim: p, prfDim: 1, seed: 4))
            let (a, b) = unitPair(d, cosine: x, seed: 17)
            // ω = 0: every PRF is e^{−s}, so φ(a)·φ(b) = w e^{−2s} · poly(a)·poly(b).
            let zeros = [Float](repeating: 0, count: d)
            try zeros.withUnsafeBufferPointer { try map.setParameter("omega", values: $0) }
            let scale = map.w[0] * exp(-2 * map.s[0])
            let fa = map.computeFeatures(a.map(Float.init), head: 0)
            let fb = map.computeFeatures(b.map(Float.init), head: 0, role: .key)
            return zip(fa, fb).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / scale
        }
        for x in [-0.9, -0.3, 0.0, 0.4, 0.8, 1.0] {
            XCTAssertEqual(try polyKernel(64, x), x * x, accuracy: 2e-3, "P = 64, x = \(x)")
        }
        XCTAssertLessThan(try polyKernel(2, 1.0), 0.9, "P = 2 cannot represent every quadratic form")
    }

    func testNystromSetAnchorsRecomputesWhitening() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, nodes: 2, polynomial: .nystrom, polyDim: 4, prfDim: 2, seed: 1))
        let identity = map.identity
        let whitening = map.nystromWhitening
        func set(_ values: [Float]) throws { try values.withUnsafeBufferPointer { try map.setParameter("anchors", values: $0) } }
        XCTAssertThrowsSlayError(.shape, try set([1, 0, 0]))
        XCTAssertThrowsSlayError(.invalidArgument, try set([1, 0, 0, 0, 1, 0, 0, 0, .nan, 1, 1, 1]))
        XCTAssertEqual(map.identity, identity)
        XCTAssertEqual(map.nystromWhitening, whitening)
        // Not unit rows, one zero row, one duplicate: used as given, K_AA singular but K_AA + λI is not.
        try set([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0])
        XCTAssertNotEqual(map.identity, identity)
        XCTAssertNotEqual(map.nystromWhitening, whitening)
        assertWhitens(map, "anchors as given")
        try assertMatchesTwin(map, "anchors as given")
        // Huge (finite) anchors must not fail or trap.
        try set([Float](repeating: 3e37, count: 12))
        XCTAssertTrue(map.nystromWhitening.allSatisfy { $0.isFinite })
    }

    // MARK: Both

    /// The factorised intra-chunk scores (poly_q·poly_k)(prf_q·prf_k) equal the feature products.
    func testScoresShortcutEqualsFeatureProducts() throws {
        for polynomial in [SlayPolynomial.tensorSketch, .nystrom] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: 6, numHeads: 2, nodes: 2, polynomial: polynomial, polyDim: 8, prfDim: 3, seed: 2))
            let (n, m) = (7, map.featureDim)
            let q = rows(n, 6, seed: 3), k = rows(n, 6, seed: 4)
            var queryScratch = [Float](repeating: 0, count: map.scratchFloats(rows: n))
            var keyScratch = queryScratch
            var fq = [Float](repeating: 0, count: n * m), fk = fq
            var scores = [Float](repeating: .nan, count: n * n)
            var scoreScratch = [Float](repeating: 0, count: map.scoreScratchFloats(rows: n))
            let head = 1
            map.features(role: .query, head: head, input: q, rows: n, output: &fq, scratch: &queryScratch)
            map.features(role: .key, head: head, input: k, rows: n, output: &fk, scratch: &keyScratch)
            XCTAssertTrue(map.scores(head: head, rows: n, queryScratch: queryScratch, keyScratch: keyScratch,
                                     output: &scores, scratch: &scoreScratch))
            var expected: [Double] = []
            for i in 0..<n {
                for j in 0..<n { expected.append((0..<m).reduce(0.0) { $0 + Double(fq[i * m + $1]) * Double(fk[j * m + $1]) }) }
            }
            let scale = expected.map(abs).max()!
            XCTAssertGreaterThan(scale, 0)
            XCTAssertClose(scores, expected, relative: 1e-4, absolute: 1e-5 * scale, "\(polynomial)")
        }
    }

    func testConfigurationValidation() {
        for polynomial in [SlayPolynomial.tensorSketch, .nystrom] {
            for p in [0, -1, 65537] {
                XCTAssertThrowsSlayError(.shape, try SlayFeatureMap(SlayConfiguration(headDim: 4, polynomial: polynomial, polyDim: p)),
                                         "\(polynomial) P = \(p)")
            }
        }
        XCTAssertThrowsSlayError(.shape, try SlayFeatureMap(SlayConfiguration(headDim: 4, polynomial: .nystrom, polyDim: 257)))
        XCTAssertNoThrow(try SlayConfiguration(headDim: 4, polynomial: .nystrom, polyDim: 256).validate())
        XCTAssertNoThrow(try SlayFeatureMap(SlayConfiguration(headDim: 4, nodes: 1, polynomial: .tensorSketch, polyDim: 4096, prfDim: 1)))
        XCTAssertThrowsSlayError(.overflow, try SlayConfiguration(headDim: 4, nodes: 2, polynomial: .tensorSketch,
                                                                  polyDim: 4096, prfDim: 4096).validate())
    }
}
