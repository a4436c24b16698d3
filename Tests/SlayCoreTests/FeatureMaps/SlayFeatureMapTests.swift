import Foundation
import XCTest
@testable import SlayCore

/// SlayFeatureMap against its float64 twin (docs/math.md §1), its estimator limit, parameters and
/// configuration checks.
final class SlayFeatureMapTests: XCTestCase {
    private func rows(_ count: Int, _ d: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        var values = generator.floats(count * d, in: -2...2)
        values.replaceSubrange(0..<d, with: [Float](repeating: 0, count: d))   // a zero row maps to 0
        return values
    }

    private func assertMatchesTwin(_ map: SlayFeatureMap, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let twin = try SlayFeatureTwin(map: map)
        XCTAssertEqual(map.featureDim, twin.featureDim, message, file: file, line: line)
        let d = map.headDim
        let input = rows(9, d, seed: UInt64(map.featureDim))
        for head in 0..<map.numHeads {
            for role in [FeatureRole.query, .key] {
                let actual = map.computeFeatures(input, head: head, role: role)
                var expected: [Double] = []
                for i in 0..<9 { expected += twin.features(Array(input[(i * d)..<((i + 1) * d)]), head: head) }
                let scale = expected.map(abs).max() ?? 1
                XCTAssertClose(actual, expected, relative: 1e-4, absolute: 1e-6 * scale,
                               "\(message), head \(head), role \(role)", file: file, line: line)
            }
        }
    }

    func testFeaturesMatchFloat64Twin() throws {
        for polynomial in [SlayPolynomial.anchor, .exact, .exactFull] {
            for nodes in [1, 2, 3] {
                for (d, heads, p, m) in [(1, 1, 1, 1), (3, 2, 5, 4), (6, 1, 8, 7)] {
                    let map = try SlayFeatureMap(SlayConfiguration(
                        headDim: d, numHeads: heads, nodes: nodes, polynomial: polynomial, polyDim: p, prfDim: m,
                        eps: 1e-3, seed: UInt64(nodes * 10 + d)))
                    try assertMatchesTwin(map, "\(polynomial) R=\(nodes) d=\(d) H=\(heads) P=\(p) M=\(m)")
                }
            }
        }
    }

