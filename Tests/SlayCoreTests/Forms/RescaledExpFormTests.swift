import XCTest
@testable import SlayCore

/// RescaledExpForm (SLAY_KIND_HADAMARD_EXP) against a double reference built from the kernel
/// definition k(a, b) = Σ_f e^{a_f + b_f} with log-sum-exp: inputs ×100 make a_f + b_f reach ~200,
/// where e^x overflows fp32 (and the raw features do), yet every output must be finite and exact.
final class RescaledExpFormTests: XCTestCase {
    private let (b, t, hq, hk, d, dv) = (2, 29, 4, 2, 6, 5)

    private func makeMap() throws -> HadamardExpFeatureMap {
        try HadamardExpFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: hk))
    }

    private func inputs(scale: Float, seed: UInt64) -> (q: BTHD, k: BTHD, v: BTHD) {
        var generator = SeededGenerator(seed: seed)
        var q = BTHD(b: b, t: t, h: hq, d: d, generator: &generator)
        var k = BTHD(b: b, t: t, h: hk, d: d, generator: &generator)
        q.data = q.data.map { $0 * scale }
        k.data = k.data.map { $0 * scale }
        return (q, k, BTHD(b: b, t: t, h: hk, d: dv, generator: &generator))
    }

    /// y_i = Σ_j k_ij v_j / (Σ_j k_ij + δ) in double: log k_ij by log-sum-exp, weights relative to
    /// the row's largest log k, δ scaled into the same frame. Output [B, T, Hq, dv].
    /// With `gammas` (per key head) key j weighs γ^(i−j) more; unnormalised: y_i = Σ_j k_ij v_j.
    private func reference(_ x: (q: BTHD, k: BTHD, v: BTHD), causal: Bool, delta: Double = 1e-6,
                           gammas: [Double]? = nil, normalize: Bool = true) -> [Double] {
        var out = [Double](repeating: 0, count: b * t * hq * dv)
        let group = hq / hk
        for batch in 0..<b { for h in 0..<hq { for i in 0..<t {
            let a = x.q.row(batch, i, h).map(Double.init)
            let keys = causal ? 0...i : 0...(t - 1)
            let logs: [Double] = keys.map { j in
                let e = zip(a, x.k.row(batch, j, h / group)).map { $0 + Double($1) }
                let top = e.max()!
                let decay = gammas.map { Double(i - j) * log($0[h / group]) } ?? 0
                return top + log(e.reduce(0) { $0 + exp($1 - top) }) + decay
            }
            let r = logs.max()!
            var den = delta * exp(-r)
            var num = [Double](repeating: 0, count: dv)
            for (j, l) in zip(keys, logs) {
                let w = exp(l - r)
                den += w
                for c in 0..<dv { num[c] += w * Double(x.v[batch, j, h / group, c]) }
            }
            for c in 0..<dv { out[((batch * t + i) * hq + h) * dv + c] = normalize ? num[c] / den : num[c] * exp(r) }
        } } }
        return out
    }

    private func run(_ map: FeatureMap, _ x: (q: BTHD, k: BTHD, v: BTHD), _ options: LinearAttentionOptions) throws -> [Float] {
        let (q, k, v) = (x.q.contiguous(), x.k.contiguous(), x.v.contiguous())
        let out = TestTensor(count: b * t * hq * dv)
        try LinearAttention.run(map: map, q: q.view(x.q.shape), k: k.view(x.k.shape), v: v.view(x.v.shape),
                                out: out.view([b, t, hq, dv]), options: options)
        return out.values
    }

    func testRawFeaturesOverflowWhereTheEngineDoesNot() throws {
        let map = try makeMap()
        let input: [Float] = [0, 1, -3, 88, 100, -200]
        let out = UnsafeMutablePointer<Float>.allocate(capacity: 6)
        defer { out.deallocate() }
        input.withUnsafeBufferPointer {
            map.features(role: .key, head: 0, input: $0.baseAddress!, rows: 1, output: out, scratch: out)
        }
        XCTAssertEqual(out[1], expf(1))
        XCTAssertTrue(out[3].isFinite)
        XCTAssertEqual(out[4], .infinity)
        XCTAssertEqual(out[5], 0)
        XCTAssertTrue(map.isPositive)
        XCTAssertEqual(map.featureDim, d)
    }

    func testScaledInputsAreFiniteAndEqualTheDoubleReference() throws {
        let map = try makeMap()
        for scale: Float in [1, 50, 100] {
            let x = inputs(scale: scale, seed: UInt64(scale))
            for causal in [true, false] {
                let expected = reference(x, causal: causal)
                for chunk in [1, 5, 64] {
                    let options = LinearAttentionOptions(causal: causal, chunkSize: chunk)
                    let single = try run(map, x, options)
                    XCTAssertClose(single, expected, relative: 1e-4, absolute: 1e-5,
                                   "scale \(scale), causal \(causal), chunk \(chunk)")
                    var threaded = options
                    threaded.nThreads = 3
                    XCTAssertEqual(try run(map, x, threaded).map(\.bitPattern), single.map(\.bitPattern),
                                   "threads change the result (scale \(scale), chunk \(chunk))")
                }
            }
        }
    }

    func testPrefillStepsAndBlobRoundTripEqualTheReference() throws {
        let map = try makeMap()
        let x = inputs(scale: 100, seed: 5)
        let expected = reference(x, causal: true)
        let state = try RecurrentState(map: map, numSequences: b, valueDim: dv)
        let t0 = 11
        let prefix = (q: BTHD(b: b, t: t0, h: hq, d: d, data: slice(x.q, t0)),
                      k: BTHD(b: b, t: t0, h: hk, d: d, data: slice(x.k, t0)),
                      v: BTHD(b: b, t: t0, h: hk, d: dv, data: slice(x.v, t0)))
        let (q, k, v) = (prefix.q.contiguous(), prefix.k.contiguous(), prefix.v.contiguous())
        let out = TestTensor(count: b * t0 * hq * dv)
        try state.prefill(q: q.view(prefix.q.shape), k: k.view(prefix.k.shape), v: v.view(prefix.v.shape),
                          out: out.view([b, t0, hq, dv]), cuSeqlens: nil, slots: nil,
                          options: LinearAttentionOptions(chunkSize: 4))
        // Save mid-sequence, continue in a state loaded from the blob.
        let bytes = try StateBlob.size(of: state)
        let blob = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 8)
        defer { blob.deallocate() }
        XCTAssertEqual(try StateBlob.write(state, to: blob), bytes)
        let loaded = try StateBlob.load(map: map, from: UnsafeRawBufferPointer(blob))
        for batch in 0..<b { for h in 0..<hk {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: loaded.maxima(slot: batch, head: h)!, count: d)),
                           (0..<d).map { f in (0..<t0).map { x.k[batch, $0, h, f] }.max()! })
        } }
        var got = [Float](repeating: .nan, count: b * t * hq * dv)
        for batch in 0..<b { for i in 0..<t0 { for h in 0..<hq { for c in 0..<dv {
            got[((batch * t + i) * hq + h) * dv + c] = out.pointer[((batch * t0 + i) * hq + h) * dv + c]
        } } } }
        for i in t0..<t {
            let (qs, ks, vs) = (TestTensor(tokens(x.q, i)), TestTensor(tokens(x.k, i)), TestTensor(tokens(x.v, i)))
            let step = TestTensor(count: b * hq * dv)
            try loaded.step(q: qs.view([b, hq, d]), k: ks.view([b, hk, d]), v: vs.view([b, hk, dv]),
                            out: step.view([b, hq, dv]), slots: SlotList(pointer: nil, count: b),
                            options: LinearAttentionOptions())
            for batch in 0..<b { for j in 0..<(hq * dv) { got[(batch * t + i) * hq * dv + j] = step.pointer[batch * hq * dv + j] } }
        }
        XCTAssertClose(got, expected, relative: 1e-4, absolute: 1e-5, "prefill, save, load, steps")
        // A flipped bit in μ is caught by the checksum.
        blob[bytes - 9] ^= 0x01
        XCTAssertThrowsSlayError(.corruptData, try StateBlob.restore(state, from: UnsafeRawBufferPointer(blob)))
    }

    /// Flipped from a refusal: normalize = false and RetNet decay compose with the rescaled frame, in
    /// whole-sequence calls (every chunk size) and in prefill + decode steps.
    func testUnnormalisedAndDecayCompose() throws {
        let map = try makeMap()
        let x = inputs(scale: 1, seed: 9)
        let gammas: [Float] = [0.9, 0.6]
        try gammas.withUnsafeBufferPointer { buffer in
            let decay = HeadDecay(pointer: buffer.baseAddress, count: 2)
            for (normalize, useDecay) in [(false, false), (true, true), (false, true)] {
                let expected = reference(x, causal: true, gammas: useDecay ? gammas.map(Double.init) : nil,
                                         normalize: normalize)
                for chunk in [1, 5, 64] {
                    let options = LinearAttentionOptions(chunkSize: chunk, normalize: normalize, decay: useDecay ? decay : .none)
                    XCTAssertClose(try run(map, x, options), expected, relative: 2e-4, absolute: 1e-5,
                                   "normalize \(normalize), decay \(useDecay), chunk \(chunk)")
                }
                // Steps only, from an empty state.
                let state = try RecurrentState(map: map, numSequences: b, valueDim: dv)
                var got = [Float](repeating: .nan, count: b * t * hq * dv)
                for i in 0..<t {
                    let (qs, ks, vs) = (TestTensor(tokens(x.q, i)), TestTensor(tokens(x.k, i)), TestTensor(tokens(x.v, i)))
                    let step = TestTensor(count: b * hq * dv)
                    try state.step(q: qs.view([b, hq, d]), k: ks.view([b, hk, d]), v: vs.view([b, hk, dv]),
                                   out: step.view([b, hq, dv]), slots: SlotList(pointer: nil, count: b),
                                   options: LinearAttentionOptions(normalize: normalize, decay: useDecay ? decay : .none))
                    for batch in 0..<b { for j in 0..<(hq * dv) { got[(batch * t + i) * hq * dv + j] = step.pointer[batch * hq * dv + j] } }
                }
                XCTAssertClose(got, expected, relative: 2e-4, absolute: 1e-5, "steps: normalize \(normalize), decay \(useDecay)")
                XCTAssertEqual(Array(state.positions), [Int64](repeating: Int64(t), count: b))
            }
        }
    }

    /// Rows 0 ..< length of every batch entry of a [B, T, H, D] tensor.
    private func slice(_ x: BTHD, _ length: Int) -> [Float] {
        (0..<x.b).flatMap { batch in (0..<length).flatMap { i in (0..<x.h).flatMap { x.row(batch, i, $0) } } }
    }

    /// Token i of every batch entry as [B, H, D].
    private func tokens(_ x: BTHD, _ i: Int) -> [Float] {
        (0..<x.b).flatMap { batch in (0..<x.h).flatMap { x.row(batch, i, $0) } }
    }
}
