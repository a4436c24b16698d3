import Foundation
import XCTest
@testable import SlayCore

/// The delta rule (DeltaNet / Gated DeltaNet) against a float64 loop over tokens of the recurrence
/// itself, not of the chunked (WY / UT) algorithm:
///   S_t = α_t (I − β_t φ(k_t) φ(k_t)ᵀ) S_{t−1} + β_t φ(k_t) v_tᵀ,   o_t = S_tᵀ φ(q_t),   α_t = e^{g_t},
/// with φ(q), φ(k) L2-normalised after the map under qk_l2norm. Chunk sizes 1, 7, 64 and automatic,
/// with and without g, with and without qk_l2norm, grouped-query heads, packed cu_seqlens, states
/// carried between calls and decode steps; and bitwise identity across ith/nth splits and threads.
final class DeltaRuleFormTests: XCTestCase {
    /// Inputs of one call: q [B, T, Hq, d], k [B, T, Hk, d], v [B, T, Hk, dv], β and g [B, T, Hk].
    struct Case {
        let b: Int, t: Int, hq: Int, hk: Int, d: Int, dv: Int
        var q: [Float], k: [Float], v: [Float], beta: [Float]
        var g: [Float]?

        init(b: Int = 2, t: Int, hq: Int = 4, hk: Int = 2, d: Int = 5, dv: Int = 3, gated: Bool, seed: UInt64) {
            (self.b, self.t, self.hq, self.hk, self.d, self.dv) = (b, t, hq, hk, d, dv)
            var generator = SeededGenerator(seed: seed)
            q = generator.floats(b * t * hq * d)
            // ‖k‖² ≤ d · (0.6/√d)² = 0.36, so β‖k‖² ≤ 0.72 keeps the recurrence contracting even
            // without qk_l2norm (with it, ‖φ(k)‖ = 1 and β ≤ 2 is the stability bound).
            let scale = Float(0.6 / Double(d).squareRoot())
            k = generator.floats(b * t * hk * d).map { $0 * scale }
            v = generator.floats(b * t * hk * dv)
            beta = generator.floats(b * t * hk, in: 0...2)
            g = gated ? generator.floats(b * t * hk, in: -1.5...0) : nil
        }
    }

    /// The feature map's φ in double: the identity, or elu + 1.
    enum Phi {
        case identity, eluPlusOne
        func callAsFunction(_ x: Float) -> Double {
            switch self {
            case .identity: return Double(x)
            case .eluPlusOne: return x > 0 ? Double(x) + 1 : Foundation.exp(Double(x))
            }
        }
        func map(d: Int, heads: Int) throws -> FeatureMap {
            switch self {
            case .identity: return try IdentityFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
            case .eluPlusOne: return try EluPlusOneFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
            }
        }
    }

    /// The recurrence over the tokens `rows` (start, length) of batch entry `batch`, from S0
    /// [Hk, m, dv] (nil: zeros): outputs [length, Hq, dv] and the final S [Hk, m, dv], in double.
    static func twin(_ c: Case, phi: Phi, qkL2Norm: Bool, batch: Int, start: Int, length: Int,
                     initial: [Double]? = nil) -> (y: [Double], state: [Double]) {
        let (m, group) = (c.d, c.hq / c.hk)
        func features(_ values: [Float], row: Int) -> [Double] {
            var f = (0..<m).map { phi(values[row * m + $0]) }
            if qkL2Norm {
                let inverse = 1 / (f.reduce(0) { $0 + $1 * $1 } + 1e-6).squareRoot()
                f = f.map { $0 * inverse }
            }
            return f
        }
        var state = initial ?? [Double](repeating: 0, count: c.hk * m * c.dv)
        var y = [Double](repeating: 0, count: length * c.hq * c.dv)
        for i in 0..<length {
            let token = batch * c.t + start + i
            for head in 0..<c.hk {
                let row = token * c.hk + head
                let key = features(c.k, row: row)
                let beta = Double(c.beta[row])
                let alpha = c.g.map { Foundation.exp(Double($0[row])) } ?? 1
                let base = head * m * c.dv
                // kᵀS, then S ← α (S − β k (kᵀS)) + β k vᵀ.
                var kS = [Double](repeating: 0, count: c.dv)
                for f in 0..<m { for j in 0..<c.dv { kS[j] += key[f] * state[base + f * c.dv + j] } }
                for f in 0..<m {
                    for j in 0..<c.dv {
                        let old = state[base + f * c.dv + j]
                        state[base + f * c.dv + j] = alpha * (old - beta * key[f] * kS[j]) + beta * key[f] * Double(c.v[row * c.dv + j])
                    }
                }
                for g in 0..<group {
                    let qh = head * group + g
                    let query = features(c.q, row: token * c.hq + qh)
                    for j in 0..<c.dv {
                        var sum = 0.0
                        for f in 0..<m { sum += query[f] * state[base + f * c.dv + j] }
                        y[(i * c.hq + qh) * c.dv + j] = sum
                    }
                }
            }
        }
        return (y, state)
    }

