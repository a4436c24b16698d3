import XCTest
@testable import SlayCore

/// LinearAttention (the chunked engine) against the quadratic float64 twin built from the map's
/// own features, plus layout, grouping, threading and error behaviour (docs/math.md §5).
final class LinearAttentionTests: XCTestCase {
    private func makeMap(d: Int, heads: Int, polynomial: SlayPolynomial = .anchor, seed: UInt64 = 1) throws -> SlayFeatureMap {
        try SlayFeatureMap(SlayConfiguration(headDim: d, numHeads: heads, nodes: 2, polynomial: polynomial,
                                             polyDim: 4, prfDim: 4, eps: 1e-3, seed: seed))
    }

    fileprivate struct Inputs {
        let q: BTHD, k: BTHD, v: BTHD
        init(q: BTHD, k: BTHD, v: BTHD) { (self.q, self.k, self.v) = (q, k, v) }
        init(b: Int, t: Int, hq: Int, hk: Int, d: Int, dv: Int, seed: UInt64) {
            var generator = SeededGenerator(seed: seed)
            q = BTHD(b: b, t: t, h: hq, d: d, generator: &generator)
            k = BTHD(b: b, t: t, h: hk, d: d, generator: &generator)
            v = BTHD(b: b, t: t, h: hk, d: dv, generator: &generator)
        }
        var outputCount: Int { q.b * q.t * q.h * v.d }
    }

    /// Runs the engine on contiguous copies; the output starts as NaN.
    private func run(_ map: SlayFeatureMap, _ x: Inputs, _ options: LinearAttentionOptions) throws -> [Float] {
        let (q, k, v) = (x.q.contiguous(), x.k.contiguous(), x.v.contiguous())
        let out = TestTensor(count: x.outputCount)
        try LinearAttention.run(map: map, q: q.view(x.q.shape), k: k.view(x.k.shape), v: v.view(x.v.shape),
                                out: out.view([x.q.b, x.q.t, x.q.h, x.v.d]), options: options)
        return out.values
    }

    private func assertMatchesTwin(_ map: SlayFeatureMap, _ x: Inputs, causal: Bool, chunk: Int = 64,
                                   threads: Int = 1, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let actual = try run(map, x, LinearAttentionOptions(causal: causal, delta: 1e-6, chunkSize: chunk, nThreads: threads))
        let expected = QuadraticAttentionTwins.linear(map: map, q: x.q, k: x.k, v: x.v, causal: causal, delta: 1e-6)
        // Positive features: y is a convex combination of v rows, |v| ≤ 1.
        XCTAssertClose(actual, expected, relative: 1e-4, absolute: 2e-5, label, file: file, line: line)
    }

    func testCausalChunkedEqualsQuadraticTwin() throws {
        let map = try makeMap(d: 5, heads: 1)
        for t in [1, 2, 15, 16, 17, 100] {
            let inputs = Inputs(b: 2, t: t, hq: 1, hk: 1, d: 5, dv: 3, seed: UInt64(t))
            for chunk in [1, 3, 16, 64] {
                try assertMatchesTwin(map, inputs, causal: true, chunk: chunk, "T = \(t), chunk = \(chunk)")
            }
        }
    }

