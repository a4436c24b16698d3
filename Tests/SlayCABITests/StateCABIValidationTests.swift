import CSlay
import XCTest
@testable import SlayCABI

/// Arguments of the slay_state_* functions: NULL and foreign handles, slot indices, counts,
/// tensors and blobs; a failed call leaves the state (and every output) unchanged.
final class StateCABIValidationTests: XCTestCase {
    // Map: d = 4, H = 2, m = R·P·M = 2·3·4 = 24. State: 3 slots, dv = 2.
    private let (d, h, dv, slots): (Int64, Int64, Int64, Int64) = (4, 2, 2, 3)

    private func makeState(_ fm: OpaquePointer?, slots: Int64 = 3, valueDim: Int64 = 2) -> OpaquePointer? {
        var state: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_state_create(fm, slots, valueDim, 2, &state, nil), SLAY_OK)
        return state
    }

    /// Every slot's matrix and normaliser plus positions, as bits.
    private func snapshot(_ state: OpaquePointer?) -> [UInt32] {
        var result: [UInt32] = []
        var n: Int64 = 0, heads: Int64 = 0, m: Int64 = 0, width: Int64 = 0
        XCTAssertEqual(SlayCABI.slay_state_dims(state, &n, &heads, &m, &width, nil), SLAY_OK)
        for slot in 0..<n {
            var matrix = [Float](repeating: 0, count: Int(heads * m * width))
            var normaliser = [Float](repeating: 0, count: Int(heads * m))
            XCTAssertEqual(SlayCABI.slay_state_read(state, slot, &matrix, Int64(matrix.count), &normaliser,
                                                    Int64(normaliser.count), nil), SLAY_OK)
            var position: Int64 = 0
            XCTAssertEqual(SlayCABI.slay_state_position(state, slot, &position, nil), SLAY_OK)
            result += matrix.map(\.bitPattern) + normaliser.map(\.bitPattern) + [UInt32(truncatingIfNeeded: position)]
        }
        return result
    }

    /// A state with some history, so that "unchanged" is not trivially zeros.
    private func prefilled(_ fm: OpaquePointer?) -> OpaquePointer? {
        let state = makeState(fm)
        let k = CBuffer((0..<(3 * 5 * h * d)).map { Float($0 % 7) / 7 - 0.4 })
        let v = CBuffer((0..<(3 * 5 * h * dv)).map { Float($0 % 5) / 5 - 0.5 })
        var tk = cTensor(k, [3, 5, h, d]), tv = cTensor(v, [3, 5, h, dv])
        XCTAssertEqual(SlayCABI.slay_state_prefill(state, nil, &tk, &tv, nil, nil, nil, 3, nil, nil), SLAY_OK)
        return state
    }

    func testCreateArguments() {
        guard let fm = makeCFeatureMap(headDim: d, numHeads: h) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        func create(_ status: Int32, _ label: String, fm handle: OpaquePointer?, _ n: Int64, _ width: Int64, _ threads: Int32,
                    line: UInt = #line) {
            XCTAssertStatus(status, label, line: line) { err in
                var out = OpaquePointer(bitPattern: 0xBEEF)
                let result = SlayCABI.slay_state_create(handle, n, width, threads, &out, err)
                if result == SLAY_OK { SlayCABI.slay_state_free(out) } else { XCTAssertNil(out, label, line: line) }
                return result
            }
        }
        create(SLAY_OK, "valid", fm: fm, 3, 2, 1)
        create(SLAY_ERR_INVALID_ARGUMENT, "fm NULL", fm: nil, 3, 2, 1)
        for n: Int64 in [0, -1, (1 << 20) + 1, .max] { create(SLAY_ERR_SHAPE, "num_seqs \(n)", fm: fm, n, 2, 1) }
        for width: Int64 in [0, -1, 65537] { create(SLAY_ERR_SHAPE, "value_dim \(width)", fm: fm, 3, width, 1) }
        for threads: Int32 in [0, -1, 257] { create(SLAY_ERR_INVALID_ARGUMENT, "max_threads \(threads)", fm: fm, 3, 2, threads) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "out NULL") { SlayCABI.slay_state_create(fm, 3, 2, 1, nil, $0) }
        // A state passed where a feature map is expected.
        let state = makeState(fm)
        defer { SlayCABI.slay_state_free(state) }
        create(SLAY_ERR_INVALID_ARGUMENT, "state as fm", fm: state, 3, 2, 1)
        SlayCABI.slay_state_free(nil)
    }

    func testHandleArgumentsOfEveryStateFunction() {
        guard let fm = makeCFeatureMap(headDim: d, numHeads: h) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        guard let state = prefilled(fm) else { return }
        defer { SlayCABI.slay_state_free(state) }
        let before = snapshot(state)
        var blob = [UInt8](repeating: 0, count: 1 << 16)
        var size: UInt = 0
        for (handle, label) in [(nil, "NULL"), (fm, "a feature map")] as [(OpaquePointer?, String)] {
            var out = OpaquePointer(bitPattern: 0xBEEF)
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy src \(label)") { SlayCABI.slay_state_copy(handle, &out, $0) }
            XCTAssertNil(out)
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy_slot dst \(label)") { SlayCABI.slay_state_copy_slot(handle, 0, state, 1, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy_slot src \(label)") { SlayCABI.slay_state_copy_slot(state, 0, handle, 1, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "reset \(label)") { SlayCABI.slay_state_reset(handle, -1, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "dims \(label)") { SlayCABI.slay_state_dims(handle, nil, nil, nil, nil, $0) }
            var position: Int64 = -5
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "position \(label)") { SlayCABI.slay_state_position(handle, 0, &position, $0) }
            XCTAssertEqual(position, -5)
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "read \(label)") { SlayCABI.slay_state_read(handle, 0, nil, 0, nil, 0, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "serialized_size \(label)") { SlayCABI.slay_state_serialized_size(handle, &size, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "save \(label)") { SlayCABI.slay_state_save(handle, &blob, UInt(blob.count), &size, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "restore \(label)") { SlayCABI.slay_state_restore(handle, blob, UInt(blob.count), $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "prefill \(label)") {
                SlayCABI.slay_state_prefill(handle, nil, nil, nil, nil, nil, nil, 1, nil, $0)
            }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "query \(label)") { SlayCABI.slay_state_query(handle, nil, nil, nil, nil, 1, nil, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "step \(label)") { SlayCABI.slay_state_step(handle, nil, nil, nil, nil, nil, 1, nil, $0) }
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy out NULL") { SlayCABI.slay_state_copy(state, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "position out NULL") { SlayCABI.slay_state_position(state, 0, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "serialized_size out NULL") { SlayCABI.slay_state_serialized_size(state, nil, $0) }
        XCTAssertStatus(SLAY_OK, "dims with NULL outputs") { SlayCABI.slay_state_dims(state, nil, nil, nil, nil, $0) }
        XCTAssertEqual(snapshot(state), before)
    }

    func testSlotIndicesAndCounts() {
        guard let fm = makeCFeatureMap(headDim: d, numHeads: h) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        guard let state = prefilled(fm) else { return }
        defer { SlayCABI.slay_state_free(state) }
        let before = snapshot(state)
        for slot: Int64 in [-2, 3, .max, .min] {
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "reset slot \(slot)") { SlayCABI.slay_state_reset(state, slot, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy_slot dst \(slot)") { SlayCABI.slay_state_copy_slot(state, slot, state, 0, $0) }
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "copy_slot src \(slot)") { SlayCABI.slay_state_copy_slot(state, 0, state, slot, $0) }
            var position: Int64 = -5
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "position slot \(slot)") { SlayCABI.slay_state_position(state, slot, &position, $0) }
            XCTAssertEqual(position, -5)
            XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "read slot \(slot)") { SlayCABI.slay_state_read(state, slot, nil, 0, nil, 0, $0) }
        }
        let m: Int64 = 24
        var matrix = [Float](repeating: 9, count: Int(h * m * dv) + 1)
        var normaliser = [Float](repeating: 9, count: Int(h * m) + 1)
        for delta: Int64 in [-1, 1] {
            XCTAssertStatus(SLAY_ERR_SHAPE, "matrix_count off by \(delta)") {
                SlayCABI.slay_state_read(state, 0, &matrix, h * m * dv + delta, nil, 0, $0)
            }
            XCTAssertStatus(SLAY_ERR_SHAPE, "normaliser_count off by \(delta)") {
                SlayCABI.slay_state_read(state, 0, nil, 0, &normaliser, h * m + delta, $0)
            }
        }
        XCTAssertTrue(matrix.allSatisfy { $0 == 9 } && normaliser.allSatisfy { $0 == 9 }, "read wrote on error")
        // Another value width or another map: state mismatch.
        guard let narrow = makeState(fm, slots: 3, valueDim: 3) else { return }
        defer { SlayCABI.slay_state_free(narrow) }
        XCTAssertStatus(SLAY_ERR_STATE_MISMATCH, "copy_slot across value dims") { SlayCABI.slay_state_copy_slot(narrow, 0, state, 0, $0) }
        guard let other = makeCFeatureMap(headDim: d, numHeads: h, edit: { $0.seed = 99 }) else { return }
        defer { SlayCABI.slay_feature_map_free(other) }
        guard let foreign = makeState(other) else { return }
        defer { SlayCABI.slay_state_free(foreign) }
        XCTAssertStatus(SLAY_ERR_STATE_MISMATCH, "copy_slot across maps") { SlayCABI.slay_state_copy_slot(state, 0, foreign, 0, $0) }
        XCTAssertEqual(snapshot(state), before)
    }

    func testPrefillQueryAndStepArguments() {
        guard let fm = makeCFeatureMap(headDim: d, numHeads: h) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        guard let state = prefilled(fm) else { return }
        defer { SlayCABI.slay_state_free(state) }
        let before = snapshot(state)
        let (b, t): (Int64, Int64) = (2, 4)
        let q = CBuffer(count: Int(b * t * h * d), repeating: 0.3), k = CBuffer(count: Int(b * t * h * d), repeating: -0.2)
        let v = CBuffer(count: Int(b * t * h * dv), repeating: 0.7), out = CBuffer(count: Int(b * t * h * dv), repeating: 7)
        var tq = cTensor(q, [b, t, h, d]), tk = cTensor(k, [b, t, h, d]), tv = cTensor(v, [b, t, h, dv])
        var tout = cTensor(out, [b, t, h, dv])
        var twoSlots: [Int32] = [2, 0]
        func prefill(_ status: Int32, _ label: String, cu: [Int64]? = nil, slots: [Int32]? = [2, 0], n: Int64 = 2,
                     line: UInt = #line) {
            XCTAssertStatus(status, label, line: line) { err in
                var slotArray = slots ?? []
                var cuArray = cu ?? []
                return slotArray.withUnsafeMutableBufferPointer { s in
                    cuArray.withUnsafeMutableBufferPointer { c in
                        SlayCABI.slay_state_prefill(state, &tq, &tk, &tv, &tout, cu == nil ? nil : c.baseAddress,
                                                    slots == nil ? nil : s.baseAddress, n, nil, err)
                    }
                }
            }
        }
        prefill(SLAY_ERR_SHAPE, "num_seqs 0", n: 0)
        prefill(SLAY_ERR_SHAPE, "num_seqs 3 != B = 2", slots: [0, 1, 2], n: 3)
        prefill(SLAY_ERR_INVALID_ARGUMENT, "duplicate slots", slots: [1, 1])
        prefill(SLAY_ERR_INVALID_ARGUMENT, "slot 3 out of range", slots: [0, 3])
        prefill(SLAY_ERR_INVALID_ARGUMENT, "slot -1", slots: [-1, 0])
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "k NULL") {
            SlayCABI.slay_state_prefill(state, &tq, nil, &tv, &tout, nil, &twoSlots, 2, nil, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "v NULL") {
            SlayCABI.slay_state_prefill(state, &tq, &tk, nil, &tout, nil, &twoSlots, 2, nil, $0)
        }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "q without out") {
            SlayCABI.slay_state_prefill(state, &tq, &tk, &tv, nil, nil, &twoSlots, 2, nil, $0)
        }
        var badOptions = slay_attention_options()
        XCTAssertEqual(SlayCABI.slay_attention_options_init(&badOptions), SLAY_OK)
        badOptions.struct_size += 8
        XCTAssertStatus(SLAY_ERR_VERSION_MISMATCH, "options from a newer header") {
            SlayCABI.slay_state_prefill(state, &tq, &tk, &tv, &tout, nil, &twoSlots, 2, &badOptions, $0)
        }
        // Packed batches: B must be 1 and cu_seqlens monotone from 0 to T.
        tq.setShape(0, 1); tk.setShape(0, 1); tv.setShape(0, 1); tout.setShape(0, 1)
        prefill(SLAY_ERR_SHAPE, "cu_seqlens not monotone", cu: [0, 3, 2])
        prefill(SLAY_ERR_SHAPE, "cu_seqlens[0] = 1", cu: [1, 2, 4])
        prefill(SLAY_ERR_SHAPE, "cu_seqlens ends at 3, T = 4", cu: [0, 2, 3])
        XCTAssertTrue(out.values.allSatisfy { $0 == 7 }, "out written on error")

        // Query: NULL tensors, output aliasing q.
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "query q NULL") { SlayCABI.slay_state_query(state, nil, &tout, nil, nil, 1, nil, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "query out NULL") { SlayCABI.slay_state_query(state, &tq, nil, nil, nil, 1, nil, $0) }
        var aliased = tout
        aliased.data = UnsafeMutableRawPointer(q.pointer)
        XCTAssertStatus(SLAY_ERR_LAYOUT, "query out aliases q") { SlayCABI.slay_state_query(state, &tq, &aliased, nil, nil, 1, nil, $0) }

        // Step: 3-d tensors [N, H, D].
        var sq = cTensor(q, [2, h, d]), sk = cTensor(k, [2, h, d]), sv = cTensor(v, [2, h, dv]), sout = cTensor(out, [2, h, dv])
        XCTAssertStatus(SLAY_ERR_SHAPE, "step with 4-d q") { SlayCABI.slay_state_step(state, &tq, &sk, &sv, &sout, &twoSlots, 2, nil, $0) }
        XCTAssertStatus(SLAY_ERR_SHAPE, "step num_seqs 1 != N = 2") { SlayCABI.slay_state_step(state, &sq, &sk, &sv, &sout, &twoSlots, 1, nil, $0) }
        var duplicate: [Int32] = [0, 0]
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "step duplicate slots") { SlayCABI.slay_state_step(state, &sq, &sk, &sv, &sout, &duplicate, 2, nil, $0) }
        var selfOverlap = sout
        selfOverlap.setStride(0, 0)
        XCTAssertStatus(SLAY_ERR_LAYOUT, "step out stride 0") { SlayCABI.slay_state_step(state, &sq, &sk, &sv, &selfOverlap, &twoSlots, 2, nil, $0) }
        var threadOptions = slay_attention_options()
        XCTAssertEqual(SlayCABI.slay_attention_options_init(&threadOptions), SLAY_OK)
        threadOptions.ith = 2
        threadOptions.nth = 3
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "step ith >= max_threads") {
            SlayCABI.slay_state_step(state, &sq, &sk, &sv, &sout, &twoSlots, 2, &threadOptions, $0)
        }
        XCTAssertTrue(out.values.allSatisfy { $0 == 7 }, "out written on error")
        XCTAssertEqual(snapshot(state), before)

        // After set_param every state call fails with a state mismatch.
        var omega = [Float](repeating: 0.5, count: Int(2 * h * d * 4))
        XCTAssertEqual(SlayCABI.slay_feature_map_set_param(fm, "omega", &omega, Int64(omega.count), nil), SLAY_OK)
        XCTAssertStatus(SLAY_ERR_STATE_MISMATCH, "step after set_param") {
            SlayCABI.slay_state_step(state, &sq, &sk, &sv, &sout, &twoSlots, 2, nil, $0)
        }
        XCTAssertEqual(snapshot(state), before)
    }

    func testBlobArguments() {
        guard let fm = makeCFeatureMap(headDim: d, numHeads: h) else { return }
        defer { SlayCABI.slay_feature_map_free(fm) }
        guard let state = prefilled(fm) else { return }
        defer { SlayCABI.slay_state_free(state) }
        var size: UInt = 0
        XCTAssertStatus(SLAY_OK, "serialized_size") { SlayCABI.slay_state_serialized_size(state, &size, $0) }
        var blob = [UInt8](repeating: 0xAB, count: Int(size) + 16)
        var written: UInt = 12345
        XCTAssertStatus(SLAY_ERR_BUFFER_TOO_SMALL, "capacity size - 1") { SlayCABI.slay_state_save(state, &blob, size - 1, &written, $0) }
        XCTAssertStatus(SLAY_ERR_BUFFER_TOO_SMALL, "capacity 0") { SlayCABI.slay_state_save(state, &blob, 0, &written, $0) }
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "dst NULL") { SlayCABI.slay_state_save(state, nil, size, &written, $0) }
        XCTAssertEqual(written, 12345)
        XCTAssertTrue(blob.allSatisfy { $0 == 0xAB }, "dst written on error")
        XCTAssertStatus(SLAY_OK, "save") { SlayCABI.slay_state_save(state, &blob, UInt(blob.count), &written, $0) }
        XCTAssertEqual(written, size)
        XCTAssertEqual(blob[Int(size)...].allSatisfy { $0 == 0xAB }, true, "wrote past the blob")
        XCTAssertEqual(Array(blob.prefix(8)), Array("SLAYSTAT".utf8))

        func load(_ status: Int32, _ label: String, fm handle: OpaquePointer?, _ bytes: [UInt8]?, count: UInt? = nil,
                  threads: Int32 = 1, line: UInt = #line) {
            XCTAssertStatus(status, label, line: line) { err in
                var out = OpaquePointer(bitPattern: 0xBEEF)
                let result = bytes.map { b in b.withUnsafeBytes { SlayCABI.slay_state_load(handle, $0.baseAddress, count ?? UInt(b.count), threads, &out, err) } }
                    ?? SlayCABI.slay_state_load(handle, nil, count ?? 0, threads, &out, err)
                if result == SLAY_OK { SlayCABI.slay_state_free(out) } else { XCTAssertNil(out, label, line: line) }
                return result
            }
        }
        let good = Array(blob.prefix(Int(size)))
        load(SLAY_OK, "valid", fm: fm, good)
        load(SLAY_ERR_INVALID_ARGUMENT, "fm NULL", fm: nil, good)
        load(SLAY_ERR_INVALID_ARGUMENT, "src NULL", fm: fm, nil, count: size)
        load(SLAY_ERR_INVALID_ARGUMENT, "max_threads 0", fm: fm, good, threads: 0)
        load(SLAY_ERR_INVALID_ARGUMENT, "max_threads 257", fm: fm, good, threads: 257)
        load(SLAY_ERR_CORRUPT_DATA, "truncated by 1", fm: fm, good, count: size - 1)
        load(SLAY_ERR_CORRUPT_DATA, "8 bytes", fm: fm, good, count: 8)
        load(SLAY_ERR_CORRUPT_DATA, "0 bytes", fm: fm, good, count: 0)
        var badMagic = good
        badMagic[0] ^= 0xFF
        load(SLAY_ERR_CORRUPT_DATA, "magic", fm: fm, badMagic)
        var flipped = good
        flipped[Int(size) - 20] ^= 0x01   // a payload byte: the checksum must catch it
        load(SLAY_ERR_CORRUPT_DATA, "payload bit flip", fm: fm, flipped)
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "load out NULL") { SlayCABI.slay_state_load(fm, good, size, 1, nil, $0) }
        guard let other = makeCFeatureMap(headDim: d, numHeads: h, edit: { $0.seed = 5 }) else { return }
        defer { SlayCABI.slay_feature_map_free(other) }
        load(SLAY_ERR_STATE_MISMATCH, "another map", fm: other, good)

        // Restore: errors leave the state as it was.
        guard let target = makeState(fm) else { return }
        defer { SlayCABI.slay_state_free(target) }
        let before = snapshot(target)
        XCTAssertStatus(SLAY_ERR_INVALID_ARGUMENT, "restore src NULL") { SlayCABI.slay_state_restore(target, nil, size, $0) }
        XCTAssertStatus(SLAY_ERR_CORRUPT_DATA, "restore truncated") { SlayCABI.slay_state_restore(target, good, size - 4, $0) }
        XCTAssertStatus(SLAY_ERR_CORRUPT_DATA, "restore bit flip") { SlayCABI.slay_state_restore(target, flipped, size, $0) }
        guard let narrow = makeState(fm, slots: 3, valueDim: 3) else { return }
        defer { SlayCABI.slay_state_free(narrow) }
        XCTAssertStatus(SLAY_ERR_STATE_MISMATCH, "restore into another value_dim") { SlayCABI.slay_state_restore(narrow, good, size, $0) }
        XCTAssertEqual(snapshot(target), before)
        XCTAssertStatus(SLAY_OK, "restore") { SlayCABI.slay_state_restore(target, good, size, $0) }
        XCTAssertEqual(snapshot(target), snapshot(state))
    }
}
