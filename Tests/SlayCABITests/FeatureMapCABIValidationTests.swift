import CSlay
import XCTest
@testable import SlayCABI

/// Every argument of the slay_feature_map_* functions: NULLs, struct versions, enums, ranges,
/// sizes, parameter names and counts, tensors of slay_feature_map_apply; outputs unchanged on error.
final class FeatureMapCABIValidationTests: XCTestCase {
    private func params(_ edit: (inout slay_feature_map_params) -> Void = { _ in }) -> slay_feature_map_params {
        var p = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&p), SLAY_OK)
        p.head_dim = 4
        edit(&p)
        return p
    }

    /// Expects `status` from create; *out must be NULL afterwards (it starts non-NULL).
    private func expectCreate(_ status: Int32, _ label: String, line: UInt = #line,
                              _ edit: (inout slay_feature_map_params) -> Void) {
        var p = params(edit)
        XCTAssertStatus(status, label, line: line) { err in
            var handle = OpaquePointer(bitPattern: 0xDEAD)
            let result = SlayCABI.slay_feature_map_create(&p, &handle, err)
            if result == SLAY_OK { SlayCABI.slay_feature_map_free(handle) } else {
                XCTAssertNil(handle, "*out not NULL on failure: \(label)", line: line)
            }
            return result
        }
    }

    func testCreateNullArguments() {
        var handle = OpaquePointer(bitPattern: 0xDEAD)
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "params NULL") { SlayCABI.slay_feature_map_create(nil, &handle, $0) }
        XCTAssertNil(handle)
        var p = params()
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "out NULL") { SlayCABI.slay_feature_map_create(&p, nil, $0) }
    }

    func testCreateStructSize() {
        let size = UInt32(MemoryLayout<slay_feature_map_params>.size)
        for bad: UInt32 in [0, 4, size - 1] {
            expectCreate(SLAY_ERR_INVALID_ARGUMENT, "struct_size \(bad)") { $0.struct_size = bad }
        }
        for newer: UInt32 in [size + 1, size + 8, .max] {
            expectCreate(SLAY_ERR_VERSION_MISMATCH, "struct_size \(newer)") { $0.struct_size = newer }
        }
    }

    func testCreateEnumsAndNumbers() {
        for kind: Int32 in [0, 13, -1, .max] { expectCreate(SLAY_ERR_INVALID_ARGUMENT, "kind \(kind)") { $0.kind = kind } }
        for poly: Int32 in [0, 8, -1] { expectCreate(SLAY_ERR_INVALID_ARGUMENT, "poly \(poly)") { $0.poly = poly } }
        for nodes: Int32 in [0, -1, 65, .max] { expectCreate(SLAY_ERR_INVALID_ARGUMENT, "nodes \(nodes)") { $0.nodes = nodes } }
        for eps in [0, -1e-6, .nan, .infinity, -.infinity] {
            expectCreate(SLAY_ERR_INVALID_ARGUMENT, "eps \(eps)") { $0.eps = eps }
        }
        for clamp in [0, -20, .nan, .infinity] {
            expectCreate(SLAY_ERR_INVALID_ARGUMENT, "prf_clamp \(clamp)") { $0.prf_clamp = clamp }
        }
        expectCreate(SLAY_OK, "nodes 64") { $0.nodes = 64 }
        expectCreate(SLAY_OK, "nodes 1, seed max") { $0.nodes = 1; $0.seed = .max }
    }

    func testCreateDimensions() {
        for value: Int64 in [0, -1, 65537, 1 << 40, .min] {
            expectCreate(SLAY_ERR_SHAPE, "head_dim \(value)") { $0.head_dim = value }
            expectCreate(SLAY_ERR_SHAPE, "num_heads \(value)") { $0.num_heads = value }
            expectCreate(SLAY_ERR_SHAPE, "prf_dim \(value)") { $0.prf_dim = value }
            expectCreate(SLAY_ERR_SHAPE, "poly_dim \(value) (anchor)") { $0.poly_dim = value }
        }
        // poly_dim is ignored by the exact polynomials.
        expectCreate(SLAY_OK, "poly_dim 0 (exact)") { $0.poly = SLAY_POLY_EXACT; $0.poly_dim = 0 }
        expectCreate(SLAY_OK, "poly_dim -5 (exact_full)") { $0.poly = SLAY_POLY_EXACT_FULL; $0.poly_dim = -5 }
    }

    func testCreateSizesThatOverflow() {
        expectCreate(SLAY_ERR_OVERFLOW, "m = R·P·M = 64·65536·65536") {
            $0.nodes = 64; $0.poly_dim = 65536; $0.prf_dim = 65536
        }
        expectCreate(SLAY_ERR_OVERFLOW, "m = 2·4096·4096 = 2^25") { $0.nodes = 2; $0.poly_dim = 4096; $0.prf_dim = 4096 }
        expectCreate(SLAY_ERR_OVERFLOW, "exact, d = 65536") { $0.poly = SLAY_POLY_EXACT; $0.head_dim = 65536; $0.nodes = 1; $0.prf_dim = 1 }
        expectCreate(SLAY_ERR_OVERFLOW, "exact_full, d = 8192") { $0.poly = SLAY_POLY_EXACT_FULL; $0.head_dim = 8192; $0.nodes = 1; $0.prf_dim = 1 }
        expectCreate(SLAY_ERR_OVERFLOW, "omega 2^32 floats") {
            $0.head_dim = 65536; $0.num_heads = 65536; $0.nodes = 1; $0.poly_dim = 1; $0.prf_dim = 1
        }
        expectCreate(SLAY_ERR_OVERFLOW, "anchors 2^32 floats") {
            $0.head_dim = 65536; $0.poly_dim = 65536; $0.nodes = 1; $0.prf_dim = 1
        }
    }

    // MARK: queries on a handle

    func testQueriesRejectNullAndForeignHandles() {
        guard let fm = makeCFeatureMap() else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        var state: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_state_create(fm, 1, 2, 1, &state, nil), SLAY_OK)
        defer { SlayCABI.slay_state_free(state) }
        for (handle, label) in [(nil, "NULL"), (state, "a slay_state")] as [(OpaquePointer?, String)] {
            var dim: Int64 = -3, identity: UInt64 = 3, count: Int32 = -3, ndim: Int32 = -3
            var shape: [Int64] = [-3, -3, -3, -3]
            var name: UnsafePointer<CChar>? = nil
            var config = params()
            var values: [Float] = [Float](repeating: 9, count: 12)
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "dim, fm \(label)") { SlayCABI.slay_feature_map_dim(handle, &dim, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "config, fm \(label)") { SlayCABI.slay_feature_map_config(handle, &config, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "identity, fm \(label)") { SlayCABI.slay_feature_map_identity(handle, &identity, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "param_count, fm \(label)") { SlayCABI.slay_feature_map_param_count(handle, &count, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "param_name, fm \(label)") { SlayCABI.slay_feature_map_param_name(handle, 0, &name, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "param_shape, fm \(label)") {
                SlayCABI.slay_feature_map_param_shape(handle, "omega", &ndim, &shape, $0)
            }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "get_param, fm \(label)") {
                SlayCABI.slay_feature_map_get_param(handle, "anchors", &values, 12, $0)
            }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "set_param, fm \(label)") {
                SlayCABI.slay_feature_map_set_param(handle, "anchors", values, 12, $0)
            }
            XCTAssertEqual(dim, -3); XCTAssertEqual(identity, 3); XCTAssertEqual(count, -3); XCTAssertEqual(ndim, -3)
            XCTAssertEqual(shape, [-3, -3, -3, -3]); XCTAssertNil(name); XCTAssertEqual(config.head_dim, 4)
            XCTAssertEqual(values, [Float](repeating: 9, count: 12))
        }
        // Free of NULL and of a foreign handle are no-ops.
        SlayCABI.slay_feature_map_free(nil)
    }

    func testQueriesRejectNullOutputs() {
        guard let fm = makeCFeatureMap() else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "dim out NULL") { SlayCABI.slay_feature_map_dim(fm, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "config out NULL") { SlayCABI.slay_feature_map_config(fm, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "identity out NULL") { SlayCABI.slay_feature_map_identity(fm, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "count out NULL") { SlayCABI.slay_feature_map_param_count(fm, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "name out NULL") { SlayCABI.slay_feature_map_param_name(fm, 0, nil, $0) }
        var ndim: Int32 = -3
        var shape: [Int64] = [-3, -3, -3, -3]
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "shape out_ndim NULL") { SlayCABI.slay_feature_map_param_shape(fm, "omega", nil, &shape, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "shape out_shape NULL") { SlayCABI.slay_feature_map_param_shape(fm, "omega", &ndim, nil, $0) }
        XCTAssertEqual(ndim, -3)
        XCTAssertEqual(shape, [-3, -3, -3, -3])
    }

    func testConfigStructSize() {
        guard let fm = makeCFeatureMap() else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        let size = UInt32(MemoryLayout<slay_feature_map_params>.size)
        for (bad, status) in [(0, SLAY_ERR_INVALID_ARGUMENT), (size - 1, SLAY_ERR_INVALID_ARGUMENT),
                              (size + 8, SLAY_ERR_VERSION_MISMATCH)] as [(UInt32, Int32)] {
            var out = slay_feature_map_params()
            out.struct_size = bad
            out.head_dim = -9
            XCTAssertStatus(status, "config struct_size \(bad)") { SlayCABI.slay_feature_map_config(fm, &out, $0) }
            XCTAssertEqual(out.head_dim, -9, "written on error")
        }
        var out = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&out), SLAY_OK)
        XCTAssertStatus(SLAY_OK, "config") { SlayCABI.slay_feature_map_config(fm, &out, $0) }
        XCTAssertEqual(out.head_dim, 4); XCTAssertEqual(out.poly_dim, 3); XCTAssertEqual(out.prf_dim, 4)
        XCTAssertEqual(out.nodes, 2); XCTAssertEqual(out.struct_size, size)
    }

    func testParameterNamesAndShapes() {
        guard let fm = makeCFeatureMap(headDim: 5, numHeads: 3) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        var count: Int32 = 0
        XCTAssertStatus(SLAY_OK, "count") { SlayCABI.slay_feature_map_param_count(fm, &count, $0) }
        XCTAssertEqual(count, 2)
        var names: [String] = []
        for index in 0..<count {
            var name: UnsafePointer<CChar>?
            XCTAssertStatus(SLAY_OK, "name \(index)") { SlayCABI.slay_feature_map_param_name(fm, index, &name, $0) }
            names.append(name.map { String(cString: $0) } ?? "<NULL>")
        }
        XCTAssertEqual(names, ["anchors", "omega"])
        for bad: Int32 in [-1, 2, .max, .min] {
            var name: UnsafePointer<CChar>? = nil
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "name index \(bad)") { SlayCABI.slay_feature_map_param_name(fm, bad, &name, $0) }
            XCTAssertNil(name)
        }
        for (name, expected) in [("anchors", [3, 5]), ("omega", [2, 3, 5, 4])] as [(String, [Int64])] {
            var ndim: Int32 = 0
            var shape: [Int64] = [-1, -1, -1, -1]
            XCTAssertStatus(SLAY_OK, name) { SlayCABI.slay_feature_map_param_shape(fm, name, &ndim, &shape, $0) }
            XCTAssertEqual(Array(shape.prefix(Int(ndim))), expected, name)
        }
        for name in ["", "Omega", "omega ", "anchor", "gamma"] {
            var ndim: Int32 = -3
            var shape: [Int64] = [-3, -3, -3, -3]
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "shape of '\(name)'") { SlayCABI.slay_feature_map_param_shape(fm, name, &ndim, &shape, $0) }
            XCTAssertEqual(ndim, -3)
        }
        var ndim: Int32 = -3
        var shape: [Int64] = [-3, -3, -3, -3]
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "shape name NULL") { SlayCABI.slay_feature_map_param_shape(fm, nil, &ndim, &shape, $0) }
        // The exact polynomial has no anchors.
        guard let exact = makeCFeatureMap(edit: { $0.poly = SLAY_POLY_EXACT }) else { return }
        defer { SlayCABI.slay_feature_map_free(exact) }
        XCTAssertStatus(SLAY_OK, "exact count") { SlayCABI.slay_feature_map_param_count(exact, &count, $0) }
        XCTAssertEqual(count, 1)
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "exact anchors") { SlayCABI.slay_feature_map_param_shape(exact, "anchors", &ndim, &shape, $0) }
    }

    func testGetAndSetParameterValidation() {
        guard let fm = makeCFeatureMap(headDim: 2) else { return }   // anchors (3, 2): 6 floats
        defer { SlayCABI.slay_feature_map_free(fm) }
        var identity: UInt64 = 0
        XCTAssertEqual(SlayCABI.slay_feature_map_identity(fm, &identity, nil), SLAY_OK)
        var anchors = [Float](repeating: 9, count: 6)
        XCTAssertStatus(SLAY_OK, "get anchors") { SlayCABI.slay_feature_map_get_param(fm, "anchors", &anchors, 6, $0) }
        XCTAssertFalse(anchors.contains(9))

        var sink = [Float](repeating: 9, count: 8)
        for count: Int64 in [0, 5, 7, -6, .max] {
            XCTAssertStatus(SLAY_ERR_SHAPE, "get count \(count)") { SlayCABI.slay_feature_map_get_param(fm, "anchors", &sink, count, $0) }
            XCTAssertStatus(SLAY_ERR_SHAPE, "set count \(count)") { SlayCABI.slay_feature_map_set_param(fm, "anchors", sink, count, $0) }
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "get unknown") { SlayCABI.slay_feature_map_get_param(fm, "beta", &sink, 6, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "get name NULL") { SlayCABI.slay_feature_map_get_param(fm, nil, &sink, 6, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "get dst NULL") { SlayCABI.slay_feature_map_get_param(fm, "anchors", nil, 6, $0) }
        XCTAssertEqual(sink, [Float](repeating: 9, count: 8), "dst written on error")

        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "set unknown") { SlayCABI.slay_feature_map_set_param(fm, "beta", sink, 6, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "set name NULL") { SlayCABI.slay_feature_map_set_param(fm, nil, sink, 6, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "set src NULL") { SlayCABI.slay_feature_map_set_param(fm, "anchors", nil, 6, $0) }
        for bad in [Float.nan, .infinity, -.infinity, .signalingNaN] {
            let values: [Float] = [1, 0, 0, 1, bad, 0.5]
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "set \(bad)") { SlayCABI.slay_feature_map_set_param(fm, "anchors", values, 6, $0) }
        }
        // Nothing changed.
        var after: UInt64 = 0
        XCTAssertEqual(SlayCABI.slay_feature_map_identity(fm, &after, nil), SLAY_OK)
        XCTAssertEqual(after, identity)
        var check = [Float](repeating: 0, count: 6)
        XCTAssertEqual(SlayCABI.slay_feature_map_get_param(fm, "anchors", &check, 6, nil), SLAY_OK)
        XCTAssertEqual(check, anchors)

        // A good set changes the identity and is read back as given.
        let replacement: [Float] = [2, 0, 0, 1, 0.5, 0.5]
        XCTAssertStatus(SLAY_OK, "set anchors") { SlayCABI.slay_feature_map_set_param(fm, "anchors", replacement, 6, $0) }
        XCTAssertEqual(SlayCABI.slay_feature_map_identity(fm, &after, nil), SLAY_OK)
        XCTAssertNotEqual(after, identity)
        XCTAssertEqual(SlayCABI.slay_feature_map_get_param(fm, "anchors", &check, 6, nil), SLAY_OK)
        XCTAssertEqual(check, replacement)
    }

    /// Long messages are cut to fit SLAY_ERROR_MESSAGE_SIZE, NUL-terminated, never inside a
    /// UTF-8 sequence.
    func testLongMessagesAreTruncatedToValidUTF8() {
        guard let fm = makeCFeatureMap() else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        for (unit, repeats) in [("x", 600), ("é", 300), ("€", 200), ("𝄞", 150)] {
            for shift in 0..<4 {
                let name = String(repeating: "a", count: shift) + String(repeating: unit, count: repeats)
                var err = slay_error.garbage
                var ndim: Int32 = 0
                var shape: [Int64] = [0, 0, 0, 0]
                XCTAssertEqual(SlayCABI.slay_feature_map_param_shape(fm, name, &ndim, &shape, &err), SLAY_ERR_INVALID_ARGUMENT)
                let bytes = withUnsafeBytes(of: err.message) { raw in Array(raw.prefix(while: { $0 != 0 })) }
                XCTAssertLessThan(bytes.count, Int(SLAY_ERROR_MESSAGE_SIZE), "no room for the NUL: \(unit) shift \(shift)")
                XCTAssertGreaterThan(bytes.count, Int(SLAY_ERROR_MESSAGE_SIZE) - 8, "cut too short: \(unit) shift \(shift)")
                XCTAssertEqual(Array(String(decoding: bytes, as: UTF8.self).utf8), bytes, "invalid UTF-8: \(unit) shift \(shift)")
            }
        }
    }

    // MARK: slay_feature_map_apply

    func testApplyArguments() {
        guard let fm = makeCFeatureMap(headDim: 4, numHeads: 2) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        var m: Int64 = 0
        XCTAssertEqual(SlayCABI.slay_feature_map_dim(fm, &m, nil), SLAY_OK)
        XCTAssertEqual(m, 2 * 3 * 4)
        let x = CBuffer(count: 2 * 3 * 2 * 4, repeating: 0.5)
        let out = CBuffer(count: Int(2 * 3 * 2 * m), repeating: 7)
        func attempt(_ status: Int32, _ label: String, role: Int32 = SLAY_ROLE_QUERY, line: UInt = #line,
                     _ edit: (inout slay_tensor, inout slay_tensor) -> Void = { _, _ in }) {
            var tx = cTensor(x, [2, 3, 2, 4])
            var tout = cTensor(out, [2, 3, 2, m])
            edit(&tx, &tout)
            XCTAssertStatus(status, label, line: line) { SlayCABI.slay_feature_map_apply(fm, role, &tx, &tout, $0) }
            XCTAssertTrue(out.values.allSatisfy { $0 == 7 }, "out written on error: \(label)", line: line)
            XCTAssertTrue(x.values.allSatisfy { $0 == 0.5 }, "x written: \(label)", line: line)
        }
        var tx = cTensor(x, [2, 3, 2, 4]), tout = cTensor(out, [2, 3, 2, m])
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "fm NULL") { SlayCABI.slay_feature_map_apply(nil, SLAY_ROLE_KEY, &tx, &tout, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "x NULL") { SlayCABI.slay_feature_map_apply(fm, SLAY_ROLE_KEY, nil, &tout, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "out NULL") { SlayCABI.slay_feature_map_apply(fm, SLAY_ROLE_KEY, &tx, nil, $0) }
        for role: Int32 in [-1, 2, .max] { attempt(SLAY_ERR_INVALID_ARGUMENT, "role \(role)", role: role) }
        attempt(SLAY_ERR_INVALID_ARGUMENT, "x.data NULL") { x, _ in x.data = nil }
        attempt(SLAY_ERR_INVALID_ARGUMENT, "out.data NULL") { _, o in o.data = nil }
        attempt(SLAY_ERR_DTYPE, "x dtype f64") { x, _ in x.dtype = SLAY_DTYPE_F64 }
        attempt(SLAY_ERR_DTYPE, "out dtype 4") { _, o in o.dtype = 4 }
        attempt(SLAY_ERR_LAYOUT, "out bf16 at an odd address") { _, o in o.dtype = SLAY_DTYPE_BF16; o.data = o.data.map { $0 + 1 } }
        attempt(SLAY_ERR_SHAPE, "x ndim 3") { x, _ in x.ndim = 3 }
        attempt(SLAY_ERR_SHAPE, "out ndim 5") { _, o in o.ndim = 5 }
        attempt(SLAY_ERR_SHAPE, "x head_dim 3") { x, _ in x.setShape(3, 3) }
        attempt(SLAY_ERR_SHAPE, "x 1 head, map has 2") { x, _ in x.setShape(2, 1) }
        attempt(SLAY_ERR_SHAPE, "out m - 1") { _, o in o.setShape(3, m - 1) }
        attempt(SLAY_ERR_SHAPE, "out T = 2") { _, o in o.setShape(1, 2) }
        attempt(SLAY_ERR_SHAPE, "x extent 0") { x, _ in x.setShape(0, 0) }
        attempt(SLAY_ERR_LAYOUT, "x negative stride") { x, _ in x.setStride(1, -8) }
        attempt(SLAY_ERR_LAYOUT, "out stride 0") { _, o in o.setStride(1, 0) }
        attempt(SLAY_ERR_LAYOUT, "out heads interleaved") { _, o in o.setStride(2, 1) }
        attempt(SLAY_ERR_LAYOUT, "out overlaps x") { _, o in o.data = UnsafeMutableRawPointer(x.pointer + 1) }
        attempt(SLAY_ERR_OVERFLOW, "x shape 2^40 × stride 2^40") { x, _ in x.setShape(1, 1 << 40); x.setStride(1, 1 << 40) }
        attempt(SLAY_ERR_OVERFLOW, "out stride 2^62") { _, o in o.setStride(0, 1 << 62) }
        attempt(SLAY_ERR_SHAPE, "x broadcast over T = 2^40 (no overflow; T disagrees)") { x, _ in
            x.setShape(1, 1 << 40); x.setStride(1, 0)
        }
        XCTAssertStatus(SLAY_OK, "valid call") { SlayCABI.slay_feature_map_apply(fm, SLAY_ROLE_KEY, &tx, &tout, $0) }
        XCTAssertTrue(out.values.allSatisfy { $0.isFinite && $0 != 7 }, "out not written in full")
    }
}
