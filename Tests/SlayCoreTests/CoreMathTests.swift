import CSlayCPU
import XCTest
#if canImport(Glibc)
import Glibc
private func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
@testable import SlayCore
import SlayKernels
import SlayKernelsAVX2

/// SlayCore without the C layer: quadrature, the GEMM kernel against a double twin, and the
/// chunked engine against the quadratic form of the same features.
final class CoreMathTests: XCTestCase {
    func testGaussLaguerreClosedFormAndMoments() throws {
        let two = try GaussLaguerreRule(count: 2)
        XCTAssertEqual(two.nodes[0], 2 - 2.0.squareRoot(), accuracy: 1e-14)
        XCTAssertEqual(two.weights[1], (2 - 2.0.squareRoot()) / 4, accuracy: 1e-14)
        for n in [3, 10, 32] {
            let rule = try GaussLaguerreRule(count: n)
            var factorial = 1.0
            for power in 0..<min(2 * n, 20) {
                if power > 0 { factorial *= Double(power) }
                var moment = 0.0
                for r in 0..<n { moment += rule.weights[r] * pow(rule.nodes[r], Double(power)) }
                XCTAssertEqual(moment / factorial, 1, accuracy: 1e-9, "n=\(n) power=\(power)")
            }
        }
        XCTAssertThrowsError(try GaussLaguerreRule(count: 0))
        XCTAssertThrowsError(try GaussLaguerreRule(count: 65))
    }

    /// Both kernel builds, whatever the dispatcher picks (AVX2 only where the CPU has it).
    func testGemmMatchesDoubleTwin() {
        typealias Multiply = (Int, Int, Int, UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int,
                              UnsafeMutablePointer<Float>, Int, Bool, UnsafeMutablePointer<Float>) -> Void
        var variants: [(String, Multiply)] = [("portable", { SlayKernels.PackedGemm.multiply(m: $0, n: $1, k: $2, a: $3, rowStrideA: $4, columnStrideA: $5, b: $6, rowStrideB: $7, columnStrideB: $8, c: $9, ldc: $10, accumulate: $11, workspace: $12) })]
        if slaycpu_has_avx2_fma() != 0 {
            variants.append(("avx2", { SlayKernelsAVX2.PackedGemm.multiply(m: $0, n: $1, k: $2, a: $3, rowStrideA: $4, columnStrideA: $5, b: $6, rowStrideB: $7, columnStrideB: $8, c: $9, ldc: $10, accumulate: $11, workspace: $12) }))
        }
        for (name, multiply) in variants {
            checkGemm(name, multiply)
        }
    }

