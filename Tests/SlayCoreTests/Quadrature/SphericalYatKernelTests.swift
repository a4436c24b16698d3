import Foundation
import XCTest
@testable import SlayCore

/// SphericalYatKernel: E(x) = x²/(C − 2x), C = 2 + ε, and its Gauss–Laguerre quadrature (docs/math.md §1).
final class SphericalYatKernelTests: XCTestCase {
    /// docs/math.md §1, "Quadrature is not uniformly accurate": quadrature / exact at ε = 1e-6.
    func testQuadratureToExactRatioTable() throws {
        let cosines = [0.3, 0.6, 0.9, 0.99, 0.999]
        let table: [(nodes: Int, ratios: [Double])] = [
            (1, [0.945, 0.729, 0.246, 0.027, 0.003]),
            (2, [0.998, 0.940, 0.461, 0.058, 0.006]),
            (4, [1.000, 0.997, 0.737, 0.122, 0.013]),
            (8, [1.000, 1.000, 0.941, 0.243, 0.027]),
            (32, [1.000, 1.000, 1.000, 0.699, 0.113]),
        ]
        let kernel = try SphericalYatKernel(eps: 1e-6)
        for (nodes, ratios) in table {
            for (x, expected) in zip(cosines, ratios) {
                let ratio = try kernel.quadratureValue(cosine: x, nodes: nodes) / kernel.value(cosine: x)
                // The table is rounded to 3 decimals.
                XCTAssertEqual(ratio, expected, accuracy: 0.0005 + 1e-9, "R = \(nodes), x = \(x)")
            }
        }
    }

    func testValueAndRange() throws {
        let kernel = try SphericalYatKernel(eps: 1e-6)
        XCTAssertEqual(kernel.c, 2 + 1e-6)
        XCTAssertEqual(kernel.value(cosine: 0), 0)
        XCTAssertEqual(kernel.value(cosine: 1), 1 / 1e-6, accuracy: 1e-3)
        XCTAssertEqual(kernel.value(cosine: -1), 1 / (4 + 1e-6), accuracy: 1e-15)
        XCTAssertEqual(kernel.value(cosine: 0.5), 0.25 / (1 + 1e-6), accuracy: 1e-15)
    }

    /// s_r = t_r / C and w_r = α_r / C.
    func testQuadratureNodesAreRuleOverC() throws {
        let kernel = try SphericalYatKernel(eps: 0.25)
        let rule = try GaussLaguerreRule(count: 5)
        let (s, w) = try kernel.quadrature(nodes: 5)
        for r in 0..<5 {
            XCTAssertEqual(s[r], rule.nodes[r] / 2.25, accuracy: 1e-15 * max(1, s[r]))
            XCTAssertEqual(w[r], rule.weights[r] / 2.25, accuracy: 1e-15)
        }
    }

    /// Away from x → 1 many nodes reproduce the kernel: the Laplace integral is right.
    func testManyNodesConvergeForModerateCosines() throws {
        let kernel = try SphericalYatKernel(eps: 1e-3)
        for x in [-1.0, -0.5, 0.1, 0.5, 0.7] {
            let value = try kernel.quadratureValue(cosine: x, nodes: 64)
            XCTAssertEqual(value / kernel.value(cosine: x), 1, accuracy: 1e-6, "x = \(x)")
        }
    }

    func testBadEpsThrows() {
        for eps in [0.0, -1e-6, -.infinity, .infinity, .nan] {
            XCTAssertThrowsSlayError(.invalidArgument, try SphericalYatKernel(eps: eps), "eps = \(eps)")
        }
    }

    func testBadNodeCountThrows() throws {
        let kernel = try SphericalYatKernel(eps: 1e-6)
        XCTAssertThrowsSlayError(.invalidArgument, try kernel.quadrature(nodes: 0))
        XCTAssertThrowsSlayError(.invalidArgument, try kernel.quadratureValue(cosine: 0.5, nodes: 65))
    }
}
