import CSlay
import XCTest
@testable import SlayCABI
@testable import SlayCore

/// slay.h "Versions" and "Status codes and errors": the runtime values agree with the macros.
final class StatusAndVersionTests: XCTestCase {
    func testVersionFunctionsAgreeWithMacros() {
        XCTAssertEqual(String(cString: SlayCABI.slay_version_string()),
                       "\(SLAY_VERSION_MAJOR).\(SLAY_VERSION_MINOR).\(SLAY_VERSION_PATCH)")
        XCTAssertEqual(SlayCABI.slay_version_number(),
                       Int32(SLAY_VERSION_MAJOR * 10000 + SLAY_VERSION_MINOR * 100 + SLAY_VERSION_PATCH))
        XCTAssertEqual(SlayCABI.slay_abi_version(), Int32(SLAY_ABI_VERSION))
        // The Swift core's own constants are the same numbers.
        XCTAssertEqual(SlayVersion.major, Int(SLAY_VERSION_MAJOR))
        XCTAssertEqual(SlayVersion.minor, Int(SLAY_VERSION_MINOR))
        XCTAssertEqual(SlayVersion.patch, Int(SLAY_VERSION_PATCH))
        XCTAssertEqual(SlayVersion.abi, Int(SLAY_ABI_VERSION))
        XCTAssertEqual(SlayVersion.string, String(cString: SlayCABI.slay_version_string()))
        // A static string: the same pointer every call.
        XCTAssertEqual(SlayCABI.slay_version_string(), SlayCABI.slay_version_string())
    }

    private let codes: [Int32] = [
        SLAY_OK, SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_SHAPE, SLAY_ERR_LAYOUT, SLAY_ERR_DTYPE, SLAY_ERR_OVERFLOW,
        SLAY_ERR_OUT_OF_MEMORY, SLAY_ERR_CORRUPT_DATA, SLAY_ERR_VERSION_MISMATCH, SLAY_ERR_UNSUPPORTED,
        SLAY_ERR_BUFFER_TOO_SMALL, SLAY_ERR_INTERNAL, SLAY_ERR_STATE_MISMATCH, SLAY_ERR_NON_FINITE,
    ]

    func testStatusCodesAreTheStableNumbers() {
        XCTAssertEqual(codes, [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13])
        for code in codes {
            XCTAssertEqual(SlayStatus(rawValue: code)?.rawValue, code, "SlayStatus lacks \(code)")
        }
    }

    func testEveryStatusStringIsDistinctAndNamed() {
        var seen: [String: Int32] = [:]
        for code in codes {
            let pointer = SlayCABI.slay_status_string(code)
            let text = String(cString: pointer)
            XCTAssertFalse(text.isEmpty, "code \(code)")
            XCTAssertNotEqual(text, "unknown status", "code \(code)")
            XCTAssertNil(seen[text], "codes \(seen[text] ?? 0) and \(code) share '\(text)'")
            seen[text] = code
            XCTAssertEqual(text, SlayStatus(rawValue: code)?.name, "C and Swift names of \(code) differ")
            XCTAssertEqual(SlayCABI.slay_status_string(code), pointer, "not a static string: \(code)")
        }
        XCTAssertEqual(String(cString: SlayCABI.slay_status_string(SLAY_OK)), "ok")
        XCTAssertEqual(String(cString: SlayCABI.slay_status_string(SLAY_ERR_INVALID_ARGUMENT)), "invalid argument")
    }

    func testUnknownCodesGiveUnknownStatus() {
        for code: Int32 in [1, -14, 100, -100, .max, .min] {
            XCTAssertEqual(String(cString: SlayCABI.slay_status_string(code)), "unknown status", "code \(code)")
        }
    }

    func testErrorMessageBufferSize() {
        XCTAssertEqual(Int(SLAY_ERROR_MESSAGE_SIZE), 256)
        XCTAssertEqual(MemoryLayout.size(ofValue: slay_error().message), 256)
    }
}