    func checkGemm(_ name: String, _ multiply: (Int, Int, Int, UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int,
                                                 UnsafeMutablePointer<Float>, Int, Bool, UnsafeMutablePointer<Float>) -> Void) {
        var generator = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (5, 17, 3), (33, 40, 300), (7, 600, 9), (64, 64, 512), (100, 70, 20)] {
            for transposedB in [false, true] {
                let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &generator) }
                let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &generator) }
                var c = [Float](repeating: 0.5, count: m * n)
                var workspace = [Float](repeating: 0, count: Gemm.workspaceFloats)
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in workspace.withUnsafeMutableBufferPointer { pw in
                        // transposedB reads B as the transpose of an (n × k) row-major matrix.
                        multiply(m, n, k, pa.baseAddress!, k, 1, pb.baseAddress!, transposedB ? 1 : n, transposedB ? k : 1,
                                 pc.baseAddress!, n, true, pw.baseAddress!)
                    } }
                } }
                for i in 0..<m {
                    for j in 0..<n {
                        var expected = 0.5
                        for p in 0..<k {
                            let bv = transposedB ? b[j * k + p] : b[p * n + j]
                            expected += Double(a[i * k + p]) * Double(bv)
                        }
                        XCTAssertEqual(Double(c[i * n + j]), expected, accuracy: 1e-5 * Double(k) + 1e-5, "\(name) \(m)x\(n)x\(k)")
                    }
                }
            }
        }
    }

    func testChunkedCausalEqualsQuadraticForm() throws {
        let map = try SlayFeatureMap(SlayConfiguration(headDim: 4, numHeads: 1, nodes: 2, polynomial: .exact, prfDim: 3, seed: 4))
        let (t, d, dv, m) = (37, 4, 3, map.featureDim)
        // Seeded inputs: the documented generator, streams 10..12.
        let inputs = ParameterGenerator(seed: 99)
        var q = inputs.normals(stream: 10, count: t * d)
        var k = inputs.normals(stream: 11, count: t * d)
        var v = inputs.normals(stream: 12, count: t * dv)
        var phiQ = [Float](repeating: 0, count: t * m), phiK = phiQ
        var scratch = [Float](repeating: 0, count: map.scratchFloats(rows: t))
        map.features(role: .query, head: 0, input: q, rows: t, output: &phiQ, scratch: &scratch)
        map.features(role: .key, head: 0, input: k, rows: t, output: &phiK, scratch: &scratch)
        for chunk in [1, 5, 16, 64] {
            var out = [Float](repeating: .nan, count: t * dv)
            try q.withUnsafeMutableBufferPointer { pq in try k.withUnsafeMutableBufferPointer { pk in
                try v.withUnsafeMutableBufferPointer { pv in try out.withUnsafeMutableBufferPointer { po in
                    try LinearAttention.run(
                        map: map, q: TensorView(contiguous: pq.baseAddress!, shape: [1, t, 1, d]),
                        k: TensorView(contiguous: pk.baseAddress!, shape: [1, t, 1, d]),
                        v: TensorView(contiguous: pv.baseAddress!, shape: [1, t, 1, dv]),
                        out: TensorView(contiguous: po.baseAddress!, shape: [1, t, 1, dv]),
                        options: LinearAttentionOptions(causal: true, chunkSize: chunk))
                } }
            } }
            var squaredError = 0.0, squaredScale = 0.0
            for i in 0..<t {
                var numerator = [Double](repeating: 0, count: dv)
                var denominator = 1e-6
                for j in 0...i {
                    var a = 0.0
                    for f in 0..<m { a += Double(phiQ[i * m + f]) * Double(phiK[j * m + f]) }
                    denominator += a
                    for c in 0..<dv { numerator[c] += a * Double(v[j * dv + c]) }
                }
                for c in 0..<dv {
                    let expected = numerator[c] / denominator
                    XCTAssertTrue(out[i * dv + c].isFinite, "row \(i) not written (chunk \(chunk))")
                    squaredError += (Double(out[i * dv + c]) - expected) * (Double(out[i * dv + c]) - expected)
                    squaredScale += expected * expected
                }
            }
            // RMS error ratio (fp32 engine vs float64 quadratic form of the same features)
            XCTAssertLessThan((squaredError / squaredScale).squareRoot(), 1e-4, "chunk \(chunk)")
        }
    }

    /// The vectorised exp of both kernel builds against double exp over the PRF range and beyond.
    func testVectorExpIsWithinThreeUlps() {
        var inputs: [Float] = []
        var x: Float = -87
        while x <= 88 { inputs.append(x); x += 0.0137 }
        inputs += [0, -0.0, 1e-8, -1e-8, 20, -20]
        var outputs = [Float](repeating: 0, count: inputs.count)
        for variant in ["portable", "avx2"] {
            if variant == "avx2" && slaycpu_has_avx2_fma() == 0 { continue }
            inputs.withUnsafeBufferPointer { input in outputs.withUnsafeMutableBufferPointer { output in
                if variant == "avx2" {
                    SlayKernelsAVX2.VectorExp.expShiftedClamped(input.baseAddress!, count: input.count, shift: 0, limit: 100,
                                                                scale: 1, output: output.baseAddress!)
                } else {
                    SlayKernels.VectorExp.expShiftedClamped(input.baseAddress!, count: input.count, shift: 0, limit: 100,
                                                            scale: 1, output: output.baseAddress!)
                }
            } }
            var worst = 0.0
            for (input, output) in zip(inputs, outputs) {
                let exact = Foundation_exp(Double(input))
                worst = max(worst, abs(Double(output) - exact) / exact)
            }
            XCTAssertLessThan(worst, 3 * Double(Float.ulpOfOne), variant)
        }
    }

    func testBadOptionsThrowWithStatus() {
        XCTAssertEqual((try? LinearAttentionOptions(chunkSize: -1).validate()) == nil, true)
        XCTAssertEqual((try? LinearAttentionOptions(chunkSize: 0).validate()) != nil, true)   // 0: automatic
        do {
            try LinearAttentionOptions(delta: .nan).validate()
            XCTFail("expected an error")
        } catch let error as SlayError {
            XCTAssertEqual(error.status, .invalidArgument)
        } catch { XCTFail("unexpected \(error)") }
    }
}
