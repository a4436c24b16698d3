import CSlay
import XCTest
@testable import SlayCABI
@testable import SlayCore

/// Through the C ABI, every allocation of a call can fail (SlayCore's AllocationFaults fails each
/// in turn): the call returns SLAY_ERR_OUT_OF_MEMORY with a message, `*out` handles stay NULL,
/// and outputs and states are untouched.
final class AllocationFailureCABITests: XCTestCase {
    /// Runs `body` with the 0th, 1st, … allocation failing until it succeeds; each failing run must
    /// return SLAY_ERR_OUT_OF_MEMORY and pass `untouched`. Returns the allocation count.
    @discardableResult
    private func sweep(_ label: String, file: StaticString = #filePath, line: UInt = #line,
                       _ body: (UnsafeMutablePointer<slay_error>?) -> Int32, untouched: () -> Void = {}) -> Int {
        var allocations = 0
        while allocations < 1000 {
            var err = slay_error.garbage
            var status: Int32 = 0
            let (injected, _) = AllocationFaults.run(failingAfter: allocations) { status = body(&err) }
            if !injected {
                XCTAssertEqual(status, SLAY_OK, "\(label): \(err.text ?? "")", file: file, line: line)
                return allocations
            }
            XCTAssertEqual(status, SLAY_ERR_OUT_OF_MEMORY, "\(label), allocation \(allocations): \(err.text ?? "")", file: file, line: line)
            XCTAssertEqual(err.code, status, file: file, line: line)
            XCTAssertFalse((err.text ?? "").isEmpty, file: file, line: line)
            untouched()
            allocations += 1
        }
        XCTFail("\(label): over 1000 allocations", file: file, line: line)
        return allocations
    }

