import Foundation
import XCTest

/// Skips a long numeric test when scripts/swift_test_asan.sh runs the suites under a sanitizer
/// (SLAY_TEST_SANITIZER set): it runs in the plain `swift test`, and exercises no memory handling
/// a sanitizer would check beyond what quicker tests already do. (`swift test --skip` cannot be
/// used there: listing the tests crashes inside the Swift runtime under ASan.)
func skipUnderSanitizer(_ reason: String) throws {
    if ProcessInfo.processInfo.environment["SLAY_TEST_SANITIZER"] != nil {
        throw XCTSkip("skipped under a sanitizer: \(reason)")
    }
}
