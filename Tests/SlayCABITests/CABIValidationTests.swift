import CSlay
import XCTest
@testable import SlayCABI

/// slay.h conventions checked through the exported functions: every tensor argument, options
/// struct and enum of slay_linear_attention and slay_exact_attention is validated, the status and
/// err are right, and no memory (outputs or inputs) changes on error.
final class CABIValidationTests: XCTestCase {
    /// q [B, T, Hq, d], k/v [B, T, Hk, d/dv], out [B, T, Hq, dv] with B = 2, T = 3, Hq = 4, Hk = 2,
    /// d = dv = 4 (so that q and out have the same size and can be aliased).
    final class Call {
        static let (b, t, hq, hk, d, dv): (Int64, Int64, Int64, Int64, Int64, Int64) = (2, 3, 4, 2, 4, 4)
        let fm: OpaquePointer?
        // Inputs get `slack` floats past their views: cases that enlarge a view's shape (k and v
        // with 4 heads) must then fail on the shape, never on an overlap with a neighbouring
        // allocation (which depended on the heap layout and made the status flaky).
        static let slack = 64
        let q = CBuffer(count: Int(b * t * hq * d) + slack, repeating: 0.25)
        let k = CBuffer(count: Int(b * t * hk * d) + slack, repeating: -0.5)
        let v = CBuffer(count: Int(b * t * hk * dv) + slack, repeating: 1.5)
        let out = CBuffer(count: Int(b * t * hq * dv), repeating: 7)
        var tq, tk, tv, tout: slay_tensor
        var options = slay_attention_options()
        var exactOptions = slay_exact_attention_options()

        init() {
            fm = makeCFeatureMap(headDim: Call.d, numHeads: Call.hk)
            tq = cTensor(q, [Call.b, Call.t, Call.hq, Call.d])
            tk = cTensor(k, [Call.b, Call.t, Call.hk, Call.d])
            tv = cTensor(v, [Call.b, Call.t, Call.hk, Call.dv])
            tout = cTensor(out, [Call.b, Call.t, Call.hq, Call.dv])
            XCTAssertEqual(SlayCABI.slay_attention_options_init(&options), SLAY_OK)
            XCTAssertEqual(SlayCABI.slay_exact_attention_options_init(&exactOptions), SLAY_OK)
        }

        deinit { SlayCABI.slay_feature_map_free(fm) }

        func linear(_ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
            SlayCABI.slay_linear_attention(fm, &tq, &tk, &tv, &tout, &options, err)
        }

        func exact(_ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
            SlayCABI.slay_exact_attention(&tq, &tk, &tv, &tout, &exactOptions, err)
        }

        var memory: [[UInt32]] { [q.bits, k.bits, v.bits, out.bits] }
    }

    /// Applies `edit` to a fresh call, expects `status` from both attention functions (or only
    /// the one named), and checks that no buffer changed.
    private func expect(_ status: Int32, _ label: String, linear: Bool = true, exact: Bool = true,
                        line: UInt = #line, _ edit: (Call) -> Void) {
        for (enabled, name) in [(linear, "linear"), (exact, "exact")] where enabled {
            let call = Call()
            edit(call)
            let before = call.memory
            XCTAssertStatus(status, "\(name): \(label)", line: line) { name == "linear" ? call.linear($0) : call.exact($0) }
            if status == SLAY_OK {
                XCTAssertEqual(call.memory.prefix(3), before.prefix(3), "\(name): an input changed: \(label)", line: line)
                XCTAssertTrue(call.out.values.allSatisfy { $0.isFinite && $0 != 7 }, "\(name): out not written: \(label)", line: line)
            } else {
                XCTAssertEqual(call.memory, before, "\(name): memory changed on error: \(label)", line: line)
            }
        }
    }

    func testValidCallsSucceedAndWriteEveryOutput() {
        for name in ["linear", "exact"] {
            let call = Call()
            XCTAssertStatus(SLAY_OK, name) { name == "linear" ? call.linear($0) : call.exact($0) }
            XCTAssertTrue(call.out.values.allSatisfy { $0.isFinite && $0 != 7 }, name)
            // NULL options mean defaults.
            let defaults = Call()
            let status = name == "linear"
                ? SlayCABI.slay_linear_attention(defaults.fm, &defaults.tq, &defaults.tk, &defaults.tv, &defaults.tout, nil, nil)
                : SlayCABI.slay_exact_attention(&defaults.tq, &defaults.tk, &defaults.tv, &defaults.tout, nil, nil)
            XCTAssertEqual(status, SLAY_OK, name)
            XCTAssertEqual(defaults.out.bits, call.out.bits, "NULL options differ from *_init defaults (\(name))")
        }
    }

