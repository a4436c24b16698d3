import Foundation
import XCTest
@testable import SlayCore

/// The backward driver (LinearAttentionBackward) against central differences of a float64
/// token-loop twin written here, along random directions: ⟨grad, u⟩ == (L(x + hu) − L(x − hu)) / 2h
/// with L = Σ dout∘y + Σ dS_T∘S_T. Forms: additive with RetNet γ (normalised), gated (GLA
/// per-channel log decay), the delta rule (Gated DeltaNet: β, per-head g, an initial state), and
/// a map with parameters (ReLU random features, ∂ω). Grouped-query heads throughout.
final class LinearAttentionBackwardTests: XCTestCase {
    enum Form { case additive, gated, delta }

    /// One call's inputs in double (the twin's) and the library's float copies.
    struct Problem {
        let form: Form
        let b = 2, t = 11, hq = 4, hk = 2, d = 3, dv = 2
        var m: Int
        var normalize: Bool
        var gamma: [Double]?
        var inputs: [String: [Double]] = [:]
        let dout: [Double]
        let finalStateGradient: [Double]

        init(form: Form, m: Int, normalize: Bool, gamma: [Double]? = nil, seed: UInt64) {
            (self.form, self.m, self.normalize, self.gamma) = (form, m, normalize, gamma)
            var g = SeededGenerator(seed: seed)
            func draw(_ n: Int, _ range: ClosedRange<Float> = -1...1) -> [Double] { g.floats(n, in: range).map(Double.init) }
            inputs["q"] = draw(b * t * hq * d)
            inputs["k"] = draw(b * t * hk * d)
            inputs["v"] = draw(b * t * hk * dv)
            switch form {
            case .additive: break
            case .gated: inputs["logDecay"] = draw(b * t * hk * m, -0.5...(-0.01))
            case .delta:
                inputs["logDecay"] = draw(b * t * hk, -0.5...(-0.01))
                inputs["beta"] = draw(b * t * hk, 0.1...1.2)
                inputs["s0"] = draw(b * hk * m * dv, -0.3...0.3)
            }
            dout = draw(b * t * hq * dv)
            finalStateGradient = draw(b * hk * m * dv)
        }
    }

    /// φ of one row (head h) in double, from the map's definition; `omega` is ReLU-RF's (H, d, m).
    typealias Features = @Sendable (_ row: ArraySlice<Double>, _ head: Int, _ omega: [Double]?) -> [Double]

    static let identity: Features = { row, _, _ in Array(row) }

    static func reluRandom(m: Int, d: Int) -> Features {
        { row, head, omega in
            let omega = omega!
            let x = Array(row)
            return (0..<m).map { j in
                var s = 0.0
                for i in 0..<d { s += x[i] * omega[(head * d + i) * m + j] }
                return max(s, 0) / Double(m).squareRoot()
            }
        }
    }

    /// L in double, token by token from the recurrences themselves.
    static func loss(_ p: Problem, _ x: [String: [Double]], phi: Features) -> Double {
        let (b, t, hq, hk, d, dv, m) = (p.b, p.t, p.hq, p.hk, p.d, p.dv, p.m)
        let (q, k, v) = (x["q"]!, x["k"]!, x["v"]!)
        let omega = x["omega"]
        let group = hq / hk
        var total = 0.0
        for batch in 0..<b {
            for head in 0..<hk {
                var S = [Double](repeating: 0, count: m * dv)
                if let s0 = x["s0"] { for i in 0..<(m * dv) { S[i] = s0[(batch * hk + head) * m * dv + i] } }
                var z = [Double](repeating: 0, count: m)
                let gamma = p.gamma?[head] ?? 1
                for token in 0..<t {
                    let row = (batch * t + token) * hk + head
                    let key = phi(k[(row * d)..<(row * d + d)], head, omega)
                    let value = Array(v[(row * dv)..<(row * dv + dv)])
                    switch p.form {
                    case .additive, .gated:
                        for f in 0..<m {
                            var alpha = gamma
                            if p.form == .gated { alpha *= Foundation.exp(x["logDecay"]![row * m + f]) }
                            z[f] = alpha * z[f] + key[f]
                            for c in 0..<dv { S[f * dv + c] = alpha * S[f * dv + c] + key[f] * value[c] }
                        }
                    case .delta:
                        let alpha = gamma * Foundation.exp(x["logDecay"]![row])
                        let beta = x["beta"]![row]
                        var u = [Double](repeating: 0, count: dv)
                        for f in 0..<m { for c in 0..<dv { u[c] += key[f] * S[f * dv + c] } }
                        for f in 0..<m {
                            for c in 0..<dv {
                                S[f * dv + c] = alpha * (S[f * dv + c] - beta * key[f] * u[c]) + beta * key[f] * value[c]
                            }
                        }
                    }
                    for g in 0..<group {
                        let qRow = (batch * t + token) * hq + head * group + g
                        let query = phi(q[(qRow * d)..<(qRow * d + d)], head, omega)
                        var den = 0.0
                        var num = [Double](repeating: 0, count: dv)
                        for f in 0..<m {
                            den += query[f] * z[f]
                            for c in 0..<dv { num[c] += query[f] * S[f * dv + c] }
                        }
                        for c in 0..<dv {
                            let y = p.normalize ? num[c] / (den + 1e-6) : num[c]
                            total += p.dout[qRow * dv + c] * y
                        }
                    }
                }
                for i in 0..<(m * dv) { total += p.finalStateGradient[(batch * hk + head) * m * dv + i] * S[i] }
            }
        }
        return total
    }

