import Foundation
import XCTest
@testable import SlayCore

/// GaussLaguerreRule: the R-point rule ∫₀^∞ e^{−t} f(t) dt ≈ Σ α_r f(t_r) (slay.h, slay_gauss_laguerre).
final class GaussLaguerreTests: XCTestCase {
    func testOneNodeIsTOneWeightOne() throws {
        let rule = try GaussLaguerreRule(count: 1)
        XCTAssertEqual(rule.nodes.count, 1)
        XCTAssertEqual(rule.nodes[0], 1, accuracy: 1e-15)
        XCTAssertEqual(rule.weights[0], 1, accuracy: 1e-15)
    }

    func testTwoNodesMatchClosedForm() throws {
        // L_2(t) = (t² − 4t + 2)/2: t = 2 ∓ √2, α = (2 ± √2)/4.
        let rule = try GaussLaguerreRule(count: 2)
        let root2 = 2.0.squareRoot()
        XCTAssertEqual(rule.nodes[0], 2 - root2, accuracy: 1e-14)
        XCTAssertEqual(rule.nodes[1], 2 + root2, accuracy: 1e-14)
        XCTAssertEqual(rule.weights[0], (2 + root2) / 4, accuracy: 1e-14)
        XCTAssertEqual(rule.weights[1], (2 - root2) / 4, accuracy: 1e-14)
        // The values quoted in docs/math.md §1.
        XCTAssertEqual(rule.nodes[0], 0.5857864376, accuracy: 1e-10)
        XCTAssertEqual(rule.nodes[1], 3.4142135624, accuracy: 1e-10)
        XCTAssertEqual(rule.weights[0], 0.8535533906, accuracy: 1e-10)
        XCTAssertEqual(rule.weights[1], 0.1464466094, accuracy: 1e-10)
    }

    /// An R-point rule integrates t^k exactly for k ≤ 2R − 1: Σ α t^k = k!.
    func testMomentsAreFactorials() throws {
        for count in [3, 10, 32, 64] {
            let rule = try GaussLaguerreRule(count: count)
            var factorial = 1.0
            for power in 0...(2 * count - 1) {
                if power > 0 { factorial *= Double(power) }
                guard factorial.isFinite else { break }
                var moment = 0.0
                for r in 0..<count { moment += rule.weights[r] * pow(rule.nodes[r], Double(power)) }
                guard moment.isFinite else { break }
                XCTAssertEqual(moment / factorial, 1, accuracy: 1e-10, "R = \(count), k = \(power)")
            }
        }
    }

    func testWeightsSumToOneAndFirstMomentIsOne() throws {
        for count in [3, 10, 32, 64] {
            let rule = try GaussLaguerreRule(count: count)
            XCTAssertEqual(rule.weights.reduce(0, +), 1, accuracy: 1e-12, "R = \(count)")
            let first = zip(rule.weights, rule.nodes).reduce(0) { $0 + $1.0 * $1.1 }
            XCTAssertEqual(first, 1, accuracy: 1e-12, "R = \(count)")
        }
    }

    func testNodesAscendingPositiveWeightsPositive() throws {
        for count in [1, 2, 3, 10, 32, 64] {
            let rule = try GaussLaguerreRule(count: count)
            XCTAssertEqual(rule.nodes.count, count)
            XCTAssertEqual(rule.weights.count, count)
            XCTAssertGreaterThan(rule.nodes[0], 0, "R = \(count)")
            for r in 1..<count { XCTAssertGreaterThan(rule.nodes[r], rule.nodes[r - 1], "R = \(count), r = \(r)") }
            for r in 0..<count {
                XCTAssertTrue(rule.weights[r] > 0 && rule.weights[r].isFinite, "R = \(count), α_\(r) = \(rule.weights[r])")
            }
        }
    }

    /// Every node is a root of L_R (checked in double with the three-term recurrence, relative to
    /// the size of the recurrence terms).
    func testNodesAreRootsOfLaguerrePolynomial() throws {
        for count in [3, 10, 32] {
            let rule = try GaussLaguerreRule(count: count)
            for t in rule.nodes {
                var (previous, current, scale) = (0.0, 1.0, 1.0)
                for j in 0..<count {
                    let next = ((2 * Double(j) + 1 - t) * current - Double(j) * previous) / Double(j + 1)
                    scale = max(scale, abs(next), abs((2 * Double(j) + 1 - t) * current) / Double(j + 1))
                    (previous, current) = (current, next)
                }
                XCTAssertLessThan(abs(current) / scale, 1e-12, "R = \(count), t = \(t)")
            }
        }
    }

    func testNodeCountOutsideOneToSixtyFourThrows() {
        for count in [0, -1, 65, Int.max] {
            XCTAssertThrowsSlayError(.invalidArgument, try GaussLaguerreRule(count: count), "R = \(count)")
        }
    }
}