    func testNullPointers() {
        let call = Call()
        let before = call.memory
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "fm NULL") {
            SlayCABI.slay_linear_attention(nil, &call.tq, &call.tk, &call.tv, &call.tout, &call.options, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "q NULL") {
            SlayCABI.slay_linear_attention(call.fm, nil, &call.tk, &call.tv, &call.tout, &call.options, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "k NULL") {
            SlayCABI.slay_linear_attention(call.fm, &call.tq, nil, &call.tv, &call.tout, &call.options, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "v NULL") {
            SlayCABI.slay_linear_attention(call.fm, &call.tq, &call.tk, nil, &call.tout, &call.options, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "out NULL") {
            SlayCABI.slay_linear_attention(call.fm, &call.tq, &call.tk, &call.tv, nil, &call.options, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "exact q NULL") {
            SlayCABI.slay_exact_attention(nil, &call.tk, &call.tv, &call.tout, &call.exactOptions, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "exact k NULL") {
            SlayCABI.slay_exact_attention(&call.tq, nil, &call.tv, &call.tout, &call.exactOptions, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "exact v NULL") {
            SlayCABI.slay_exact_attention(&call.tq, &call.tk, nil, &call.tout, &call.exactOptions, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "exact out NULL") {
            SlayCABI.slay_exact_attention(&call.tq, &call.tk, &call.tv, nil, &call.exactOptions, $0)
        }
        XCTAssertEqual(call.memory, before)
        for name in ["q", "k", "v", "out"] {
            expect(SLAY_ERR_INVALID_ARGUMENT, "\(name).data NULL") { call in
                switch name {
                case "q": call.tq.data = nil
                case "k": call.tk.data = nil
                case "v": call.tv.data = nil
                default: call.tout.data = nil
                }
            }
        }
    }

    /// A handle of another type (a slay_state) passed as the feature map.
    func testWrongHandleType() {
        let call = Call()
        var state: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_state_create(call.fm, 1, 4, 1, &state, nil), SLAY_OK)
        defer { SlayCABI.slay_state_free(state) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "state as fm") {
            SlayCABI.slay_linear_attention(state, &call.tq, &call.tk, &call.tv, &call.tout, &call.options, $0)
        }
        XCTAssertTrue(call.out.values.allSatisfy { $0 == 7 })
    }

    private func edit(_ call: Call, _ tensor: String, _ change: (inout slay_tensor) -> Void) {
        switch tensor {
        case "q": change(&call.tq)
        case "k": change(&call.tk)
        case "v": change(&call.tv)
        default: change(&call.tout)
        }
    }

    func testDtypeAndRank() {
        for name in ["q", "k", "v", "out"] {
            for dtype in [SLAY_DTYPE_F64, 4, -1, 99] {
                expect(SLAY_ERR_DTYPE, "\(name).dtype \(dtype)") { edit($0, name) { $0.dtype = dtype } }
            }
            // F16 / BF16 are accepted; their data must be 2-byte aligned.
            for dtype in [SLAY_DTYPE_F16, SLAY_DTYPE_BF16] {
                expect(SLAY_ERR_LAYOUT, "\(name).dtype \(dtype) at an odd address") {
                    edit($0, name) { $0.dtype = dtype; $0.data = $0.data.map { $0 + 1 } }
                }
            }
            for ndim: Int32 in [0, 1, 3, 5, -1, .max] {
                expect(SLAY_ERR_SHAPE, "\(name).ndim \(ndim)") { edit($0, name) { $0.ndim = ndim } }
            }
        }
    }

    func testBadExtents() {
        for name in ["q", "k", "v", "out"] {
            for axis in 0..<4 {
                for extent: Int64 in [0, -1, .min] {
                    expect(SLAY_ERR_SHAPE, "\(name).shape[\(axis)] = \(extent)") { edit($0, name) { $0.setShape(axis, extent) } }
                }
            }
        }
    }

    func testShapesThatDisagree() {
        expect(SLAY_ERR_SHAPE, "q head_dim 3") { edit($0, "q") { $0.setShape(3, 3) } }
        expect(SLAY_ERR_SHAPE, "q and k head_dim 3 (map expects 4)", exact: false) { call in
            edit(call, "q") { $0.setShape(3, 3) }
            edit(call, "k") { $0.setShape(3, 3) }
        }
        expect(SLAY_ERR_SHAPE, "q has 3 heads (not a multiple of 2)") { edit($0, "q") { $0.setShape(2, 3) } }
        expect(SLAY_ERR_SHAPE, "k/v have 4 heads, map has 2", exact: false) { call in
            edit(call, "k") { $0.setShape(2, 4) }
            edit(call, "v") { $0.setShape(2, 4) }
        }
        expect(SLAY_ERR_SHAPE, "k T = 2") { edit($0, "k") { $0.setShape(1, 2) } }
        expect(SLAY_ERR_SHAPE, "k B = 1") { edit($0, "k") { $0.setShape(0, 1) } }
        expect(SLAY_ERR_SHAPE, "v T = 2") { edit($0, "v") { $0.setShape(1, 2) } }
        expect(SLAY_ERR_SHAPE, "v heads 1") { edit($0, "v") { $0.setShape(2, 1) } }
        expect(SLAY_ERR_SHAPE, "out dv = 3") { edit($0, "out") { $0.setShape(3, 3) } }
        expect(SLAY_ERR_SHAPE, "out heads 2") { edit($0, "out") { $0.setShape(2, 2) } }
        expect(SLAY_ERR_SHAPE, "out T = 2") { edit($0, "out") { $0.setShape(1, 2) } }
        // A huge extent that does not overflow by itself still has to agree with the others.
        expect(SLAY_ERR_SHAPE, "q T = 2^40 with stride 0") { call in
            edit(call, "q") { $0.setShape(1, 1 << 40); $0.setStride(1, 0) }
        }
    }

    func testSizesThatOverflow() {
        for name in ["q", "k", "v", "out"] {
            expect(SLAY_ERR_OVERFLOW, "\(name) shape 2^40 × stride 2^40") { edit($0, name) { $0.setShape(1, 1 << 40); $0.setStride(1, 1 << 40) } }
            expect(SLAY_ERR_OVERFLOW, "\(name) stride 2^62 (bytes overflow)") { edit($0, name) { $0.setStride(0, 1 << 62) } }
            expect(SLAY_ERR_OVERFLOW, "\(name) stride Int64.max") { edit($0, name) { $0.setStride(1, .max) } }
        }
        for name in ["q", "k", "v"] {
            // Broadcast inputs (stride 0) address one element, but 2^80 elements still overflow.
            expect(SLAY_ERR_OVERFLOW, "\(name) shape 2^40 × 2^40 broadcast") { call in
                edit(call, name) {
                    $0.setShape(0, 1 << 40); $0.setShape(1, 1 << 40)
                    $0.setStride(0, 0); $0.setStride(1, 0)
                }
            }
        }
        // The end address must not wrap around the address space.
        expect(SLAY_ERR_OVERFLOW, "q ends past the top of the address space") { call in
            call.tq.data = UnsafeMutableRawPointer(bitPattern: UInt.max - 67)  // 4-byte aligned, near the top
        }
    }

    func testNegativeStrides() {
        for name in ["q", "k", "v", "out"] {
            for axis in 0..<4 {
                expect(SLAY_ERR_LAYOUT, "\(name).strides[\(axis)] = -1") { edit($0, name) { $0.setStride(axis, -1) } }
            }
            expect(SLAY_ERR_LAYOUT, "\(name).strides[1] = Int64.min") { edit($0, name) { $0.setStride(1, .min) } }
        }
    }

    func testSelfOverlappingOutput() {
        for axis in 0..<4 {
            expect(SLAY_ERR_LAYOUT, "out.strides[\(axis)] = 0") { edit($0, "out") { $0.setStride(axis, 0) } }
        }
        // Heads and features interleaved: (h, c) and (h + 1, c − 1) share an element.
        expect(SLAY_ERR_LAYOUT, "out strides [48, 16, 1, 1]") { edit($0, "out") { $0.setStride(2, 1) } }
        expect(SLAY_ERR_LAYOUT, "out strides [48, 16, 2, 1]") { edit($0, "out") { $0.setStride(2, 2) } }
        // Batches land on the same rows.
        expect(SLAY_ERR_LAYOUT, "out strides [16, 16, 4, 1]") { edit($0, "out") { $0.setStride(0, 16) } }
    }

    /// Inputs may broadcast (stride 0) and outputs may be transposed; both stay valid.
    func testBroadcastInputsAndPermutedOutputAreAccepted() {
        expect(SLAY_OK, "k and v broadcast over T") { call in
            edit(call, "k") { $0.setStride(1, 0) }
            edit(call, "v") { $0.setStride(1, 0) }
        }
        for name in ["linear", "exact"] {
            let call = Call()
            // out stored head-first [B, H, T, dv].
            edit(call, "out") { $0.setStride(0, 48); $0.setStride(1, 4); $0.setStride(2, 12); $0.setStride(3, 1) }
            XCTAssertStatus(SLAY_OK, name) { name == "linear" ? call.linear($0) : call.exact($0) }
            XCTAssertTrue(call.out.values.allSatisfy { $0.isFinite && $0 != 7 }, name)
        }
    }

    func testOutputOverlappingAnInput() {
        for input in ["q", "k", "v"] {
            for offset in [0, 3] {
                expect(SLAY_ERR_LAYOUT, "out overlaps \(input) at +\(offset)") { call in
                    let buffer = input == "q" ? call.q : input == "k" ? call.k : call.v
                    call.tout.data = UnsafeMutableRawPointer(buffer.pointer + offset)
                }
            }
        }
        // Partial overlap: out's last element is q's first.
        expect(SLAY_ERR_LAYOUT, "out's last element is q's first") { call in
            call.tout.data = UnsafeMutableRawPointer(call.q.pointer - (call.out.count - 1))
        }
    }

    // MARK: options

    func testAttentionOptionsStructSize() {
        let size = UInt32(MemoryLayout<slay_attention_options>.size)
        for bad: UInt32 in [0, 4, size - 1] {
            expect(SLAY_ERR_INVALID_ARGUMENT, "struct_size \(bad)", exact: false) { $0.options.struct_size = bad }
        }
        for newer: UInt32 in [size + 1, size + 8, .max] {
            expect(SLAY_ERR_VERSION_MISMATCH, "struct_size \(newer)", exact: false) { $0.options.struct_size = newer }
        }
    }

    func testAttentionOptionsValues() {
        let cases: [(String, (inout slay_attention_options) -> Void)] = [
            ("causal 2", { $0.causal = 2 }), ("causal -1", { $0.causal = -1 }),
            ("delta NaN", { $0.delta = .nan }), ("delta -1e-6", { $0.delta = -1e-6 }),
            ("delta inf", { $0.delta = .infinity }),
            ("chunk -1", { $0.chunk_size = -1 }),
            ("chunk 4097", { $0.chunk_size = 4097 }), ("chunk 2^40", { $0.chunk_size = 1 << 40 }),
            ("n_threads 0", { $0.n_threads = 0 }), ("n_threads 257", { $0.n_threads = 257 }),
            ("n_threads -1", { $0.n_threads = -1 }),
            ("ith -1", { $0.ith = -1 }), ("ith = nth", { $0.ith = 1; $0.nth = 1 }),
            ("nth 0", { $0.nth = 0 }), ("nth 65537", { $0.nth = 65537 }), ("nth -1", { $0.nth = -1 }),
        ]
        for (label, change) in cases {
            expect(SLAY_ERR_INVALID_ARGUMENT, label, exact: false) { change(&$0.options) }
        }
        // Bounds themselves are valid.
        expect(SLAY_OK, "chunk 4096, 256 threads, delta 0", exact: false) {
            $0.options.chunk_size = 4096; $0.options.n_threads = 256; $0.options.delta = 0
        }
    }

    func testExactOptionsStructSizeAndValues() {
        let size = UInt32(MemoryLayout<slay_exact_attention_options>.size)
        for bad: UInt32 in [0, 4, size - 1] {
            expect(SLAY_ERR_INVALID_ARGUMENT, "struct_size \(bad)", linear: false) { $0.exactOptions.struct_size = bad }
        }
        for newer: UInt32 in [size + 1, size + 8, .max] {
            expect(SLAY_ERR_VERSION_MISMATCH, "struct_size \(newer)", linear: false) { $0.exactOptions.struct_size = newer }
        }
        let cases: [(String, (inout slay_exact_attention_options) -> Void)] = [
            ("kernel 0", { $0.kernel = 0 }), ("kernel 4", { $0.kernel = 4 }), ("kernel -1", { $0.kernel = -1 }),
            ("causal 2", { $0.causal = 2 }),
            ("scale NaN", { $0.scale = .nan }), ("scale inf", { $0.scale = .infinity }), ("scale -inf", { $0.scale = -.infinity }),
            ("eps 0", { $0.eps = 0 }), ("eps -1", { $0.eps = -1 }), ("eps NaN", { $0.eps = .nan }), ("eps inf", { $0.eps = .infinity }),
            ("delta NaN", { $0.delta = .nan }), ("delta -1", { $0.delta = -1 }), ("delta inf", { $0.delta = .infinity }),
            ("n_threads 0", { $0.n_threads = 0 }), ("n_threads 257", { $0.n_threads = 257 }),
        ]
        for (label, change) in cases {
            expect(SLAY_ERR_INVALID_ARGUMENT, label, linear: false) { change(&$0.exactOptions) }
        }
        for kernel in [SLAY_EXACT_SOFTMAX, SLAY_EXACT_YAT_SPHERICAL, SLAY_EXACT_YAT] {
            expect(SLAY_OK, "kernel \(kernel)", linear: false) { $0.exactOptions.kernel = kernel; $0.exactOptions.causal = 0 }
        }
    }

    func testOptionsInitDefaults() {
        XCTAssertEqual(SlayCABI.slay_attention_options_init(nil), SLAY_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(SlayCABI.slay_exact_attention_options_init(nil), SLAY_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(nil), SLAY_ERR_INVALID_ARGUMENT)
        var o = slay_attention_options()
        XCTAssertEqual(SlayCABI.slay_attention_options_init(&o), SLAY_OK)
        XCTAssertEqual(Int(o.struct_size), MemoryLayout<slay_attention_options>.size)
        XCTAssertEqual(o.causal, 1); XCTAssertEqual(o.delta, 1e-6); XCTAssertEqual(o.chunk_size, 0)
        XCTAssertEqual(o.n_threads, 1); XCTAssertEqual(o.ith, 0); XCTAssertEqual(o.nth, 1)
        var e = slay_exact_attention_options()
        XCTAssertEqual(SlayCABI.slay_exact_attention_options_init(&e), SLAY_OK)
        XCTAssertEqual(Int(e.struct_size), MemoryLayout<slay_exact_attention_options>.size)
        XCTAssertEqual(e.kernel, SLAY_EXACT_SOFTMAX); XCTAssertEqual(e.causal, 1); XCTAssertEqual(e.scale, 0)
        XCTAssertEqual(e.eps, 1e-6); XCTAssertEqual(e.delta, 1e-6); XCTAssertEqual(e.n_threads, 1)
        var p = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&p), SLAY_OK)
        XCTAssertEqual(Int(p.struct_size), MemoryLayout<slay_feature_map_params>.size)
        XCTAssertEqual(p.kind, SLAY_KIND_SLAY); XCTAssertEqual(p.head_dim, 0); XCTAssertEqual(p.num_heads, 1)
        XCTAssertEqual(p.nodes, 2); XCTAssertEqual(p.poly, SLAY_POLY_ANCHOR); XCTAssertEqual(p.poly_dim, 8)
        XCTAssertEqual(p.prf_dim, 8); XCTAssertEqual(p.eps, 1e-6); XCTAssertEqual(p.prf_clamp, 20); XCTAssertEqual(p.seed, 0)
    }

    // MARK: slay_gauss_laguerre

    func testGaussLaguerreArguments() {
        var nodes = [Double](repeating: -7, count: 65)
        var weights = [Double](repeating: -7, count: 65)
        for bad: Int32 in [0, -1, 65, .max, .min] {
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "R = \(bad)") { SlayCABI.slay_gauss_laguerre(bad, &nodes, &weights, $0) }
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "nodes NULL") { SlayCABI.slay_gauss_laguerre(4, nil, &weights, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "weights NULL") { SlayCABI.slay_gauss_laguerre(4, &nodes, nil, $0) }
        XCTAssertTrue(nodes.allSatisfy { $0 == -7 } && weights.allSatisfy { $0 == -7 }, "written on error")
        XCTAssertStatus(SLAY_OK, "R = 2") { SlayCABI.slay_gauss_laguerre(2, &nodes, &weights, $0) }
        XCTAssertEqual(nodes[0], 2 - 2.0.squareRoot(), accuracy: 1e-14)
        XCTAssertEqual(nodes[1], 2 + 2.0.squareRoot(), accuracy: 1e-14)
        XCTAssertEqual(weights[0], (2 + 2.0.squareRoot()) / 4, accuracy: 1e-14)
        XCTAssertEqual(weights[1], (2 - 2.0.squareRoot()) / 4, accuracy: 1e-14)
        XCTAssertEqual(nodes[2], -7, "wrote past R entries")
        XCTAssertStatus(SLAY_OK, "R = 64") { SlayCABI.slay_gauss_laguerre(64, &nodes, &weights, $0) }
        XCTAssertEqual(nodes[64], -7, "wrote past R entries")
        XCTAssertEqual(weights[0..<64].reduce(0, +), 1, accuracy: 1e-12)
    }
}
