#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The R-point Gauss–Laguerre rule: ∫₀^∞ e^{−t} f(t) dt ≈ Σ_r α_r f(t_r).
///
/// Nodes come from Newton's method on the three-term recurrence of L_R with the asymptotic
/// initial guesses of Stroud & Secrest (as in Numerical Recipes' gaulag); each guess is close
/// enough that Newton converges to the intended root, so the nodes come out ascending. The
/// weights use α_r = 1 / (t_r · L_R'(t_r)²), which keeps full relative accuracy for the tiny
/// weights of the far nodes (they reach 1e-90 at R = 64).
public struct GaussLaguerreRule: Sendable, Equatable {
    public static let maximumNodes = 64

    public let nodes: [Double]
    public let weights: [Double]

    public init(count n: Int) throws {
        guard n >= 1 && n <= Self.maximumNodes else {
            throw SlayError.invalid("Gauss–Laguerre node count must be in 1...\(Self.maximumNodes), got \(n)")
        }
        var nodes = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        let nd = Double(n)
        var z = 0.0
        for i in 0..<n {
            if i == 0 {
                z = 3.0 / (1.0 + 2.4 * nd)
            } else if i == 1 {
                z += 15.0 / (1.0 + 2.5 * nd)
            } else {
                let ai = Double(i - 1)
                z += (1.0 + 2.55 * ai) / (1.9 * ai) * (z - nodes[i - 2])
            }
            var derivative = 0.0
            for iteration in 0..<100 {
                let (value, slope) = Self.laguerreAndDerivative(n, at: z)
                derivative = slope
                let step = value / slope
                z -= step
                // Two more steps after the first tiny one polish the last bits.
                if abs(step) <= 1e-15 * max(1.0, abs(z)) && iteration > 2 { break }
            }
            derivative = Self.laguerreAndDerivative(n, at: z).1
            nodes[i] = z
            weights[i] = 1.0 / (z * derivative * derivative)
        }
        self.nodes = nodes
        self.weights = weights
    }

    /// L_n(x) and L_n'(x) by the recurrence (j+1) L_{j+1} = (2j+1−x) L_j − j L_{j−1};
    /// x L_n' = n (L_n − L_{n−1}).
    static func laguerreAndDerivative(_ n: Int, at x: Double) -> (Double, Double) {
        var previous = 0.0
        var current = 1.0
        for j in 0..<n {
            let next = ((2.0 * Double(j) + 1.0 - x) * current - Double(j) * previous) / Double(j + 1)
            previous = current
            current = next
        }
        return (current, Double(n) * (current - previous) / x)
    }
}
