#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The spherical Yat kernel E(x) = x² / (C − 2x), C = 2 + ε, x = q̂·k̂ ∈ [−1, 1]
/// (docs/math.md §1), and its Gauss–Laguerre quadrature in the Laplace variable s.
public struct SphericalYatKernel: Sendable {
    public let eps: Double
    public var c: Double { 2 + eps }

    public init(eps: Double) throws {
        guard eps.isFinite && eps > 0 else { throw SlayError.invalid("eps must be finite and > 0, got \(eps)") }
        self.eps = eps
    }

    public func value(cosine x: Double) -> Double { x * x / (c - 2 * x) }

    /// Laplace-variable nodes s_r = t_r / C and weights w_r = α_r / C, so that
    /// x²/(C − 2x) ≈ Σ_r w_r x² e^{2 s_r x}.
    public func quadrature(nodes count: Int) throws -> (s: [Double], w: [Double]) {
        let rule = try GaussLaguerreRule(count: count)
        return (rule.nodes.map { $0 / c }, rule.weights.map { $0 / c })
    }

    /// Σ_r w_r x² e^{2 s_r x}: what exact-polynomial SLAY estimates without bias.
    public func quadratureValue(cosine x: Double, nodes count: Int) throws -> Double {
        let (s, w) = try quadrature(nodes: count)
        var total = 0.0
        for r in 0..<count { total += w[r] * x * x * exp(2 * s[r] * x) }
        return total
    }
}