    /// The twin over the whole padded batch: y [B, T, Hq, dv].
    static func twin(_ c: Case, phi: Phi, qkL2Norm: Bool) -> [Double] {
        (0..<c.b).flatMap { twin(c, phi: phi, qkL2Norm: qkL2Norm, batch: $0, start: 0, length: c.t).y }
    }

    final class Buffers {
        let q, k, v, beta, out: TestTensor
        let g: TestTensor?
        let c: Case
        init(_ c: Case) {
            self.c = c
            (q, k, v, beta) = (TestTensor(c.q), TestTensor(c.k), TestTensor(c.v), TestTensor(c.beta))
            g = c.g.map { TestTensor($0) }
            out = TestTensor(count: c.b * c.t * c.hq * c.dv)
        }

        func options(chunk: Int, qkL2Norm: Bool, threads: Int = 1, ith: Int = 0, nth: Int = 1,
                     batch: Int? = nil, length: Int? = nil) -> LinearAttentionOptions {
            let (b, t) = (batch ?? c.b, length ?? c.t)
            return LinearAttentionOptions(chunkSize: chunk, nThreads: threads, ith: ith, nth: nth, normalize: false,
                                          logDecay: g?.view([b, t, c.hk]), update: .delta, beta: beta.view([b, t, c.hk]),
                                          qkL2Norm: qkL2Norm)
        }

        /// One whole-sequence call (or share ith of nth) into `out`; returns out.
        @discardableResult
        func run(_ map: FeatureMap, chunk: Int, qkL2Norm: Bool, threads: Int = 1, ith: Int = 0, nth: Int = 1) throws -> [Float] {
            try LinearAttention.run(map: map, q: q.view([c.b, c.t, c.hq, c.d]), k: k.view([c.b, c.t, c.hk, c.d]),
                                    v: v.view([c.b, c.t, c.hk, c.dv]), out: out.view([c.b, c.t, c.hq, c.dv]),
                                    options: options(chunk: chunk, qkL2Norm: qkL2Norm, threads: threads, ith: ith, nth: nth))
            return out.values
        }
    }

    func testChunkedEqualsTheRecurrence() throws {
        for phi in [Phi.identity, .eluPlusOne] {
            let map = try phi.map(d: 5, heads: 2)
            for gated in [false, true] {
                for qkL2Norm in [false, true] {
                    // elu + 1 features are positive and large: only stable normalised.
                    if phi == .eluPlusOne && !qkL2Norm { continue }
                    let c = Case(t: 70, gated: gated, seed: gated ? 2 : 1)
                    let expected = Self.twin(c, phi: phi, qkL2Norm: qkL2Norm)
                    let buffers = Buffers(c)
                    for chunk in [1, 7, 64, 0] {
                        let y = try buffers.run(map, chunk: chunk, qkL2Norm: qkL2Norm)
                        XCTAssertClose(y, expected, relative: 2e-4, absolute: 2e-5,
                                       "\(phi), chunk \(chunk), gated \(gated), qk_l2norm \(qkL2Norm)")
                    }
                }
            }
        }
    }

