import CSlay
import XCTest
@testable import SlayCABI
@testable import SlayCore

/// The documented life cycle through the exported functions: params_init → create → queries →
/// apply → linear attention → free, checked against a float64 quadratic form of the applied
/// features, plus the layout, thread and partition promises of slay_linear_attention.
final class CABIHappyPathTests: XCTestCase {
    private let (b, t, hq, hk, d, dv): (Int64, Int64, Int64, Int64, Int64, Int64) = (2, 21, 4, 2, 5, 3)

    private func makeMap() -> OpaquePointer? {
        makeCFeatureMap(headDim: d, numHeads: hk) { $0.nodes = 2; $0.poly_dim = 4; $0.prf_dim = 6; $0.seed = 77; $0.eps = 1e-3 }
    }

    private func random(_ count: Int64, seed: UInt64) -> CBuffer {
        var state = seed
        return CBuffer((0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        })
    }

    func testCreateApplyAttendFree() throws {
        guard let fm = makeMap() else { return }
        var m: Int64 = 0
        XCTAssertStatus(SLAY_OK, "dim") { SlayCABI.slay_feature_map_dim(fm, &m, $0) }
        XCTAssertEqual(m, 2 * 4 * 6)

        // The same parameters in Swift give the same map (same generator, same identity).
        var identity: UInt64 = 0
        XCTAssertStatus(SLAY_OK, "identity") { SlayCABI.slay_feature_map_identity(fm, &identity, $0) }
        let twin = try SlayFeatureMap(SlayConfiguration(headDim: Int(d), numHeads: Int(hk), nodes: 2, polynomial: .anchor,
                                                        polyDim: 4, prfDim: 6, eps: 1e-3, seed: 77))
        XCTAssertEqual(identity, twin.identity)
        var omega = [Float](repeating: 0, count: Int(2 * hk * d * 6))
        XCTAssertStatus(SLAY_OK, "get omega") { SlayCABI.slay_feature_map_get_param(fm, "omega", &omega, Int64(omega.count), $0) }
        XCTAssertEqual(omega, twin.parameterValues("omega"))

        let q = random(b * t * hq * d, seed: 1), k = random(b * t * hk * d, seed: 2), v = random(b * t * hk * dv, seed: 3)
        // Features of q (per query head, through its key head's parameters) and k.
        let phiK = CBuffer(count: Int(b * t * hk * m), repeating: .nan)
        var tk = cTensor(k, [b, t, hk, d]), tphiK = cTensor(phiK, [b, t, hk, m])
        XCTAssertStatus(SLAY_OK, "apply k") { SlayCABI.slay_feature_map_apply(fm, SLAY_ROLE_KEY, &tk, &tphiK, $0) }
        XCTAssertTrue(phiK.values.allSatisfy { $0.isFinite && $0 >= 0 }, "anchor features are finite and >= 0")
        let group = hq / hk
        var phiQ: [[Float]] = []   // per query head: [B, T, m]
        for head in 0..<hq {
            let out = CBuffer(count: Int(b * t * m), repeating: .nan)
            // The map has Hk heads: view the query heads at group position g (heads g, g + group, ...)
            // as a [B, T, Hk, d] tensor with head stride group·d, so query head h meets key head h / group.
            let g = head % group
            var tq = cTensor(UnsafeMutableRawPointer(q.pointer + Int(g * d)), [b, t, hk, d],
                             strides: [t * hq * d, hq * d, group * d, 1])
            let full = CBuffer(count: Int(b * t * hk * m), repeating: .nan)
            var tout = cTensor(full, [b, t, hk, m])
            XCTAssertStatus(SLAY_OK, "apply q") { SlayCABI.slay_feature_map_apply(fm, SLAY_ROLE_QUERY, &tq, &tout, $0) }
            let keyHead = head / group
            for i in 0..<Int(b * t) {
                for f in 0..<Int(m) { out.pointer[i * Int(m) + f] = full.pointer[(i * Int(hk) + Int(keyHead)) * Int(m) + f] }
            }
            phiQ.append(out.values)
        }

        let out = CBuffer(count: Int(b * t * hq * dv), repeating: .nan)
        var tq = cTensor(q, [b, t, hq, d]), tv = cTensor(v, [b, t, hk, dv]), tout = cTensor(out, [b, t, hq, dv])
        for causal: Int32 in [1, 0] {
            var options = slay_attention_options()
            XCTAssertEqual(SlayCABI.slay_attention_options_init(&options), SLAY_OK)
            options.causal = causal
            options.chunk_size = 4
            options.delta = 1e-6
            out.pointer.update(repeating: .nan, count: out.count)
            XCTAssertStatus(SLAY_OK, "linear attention") { SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &tout, &options, $0) }
            // y = Σ_j a_ij v_j / (Σ_j a_ij + δ) from the applied features, in double.
            var worst = 0.0
            for batch in 0..<Int(b) {
                for head in 0..<Int(hq) {
                    let keyHead = head / Int(group)
                    for i in 0..<Int(t) {
                        var numerator = [Double](repeating: 0, count: Int(dv))
                        var denominator = 1e-6
                        for j in 0..<(causal == 1 ? i + 1 : Int(t)) {
                            var a = 0.0
                            for f in 0..<Int(m) {
                                a += Double(phiQ[head][(batch * Int(t) + i) * Int(m) + f])
                                    * Double(phiK.pointer[((batch * Int(t) + j) * Int(hk) + keyHead) * Int(m) + f])
                            }
                            denominator += a
                            for c in 0..<Int(dv) { numerator[c] += a * Double(v.pointer[((batch * Int(t) + j) * Int(hk) + keyHead) * Int(dv) + c]) }
                        }
                        for c in 0..<Int(dv) {
                            let actual = Double(out.pointer[((batch * Int(t) + i) * Int(hq) + head) * Int(dv) + c])
                            XCTAssertTrue(actual.isFinite)
                            worst = max(worst, abs(actual - numerator[c] / denominator))
                        }
                    }
                }
            }
            XCTAssertLessThan(worst, 2e-5, "causal \(causal)")
        }
        SlayCABI.slay_feature_map_free(fm)
    }

    /// Head-first strides, n_threads and ith/nth shares: all bit-identical to one plain call.
    func testLayoutsThreadsAndPartitionsAgreeBitwise() {
        guard let fm = makeMap() else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        let q = random(b * t * hq * d, seed: 4), k = random(b * t * hk * d, seed: 5), v = random(b * t * hk * dv, seed: 6)
        var tq = cTensor(q, [b, t, hq, d]), tk = cTensor(k, [b, t, hk, d]), tv = cTensor(v, [b, t, hk, dv])
        var options = slay_attention_options()
        XCTAssertEqual(SlayCABI.slay_attention_options_init(&options), SLAY_OK)
        options.chunk_size = 8
        let reference = CBuffer(count: Int(b * t * hq * dv), repeating: .nan)
        var tref = cTensor(reference, [b, t, hq, dv])
        XCTAssertStatus(SLAY_OK, "reference") { SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &tref, &options, $0) }

        // out stored head-first [B, Hq, T, dv].
        let headFirst = CBuffer(count: reference.count, repeating: .nan)
        var thf = cTensor(headFirst, [b, t, hq, dv], strides: [hq * t * dv, dv, t * dv, 1])
        XCTAssertStatus(SLAY_OK, "head-first out") { SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &thf, &options, $0) }
        var reordered = [UInt32](repeating: 0, count: reference.count)
        for i0 in 0..<Int(b) { for i1 in 0..<Int(t) { for i2 in 0..<Int(hq) { for c in 0..<Int(dv) {
            reordered[((i0 * Int(t) + i1) * Int(hq) + i2) * Int(dv) + c] =
                headFirst.pointer[((i0 * Int(hq) + i2) * Int(t) + i1) * Int(dv) + c].bitPattern
        } } } }
        XCTAssertEqual(reordered, reference.bits)

        for threads: Int32 in [2, 3] {
            let out = CBuffer(count: reference.count, repeating: .nan)
            var tout = cTensor(out, [b, t, hq, dv])
            var threaded = options
            threaded.n_threads = threads
            XCTAssertStatus(SLAY_OK, "threads \(threads)") { SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &tout, &threaded, $0) }
            XCTAssertEqual(out.bits, reference.bits, "n_threads \(threads)")
        }

        for nth: Int32 in [2, 3, 5] {
            let out = CBuffer(count: reference.count, repeating: .nan)
            var tout = cTensor(out, [b, t, hq, dv])
            for ith in 0..<nth {
                var share = options
                share.ith = ith
                share.nth = nth
                XCTAssertStatus(SLAY_OK, "ith \(ith) of \(nth)") { SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &tout, &share, $0) }
            }
            XCTAssertEqual(out.bits, reference.bits, "nth \(nth)")
        }
    }

    /// slay_exact_attention through the C API: the yat-spherical reference is finite and the
    /// softmax of one token is its value.
    func testExactAttentionHappyPath() {
        let q = random(b * t * hq * d, seed: 7), k = random(b * t * hk * d, seed: 8), v = random(b * t * hk * dv, seed: 9)
        var tq = cTensor(q, [b, t, hq, d]), tk = cTensor(k, [b, t, hk, d]), tv = cTensor(v, [b, t, hk, dv])
        let out = CBuffer(count: Int(b * t * hq * dv), repeating: .nan)
        var tout = cTensor(out, [b, t, hq, dv])
        var options = slay_exact_attention_options()
        XCTAssertEqual(SlayCABI.slay_exact_attention_options_init(&options), SLAY_OK)
        for kernel in [SLAY_EXACT_SOFTMAX, SLAY_EXACT_YAT_SPHERICAL, SLAY_EXACT_YAT] {
            options.kernel = kernel
            out.pointer.update(repeating: .nan, count: out.count)
            XCTAssertStatus(SLAY_OK, "kernel \(kernel)") { SlayCABI.slay_exact_attention(&tq, &tk, &tv, &tout, &options, $0) }
            XCTAssertTrue(out.values.allSatisfy(\.isFinite), "kernel \(kernel)")
        }
        options.kernel = SLAY_EXACT_SOFTMAX
        XCTAssertEqual(SlayCABI.slay_exact_attention(&tq, &tk, &tv, &tout, &options, nil), SLAY_OK)
        // Causal softmax at t = 0 sees only key 0: y = v_0 of the key head.
        for head in 0..<Int(hq) {
            for c in 0..<Int(dv) {
                XCTAssertEqual(out.pointer[head * Int(dv) + c], v.pointer[(head / Int(hq / hk)) * Int(dv) + c])
            }
        }
    }
}
