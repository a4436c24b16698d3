import Foundation
import XCTest
@testable import SlayCore

/// ParameterGenerator: the documented, reproducible generator of slay.h ("Parameter generator").
final class ParameterGeneratorTests: XCTestCase {
    /// The header's formula, written out again here (wrapping arithmetic mod 2^64).
    private func referenceSplitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private func referenceNormal(seed: UInt64, stream: UInt64, index: UInt64) -> Double {
        let key = referenceSplitmix64(seed ^ referenceSplitmix64(stream))
        let a = referenceSplitmix64(key &+ 2 &* index)
        let b = referenceSplitmix64(key &+ 2 &* index &+ 1)
        let u1 = Double((a >> 11) + 1) * pow(2.0, -53)
        let u2 = Double(b >> 11) * pow(2.0, -53)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    func testSplitmix64KnownValues() {
        // Vigna's splitmix64 stream from state 0: the first two outputs.
        XCTAssertEqual(ParameterGenerator.splitmix64(0), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(ParameterGenerator.splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4)
        // Computed from the formula (and checked with Python's arbitrary-precision integers).
        XCTAssertEqual(ParameterGenerator.splitmix64(1), 0x910A_2DEC_8902_5CC1)
        XCTAssertEqual(ParameterGenerator.splitmix64(2), 0x9758_35DE_1C97_56CE)
        XCTAssertEqual(ParameterGenerator.splitmix64(12345), 0x2211_8258_A9D1_11A0)
        for x: UInt64 in [0, 1, 2, 12345, .max, 0x8000_0000_0000_0000, 0xDEAD_BEEF_CAFE_F00D] {
            XCTAssertEqual(ParameterGenerator.splitmix64(x), referenceSplitmix64(x), "x = \(x)")
        }
    }

    func testKeyAndNormalFollowTheDocumentedFormula() {
        for seed: UInt64 in [0, 1, 42, .max] {
            let generator = ParameterGenerator(seed: seed)
            for stream: UInt64 in [ParameterGenerator.anchorStream, ParameterGenerator.omegaStream] {
                XCTAssertEqual(generator.key(stream: stream), referenceSplitmix64(seed ^ referenceSplitmix64(stream)))
                for index: UInt64 in [0, 1, 2, 1000, 123_456_789] {
                    XCTAssertEqual(generator.normal(stream: stream, index: index),
                                   referenceNormal(seed: seed, stream: stream, index: index),
                                   accuracy: 1e-14, "seed \(seed) stream \(stream) index \(index)")
                }
            }
        }
        XCTAssertEqual(ParameterGenerator.anchorStream, 1)
        XCTAssertEqual(ParameterGenerator.omegaStream, 2)
    }

    func testNormalsAreNormalRoundedToFloat() {
        let generator = ParameterGenerator(seed: 7)
        let values = generator.normals(stream: 2, count: 257)
        for i in 0..<values.count {
            XCTAssertEqual(values[i], Float(generator.normal(stream: 2, index: UInt64(i))), "index \(i)")
        }
        XCTAssertEqual(generator.normals(stream: 2, count: 0), [])
    }

    func testDeterministicAndSeedAndStreamDependent() {
        let a = ParameterGenerator(seed: 99).normals(stream: 1, count: 64)
        let b = ParameterGenerator(seed: 99).normals(stream: 1, count: 64)
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        XCTAssertNotEqual(a, ParameterGenerator(seed: 100).normals(stream: 1, count: 64))
        XCTAssertNotEqual(a, ParameterGenerator(seed: 99).normals(stream: 2, count: 64))
        // Counter-based: a longer request extends a shorter one.
        XCTAssertEqual(Array(ParameterGenerator(seed: 99).normals(stream: 1, count: 100).prefix(64)), a)
    }

    func testSampleMeanAndVarianceOfNormals() {
        let count = 100_000
        let values = ParameterGenerator(seed: 2024).normals(stream: 2, count: count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(count)
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(count - 1)
        // Standard errors: 1/√n ≈ 0.0032 for the mean, √(2/n) ≈ 0.0045 for the variance.
        XCTAssertEqual(mean, 0, accuracy: 0.015)
        XCTAssertEqual(variance, 1, accuracy: 0.025)
        XCTAssertTrue(values.allSatisfy { $0.isFinite })
        // Fourth moment of a standard normal is 3 (catches a uniform or a wrong Box–Muller).
        let fourth = values.reduce(0.0) { $0 + pow(Double($1) - mean, 4) } / Double(count)
        XCTAssertEqual(fourth, 3, accuracy: 0.15)
    }

    func testUnitRowsHaveNormOneAndAreNormalisedNormals() {
        let (rows, cols) = (13, 7)
        let generator = ParameterGenerator(seed: 5)
        let unit = generator.unitRows(stream: 1, rows: rows, cols: cols)
        let raw = generator.normals(stream: 1, count: rows * cols)
        XCTAssertEqual(unit.count, rows * cols)
        for r in 0..<rows {
            let row = raw[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            var unitNorm = 0.0
            for c in 0..<cols {
                XCTAssertEqual(unit[r * cols + c], Float(row[c] / norm), "row \(r) col \(c)")
                unitNorm += Double(unit[r * cols + c]) * Double(unit[r * cols + c])
            }
            XCTAssertEqual(unitNorm.squareRoot(), 1, accuracy: 1e-6, "row \(r)")
        }
    }
}
