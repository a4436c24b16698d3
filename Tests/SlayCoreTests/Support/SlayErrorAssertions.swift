import XCTest
@testable import SlayCore

/// Asserts that `body` throws a SlayError with `status` and a non-empty message.
func XCTAssertThrowsSlayError<T>(_ status: SlayStatus, _ body: @autoclosure () throws -> T,
                                 _ message: @autoclosure () -> String = "",
                                 file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected SlayError(\(status)), nothing was thrown. \(message())", file: file, line: line)
    } catch let error as SlayError {
        XCTAssertEqual(error.status, status, "\(error.message). \(message())", file: file, line: line)
        XCTAssertFalse(error.message.isEmpty, "empty error message. \(message())", file: file, line: line)
    } catch {
        XCTFail("expected SlayError(\(status)), got \(error). \(message())", file: file, line: line)
    }
}

/// Elementwise |actual − expected| ≤ absolute + relative·|expected|; reports the worst element.
func XCTAssertClose(_ actual: [Float], _ expected: [Double], relative: Double, absolute: Double,
                    _ message: @autoclosure () -> String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "count differs. \(message())", file: file, line: line)
    var worst = 0.0, worstIndex = -1
    for i in 0..<min(actual.count, expected.count) {
        let a = Double(actual[i])
        guard a.isFinite else {
            XCTFail("element \(i) is \(a), expected \(expected[i]). \(message())", file: file, line: line)
            return
        }
        let excess = abs(a - expected[i]) / (absolute + relative * abs(expected[i]))
        if excess > worst { worst = excess; worstIndex = i }
    }
    if worst > 1 {
        XCTFail("element \(worstIndex): \(actual[worstIndex]) vs \(expected[worstIndex]) "
                + "(error \(worst)× tolerance). \(message())", file: file, line: line)
    }
}
