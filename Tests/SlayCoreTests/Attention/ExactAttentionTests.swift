import XCTest
@testable import SlayCore

/// ExactAttention (quadratic, accumulated in double) against float64 twins of each kernel.
final class ExactAttentionTests: XCTestCase {
    private struct Case {
        let q: BTHD, k: BTHD, v: BTHD
        init(b: Int, t: Int, hq: Int, hk: Int, d: Int, dv: Int, seed: UInt64, spread: Float = 1) {
            var generator = SeededGenerator(seed: seed)
            q = BTHD(b: b, t: t, h: hq, d: d, data: generator.floats(b * t * hq * d, in: -spread...spread))
            k = BTHD(b: b, t: t, h: hk, d: d, data: generator.floats(b * t * hk * d, in: -spread...spread))
            v = BTHD(b: b, t: t, h: hk, d: dv, generator: &generator)
        }
        var outShape: [Int] { [q.b, q.t, q.h, v.d] }
    }

    private func run(_ x: Case, _ options: ExactAttentionOptions) throws -> [Float] {
        let (q, k, v) = (x.q.contiguous(), x.k.contiguous(), x.v.contiguous())
        let out = TestTensor(count: x.outShape.reduce(1, *))
        try ExactAttention.run(q: q.view(x.q.shape), k: k.view(x.k.shape), v: v.view(x.v.shape),
                               out: out.view(x.outShape), options: options)
        return out.values
    }

    private func check(_ x: Case, _ options: ExactAttentionOptions, _ label: String, line: UInt = #line) throws {
        let actual = try run(x, options)
        let expected = QuadraticAttentionTwins.exact(kernel: options.kernel, q: x.q, k: x.k, v: x.v, causal: options.causal,
                                                     scale: options.scale, eps: options.eps, delta: options.delta)
        // Both accumulate in double; only the final rounding to float differs.
        XCTAssertClose(actual, expected, relative: 1e-6, absolute: 1e-7, label, line: line)
    }

    func testSoftmaxMatchesTwin() throws {
        for causal in [true, false] {
            for scale in [nil, 0.3, -2.0, 5.0] as [Double?] {
                let x = Case(b: 2, t: 17, hq: 2, hk: 2, d: 6, dv: 4, seed: 1)
                try check(x, ExactAttentionOptions(kernel: .softmax, causal: causal, scale: scale),
                          "softmax causal \(causal) scale \(String(describing: scale))")
            }
        }
    }

    /// Large logits would overflow exp without the max subtraction.
    func testSoftmaxIsStableForLargeLogits() throws {
        let x = Case(b: 1, t: 9, hq: 1, hk: 1, d: 4, dv: 3, seed: 2, spread: 30)
        try check(x, ExactAttentionOptions(kernel: .softmax, causal: true, scale: 10), "large logits")
    }

    func testYatSphericalMatchesTwin() throws {
        for causal in [true, false] {
            for eps in [1e-6, 1e-3, 0.5] {
                let x = Case(b: 2, t: 13, hq: 4, hk: 2, d: 5, dv: 3, seed: 3)
                try check(x, ExactAttentionOptions(kernel: .yatSpherical, causal: causal, eps: eps, delta: 1e-6),
                          "yat-spherical causal \(causal) eps \(eps)")
            }
        }
    }

    func testYatMatchesTwin() throws {
        for causal in [true, false] {
            for delta in [0.0, 1e-6, 0.1] {
                let x = Case(b: 1, t: 15, hq: 3, hk: 1, d: 4, dv: 6, seed: 4)
                try check(x, ExactAttentionOptions(kernel: .yat, causal: causal, eps: 1e-3, delta: delta),
                          "yat causal \(causal) delta \(delta)")
            }
        }
    }

    /// Causal row 0 sees only itself: softmax returns v_0 exactly (up to float rounding).
    func testCausalFirstRowIsFirstValue() throws {
        let x = Case(b: 1, t: 4, hq: 1, hk: 1, d: 3, dv: 2, seed: 5)
        let out = try run(x, ExactAttentionOptions(kernel: .softmax, causal: true))
        XCTAssertEqual(out[0], x.v.data[0])
        XCTAssertEqual(out[1], x.v.data[1])
    }

