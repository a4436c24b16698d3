import XCTest
@testable import SlayCore

/// Every allocation a state call makes can fail (AllocationFaults fails each in turn): the call
/// throws SlayError(.outOfMemory) and the state (S, z, μ, positions) and the outputs are exactly
/// as before. Sizes are chosen so that each caller-sized array is non-empty: packed cu_seqlens with
/// explicit slots and a map that reads positions (the driver's origins).
final class RecurrentStateAllocationTests: XCTestCase {
    /// Bytes of S and z, μ, and positions.
    private func snapshot(_ state: RecurrentState) -> [UInt8] {
        var bytes = Array(UnsafeRawBufferPointer(start: state.rawData, count: state.totalBytes))
        if let maxima = state.maxima(slot: 0, head: 0) {
            bytes += Array(UnsafeRawBufferPointer(start: maxima, count: state.maximaFloats * 4))
        }
        for position in state.positions { withUnsafeBytes(of: position) { bytes += $0 } }
        return bytes
    }

    private func filled(_ count: Int, seed: UInt64) -> TestTensor {
        var generator = SeededGenerator(seed: seed)
        return TestTensor(generator.floats(count))
    }

    /// A state whose slots already hold something, so "untouched" is not "still zero".
    private func warmState(_ map: FeatureMap, slots: Int, dv: Int) throws -> RecurrentState {
        let state = try RecurrentState(map: map, numSequences: slots, valueDim: dv)
        let d = map.headDim
        let (k, v) = (filled(slots * 3 * d, seed: 1), filled(slots * 3 * dv, seed: 2))
        try state.prefill(q: nil, k: k.view([slots, 3, 1, d]), v: v.view([slots, 3, 1, dv]), out: nil,
                          cuSeqlens: nil, slots: nil, options: LinearAttentionOptions())
        return state
    }

    func testCreateAndCopy() throws {
        let map = try HadamardExpFeatureMap(ClassicMapConfiguration(headDim: 4))
        let made = assertEveryAllocationFails("create") {
            _ = try RecurrentState(map: map, numSequences: 300, valueDim: 3, maxThreads: 2)
        }
        XCTAssertGreaterThanOrEqual(made, 5, "S and z, μ, positions, decode workspaces and slot marks")
        let state = try warmState(map, slots: 5, dv: 3)
        let before = snapshot(state)
        assertEveryAllocationFails("copy", { _ = try state.copy() }, untouched: { XCTAssertEqual(snapshot(state), before) })
    }

    func testPackedPrefillWithSlotsAndPositions() throws {
        // cosFormer reads token positions, so the driver allocates the spans' origins.
        let map = try CosFormerFeatureMap(ClassicMapConfiguration(headDim: 2, maxLength: 64))
        let (slots, dv, d) = (6, 3, 2)
        let state = try warmState(map, slots: slots, dv: dv)
        let lengths = [3, 0, 5, 1]
        let total = lengths.reduce(0, +)
        var offsets: [Int64] = [0]
        for length in lengths { offsets.append(offsets.last! + Int64(length)) }
        let order: [Int32] = [4, 0, 5, 2]
        let (q, k, v) = (filled(total * d, seed: 3), filled(total * d, seed: 4), filled(total * dv, seed: 5))
        let out = TestTensor(count: total * dv, repeating: -7)
        let before = snapshot(state)
        func prefill() throws {
            try offsets.withUnsafeBufferPointer { cu in
                try order.withUnsafeBufferPointer { slotList in
                    try state.prefill(q: q.view([1, total, 1, d]), k: k.view([1, total, 1, d]), v: v.view([1, total, 1, dv]),
                                      out: out.view([1, total, 1, dv]), cuSeqlens: cu, slots: slotList,
                                      options: LinearAttentionOptions(chunkSize: 2, nThreads: 2))
                }
            }
        }
        let made = assertEveryAllocationFails("prefill", prefill, untouched: {
            XCTAssertEqual(snapshot(state), before)
            XCTAssertEqual(out.bits, [UInt32](repeating: Float(-7).bitPattern, count: total * dv))
        })
        XCTAssertGreaterThanOrEqual(made, 4, "spans, origins, workspaces, normaliser snapshot")
        XCTAssertEqual(Array(state.positions), [3, 3, 3 + 1, 3, 3 + 3, 3 + 5])

        let queryOut = TestTensor(count: total * dv, repeating: -7)
        let afterPrefill = snapshot(state)
        assertEveryAllocationFails("query", {
            try offsets.withUnsafeBufferPointer { cu in
                try order.withUnsafeBufferPointer { slotList in
                    try state.query(q: q.view([1, total, 1, d]), out: queryOut.view([1, total, 1, dv]), cuSeqlens: cu,
                                    slots: slotList, options: LinearAttentionOptions())
                }
            }
        }, untouched: {
            XCTAssertEqual(queryOut.bits, [UInt32](repeating: Float(-7).bitPattern, count: total * dv))
        })
        XCTAssertEqual(snapshot(state), afterPrefill, "a query never changes the state")
    }

