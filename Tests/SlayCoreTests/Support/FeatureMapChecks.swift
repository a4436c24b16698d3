import XCTest
@testable import SlayCore

extension FeatureMap {
    /// Features of contiguous rows [rows, d] of `head` at positions firstPosition, … through the
    /// production path.
    func mapRows(_ rows: [Float], head: Int, role: FeatureRole = .query, firstPosition: Int = 0) -> [Float] {
        let count = rows.count / headDim
        var out = [Float](repeating: .nan, count: count * featureDim)
        var scratch = [Float](repeating: 0, count: max(scratchFloats(rows: count), 1))
        rows.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                scratch.withUnsafeMutableBufferPointer { work in
                    features(role: role, head: head, input: input.baseAddress!, rows: count, firstPosition: firstPosition,
                             output: output.baseAddress!, scratch: work.baseAddress!)
                }
            }
        }
        return out
    }

    func set(_ name: String, _ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try setParameter(name, values: $0) }
    }
}

/// The parameter contract every map with random matrices keeps: values come back bitwise, new
/// values change the identity and the features, restoring them restores both; wrong counts,
/// non-finite values and unknown names are refused.
func assertParameterRoundTrip(_ map: FeatureMap, file: StaticString = #filePath, line: UInt = #line) throws {
    let identity = map.identity
    let input = (0..<(3 * map.headDim)).map { Float(($0 * 7) % 5) * 0.3 - 0.6 }
    let before = map.mapRows(input, head: map.numHeads - 1, role: .key)
    for name in map.parameterNames {
        let original = map.parameterValues(name)!
        XCTAssertEqual(map.parameterShape(name)!.reduce(1, *), original.count, name, file: file, line: line)
        try map.set(name, original.map { $0 * 0.5 + 0.25 })
        XCTAssertNotEqual(map.identity, identity, name, file: file, line: line)
        XCTAssertNotEqual(map.mapRows(input, head: map.numHeads - 1, role: .key), before, name, file: file, line: line)
        try map.set(name, original)
        XCTAssertEqual(map.parameterValues(name)!, original, name, file: file, line: line)
        XCTAssertEqual(map.identity, identity, name, file: file, line: line)
        XCTAssertThrowsSlayError(.shape, try map.set(name, [Float](repeating: 0, count: original.count + 1)), name,
                                 file: file, line: line)
        var bad = original
        bad[0] = .nan
        XCTAssertThrowsSlayError(.invalidArgument, try map.set(name, bad), name, file: file, line: line)
    }
    XCTAssertThrowsSlayError(.invalidArgument, try map.set("nope", [1]), file: file, line: line)
    XCTAssertEqual(map.mapRows(input, head: map.numHeads - 1, role: .key), before, file: file, line: line)
}
