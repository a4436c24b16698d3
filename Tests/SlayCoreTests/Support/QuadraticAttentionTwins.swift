import Foundation
@testable import SlayCore

/// Float64 quadratic twins of every attention form, on logical [B, T, H, D] data.
enum QuadraticAttentionTwins {
    /// Kernel-normalised attention y_i = Σ_j a_ij v_j / (Σ_j a_ij + δ), a_ij = φ(q_i)·φ(k_j), with
    /// the map's own features (float, widened to double); query head h uses key head h / (Hq/Hk).
    static func linear(map: SlayFeatureMap, q: BTHD, k: BTHD, v: BTHD, causal: Bool, delta: Double) -> [Double] {
        let (b, t, hq, hk, dv) = (q.b, q.t, q.h, k.h, v.d)
        let m = map.featureDim
        var out = [Double](repeating: .nan, count: b * t * hq * dv)
        for batch in 0..<b {
            for head in 0..<hq {
                let keyHead = head / (hq / hk)
                var queryRows: [Float] = [], keyRows: [Float] = []
                for i in 0..<t { queryRows += q.row(batch, i, head); keyRows += k.row(batch, i, keyHead) }
                let phiQ = map.computeFeatures(queryRows, head: keyHead, role: .query).map(Double.init)
                let phiK = map.computeFeatures(keyRows, head: keyHead, role: .key).map(Double.init)
                for i in 0..<t {
                    var numerator = [Double](repeating: 0, count: dv)
                    var denominator = delta
                    for j in 0..<(causal ? i + 1 : t) {
                        var a = 0.0
                        for f in 0..<m { a += phiQ[i * m + f] * phiK[j * m + f] }
                        denominator += a
                        for c in 0..<dv { numerator[c] += a * Double(v[batch, j, keyHead, c]) }
                    }
                    for c in 0..<dv { out[((batch * t + i) * hq + head) * dv + c] = numerator[c] / denominator }
                }
            }
        }
        return out
    }

    /// Exact attention: softmax(scale·q·k) (no δ), or a Yat kernel normalised as Σ K v / (Σ K + δ).
    static func exact(kernel: ExactKernel, q: BTHD, k: BTHD, v: BTHD, causal: Bool, scale: Double?,
                      eps: Double, delta: Double) -> [Double] {
        let (b, t, hq, hk, d, dv) = (q.b, q.t, q.h, k.h, q.d, v.d)
        let logitScale = scale ?? 1 / Double(d).squareRoot()
        var out = [Double](repeating: .nan, count: b * t * hq * dv)
        for batch in 0..<b {
            for head in 0..<hq {
                let keyHead = head / (hq / hk)
                for i in 0..<t {
                    let qi = q.row(batch, i, head).map(Double.init)
                    let visible = causal ? i + 1 : t
                    var scores = [Double](repeating: 0, count: visible)
                    for j in 0..<visible {
                        let kj = k.row(batch, j, keyHead).map(Double.init)
                        let dot = zip(qi, kj).reduce(0) { $0 + $1.0 * $1.1 }
                        switch kernel {
                        case .softmax:
                            scores[j] = logitScale * dot
                        case .yatSpherical:
                            let nq = qi.reduce(0) { $0 + $1 * $1 }.squareRoot()
                            let nk = kj.reduce(0) { $0 + $1 * $1 }.squareRoot()
                            let x = nq > 0 && nk > 0 ? dot / (nq * nk) : 0
                            scores[j] = x * x / (2 + eps - 2 * x)
                        case .yat:
                            let distance = zip(qi, kj).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                            scores[j] = dot * dot / (distance + eps)
                        }
                    }
                    var total = 0.0
                    if kernel == .softmax {
                        let largest = scores.max()!
                        scores = scores.map { exp($0 - largest) }
                        total = scores.reduce(0, +)
                    } else {
                        total = scores.reduce(0, +) + delta
                    }
                    for c in 0..<dv {
                        var acc = 0.0
                        for j in 0..<visible { acc += scores[j] * Double(v[batch, j, keyHead, c]) }
                        out[((batch * t + i) * hq + head) * dv + c] = acc / total
                    }
                }
            }
        }
        return out
    }
}
