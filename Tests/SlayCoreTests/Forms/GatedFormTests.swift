import Foundation
import XCTest
import SlayKernels
import SlayKernelsAVX2
@testable import SlayCore

/// GLA per-channel decay and SLA head gates in the chunked engine and the decode step, against a
/// float64 loop over tokens of the recurrence S_t = Diag(α_t) S_{t−1} + g^K_t k_t v_tᵀ (identity map).
final class GatedFormTests: XCTestCase {
    struct Case {
        let b: Int, t: Int, hq: Int, hk: Int, d: Int, dv: Int
        let q: [Float], k: [Float], v: [Float], logDecay: [Float]
        var queryLogits: [Float]? = nil
        var keyLogits: [Float]? = nil

        init(b: Int = 2, t: Int, hq: Int = 2, hk: Int = 1, d: Int, dv: Int = 3, seed: UInt64,
             logDecay: (inout SeededGenerator) -> Float) {
            (self.b, self.t, self.hq, self.hk, self.d, self.dv) = (b, t, hq, hk, d, dv)
            var generator = SeededGenerator(seed: seed)
            q = generator.floats(b * t * hq * d)
            k = generator.floats(b * t * hk * d)
            v = generator.floats(b * t * hk * dv)
            self.logDecay = (0..<(b * t * hk * d)).map { _ in logDecay(&generator) }
        }

        /// y [B, T, Hq, dv] from the recurrence, token by token, in double.
        func twin(normalize: Bool, delta: Double = 1e-6) -> [Double] {
            func gates(_ logits: [Float]?, _ b: Int, _ t: Int, heads: Int) -> [Double] {
                guard let logits else { return [Double](repeating: 1, count: heads) }
                let row = (0..<heads).map { Double(logits[(b * self.t + t) * heads + $0]) }
                let top = row.max()!
                let e = row.map { Foundation.exp($0 - top) }
                let sum = e.reduce(0, +)
                return e.map { $0 / sum }
            }
            var y = [Double](repeating: 0, count: b * t * hq * dv)
            let group = hq / hk
            for batch in 0..<b {
                for head in 0..<hk {
                    var S = [Double](repeating: 0, count: d * dv), z = [Double](repeating: 0, count: d)
                    for token in 0..<t {
                        let gk = gates(keyLogits, batch, token, heads: hk)[head]
                        let gq = gates(queryLogits, batch, token, heads: hq)
                        let row = (batch * t + token) * hk + head
                        for f in 0..<d {
                            let alpha = Foundation.exp(Double(logDecay[row * d + f]))
                            let key = gk * Double(k[row * d + f])
                            z[f] = alpha * z[f] + key
                            for c in 0..<dv { S[f * dv + c] = alpha * S[f * dv + c] + key * Double(v[row * dv + c]) }
                        }
                        for g in 0..<group {
                            let qh = head * group + g
                            let qRow = (batch * t + token) * hq + qh
                            var den = 0.0
                            var num = [Double](repeating: 0, count: dv)
                            for f in 0..<d {
                                let query = gq[qh] * Double(q[qRow * d + f])
                                den += query * z[f]
                                for c in 0..<dv { num[c] += query * S[f * dv + c] }
                            }
                            for c in 0..<dv { y[qRow * dv + c] = normalize ? num[c] / (den + delta) : num[c] }
                        }
                    }
                }
            }
            return y
        }
    }

    final class Buffers {
        let q, k, v, logDecay, out: TestTensor
        let queryLogits, keyLogits: TestTensor?
        let c: Case
        init(_ c: Case) {
            self.c = c
            (q, k, v, logDecay) = (TestTensor(c.q), TestTensor(c.k), TestTensor(c.v), TestTensor(c.logDecay))
            out = TestTensor(count: c.b * c.t * c.hq * c.dv)
            queryLogits = c.queryLogits.map { TestTensor($0) }
            keyLogits = c.keyLogits.map { TestTensor($0) }
        }
        func options(chunk: Int, normalize: Bool, threads: Int = 1, causal: Bool = true) -> LinearAttentionOptions {
            LinearAttentionOptions(causal: causal, chunkSize: chunk, nThreads: threads, normalize: normalize,
                                   logDecay: logDecay.view([c.b, c.t, c.hk, c.d]),
                                   queryGateLogits: queryLogits?.view([c.b, c.t, c.hq]),
                                   keyGateLogits: keyLogits?.view([c.b, c.t, c.hk]))
        }
        func run(_ map: FeatureMap, chunk: Int, normalize: Bool, threads: Int = 1) throws -> [Float] {
            try LinearAttention.run(map: map, q: q.view([c.b, c.t, c.hq, c.d]), k: k.view([c.b, c.t, c.hk, c.d]),
                                    v: v.view([c.b, c.t, c.hk, c.dv]), out: out.view([c.b, c.t, c.hq, c.dv]),
                                    options: options(chunk: chunk, normalize: normalize, threads: threads))
            return out.values
        }
    }