    /// A step over many slots allocates nothing (its distinctness check uses the state's slot
    /// marks), so no allocation can fail; repeated slots are still found, and leave the marks clear.
    func testStepWithManySlotsAllocatesNothing() throws {
        let map = try IdentityFeatureMap(ClassicMapConfiguration(headDim: 2))
        let n = 1000
        let state = try warmState(map, slots: n + 10, dv: 2)
        let slots = (0..<n).map { Int32(n + 9 - $0) }
        let (q, k, v) = (filled(n * 2, seed: 6), filled(n * 2, seed: 7), filled(n * 2, seed: 8))
        let out = TestTensor(count: n * 2, repeating: -7)
        func step(_ list: [Int32]) throws {
            try list.withUnsafeBufferPointer { list in
                try state.step(q: q.view([n, 1, 2]), k: k.view([n, 1, 2]), v: v.view([n, 1, 2]), out: out.view([n, 1, 2]),
                               slots: SlotList(pointer: list.baseAddress, count: n), options: LinearAttentionOptions())
            }
        }
        let before = snapshot(state)
        for duplicate in [1, 500, n - 1] {
            var repeated = slots
            repeated[duplicate] = repeated[0]
            XCTAssertThrowsSlayError(.invalidArgument, try step(repeated))
            XCTAssertEqual(snapshot(state), before)
        }
        XCTAssertThrowsSlayError(.invalidArgument, try step(slots.map { $0 == Int32(n + 9) ? -1 : $0 }))
        XCTAssertEqual(assertEveryAllocationFails("step") { try step(slots) }, 0)
        XCTAssertTrue(state.decodeWorkspaces.allSatisfy { $0.slotMarks.allSatisfy { $0 == 0 } }, "marks left set")
        XCTAssertEqual(Array(state.positions[10...]), [Int64](repeating: 4, count: n))
        XCTAssertEqual(Array(state.positions[0..<10]), [Int64](repeating: 3, count: 10))
        XCTAssertThrowsSlayError(.invalidArgument, try step(slots.map { _ in 3 }))
        // More slots than the state has must repeat one.
        let many = [Int32](repeating: 0, count: n + 11)
        XCTAssertThrowsSlayError(.invalidArgument, try many.withUnsafeBufferPointer {
            try state.checkSlots(SlotList(pointer: $0.baseAddress, count: n + 11), sequences: n + 11)
        })
    }

    func testLoadAndRestore() throws {
        let map = try HadamardExpFeatureMap(ClassicMapConfiguration(headDim: 3))
        let state = try warmState(map, slots: 4, dv: 2)
        let size = try StateBlob.size(of: state)
        let blob = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { blob.deallocate() }
        _ = try StateBlob.write(state, to: blob)
        assertEveryAllocationFails("load") { _ = try StateBlob.load(map: map, from: UnsafeRawBufferPointer(blob)) }
        let target = try RecurrentState(map: map, numSequences: 4, valueDim: 2)
        let before = snapshot(target)
        let made = assertEveryAllocationFails("restore", { try StateBlob.restore(target, from: UnsafeRawBufferPointer(blob)) },
                                              untouched: { XCTAssertEqual(snapshot(target), before) })
        XCTAssertEqual(made, 0, "restore writes in place")
        XCTAssertEqual(snapshot(target), snapshot(state))
    }
}