    func testFeatureDimensionIsRTimesPPrimeTimesM() throws {
        let d = 5
        for (polynomial, polyFeatures) in [(SlayPolynomial.anchor, 6), (.exact, 15), (.exactFull, 25)] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: d, nodes: 3, polynomial: polynomial, polyDim: 6, prfDim: 4))
            XCTAssertEqual(map.featureDim, 3 * polyFeatures * 4, "\(polynomial)")
            XCTAssertEqual(map.configuration.polyFeatures, polyFeatures)
        }
    }

    /// The clamp of the PRF exponent to [−c, c] (visible with a small c and large ω).
    func testClampedExponentsMatchTwin() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 4, nodes: 2, polynomial: .exact, prfDim: 6, prfClamp: 0.5))
        let omega = (0..<map.parameterValues("omega")!.count).map { Float($0 % 7) - 3 }
        try omega.withUnsafeBufferPointer { try map.setParameter("omega", values: $0) }
        try assertMatchesTwin(map, "clamp 0.5")
    }

    func testAnchorFeaturesAreNonNegative() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 6, numHeads: 2, nodes: 3, polynomial: .anchor, polyDim: 8, prfDim: 8, seed: 3))
        XCTAssertTrue(map.isPositive)
        for head in 0..<2 {
            let features = map.computeFeatures(rows(20, 6, seed: 11), head: head)
            XCTAssertTrue(features.allSatisfy { $0 >= 0 && $0.isFinite }, "head \(head)")
        }
    }

    /// Exact polynomial features are signed (off-diagonal u_a·u_b), but every kernel value
    /// φ(q)·φ(k) = Σ_r w_r x² (prf·prf) is ≥ 0.
    func testExactKernelValuesAreNonNegative() throws {
        for polynomial in [SlayPolynomial.exact, .exactFull] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: 5, nodes: 2, polynomial: polynomial, prfDim: 4, seed: 8))
            XCTAssertFalse(map.isPositive)
            let m = map.featureDim
            let q = map.computeFeatures(rows(12, 5, seed: 1), head: 0).map(Double.init)
            let k = map.computeFeatures(rows(12, 5, seed: 2), head: 0).map(Double.init)
            for i in 0..<12 {
                for j in 0..<12 {
                    var dot = 0.0, scale = 0.0
                    for f in 0..<m { dot += q[i * m + f] * k[j * m + f]; scale += abs(q[i * m + f] * k[j * m + f]) }
                    XCTAssertGreaterThanOrEqual(dot, -1e-6 * scale, "\(polynomial) pair (\(i), \(j))")
                }
            }
        }
    }

    /// Exact-poly ⊗ PRF is unbiased for the quadrature kernel Σ_r w_r x² e^{2 s_r x} (docs/math.md §1).
    /// The PRF variance grows like e^{4 s_r (1 + x)}/M, so the cosines stay where M = 8192 per
    /// head, averaged over 16 heads, gives a relative error far below 5%.
    func testExactPolyKernelApproachesQuadratureKernel() throws {
        try skipUnderSanitizer("40 s under ASan; a slowly converging estimate with 8192 features")
        let (d, heads, m) = (3, 16, 8192)
        for (nodes, cosines) in [(1, [-0.8, -0.3, 0.0, 0.3, 0.6]), (2, [-0.8, -0.4, 0.0, 0.1])] {
            let map = try SlayFeatureMap(SlayConfiguration(headDim: d, numHeads: heads, nodes: nodes,
                                                           polynomial: .exact, prfDim: m, eps: 1e-6, seed: 31))
            let kernel = try SphericalYatKernel(eps: 1e-6)
            for x in cosines {
                // q = e0, k = x e0 + √(1 − x²) e1, scaled (features see only directions).
                let q: [Float] = [2, 0, 0]
                let k: [Float] = [Float(0.5 * x), Float(0.5 * (1 - x * x).squareRoot()), 0]
                var estimate = 0.0
                for head in 0..<heads {
                    let fq = map.computeFeatures(q, head: head)
                    let fk = map.computeFeatures(k, head: head, role: .key)
                    estimate += zip(fq, fk).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                }
                estimate /= Double(heads)
                let expected = try kernel.quadratureValue(cosine: x, nodes: nodes)
                if x == 0 {
                    XCTAssertEqual(estimate, 0, accuracy: 1e-6, "R = \(nodes)")
                } else {
                    XCTAssertEqual(estimate / expected, 1, accuracy: 0.05, "R = \(nodes), x = \(x)")
                }
            }
        }
    }

    /// Same seed, same map: ω is normal(i) of stream 2 and anchors are the unit rows of stream 1.
    func testParametersComeFromTheDocumentedGenerator() throws {
        let configuration = SlayConfiguration(headDim: 5, numHeads: 3, nodes: 2, polynomial: .anchor, polyDim: 4, prfDim: 6, seed: 1234)
        let map = try SlayFeatureMap(configuration)
        let generator = ParameterGenerator(seed: 1234)
        XCTAssertEqual(map.parameterValues("omega"), generator.normals(stream: 2, count: 2 * 3 * 5 * 6))
        XCTAssertEqual(map.parameterValues("anchors"), generator.unitRows(stream: 1, rows: 4, cols: 5))
        XCTAssertEqual(map.parameterShape("omega"), [2, 3, 5, 6])
        XCTAssertEqual(map.parameterShape("anchors"), [4, 5])
        XCTAssertEqual(map.parameterNames, ["anchors", "omega"])
        let again = try SlayFeatureMap(configuration)
        XCTAssertEqual(again.identity, map.identity)
        var other = configuration
        other.seed = 1235
        XCTAssertNotEqual(try SlayFeatureMap(other).identity, map.identity)
        let exact = try SlayFeatureMap(SlayConfiguration(headDim: 5, polynomial: .exact))
        XCTAssertEqual(exact.parameterNames, ["omega"])
        XCTAssertNil(exact.parameterShape("anchors"))
        XCTAssertNil(exact.parameterValues("anchors"))
    }

    func testSetParameterValidation() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, nodes: 1, polynomial: .anchor, polyDim: 2, prfDim: 2, seed: 9))
        let identity = map.identity
        let anchors = map.parameterValues("anchors")!
        func set(_ name: String, _ values: [Float]) throws {
            try values.withUnsafeBufferPointer { try map.setParameter(name, values: $0) }
        }
        XCTAssertThrowsSlayError(.invalidArgument, try set("gamma", [Float](repeating: 0, count: 6)))
        XCTAssertThrowsSlayError(.invalidArgument, try set("", []))
        XCTAssertThrowsSlayError(.shape, try set("anchors", [1, 2, 3, 4, 5]))
        XCTAssertThrowsSlayError(.shape, try set("anchors", [Float](repeating: 1, count: 7)))
        XCTAssertThrowsSlayError(.shape, try set("omega", []))
        for bad in [Float.nan, .infinity, -.infinity] {
            XCTAssertThrowsSlayError(.invalidArgument, try set("anchors", [1, 0, 0, 0, bad, 0]), "\(bad)")
            XCTAssertThrowsSlayError(.invalidArgument, try set("omega", [0, 0, 0, 0, 0, bad]), "\(bad)")
        }
        // Failed calls change nothing.
        XCTAssertEqual(map.identity, identity)
        XCTAssertEqual(map.parameterValues("anchors"), anchors)
        let exact = try SlayFeatureMap(SlayConfiguration(headDim: 3, polynomial: .exact))
        XCTAssertThrowsSlayError(.invalidArgument,
                                 try [Float](repeating: 1, count: 6).withUnsafeBufferPointer { try exact.setParameter("anchors", values: $0) })
    }

    /// New anchors are used as given (not renormalised) and change the identity; restoring the
    /// old values restores it.
    func testSetParameterChangesIdentityAndFeatures() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 3, numHeads: 2, nodes: 2, polynomial: .anchor, polyDim: 2, prfDim: 3, seed: 9))
        let identity = map.identity
        let original = map.parameterValues("anchors")!
        let before = map.computeFeatures(rows(4, 3, seed: 5), head: 1)
        let replacement: [Float] = [3, 0, 0, 0.5, 0.5, 0]   // not unit rows
        try replacement.withUnsafeBufferPointer { try map.setParameter("anchors", values: $0) }
        XCTAssertEqual(map.parameterValues("anchors"), replacement)
        XCTAssertNotEqual(map.identity, identity)
        XCTAssertNotEqual(map.computeFeatures(rows(4, 3, seed: 5), head: 1), before)
        try assertMatchesTwin(map, "anchors as given")

        let omega = map.parameterValues("omega")!.map { $0 * 0.5 }
        let afterAnchors = map.identity
        try omega.withUnsafeBufferPointer { try map.setParameter("omega", values: $0) }
        XCTAssertNotEqual(map.identity, afterAnchors)
        try assertMatchesTwin(map, "new omega")

        try original.withUnsafeBufferPointer { try map.setParameter("anchors", values: $0) }
        let doubled = omega.map { $0 * 2 }
        try doubled.withUnsafeBufferPointer { try map.setParameter("omega", values: $0) }
        XCTAssertEqual(map.identity, identity)
        XCTAssertEqual(map.computeFeatures(rows(4, 3, seed: 5), head: 1), before)
    }

    func testConfigurationValidation() {
        func assertThrows(_ status: SlayStatus, _ edit: (inout SlayConfiguration) -> Void, _ label: String,
                          line: UInt = #line) {
            var configuration = SlayConfiguration(headDim: 4)
            edit(&configuration)
            XCTAssertThrowsSlayError(status, try configuration.validate(), label, line: line)
            XCTAssertThrowsSlayError(status, try SlayFeatureMap(configuration), label, line: line)
        }
        assertThrows(.shape, { $0.headDim = 0 }, "head_dim 0")
        assertThrows(.shape, { $0.headDim = -3 }, "head_dim -3")
        assertThrows(.shape, { $0.headDim = 65537 }, "head_dim 65537")
        assertThrows(.shape, { $0.numHeads = 0 }, "num_heads 0")
        assertThrows(.shape, { $0.prfDim = 0 }, "prf_dim 0")
        assertThrows(.shape, { $0.polyDim = 0 }, "poly_dim 0")
        assertThrows(.invalidArgument, { $0.nodes = 0 }, "nodes 0")
        assertThrows(.invalidArgument, { $0.nodes = 65 }, "nodes 65")
        assertThrows(.invalidArgument, { $0.eps = .nan }, "eps NaN")
        assertThrows(.invalidArgument, { $0.eps = 0 }, "eps 0")
        assertThrows(.invalidArgument, { $0.eps = -1 }, "eps -1")
        assertThrows(.invalidArgument, { $0.eps = .infinity }, "eps inf")
        assertThrows(.invalidArgument, { $0.prfClamp = .nan }, "clamp NaN")
        assertThrows(.invalidArgument, { $0.prfClamp = 0 }, "clamp 0")
        // m = R·P'·M above 2^24.
        assertThrows(.overflow, { $0.nodes = 2; $0.polyDim = 4096; $0.prfDim = 4096 }, "anchor m = 2^25")
        assertThrows(.overflow, { $0.headDim = 65536; $0.polynomial = .exact; $0.prfDim = 1; $0.nodes = 1 }, "exact d = 65536")
        assertThrows(.overflow, { $0.headDim = 8192; $0.polynomial = .exactFull; $0.prfDim = 1; $0.nodes = 1 }, "exact_full d = 8192")
        // ω = R·H·d·M floats above 2^31.
        assertThrows(.overflow, { $0.headDim = 65536; $0.numHeads = 65536; $0.polyDim = 1; $0.prfDim = 1; $0.nodes = 1 }, "omega 2^32")
        // poly_dim is ignored by the exact polynomials.
        var exact = SlayConfiguration(headDim: 4, polynomial: .exact, polyDim: 0)
        XCTAssertNoThrow(try exact.validate())
        exact.polynomial = .exactFull
        XCTAssertNoThrow(try exact.validate())
        // The largest allowed m is exactly 2^24.
        XCTAssertNoThrow(try SlayConfiguration(headDim: 4, nodes: 1, polyDim: 4096, prfDim: 4096).validate())
    }

    /// The anchor matrix (P, d) is a parameter array like ω, so its size must be bounded the same
    /// way (ω is capped at 2^31 floats); P = d = 65536 asks for 2^32 floats (16 GiB).
    func testAnchorParameterCountIsBounded() {
        let configuration = SlayConfiguration(headDim: 65536, numHeads: 1, nodes: 1, polynomial: .anchor,
                                              polyDim: 65536, prfDim: 1)
        // Only validate(): creating the map would try to allocate the 16 GiB.
        XCTAssertThrowsSlayError(.overflow, try configuration.validate(), "anchors P·d = 2^32 floats")
    }
}

/// Floating settings are validated in the precision the kernels use them in (fp32).
final class SlayFloatSettingTests: XCTestCase {
    func testSettingsThatAreNotFiniteAndPositiveInFloat32AreRefused() throws {
        for value in [1e39, 1e-50, -1e-50, Double.greatestFiniteMagnitude] {
            XCTAssertThrowsSlayError(.invalidArgument, try SlayFeatureMap(SlayConfiguration(headDim: 4, eps: value)), "eps \(value)")
            XCTAssertThrowsSlayError(.invalidArgument, try SlayFeatureMap(SlayConfiguration(headDim: 4, prfClamp: value)), "prf_clamp \(value)")
            XCTAssertThrowsSlayError(.invalidArgument, try YatTaylorFeatureMap(YatTaylorConfiguration(headDim: 4, eps: value)), "taylor eps \(value)")
        }
        // The extremes that survive the rounding stay accepted.
        XCTAssertNoThrow(try SlayFeatureMap(SlayConfiguration(headDim: 4, eps: 1e38, prfClamp: 3e38)))
        XCTAssertNoThrow(try SlayFeatureMap(SlayConfiguration(headDim: 4, eps: 1e-40)))
    }
}
