import XCTest
@testable import SlayCore

/// The one fallible allocator and its fault-injection hook (AllocationFaults): an armed failure
/// hits exactly the chosen allocation, once, as SlayError(.outOfMemory).
final class FallibleMemoryTests: XCTestCase {
    func testAnArmedFailureHitsTheChosenAllocationOnce() throws {
        let (injected, error) = AllocationFaults.run(failingAfter: 2) {
            _ = try HeapArray<Float>(count: 4)
            _ = try ScratchBuffer(floats: 4)
            XCTAssertThrowsSlayError(.outOfMemory, try HeapArray<Int>(count: 4, what: "third"))
            _ = try HeapArray<Float>(count: 4)
        }
        XCTAssertTrue(injected)
        XCTAssertNil(error)
        // Disarmed afterwards.
        XCTAssertEqual(try HeapArray<Float>(count: 3).count, 3)
    }

    func testAnUnusedArmingInjectsNothing() {
        let (injected, error) = AllocationFaults.run(failingAfter: 5) { _ = try ScratchBuffer(floats: 1) }
        XCTAssertFalse(injected)
        XCTAssertNil(error)
    }

    func testReallocateKeepsTheContentsAndFailsWithAStatus() throws {
        let memory = try FallibleMemory.allocate(bytes: 8, what: "test")
        memory.storeBytes(of: 0x1234_5678_9ABC_DEF0 as UInt64, as: UInt64.self)
        let (injected, error) = AllocationFaults.run(failingAfter: 0) {
            _ = try FallibleMemory.reallocate(memory, bytes: 64, what: "test")
        }
        XCTAssertTrue(injected)
        XCTAssertEqual((error as? SlayError)?.status, .outOfMemory)
        // The original block is still valid after a failed reallocation.
        let grown = try FallibleMemory.reallocate(memory, bytes: 64, what: "test")
        XCTAssertEqual(grown.load(as: UInt64.self), 0x1234_5678_9ABC_DEF0)
        free(grown)
        XCTAssertThrowsSlayError(.outOfMemory, try FallibleMemory.allocate(bytes: 1 << 60, what: "too much"))
    }
}
