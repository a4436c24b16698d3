import XCTest
@testable import SlayCore

/// Creating and re-parameterising SLAY maps allocates only fallibly: with each allocation failing
/// in turn, create and set_param throw SlayError(.outOfMemory), and a failed set_param leaves the
/// map as it was (identity and parameters).
final class SlayPolynomialAllocationTests: XCTestCase {
    private func check(_ polynomial: SlayPolynomial, polyDim: Int, parameter: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let configuration = SlayConfiguration(headDim: 5, numHeads: 2, nodes: 2, polynomial: polynomial, polyDim: polyDim)
        let made = assertEveryAllocationFails("create \(polynomial)", file: file, line: line) {
            _ = try SlayFeatureMap(configuration)
        }
        XCTAssertGreaterThan(made, 3, file: file, line: line)
        let map = try SlayFeatureMap(configuration)
        let other = try SlayFeatureMap(SlayConfiguration(headDim: 5, numHeads: 2, nodes: 2, polynomial: polynomial,
                                                         polyDim: polyDim, seed: 99))
        let replacement = try XCTUnwrap(other.parameterValues(parameter))
        let (identity, values) = (map.identity, map.parameterValues(parameter))
        assertEveryAllocationFails("set_param \(parameter) of \(polynomial)", file: file, line: line, {
            try replacement.withUnsafeBufferPointer { try map.setParameter(parameter, values: $0) }
        }, untouched: {
            XCTAssertEqual(map.identity, identity, file: file, line: line)
            XCTAssertEqual(map.parameterValues(parameter), values, file: file, line: line)
        })
        XCTAssertEqual(map.parameterValues(parameter), replacement, file: file, line: line)
    }

    func testTensorSketch() throws { try check(.tensorSketch, polyDim: 7, parameter: "sketch") }
    func testNystrom() throws { try check(.nystrom, polyDim: 9, parameter: "anchors") }
    func testAnchorAndMaclaurin() throws {
        try check(.anchor, polyDim: 4, parameter: "anchors")
        try check(.randomMaclaurin, polyDim: 4, parameter: "maclaurin")
        try check(.anchor, polyDim: 4, parameter: "omega")
    }
}