    /// Grouped-query attention equals the same call with every key head repeated for its query heads.
    func testGroupedQueryAttentionEqualsRepeatedHeads() throws {
        let map2 = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        let map4 = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 4))
        let c = Case(t: 19, hq: 4, hk: 2, gated: true, seed: 3)
        var repeated = Case(t: 19, hq: 4, hk: 4, gated: true, seed: 3)
        func repeatHeads(_ values: [Float], width: Int) -> [Float] {
            var result: [Float] = []
            for token in 0..<(c.b * c.t) {
                for head in 0..<4 {
                    let source = (token * 2 + head / 2) * width
                    result += values[source..<(source + width)]
                }
            }
            return result
        }
        repeated.k = repeatHeads(c.k, width: c.d)
        repeated.v = repeatHeads(c.v, width: c.dv)
        repeated.beta = repeatHeads(c.beta, width: 1)
        repeated.g = repeatHeads(c.g!, width: 1)
        repeated.q = c.q
        for chunk in [1, 7, 0] {
            let grouped = try Buffers(c).run(map2, chunk: chunk, qkL2Norm: true)
            let plain = try Buffers(repeated).run(map4, chunk: chunk, qkL2Norm: true)
            XCTAssertEqual(grouped.map(\.bitPattern), plain.map(\.bitPattern), "chunk \(chunk)")
            XCTAssertClose(grouped, Self.twin(c, phi: .identity, qkL2Norm: true), relative: 2e-4, absolute: 2e-5)
        }
    }

    /// Packed sequences (cu_seqlens, in a state, slots permuted) equal the recurrence of each
    /// sequence, outputs and final states both; a second call continues from those states.
    func testPackedSequencesAndCarriedStates() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        let lengths = [9, 0, 30, 1, 17]
        let total = lengths.reduce(0, +)
        let c = Case(b: 1, t: total, gated: true, seed: 4)
        let buffers = Buffers(c)
        var offsets: [Int64] = [0]
        for length in lengths { offsets.append(offsets.last! + Int64(length)) }
        let slots: [Int32] = [3, 0, 4, 1, 2]
        for chunk in [1, 7, 0] {
            let state = try RecurrentState(map: map, numSequences: 5, valueDim: c.dv)
            func prefill() throws {
                try offsets.withUnsafeBufferPointer { cu in
                    try slots.withUnsafeBufferPointer { list in
                        try state.prefill(q: buffers.q.view([1, total, c.hq, c.d]), k: buffers.k.view([1, total, c.hk, c.d]),
                                          v: buffers.v.view([1, total, c.hk, c.dv]), out: buffers.out.view([1, total, c.hq, c.dv]),
                                          cuSeqlens: cu, slots: list, options: buffers.options(chunk: chunk, qkL2Norm: true))
                    }
                }
            }
            try prefill()
            var expected: [Double] = []
            var finals: [[Double]] = []
            for (i, length) in lengths.enumerated() {
                let (y, s) = Self.twin(c, phi: .identity, qkL2Norm: true, batch: 0, start: Int(offsets[i]), length: length)
                expected += y
                finals.append(s)
            }
            XCTAssertClose(buffers.out.values, expected, relative: 2e-4, absolute: 2e-5, "chunk \(chunk)")
            for (i, slot) in slots.enumerated() {
                let actual = (0..<c.hk).flatMap { head in
                    Array(UnsafeBufferPointer(start: state.matrix(slot: Int(slot), head: head), count: c.d * c.dv))
                }
                XCTAssertClose(actual, finals[i], relative: 2e-4, absolute: 2e-5, "final state of sequence \(i), chunk \(chunk)")
            }
            // The same tokens again, from the states the first call left.
            try prefill()
            var continued: [Double] = []
            for (i, length) in lengths.enumerated() {
                continued += Self.twin(c, phi: .identity, qkL2Norm: true, batch: 0, start: Int(offsets[i]), length: length,
                                       initial: finals[i]).y
            }
            XCTAssertClose(buffers.out.values, continued, relative: 2e-4, absolute: 2e-5, "continued, chunk \(chunk)")
        }
    }

    /// A prefill of the first tokens followed by decode steps equals the recurrence over all of them.
    func testPrefillThenStepsEqualTheRecurrence() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        let c = Case(t: 24, gated: true, seed: 5)
        let expected = Self.twin(c, phi: .identity, qkL2Norm: true)
        let prefix = 13
        func rows(_ values: [Float], width: Int, tokens: Range<Int>) -> TestTensor {
            var result: [Float] = []
            for b in 0..<c.b {
                let start = (b * c.t + tokens.lowerBound) * width
                result += values[start..<(start + tokens.count * width)]
            }
            return TestTensor(result)
        }
        let state = try RecurrentState(map: map, numSequences: c.b, valueDim: c.dv)
        let (q, k, v) = (rows(c.q, width: c.hq * c.d, tokens: 0..<prefix), rows(c.k, width: c.hk * c.d, tokens: 0..<prefix),
                         rows(c.v, width: c.hk * c.dv, tokens: 0..<prefix))
        let (beta, g) = (rows(c.beta, width: c.hk, tokens: 0..<prefix), rows(c.g!, width: c.hk, tokens: 0..<prefix))
        let out = TestTensor(count: c.b * prefix * c.hq * c.dv)
        try state.prefill(q: q.view([c.b, prefix, c.hq, c.d]), k: k.view([c.b, prefix, c.hk, c.d]), v: v.view([c.b, prefix, c.hk, c.dv]),
                          out: out.view([c.b, prefix, c.hq, c.dv]), cuSeqlens: nil, slots: nil,
                          options: LinearAttentionOptions(chunkSize: 7, normalize: false, logDecay: g.view([c.b, prefix, c.hk]),
                                                          update: .delta, beta: beta.view([c.b, prefix, c.hk]), qkL2Norm: true))
        for t in prefix..<c.t {
            let token = t..<(t + 1)
            let (qs, ks, vs) = (rows(c.q, width: c.hq * c.d, tokens: token), rows(c.k, width: c.hk * c.d, tokens: token),
                                rows(c.v, width: c.hk * c.dv, tokens: token))
            let (bs, gs) = (rows(c.beta, width: c.hk, tokens: token), rows(c.g!, width: c.hk, tokens: token))
            let y = TestTensor(count: c.b * c.hq * c.dv)
            try state.step(q: qs.view([c.b, c.hq, c.d]), k: ks.view([c.b, c.hk, c.d]), v: vs.view([c.b, c.hk, c.dv]),
                           out: y.view([c.b, c.hq, c.dv]), slots: SlotList(pointer: nil, count: c.b),
                           options: LinearAttentionOptions(normalize: false, logDecay: gs.view([c.b, c.hk]), update: .delta,
                                                           beta: bs.view([c.b, c.hk]), qkL2Norm: true))
            var reference: [Double] = []
            for b in 0..<c.b {
                let start = (b * c.t + t) * c.hq * c.dv
                reference += expected[start..<(start + c.hq * c.dv)]
            }
            XCTAssertClose(y.values, reference, relative: 2e-4, absolute: 2e-5, "step \(t)")
        }
    }

    /// ith/nth shares together write exactly what one call writes, bit for bit; so do 1 and 2
    /// threads (the delta rule splits value columns when there are fewer pairs than threads).
    func testPartitionsAndThreadsAreBitwiseIdentical() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        for (gated, dv) in [(false, 3), (true, 32)] {
            let c = Case(b: 3, t: 21, dv: dv, gated: gated, seed: 6)
            for chunk in [1, 7, 0] {
                let whole = try Buffers(c).run(map, chunk: chunk, qkL2Norm: true)
                XCTAssertTrue(whole.allSatisfy(\.isFinite))
                for nth in [2, 3, 8] {
                    let buffers = Buffers(c)
                    for ith in 0..<nth { try buffers.run(map, chunk: chunk, qkL2Norm: true, ith: ith, nth: nth) }
                    XCTAssertEqual(buffers.out.bits, whole.map(\.bitPattern), "nth \(nth), chunk \(chunk), gated \(gated)")
                }
                let two = try Buffers(c).run(map, chunk: chunk, qkL2Norm: true, threads: 2)
                XCTAssertEqual(two.map(\.bitPattern), whole.map(\.bitPattern), "2 threads, chunk \(chunk), gated \(gated)")
                // One sequence and one head: two threads split the value columns (dv = 32).
                let single = Case(b: 1, t: 29, hq: 1, hk: 1, dv: dv, gated: gated, seed: 7)
                let one = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5))
                let serial = try Buffers(single).run(one, chunk: chunk, qkL2Norm: false)
                let split = try Buffers(single).run(one, chunk: chunk, qkL2Norm: false, threads: 2)
                XCTAssertEqual(split.map(\.bitPattern), serial.map(\.bitPattern), "column split, chunk \(chunk)")
            }
        }
    }

    /// Partitioned decode steps on one state equal one step over all sequences, bit for bit.
    func testPartitionedStepsAreBitwiseIdentical() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 5, numHeads: 2))
        let c = Case(b: 5, t: 1, gated: true, seed: 8)
        let buffers = Buffers(c)
        func step(_ state: RecurrentState, ith: Int, nth: Int, threads: Int = 1) throws {
            try state.step(q: buffers.q.view([c.b, c.hq, c.d]), k: buffers.k.view([c.b, c.hk, c.d]),
                           v: buffers.v.view([c.b, c.hk, c.dv]), out: buffers.out.view([c.b, c.hq, c.dv]),
                           slots: SlotList(pointer: nil, count: c.b),
                           options: LinearAttentionOptions(nThreads: threads, ith: ith, nth: nth, normalize: false,
                                                           logDecay: buffers.g!.view([c.b, c.hk]), update: .delta,
                                                           beta: buffers.beta.view([c.b, c.hk]), qkL2Norm: true))
        }
        let reference = try RecurrentState(map: map, numSequences: c.b, valueDim: c.dv, maxThreads: 4)
        for _ in 0..<3 { try step(reference, ith: 0, nth: 1) }
        let expected = buffers.out.bits
        for (nth, threads) in [(2, 1), (4, 1), (1, 2)] {
            let state = try RecurrentState(map: map, numSequences: c.b, valueDim: c.dv, maxThreads: 4)
            for _ in 0..<3 {
                buffers.out.fill(.nan)
                for ith in 0..<nth { try step(state, ith: ith, nth: nth, threads: threads) }
            }
            XCTAssertEqual(buffers.out.bits, expected, "nth \(nth), threads \(threads)")
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: state.rawData, count: state.totalBytes)),
                           Array(UnsafeRawBufferPointer(start: reference.rawData, count: reference.totalBytes)))
            XCTAssertEqual(Array(state.positions), Array(reference.positions))
        }
    }
}
