import Foundation
@testable import SlayCore

/// The float64 twin of SLAY features (docs/math.md §1), written from the formulas, not the kernel:
///   û = x/‖x‖;  poly_p(û): anchor (a_p·û)²/√P | exact packed upper triangle, off-diagonals ×√2 |
///   exact_full u_a u_b | tensorsketch Σ_{i,j: (h1(i)+h2(j)) mod P = b} s1(i)s2(j)u_i u_j, pair by pair |
///   nystrom Σ_q W[p,q] (a_q·û)² with the map's W (checked on its own in SlayNystromTests);  prf_{r,j}(û) = exp(clamp(√(2 s_r) ω[r,h,:,j]·û − s_r, ±c)) / √M;
///   Ψ[(r·P' + p)·M + j] = √w_r · poly_p · prf_{r,j}.
/// The anchors and ω are read from the map (used as given); s_r = t_r/C, w_r = α_r/C from the rule.
struct SlayFeatureTwin {
    let configuration: SlayConfiguration
    let anchors: [Double]
    let omega: [Double]
    /// TensorSketch "sketch" (2, 2, d) and the Nyström whitening (P, P), when the map has them.
    let sketch: [Double]
    let whitening: [Double]
    let s: [Double]
    let w: [Double]

    init(map: SlayFeatureMap) throws {
        configuration = map.configuration
        anchors = (map.parameterValues("anchors") ?? []).map(Double.init)
        omega = map.parameterValues("omega")!.map(Double.init)
        sketch = (map.parameterValues("sketch") ?? []).map(Double.init)
        whitening = map.nystromWhitening.map(Double.init)
        let rule = try GaussLaguerreRule(count: configuration.nodes)
        let c = 2 + configuration.eps
        s = rule.nodes.map { $0 / c }
        w = rule.weights.map { $0 / c }
    }

    var polyFeatures: Int {
        let d = configuration.headDim
        switch configuration.polynomial {
        case .anchor: return configuration.polyDim
        case .exact: return d * (d + 1) / 2
        case .exactFull: return d * d
        case .laplace: return 1
        case .randomMaclaurin, .tensorSketch, .nystrom: return configuration.polyDim
        }
    }

    var featureDim: Int { configuration.nodes * polyFeatures * configuration.prfDim }

    func polynomial(_ u: [Double]) -> [Double] {
        let d = configuration.headDim
        switch configuration.polynomial {
        case .anchor:
            let p = configuration.polyDim
            return (0..<p).map { row in
                var dot = 0.0
                for j in 0..<d { dot += anchors[row * d + j] * u[j] }
                return dot * dot / Double(p).squareRoot()
            }
        case .laplace:
            return [1]
        case .randomMaclaurin:
            fatalError("the Swift twin does not cover random Maclaurin (the Python twin does)")
        case .tensorSketch:
            let p = configuration.polyDim
            var out = [Double](repeating: 0, count: p)
            for i in 0..<d {
                for j in 0..<d {
                    let bucket = (Int(sketch[i]) + Int(sketch[2 * d + j])) % p
                    out[bucket] += sketch[d + i] * sketch[3 * d + j] * u[i] * u[j]
                }
            }
            return out
        case .nystrom:
            let p = configuration.polyDim
            let kernel = (0..<p).map { row in
                var dot = 0.0
                for j in 0..<d { dot += anchors[row * d + j] * u[j] }
                return dot * dot
            }
            return (0..<p).map { row in (0..<p).reduce(0.0) { $0 + whitening[row * p + $1] * kernel[$1] } }
        case .exact:
            var out: [Double] = []
            for a in 0..<d { for b in a..<d { out.append(a == b ? u[a] * u[a] : 2.0.squareRoot() * u[a] * u[b]) } }
            return out
        case .exactFull:
            var out: [Double] = []
            for a in 0..<d { for b in 0..<d { out.append(u[a] * u[b]) } }
            return out
        }
    }

    /// Ψ(x) for one input row of head `head`.
    func features(_ x: [Float], head: Int) -> [Double] {
        let c = configuration
        let (d, mm, h) = (c.headDim, c.prfDim, c.numHeads)
        let norm = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let u = x.map { norm > 0 ? Double($0) / norm : 0 }
        let poly = polynomial(u)
        let pf = poly.count
        var out = [Double](repeating: 0, count: c.nodes * pf * mm)
        for r in 0..<c.nodes {
            for j in 0..<mm {
                var dot = 0.0
                for a in 0..<d { dot += omega[((r * h + head) * d + a) * mm + j] * u[a] }
                let exponent = min(max((2 * s[r]).squareRoot() * dot - s[r], -c.prfClamp), c.prfClamp)
                let prf = exp(exponent) / Double(mm).squareRoot()
                for p in 0..<pf { out[(r * pf + p) * mm + j] = w[r].squareRoot() * poly[p] * prf }
            }
        }
        return out
    }
}

extension SlayFeatureMap {
    /// Features of contiguous rows [rows, d] of `head` through the production kernel.
    func computeFeatures(_ rows: [Float], head: Int, role: FeatureRole = .query) -> [Float] {
        let count = rows.count / headDim
        var out = [Float](repeating: .nan, count: count * featureDim)
        var scratch = [Float](repeating: 0, count: scratchFloats(rows: count))
        rows.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                scratch.withUnsafeMutableBufferPointer { work in
                    features(role: role, head: head, input: input.baseAddress!, rows: count,
                             output: output.baseAddress!, scratch: work.baseAddress!)
                }
            }
        }
        return out
    }
}