    /// Runs the library's backward and checks every gradient along two random directions.
    func check(_ p: Problem, map: FeatureMap, phi: Features, threads: Int = 1, chunk: Int = 4, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws -> [String: [Float]] {
        let (b, t, hq, hk, d, dv, m) = (p.b, p.t, p.hq, p.hk, p.d, p.dv, p.m)
        var x = p.inputs
        if let omega = map.parameterValues("omega") { x["omega"] = omega.map(Double.init) }
        func tensor(_ name: String) -> TestTensor? { x[name].map { TestTensor($0.map(Float.init)) } }
        let (q, k, v) = (tensor("q")!, tensor("k")!, tensor("v")!)
        let (logDecay, beta, s0) = (tensor("logDecay"), tensor("beta"), tensor("s0"))
        let dout = TestTensor(p.dout.map(Float.init))
        let dsT = TestTensor(p.finalStateGradient.map(Float.init))
        let gammas = p.gamma.map { TestTensor($0.map(Float.init)) }
        let (dq, dk, dvOut) = (TestTensor(count: q.count), TestTensor(count: k.count), TestTensor(count: v.count))
        let dLogDecay = logDecay.map { TestTensor(count: $0.count) }
        let dBeta = beta.map { TestTensor(count: $0.count) }
        let dS0 = s0.map { TestTensor(count: $0.count) }
        let parameterCount = x["omega"]?.count ?? 0
        let dParameters = TestTensor(count: parameterCount)
        let decayShape = p.form == .delta ? [b, t, hk] : [b, t, hk, m]
        let options = LinearAttentionOptions(causal: true, chunkSize: chunk, nThreads: threads, normalize: p.normalize,
                                             decay: HeadDecay(pointer: gammas.map { UnsafePointer($0.pointer) }, count: hk),
                                             logDecay: logDecay?.view(decayShape),
                                             update: p.form == .delta ? .delta : .add, beta: beta?.view([b, t, hk]))
        var request = AttentionGradientRequest(dout: dout.view([b, t, hq, dv]), initialState: s0?.view([b, hk, m, dv]),
                                               finalStateGradient: dsT.view([b, hk, m, dv]), dq: dq.view([b, t, hq, d]),
                                               dk: dk.view([b, t, hk, d]), dv: dvOut.view([b, t, hk, dv]),
                                               logDecay: dLogDecay?.view(decayShape),
                                               initialStateGradient: dS0?.view([b, hk, m, dv]),
                                               parameters: parameterCount > 0 ? dParameters.pointer : nil,
                                               parameterCount: parameterCount)
        request.beta = dBeta?.view([b, t, hk])
        try LinearAttentionBackward.run(map: map, q: q.view([b, t, hq, d]), k: k.view([b, t, hk, d]),
                                        v: v.view([b, t, hk, dv]), options: options, request: request)
        var gradients: [String: [Float]] = ["q": dq.values, "k": dk.values, "v": dvOut.values]
        if let dLogDecay { gradients["logDecay"] = dLogDecay.values }
        if let dBeta { gradients["beta"] = dBeta.values }
        if let dS0 { gradients["s0"] = dS0.values }
        if parameterCount > 0 { gradients["omega"] = dParameters.values }

        var generator = SeededGenerator(seed: seed)
        for (name, gradient) in gradients.sorted(by: { $0.key < $1.key }) {
            XCTAssertTrue(gradient.allSatisfy(\.isFinite), "\(name) is not finite", file: file, line: line)
            XCTAssertTrue(gradient.contains { $0 != 0 }, "\(name) is all zero", file: file, line: line)
            for _ in 0..<2 {
                let u = generator.floats(gradient.count).map(Double.init)
                let h = 1e-5
                var plus = x, minus = x
                plus[name] = zip(x[name]!, u).map { $0 + h * $1 }
                minus[name] = zip(x[name]!, u).map { $0 - h * $1 }
                let expected = (Self.loss(p, plus, phi: phi) - Self.loss(p, minus, phi: phi)) / (2 * h)
                let actual = zip(gradient, u).reduce(0.0) { $0 + Double($1.0) * $1.1 }
                let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    * u.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
                XCTAssertEqual(actual, expected, accuracy: 3e-5 * norm + 1e-7, "\(name)", file: file, line: line)
            }
        }
        return gradients
    }

    private func identityMap(d: Int, heads: Int) throws -> FeatureMap {
        try IdentityFeatureMap(ClassicMapConfiguration(headDim: d, numHeads: heads))
    }

    func testAdditiveWithRetNetDecayMatchesTheTwin() throws {
        let p = Problem(form: .additive, m: 3, normalize: true, gamma: [0.9, 0.7], seed: 1)
        // Identity features are signed: keep the denominators away from 0 with positive inputs.
        var positive = p
        for name in ["q", "k"] { positive.inputs[name] = p.inputs[name]!.map { abs($0) + 0.2 } }
        _ = try check(positive, map: try identityMap(d: 3, heads: 2), phi: Self.identity, seed: 11)
    }

    func testGatedDecayMatchesTheTwin() throws {
        let p = Problem(form: .gated, m: 3, normalize: false, seed: 2)
        _ = try check(p, map: try identityMap(d: 3, heads: 2), phi: Self.identity, seed: 12)
    }

    func testDeltaRuleMatchesTheTwin() throws {
        let p = Problem(form: .delta, m: 3, normalize: false, gamma: [1, 0.95], seed: 3)
        let map = try identityMap(d: 3, heads: 2)
        let one = try check(p, map: map, phi: Self.identity, seed: 13)
        // Bitwise identical for any thread count.
        let two = try check(p, map: map, phi: Self.identity, threads: 2, seed: 13)
        for name in one.keys { XCTAssertEqual(one[name]!.map(\.bitPattern), two[name]!.map(\.bitPattern), name) }
    }

    /// Checkpoints every k > 1 chunks (a block's other states recomputed from its checkpoint),
    /// forced by a tiny budget: 11 chunks of one row, at most 4 checkpoints, so k = 3.
    func testDeltaRuleCheckpointBlocksMatchTheTwin() throws {
        let saved = DeltaRuleBackward.checkpointBudget
        defer { DeltaRuleBackward.checkpointBudget = saved }
        DeltaRuleBackward.checkpointBudget = 1
        XCTAssertEqual(DeltaRuleBackward.stride(chunk: 1, length: 11, featureDim: 3, valueDim: 2), 3)
        let p = Problem(form: .delta, m: 3, normalize: false, gamma: [0.9, 1], seed: 6)
        _ = try check(p, map: try identityMap(d: 3, heads: 2), phi: Self.identity, chunk: 1, seed: 16)
    }

    func testMapParametersMatchTheTwin() throws {
        let m = 5
        let map = try ReluRandomFeatureMap(ClassicMapConfiguration(headDim: 3, numHeads: 2, featureCount: m, seed: 4))
        for form in [Form.additive, .delta] {
            let p = Problem(form: form, m: m, normalize: form == .additive, seed: 5)
            let gradients = try check(p, map: map, phi: Self.reluRandom(m: m, d: 3), seed: 14)
            XCTAssertEqual(gradients["omega"]?.count, 2 * 3 * m)
        }
    }

    func testDeltaRuleRefusesWhatItsForwardRefuses() throws {
        let map = try identityMap(d: 3, heads: 1)
        let (q, dout) = (TestTensor(count: 12, repeating: 0.5), TestTensor(count: 12, repeating: 1))
        let request = AttentionGradientRequest(dout: dout.view([1, 4, 1, 3]))
        for (causal, normalize) in [(false, false), (true, true)] {
            let options = LinearAttentionOptions(causal: causal, normalize: normalize, update: .delta)
            XCTAssertThrowsSlayError(.unsupported, try LinearAttentionBackward.run(
                map: map, q: q.view([1, 4, 1, 3]), k: q.view([1, 4, 1, 3]), v: q.view([1, 4, 1, 3]), options: options,
                request: request))
        }
    }
}