    func testThreadsAndStridesDoNotChangeBits() throws {
        let x = Case(b: 2, t: 11, hq: 4, hk: 2, d: 3, dv: 2, seed: 6)
        for kernel in [ExactKernel.softmax, .yatSpherical, .yat] {
            let one = try run(x, ExactAttentionOptions(kernel: kernel, nThreads: 1))
            let three = try run(x, ExactAttentionOptions(kernel: kernel, nThreads: 3))
            XCTAssertEqual(three.map(\.bitPattern), one.map(\.bitPattern), "\(kernel) threads")
            let (q, k, v) = (x.q.headFirst(), x.k.headFirst(), x.v.headFirst())
            let out = TestTensor(count: 2 * 11 * 4 * 2)
            let outLayout = BTHD(b: 2, t: 11, h: 4, d: 2, data: [Float](repeating: 0, count: 2 * 11 * 4 * 2))
            try ExactAttention.run(q: q.view(x.q.shape, strides: x.q.headFirstStrides),
                                   k: k.view(x.k.shape, strides: x.k.headFirstStrides),
                                   v: v.view(x.v.shape, strides: x.v.headFirstStrides),
                                   out: out.view(outLayout.shape, strides: outLayout.headFirstStrides),
                                   options: ExactAttentionOptions(kernel: kernel))
            var strided = [Float](repeating: .nan, count: one.count)
            for b in 0..<2 { for t in 0..<11 { for h in 0..<4 { for c in 0..<2 {
                strided[((b * 11 + t) * 4 + h) * 2 + c] = out.pointer[((b * 4 + h) * 11 + t) * 2 + c]
            } } } }
            XCTAssertEqual(strided.map(\.bitPattern), one.map(\.bitPattern), "\(kernel) head-first")
        }
    }

    func testBadOptionsAndShapesThrowAndLeaveOutputUntouched() {
        let q = TestTensor(count: 2 * 3 * 2 * 4, repeating: 0.25), k = TestTensor(count: 2 * 3 * 1 * 4, repeating: 0.5)
        let v = TestTensor(count: 2 * 3 * 1 * 5, repeating: 1), out = TestTensor(count: 2 * 3 * 2 * 5, repeating: 7)
        func attempt(_ status: SlayStatus, _ options: ExactAttentionOptions, kShape: [Int] = [2, 3, 1, 4],
                     outShape: [Int] = [2, 3, 2, 5], _ label: String, line: UInt = #line) {
            XCTAssertThrowsSlayError(status, try ExactAttention.run(
                q: q.view([2, 3, 2, 4]), k: k.view(kShape, strides: [12, 4, 4, 1]), v: v.view([2, 3, 1, 5]),
                out: out.view(outShape, strides: [30, 10, 5, 1]), options: options), label, line: line)
            XCTAssertTrue(out.values.allSatisfy { $0 == 7 }, "output changed: \(label)", line: line)
        }
        attempt(.invalidArgument, ExactAttentionOptions(scale: .nan), "scale NaN")
        attempt(.invalidArgument, ExactAttentionOptions(scale: .infinity), "scale inf")
        attempt(.invalidArgument, ExactAttentionOptions(eps: 0), "eps 0")
        attempt(.invalidArgument, ExactAttentionOptions(eps: .nan), "eps NaN")
        attempt(.invalidArgument, ExactAttentionOptions(delta: -1), "delta -1")
        attempt(.invalidArgument, ExactAttentionOptions(delta: .nan), "delta NaN")
        attempt(.invalidArgument, ExactAttentionOptions(nThreads: 0), "threads 0")
        attempt(.invalidArgument, ExactAttentionOptions(nThreads: 257), "threads 257")
        attempt(.shape, ExactAttentionOptions(), kShape: [2, 3, 1, 3], "k d = 3")
        attempt(.shape, ExactAttentionOptions(), kShape: [2, 2, 1, 4], "k T = 2")
        attempt(.shape, ExactAttentionOptions(), outShape: [2, 3, 2, 4], "out dv = 4")
        attempt(.shape, ExactAttentionOptions(), outShape: [2, 3, 1, 5], "out Hq = 1")
    }
}