    private func identity(d: Int, heads: Int = 1) throws -> IdentityFeatureMap {
        try IdentityFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
    }

    private func assertMatches(_ c: Case, chunks: [Int] = [1, 4, 64], _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let buffers = Buffers(c)
        let map = try identity(d: c.d, heads: c.hk)
        for normalize in [false, true] {
            let expected = c.twin(normalize: normalize)
            let scale = expected.map(abs).max() ?? 1
            for chunk in chunks {
                let got = try buffers.run(map, chunk: chunk, normalize: normalize)
                // Signed identity features: the normalised output can divide by a small denominator,
                // so the tolerance is relative to each element there.
                XCTAssertClose(got, expected, relative: normalize ? 1e-3 : 2e-5, absolute: normalize ? 1e-5 : 2e-5 * scale,
                               "\(label), chunk \(chunk), normalize \(normalize)", file: file, line: line)
            }
        }
    }

    func testCausalEqualsTheRecurrence() throws {
        // d = 5 and 13: channel counts that are not multiples of the 8-lane kernels.
        for d in [5, 8, 13] {
            let c = Case(t: 70, d: d, seed: UInt64(d)) { -0.3 * abs(Float.random(in: -1...1, using: &$0)) }
            try assertMatches(c, "d = \(d)")
        }
    }

    /// α = e^−10000 (underflows), e^−60, 1 and mixtures down to −3e38: never exp of a positive
    /// number, so every output is finite and matches the recurrence.
    func testExtremeDecaysStayFiniteAndExact() throws {
        let choices: [Float] = [0, -1e-3, -0.5, -60, -1e4, -3e38]
        let cases: [(String, (inout SeededGenerator) -> Float)] = [
            ("-1e4", { _ in -1e4 }), ("-60", { _ in -60 }), ("0", { _ in 0 }),
            ("mixed", { choices[Int.random(in: 0..<choices.count, using: &$0)] }),
        ]
        for (name, draw) in cases {
            let c = Case(t: 40, d: 9, seed: 3, logDecay: draw)
            try assertMatches(c, chunks: [1, 16, 64], name)
        }
    }

    func testGatesEqualTheRecurrence() throws {
        var c = Case(t: 33, hq: 4, hk: 2, d: 6, seed: 9) { -0.2 * abs(Float.random(in: -1...1, using: &$0)) }
        var generator = SeededGenerator(seed: 10)
        c.queryLogits = generator.floats(c.b * c.t * c.hq, in: -3...3)
        c.keyLogits = generator.floats(c.b * c.t * c.hk, in: -3...3)
        try assertMatches(c, chunks: [1, 7, 64], "gated")
    }

    func testThreadCountDoesNotChangeBits() throws {
        let c = Case(b: 1, t: 50, hq: 1, hk: 1, d: 12, dv: 32, seed: 4) { -abs(Float.random(in: -1...1, using: &$0)) }
        let buffers = Buffers(c)
        let map = try identity(d: 12)
        let one = try buffers.run(map, chunk: 16, normalize: false, threads: 1)
        let two = try buffers.run(map, chunk: 16, normalize: false, threads: 2)
        XCTAssertEqual(one.map(\.bitPattern), two.map(\.bitPattern))
    }