    /// Full 64-row chunks with m ≥ 256 features: the GEMMs Φ_Q·Φ_Kᵀ and Φ_Q·S then use a whole
    /// mc × kc block of the packed kernel.
    func testFullChunksWithManyFeaturesEqualQuadraticTwin() throws {
        for (p, m) in [(8, 16), (16, 16)] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: 4, numHeads: 1, nodes: 2, polynomial: .anchor,
                                                           polyDim: p, prfDim: m, eps: 1e-3, seed: 6))
            XCTAssertGreaterThanOrEqual(map.featureDim, 256)
            let inputs = Inputs(b: 1, t: 130, hq: 1, hk: 1, d: 4, dv: 3, seed: 61)
            for causal in [true, false] {
                try assertMatchesTwin(map, inputs, causal: causal, chunk: 64, "m = \(map.featureDim), causal \(causal)")
            }
        }
    }

    func testBidirectionalEqualsQuadraticTwin() throws {
        let map = try makeMap(d: 4, heads: 2)
        for (t, chunk) in [(1, 64), (7, 3), (33, 16), (64, 64)] {
            let inputs = Inputs(b: 2, t: t, hq: 2, hk: 2, d: 4, dv: 5, seed: UInt64(40 + t))
            try assertMatchesTwin(map, inputs, causal: false, chunk: chunk, "T = \(t), chunk = \(chunk)")
        }
    }

    /// Exact-polynomial features are signed; compare by RMS error relative to the twin's RMS.
    func testExactPolynomialFeaturesMatchTwin() throws {
        let map = try makeMap(d: 4, heads: 1, polynomial: .exact, seed: 4)
        for causal in [true, false] {
            let inputs = Inputs(b: 1, t: 37, hq: 1, hk: 1, d: 4, dv: 3, seed: 5)
            let actual = try run(map, inputs, LinearAttentionOptions(causal: causal, chunkSize: 8))
            let expected = QuadraticAttentionTwins.linear(map: map, q: inputs.q, k: inputs.k, v: inputs.v, causal: causal, delta: 1e-6)
            var error = 0.0, reference = 0.0
            for (a, e) in zip(actual, expected) { error += (Double(a) - e) * (Double(a) - e); reference += e * e }
            XCTAssertTrue(actual.allSatisfy(\.isFinite))
            XCTAssertLessThan((error / reference).squareRoot(), 1e-3, "causal \(causal)")
        }
    }

    func testGroupedQueryHeadsUseKeyHeadOfTheirGroup() throws {
        let map = try makeMap(d: 3, heads: 2)
        let inputs = Inputs(b: 2, t: 19, hq: 4, hk: 2, d: 3, dv: 2, seed: 8)
        for causal in [true, false] {
            try assertMatchesTwin(map, inputs, causal: causal, chunk: 5, "Hq = 4, Hk = 2, causal \(causal)")
        }
    }

    func testValueDimDifferentFromHeadDim() throws {
        let map = try makeMap(d: 6, heads: 1)
        for dv in [1, 2, 11, 17] {
            let inputs = Inputs(b: 1, t: 21, hq: 1, hk: 1, d: 6, dv: dv, seed: UInt64(dv))
            try assertMatchesTwin(map, inputs, causal: true, chunk: 8, "dv = \(dv)")
        }
    }

    /// [B, H, T, D] buffers passed with permuted strides give bit-identical results.
    func testHeadFirstStridedViewsEqualContiguous() throws {
        let map = try makeMap(d: 4, heads: 2)
        let x = Inputs(b: 2, t: 13, hq: 4, hk: 2, d: 4, dv: 3, seed: 12)
        for causal in [true, false] {
            let options = LinearAttentionOptions(causal: causal, chunkSize: 4)
            let contiguous = try run(map, x, options)
            let (q, k, v) = (x.q.headFirst(), x.k.headFirst(), x.v.headFirst())
            let outShape = BTHD(b: 2, t: 13, h: 4, d: 3, data: [Float](repeating: 0, count: x.outputCount))
            let out = TestTensor(count: x.outputCount)
            try LinearAttention.run(map: map, q: q.view(x.q.shape, strides: x.q.headFirstStrides),
                                    k: k.view(x.k.shape, strides: x.k.headFirstStrides),
                                    v: v.view(x.v.shape, strides: x.v.headFirstStrides),
                                    out: out.view(outShape.shape, strides: outShape.headFirstStrides), options: options)
            // Back to [B, T, H, D] order.
            var strided = [Float](repeating: .nan, count: x.outputCount)
            for b in 0..<2 { for t in 0..<13 { for h in 0..<4 { for c in 0..<3 {
                strided[((b * 13 + t) * 4 + h) * 3 + c] = out.pointer[((b * 4 + h) * 13 + t) * 3 + c]
            } } } }
            XCTAssertEqual(strided.map(\.bitPattern), contiguous.map(\.bitPattern), "causal \(causal)")
        }
    }

    /// Non-unit column strides and stride-0 broadcast inputs read the same logical values.
    func testColumnStridesAndBroadcastInputs() throws {
        let map = try makeMap(d: 3, heads: 1)
        var generator = SeededGenerator(seed: 21)
        let qRow = generator.floats(3), kRow = generator.floats(3), vRow = generator.floats(2)
        // Every time step holds the same q, k, v: broadcast over T (and B) with stride 0.
        let (b, t) = (2, 9)
        let q = BTHD(b: b, t: t, h: 1, d: 3, data: Array((0..<(b * t)).map { _ in qRow }.joined()))
        let k = BTHD(b: b, t: t, h: 1, d: 3, data: Array((0..<(b * t)).map { _ in kRow }.joined()))
        let v = BTHD(b: b, t: t, h: 1, d: 2, data: Array((0..<(b * t)).map { _ in vRow }.joined()))
        let contiguous = try run(map, Inputs(q: q, k: k, v: v), LinearAttentionOptions(chunkSize: 4))
        // q stored with column stride 2 (interleaved with junk), k and v broadcast.
        let qStorage = TestTensor(qRow.flatMap { [$0, 99] })
        let kStorage = TestTensor(kRow), vStorage = TestTensor(vRow)
        let out = TestTensor(count: b * t * 2)
        try LinearAttention.run(map: map, q: qStorage.view([b, t, 1, 3], strides: [0, 0, 0, 2]),
                                k: kStorage.view([b, t, 1, 3], strides: [0, 0, 0, 1]),
                                v: vStorage.view([b, t, 1, 2], strides: [0, 0, 0, 1]),
                                out: out.view([b, t, 1, 2]), options: LinearAttentionOptions(chunkSize: 4))
        XCTAssertEqual(out.bits, contiguous.map(\.bitPattern))
    }

    func testThreadCountDoesNotChangeBits() throws {
        let map = try makeMap(d: 4, heads: 2)
        let x = Inputs(b: 2, t: 23, hq: 4, hk: 2, d: 4, dv: 3, seed: 33)
        for causal in [true, false] {
            let one = try run(map, x, LinearAttentionOptions(causal: causal, chunkSize: 8, nThreads: 1))
            for threads in [2, 3, 8] {
                let many = try run(map, x, LinearAttentionOptions(causal: causal, chunkSize: 8, nThreads: threads))
                XCTAssertEqual(many.map(\.bitPattern), one.map(\.bitPattern), "threads \(threads), causal \(causal)")
            }
        }
    }

    /// ith/nth shares write disjoint outputs and together equal one whole call.
    func testPartitionedCallsEqualOneCall() throws {
        let map = try makeMap(d: 4, heads: 2)
        let x = Inputs(b: 3, t: 11, hq: 2, hk: 2, d: 4, dv: 3, seed: 34)
        let whole = try run(map, x, LinearAttentionOptions(chunkSize: 4))
        for nth in [2, 4, 7] {
            let (q, k, v) = (x.q.contiguous(), x.k.contiguous(), x.v.contiguous())
            let out = TestTensor(count: x.outputCount)
            for ith in 0..<nth {
                try LinearAttention.run(map: map, q: q.view(x.q.shape), k: k.view(x.k.shape), v: v.view(x.v.shape),
                                        out: out.view([3, 11, 2, 3]),
                                        options: LinearAttentionOptions(chunkSize: 4, ith: ith, nth: nth))
            }
            XCTAssertEqual(out.bits, whole.map(\.bitPattern), "nth = \(nth)")
        }
    }

    func testEveryOutputIsWrittenOverNaN() throws {
        let map = try makeMap(d: 3, heads: 1)
        for (t, chunk) in [(1, 1), (5, 64), (65, 64), (40, 7)] {
            let x = Inputs(b: 2, t: t, hq: 3, hk: 1, d: 3, dv: 4, seed: UInt64(t))
            for causal in [true, false] {
                let out = try run(map, x, LinearAttentionOptions(causal: causal, chunkSize: chunk))
                XCTAssertTrue(out.allSatisfy(\.isFinite), "T = \(t), chunk = \(chunk), causal \(causal)")
            }
        }
    }

    /// The diagonal counts: with one token, y_0 = a v_0 / (a + δ) ≈ v_0.
    func testSingleTokenReturnsItsValue() throws {
        let map = try makeMap(d: 4, heads: 1)
        let x = Inputs(b: 1, t: 1, hq: 1, hk: 1, d: 4, dv: 3, seed: 3)
        let out = try run(map, x, LinearAttentionOptions())
        for c in 0..<3 { XCTAssertEqual(out[c], x.v.data[c], accuracy: 1e-4) }
    }

    // MARK: errors

    /// Runs a call that must fail; the output must keep its sentinel.
    private func assertRejected(_ status: SlayStatus, map: SlayFeatureMap, q: [Int], k: [Int], v: [Int], out: [Int],
                                options: LinearAttentionOptions = LinearAttentionOptions(), _ label: String,
                                line: UInt = #line) {
        let count = { (shape: [Int]) in shape.reduce(1) { $0 * max($1, 1) } }
        let tq = TestTensor(count: count(q), repeating: 0.5), tk = TestTensor(count: count(k), repeating: 0.5)
        let tv = TestTensor(count: count(v), repeating: 0.5), tout = TestTensor(count: count(out), repeating: 7)
        func view(_ t: TestTensor, _ shape: [Int]) -> TensorView {
            TensorView(base: t.pointer, shape: shape, strides: Array(repeating: 0, count: shape.count))
        }
        let outView = tout.view(out, strides: TensorView(contiguous: tout.pointer, shape: out.map { max($0, 1) }).strides)
        XCTAssertThrowsSlayError(status, try LinearAttention.run(map: map, q: view(tq, q), k: view(tk, k), v: view(tv, v),
                                                                 out: outView, options: options), label, line: line)
        XCTAssertTrue(tout.values.allSatisfy { $0 == 7 }, "output changed: \(label)", line: line)
    }

    func testMismatchedShapesThrowAndLeaveOutputUntouched() throws {
        let map = try makeMap(d: 4, heads: 2)
        let good = ([2, 5, 4, 4], [2, 5, 2, 4], [2, 5, 2, 3], [2, 5, 4, 3])
        assertRejected(.shape, map: map, q: [2, 5, 4, 3], k: [2, 5, 2, 3], v: good.2, out: good.3, "d = 3, map expects 4")
        assertRejected(.shape, map: map, q: [2, 5, 3, 4], k: good.1, v: good.2, out: [2, 5, 3, 3], "Hq = 3 not a multiple of Hk = 2")
        assertRejected(.shape, map: map, q: [2, 5, 4, 4], k: [2, 5, 4, 4], v: [2, 5, 4, 3], out: good.3, "Hk = 4, map has 2")
        assertRejected(.shape, map: map, q: good.0, k: [2, 6, 2, 4], v: good.2, out: good.3, "k has T = 6")
        assertRejected(.shape, map: map, q: good.0, k: [1, 5, 2, 4], v: good.2, out: good.3, "k has B = 1")
        assertRejected(.shape, map: map, q: good.0, k: good.1, v: [2, 4, 2, 3], out: good.3, "v has T = 4")
        assertRejected(.shape, map: map, q: good.0, k: good.1, v: [2, 5, 1, 3], out: good.3, "v has 1 head")
        assertRejected(.shape, map: map, q: good.0, k: good.1, v: good.2, out: [2, 5, 4, 2], "out dv = 2")
        assertRejected(.shape, map: map, q: good.0, k: good.1, v: good.2, out: [2, 5, 2, 3], "out has Hk heads")
        assertRejected(.shape, map: map, q: good.0, k: good.1, v: good.2, out: [2, 5, 12], "out rank 3")
        assertRejected(.shape, map: map, q: [2, 0, 4, 4], k: [2, 0, 2, 4], v: [2, 0, 2, 3], out: [2, 0, 4, 3], "T = 0")
    }

    func testBadOptionsThrowAndLeaveOutputUntouched() throws {
        let map = try makeMap(d: 4, heads: 2)
        let shapes = ([2, 5, 4, 4], [2, 5, 2, 4], [2, 5, 2, 3], [2, 5, 4, 3])
        let cases: [(LinearAttentionOptions, String)] = [
            (LinearAttentionOptions(delta: .nan), "delta NaN"),
            (LinearAttentionOptions(delta: -1e-6), "delta < 0"),
            (LinearAttentionOptions(delta: .infinity), "delta inf"),
            (LinearAttentionOptions(chunkSize: -1), "chunk -1"),
            (LinearAttentionOptions(chunkSize: 4097), "chunk 4097"),
            (LinearAttentionOptions(nThreads: 0), "threads 0"),
            (LinearAttentionOptions(nThreads: 257), "threads 257"),
            (LinearAttentionOptions(ith: 1, nth: 1), "ith = nth"),
            (LinearAttentionOptions(ith: -1, nth: 2), "ith < 0"),
            (LinearAttentionOptions(ith: 0, nth: 0), "nth 0"),
            (LinearAttentionOptions(ith: 0, nth: 65537), "nth 65537"),
        ]
        for (options, label) in cases {
            assertRejected(.invalidArgument, map: map, q: shapes.0, k: shapes.1, v: shapes.2, out: shapes.3,
                           options: options, label)
        }
    }
}