    private func params(_ edit: (inout slay_feature_map_params) -> Void) -> slay_feature_map_params {
        var p = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&p), SLAY_OK)
        p.head_dim = 4
        edit(&p)
        return p
    }

    func testFeatureMapCreateAndSetParam() {
        for poly in [SLAY_POLY_TENSORSKETCH, SLAY_POLY_NYSTROM] {
            var p = params { $0.poly = poly; $0.num_heads = 2; $0.poly_dim = 6 }
            var handle: OpaquePointer? = OpaquePointer(bitPattern: 0x5)
            let made = sweep("create poly \(poly)", { err in
                let status = SlayCABI.slay_feature_map_create(&p, &handle, err)
                if status != SLAY_OK { XCTAssertNil(handle) }
                return status
            })
            XCTAssertGreaterThan(made, 3)
            defer { SlayCABI.slay_feature_map_free(handle) }
            var identity: UInt64 = 0
            XCTAssertEqual(SlayCABI.slay_feature_map_identity(handle, &identity, nil), SLAY_OK)
            let name = poly == SLAY_POLY_TENSORSKETCH ? "sketch" : "anchors"
            var ndim: Int32 = 0
            var shape = [Int64](repeating: 0, count: 8)
            XCTAssertEqual(SlayCABI.slay_feature_map_param_shape(handle, name, &ndim, &shape, nil), SLAY_OK)
            let count = shape[0..<Int(ndim)].reduce(1, *)
            var values = [Float](repeating: 0, count: Int(count))
            XCTAssertEqual(SlayCABI.slay_feature_map_get_param(handle, name, &values, count, nil), SLAY_OK)
            if poly == SLAY_POLY_TENSORSKETCH { values[0] = values[0] == 0 ? 1 : 0 } else { values[0] += 0.5 }
            sweep("set_param \(name)", { SlayCABI.slay_feature_map_set_param(handle, name, values, count, $0) }, untouched: {
                var now: UInt64 = 0
                XCTAssertEqual(SlayCABI.slay_feature_map_identity(handle, &now, nil), SLAY_OK)
                XCTAssertEqual(now, identity)
            })
        }
    }

    func testStateCallsOnAPositionMap() {
        var p = params { $0.kind = SLAY_KIND_COSFORMER; $0.head_dim = 2; $0.max_length = 64 }
        var fm: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&p, &fm, nil), SLAY_OK)
        defer { SlayCABI.slay_feature_map_free(fm) }
        var state: OpaquePointer? = OpaquePointer(bitPattern: 0x5)
        sweep("state_create", { err in
            let status = SlayCABI.slay_state_create(fm, 6, 3, 2, &state, err)
            if status != SLAY_OK { XCTAssertNil(state) }
            return status
        })
        defer { SlayCABI.slay_state_free(state) }
        // Warm the slots, then a packed prefill with slots (spans, origins, workspaces).
        let warmK = CBuffer((0..<12).map { Float($0 % 5) / 5 }), warmV = CBuffer((0..<18).map { Float($0 % 3) / 3 })
        var tk = cTensor(warmK, [6, 1, 1, 2]), tv = cTensor(warmV, [6, 1, 1, 3])
        XCTAssertEqual(SlayCABI.slay_state_prefill(state, nil, &tk, &tv, nil, nil, nil, 6, nil, nil), SLAY_OK)
        func blob() -> [UInt8] {
            var size: UInt = 0
            XCTAssertEqual(SlayCABI.slay_state_serialized_size(state, &size, nil), SLAY_OK)
            var bytes = [UInt8](repeating: 0, count: Int(size))
            var written: UInt = 0
            XCTAssertEqual(SlayCABI.slay_state_save(state, &bytes, size, &written, nil), SLAY_OK)
            return bytes
        }
        let q = CBuffer((0..<16).map { Float($0 % 7) / 7 }), k = CBuffer((0..<16).map { Float($0 % 4) / 4 })
        let v = CBuffer((0..<24).map { Float($0 % 6) / 6 - 0.5 })
        let out = CBuffer(count: 24, repeating: -7)
        let cu: [Int64] = [0, 3, 3, 8], slots: [Int32] = [5, 0, 2]
        var (tq, tk2, tv2, tout) = (cTensor(q, [1, 8, 1, 2]), cTensor(k, [1, 8, 1, 2]), cTensor(v, [1, 8, 1, 3]), cTensor(out, [1, 8, 1, 3]))
        var before = blob()
        sweep("prefill", { SlayCABI.slay_state_prefill(state, &tq, &tk2, &tv2, &tout, cu, slots, 3, nil, $0) }, untouched: {
            XCTAssertEqual(blob(), before)
            XCTAssertEqual(out.values, [Float](repeating: -7, count: 24))
        })
        out.pointer.update(repeating: -7, count: 24)
        before = blob()
        sweep("query", { SlayCABI.slay_state_query(state, &tq, &tout, cu, slots, 3, nil, $0) }, untouched: {
            XCTAssertEqual(out.values, [Float](repeating: -7, count: 24))
        })
        XCTAssertEqual(blob(), before)
        var copy: OpaquePointer? = OpaquePointer(bitPattern: 0x5)
        sweep("copy", { err in
            let status = SlayCABI.slay_state_copy(state, &copy, err)
            if status != SLAY_OK { XCTAssertNil(copy) }
            return status
        })
        SlayCABI.slay_state_free(copy)
        var loaded: OpaquePointer? = OpaquePointer(bitPattern: 0x5)
        sweep("load", { err in
            let status = SlayCABI.slay_state_load(fm, before, UInt(before.count), 1, &loaded, err)
            if status != SLAY_OK { XCTAssertNil(loaded) }
            return status
        })
        SlayCABI.slay_state_free(loaded)
    }

    func testLinearAttentionAndTheHandleTable() {
        var p = params { $0.num_heads = 2; $0.poly = SLAY_POLY_TENSORSKETCH; $0.poly_dim = 5 }
        var fm: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&p, &fm, nil), SLAY_OK)
        defer { SlayCABI.slay_feature_map_free(fm) }
        let q = CBuffer((0..<(3 * 6 * 2 * 4)).map { Float($0 % 9) / 9 - 0.5 })
        let v = CBuffer((0..<(3 * 6 * 2 * 3)).map { Float($0 % 5) / 5 })
        let out = CBuffer(count: 3 * 6 * 2 * 3, repeating: -7)
        var (tq, tv, tout) = (cTensor(q, [3, 6, 2, 4]), cTensor(v, [3, 6, 2, 3]), cTensor(out, [3, 6, 2, 3]))
        var options = slay_attention_options()
        XCTAssertEqual(SlayCABI.slay_attention_options_init(&options), SLAY_OK)
        options.n_threads = 2
        options.chunk_size = 4
        sweep("linear_attention", { SlayCABI.slay_linear_attention(fm, &tq, &tq, &tv, &tout, &options, $0) }, untouched: {
            XCTAssertEqual(out.values, [Float](repeating: -7, count: out.count))
        })
    }

    /// The handle table grows by reallocation (16, 32, … slots): a growth that fails is
    /// SLAY_ERR_OUT_OF_MEMORY-worthy (it throws), and the live handles stay valid.
    func testAFailedHandleTableGrowthKeepsTheLiveHandles() throws {
        final class Box { let value: Int; init(_ value: Int) { self.value = value } }
        let registry = HandleRegistry<Box>(tag: 3)
        var tokens: [OpaquePointer] = []
        // The first registration allocates the table; then 15 more fit.
        XCTAssertTrue(AllocationFaults.run(failingAfter: 0) { _ = try registry.register(Box(-1)) }.injected)
        for i in 0..<16 { tokens.append(try registry.register(Box(i))) }
        let (injected, error) = AllocationFaults.run(failingAfter: 0) { _ = try registry.register(Box(16)) }
        XCTAssertTrue(injected)
        XCTAssertEqual((error as? SlayError)?.status, .outOfMemory)
        for (i, token) in tokens.enumerated() { XCTAssertEqual(registry.object(token)?.value, i) }
        tokens.append(try registry.register(Box(16)))
        XCTAssertEqual(registry.object(tokens[16])?.value, 16)
        for token in tokens { XCTAssertTrue(registry.remove(token)) }
    }
}