    /// Prefill then decode steps (log α [N, Hk, m] per step) equal the whole sequence.
    func testStepsContinueThePrefill() throws {
        let c = Case(t: 20, d: 6, seed: 5) { -abs(Float.random(in: -1...1, using: &$0)) }
        let map = try identity(d: 6)
        let expected = c.twin(normalize: false)
        let state = try RecurrentState(map: map, numSequences: c.b, valueDim: c.dv)
        let prefix = 12
        /// Rows of tokens `tokens` of every batch entry, `width` floats per token.
        func rows<T>(_ values: [T], width: Int, tokens: Range<Int>) -> [T] {
            var result: [T] = []
            for b in 0..<c.b {
                let start = (b * c.t + tokens.lowerBound) * width
                result += values[start..<(start + tokens.count * width)]
            }
            return result
        }
        func slice(_ values: [Float], width: Int, tokens: Range<Int>) -> TestTensor {
            TestTensor(rows(values, width: width, tokens: tokens))
        }
        let (q, k, v) = (slice(c.q, width: c.hq * c.d, tokens: 0..<prefix), slice(c.k, width: c.d, tokens: 0..<prefix),
                         slice(c.v, width: c.dv, tokens: 0..<prefix))
        let logDecay = slice(c.logDecay, width: c.d, tokens: 0..<prefix)
        let out = TestTensor(count: c.b * prefix * c.hq * c.dv)
        try state.prefill(q: q.view([c.b, prefix, c.hq, c.d]), k: k.view([c.b, prefix, 1, c.d]), v: v.view([c.b, prefix, 1, c.dv]),
                          out: out.view([c.b, prefix, c.hq, c.dv]), cuSeqlens: nil, slots: nil,
                          options: LinearAttentionOptions(chunkSize: 5, normalize: false,
                                                          logDecay: logDecay.view([c.b, prefix, 1, c.d])))
        for t in prefix..<c.t {
            let (qs, ks, vs, ls) = (slice(c.q, width: c.hq * c.d, tokens: t..<(t + 1)), slice(c.k, width: c.d, tokens: t..<(t + 1)),
                                    slice(c.v, width: c.dv, tokens: t..<(t + 1)), slice(c.logDecay, width: c.d, tokens: t..<(t + 1)))
            let y = TestTensor(count: c.b * c.hq * c.dv)
            try state.step(q: qs.view([c.b, c.hq, c.d]), k: ks.view([c.b, 1, c.d]), v: vs.view([c.b, 1, c.dv]),
                           out: y.view([c.b, c.hq, c.dv]), slots: SlotList(pointer: nil, count: c.b),
                           options: LinearAttentionOptions(normalize: false, logDecay: ls.view([c.b, 1, c.d])))
            let reference = rows(expected, width: c.hq * c.dv, tokens: t..<(t + 1))
            XCTAssertClose(y.values, reference, relative: 1e-4, absolute: 1e-5, "step \(t)")
        }
    }

    func testBadLogDecayIsRejected() throws {
        let map = try identity(d: 4)
        for (value, status) in [(Float(0.5), SlayStatus.invalidArgument), (.nan, .invalidArgument),
                                (.infinity, .invalidArgument), (-.infinity, .invalidArgument)] {
            let c = Case(b: 1, t: 3, hq: 1, d: 4, seed: 1) { _ in -0.1 }
            let buffers = Buffers(c)
            buffers.logDecay.pointer[7] = value
            XCTAssertThrowsSlayError(status, try buffers.run(map, chunk: 2, normalize: false), "log α = \(value)")
            XCTAssertTrue(buffers.out.values.allSatisfy(\.isNaN), "the output was written")
        }
        let c = Case(b: 1, t: 3, hq: 1, d: 4, seed: 1) { _ in -0.1 }
        let buffers = Buffers(c)
        XCTAssertThrowsSlayError(.invalidArgument, try LinearAttention.run(
            map: map, q: buffers.q.view([1, 3, 1, 4]), k: buffers.k.view([1, 3, 1, 4]), v: buffers.v.view([1, 3, 1, 3]),
            out: buffers.out.view([1, 3, 1, 3]), options: buffers.options(chunk: 2, normalize: false, causal: false)))
        XCTAssertThrowsSlayError(.shape, try LinearAttention.run(
            map: map, q: buffers.q.view([1, 3, 1, 4]), k: buffers.k.view([1, 3, 1, 4]), v: buffers.v.view([1, 3, 1, 3]),
            out: buffers.out.view([1, 3, 1, 3]),
            options: LinearAttentionOptions(logDecay: buffers.logDecay.view([1, 3, 2, 2]))))
    }

    /// The intra-chunk kernel of both builds against the definition, for channel counts around 8.
    func testDecayedScoresKernel() {
        for m in [1, 3, 8, 13, 16] {
            let rows = 9
            var generator = SeededGenerator(seed: UInt64(m))
            let q = generator.floats(rows * m), k = generator.floats(rows * m)
            let logDecay = generator.floats(rows * m, in: -3...0)
            var expected = [Double](repeating: 0, count: rows * rows)
            for i in 0..<rows {
                for j in 0...i {
                    for f in 0..<m {
                        var exponent = 0.0
                        for t in stride(from: j + 1, through: i, by: 1) { exponent += Double(logDecay[t * m + f]) }
                        expected[i * rows + j] += Double(q[i * m + f]) * Double(k[j * m + f]) * Foundation.exp(exponent)
                    }
                }
            }
            for variant in ["portable", "avx2"] {
                var output = [Float](repeating: .nan, count: rows * rows)
                var running = [Float](repeating: .nan, count: m + 8)
                if variant == "avx2" {
                    guard KernelVariant.active == .avx2 else { continue }
                    SlayKernelsAVX2.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m,
                                                               output: &output, running: &running)
                } else {
                    SlayKernels.DecayKernels.decayedScores(q: q, k: k, logDecay: logDecay, rows: rows, m: m,
                                                           output: &output, running: &running)
                }
                XCTAssertClose(output, expected, relative: 1e-5, absolute: 1e-6, "\(variant), m = \(m)")
            }
        }
    }
}
