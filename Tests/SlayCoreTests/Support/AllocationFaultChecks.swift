import XCTest
@testable import SlayCore

/// Fails each fallible allocation of `body` in turn (AllocationFaults): the first, then the
/// second, … until `body` runs with no allocation left to fail. Every injected failure must come
/// out as SlayError(.outOfMemory), and `untouched` (checks that outputs and state are as before)
/// must hold after each. Returns the number of allocations `body` made.
@discardableResult
func assertEveryAllocationFails(_ label: String, file: StaticString = #filePath, line: UInt = #line,
                                _ body: () throws -> Void, untouched: () -> Void = {}) -> Int {
    var allocations = 0
    while allocations < 10_000 {
        let (injected, error) = AllocationFaults.run(failingAfter: allocations, body)
        guard injected else {
            XCTAssertNil(error, "\(label): fails with no injected failure", file: file, line: line)
            return allocations
        }
        guard let error = error as? SlayError else {
            XCTFail("\(label): allocation \(allocations) failed but the call did not throw a SlayError (\(String(describing: error)))",
                    file: file, line: line)
            return allocations
        }
        XCTAssertEqual(error.status, .outOfMemory, "\(label), allocation \(allocations): \(error.message)", file: file, line: line)
        untouched()
        allocations += 1
    }
    XCTFail("\(label): more than 10000 allocations", file: file, line: line)
    return allocations
}
