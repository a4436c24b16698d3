#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// FAVOR+ (docs/math.md §4, Performer): positive random features of the softmax kernel,
/// φ(x) = exp(ωᵀx' − ‖x'‖²/2) / √m with x' = x · d^(−1/4), so E[φ(q)·φ(k)] = exp(q·k/√d).
/// ω (H, d, m) is block-orthogonal per head (see `blockOrthogonalOmega`), which lowers the
/// variance compared with i.i.d. Gaussian directions. Features are > 0.
///
/// Stability: the QUERY features are multiplied by exp(−max_j e_j) of their own row (the largest
/// exponent is subtracted before exp). That factor is common to the numerator and the
/// denominator of the row's normalised attention, so it cancels (up to the δ added to the
/// denominator, which then acts at a slightly different scale). KEY features are plain, so the
/// state Σ φ(k) vᵀ is an unbiased estimate; they overflow only when ωᵀx' − ‖x'‖²/2 > 88.
public final class FavorPlusFeatureMap: RandomProjectionFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    var projection: RandomProjection
    public internal(set) var identity: UInt64 = 0
    var kindName: String { "favor+" }

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateRandomFeatures()
        self.configuration = configuration
        let c = configuration
        projection = RandomProjection(
            headDim: c.headDim, numHeads: c.numHeads, featureCount: c.featureCount,
            omega: try Self.blockOrthogonalOmega(seed: c.seed, headDim: c.headDim, numHeads: c.numHeads, features: c.featureCount))
        rebuildIdentity()
    }

    /// ω (H, d, m) from the generator's stream 3 (slay.h "Parameter generator"). Head h has
    /// B = ⌈m/d⌉ blocks; block b is the d × d Gaussian matrix G with G[r, c] = normal(((h·B + b)·d
    /// + r)·d + c), whose rows are orthonormalised in order by modified Gram–Schmidt in double.
    /// Feature j = b·d + r (j < m) is row r of block b times the norm of an independent Gaussian
    /// d-vector (chi-distributed with d degrees of freedom, like the norm of a Gaussian row):
    /// ‖(normal(H·B·d² + (h·m + j)·d + c))_c‖. Everything in double, rounded to float at the end.
    public static func blockOrthogonalOmega(seed: UInt64, headDim d: Int, numHeads: Int, features m: Int,
                                            stream: UInt64 = ParameterGenerator.favorStream) throws -> HeapArray<Float> {
        let generator = ParameterGenerator(seed: seed)
        let blocks = (m + d - 1) / d
        let normBase = numHeads * blocks * d * d
        let omega = try HeapArray<Float>(count: try CheckedSize.multiply(numHeads, d, m, what: "omega"), what: "omega")
        // One block at a time, each row orthonormalised against the block's earlier rows. A block
        // has min(d, m) rows, so the workspace is no larger than ω itself (a d × d one would be
        // 32 GiB at d = 65536 whatever m is).
        let basis = try HeapArray<Double>(count: try CheckedSize.multiply(min(d, m), d, what: "orthogonal basis"),
                                          what: "the orthogonalisation workspace")
        for h in 0..<numHeads {
            for b in 0..<blocks {
                let rows = min(d, m - b * d)
                for r in 0..<rows {
                    let row = r * d
                    for c in 0..<d {
                        basis[row + c] = generator.normal(stream: stream, index: UInt64(((h * blocks + b) * d + r) * d + c))
                    }
                    for p in 0..<r {
                        var dot = 0.0
                        for c in 0..<d { dot += basis[p * d + c] * basis[row + c] }
                        for c in 0..<d { basis[row + c] -= dot * basis[p * d + c] }
                    }
                    var norm = 0.0
                    for c in 0..<d { norm += basis[row + c] * basis[row + c] }
                    norm = norm.squareRoot()
                    for c in 0..<d { basis[row + c] /= norm }
                    let j = b * d + r
                    var chi = 0.0
                    for c in 0..<d {
                        let g = generator.normal(stream: stream, index: UInt64(normBase + (h * m + j) * d + c))
                        chi += g * g
                    }
                    chi = chi.squareRoot()
                    for c in 0..<d { omega[(h * d + c) * m + j] = Float(chi * basis[row + c]) }
                }
            }
        }
        return omega
    }

    public var isPositive: Bool { true }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let (d, m) = (headDim, featureDim)
        let products = projection.project(head: head, input: input, rows: rows, scratch: scratch)
        // x' = x·d^(−1/4): ωᵀx' = d^(−1/4)·ωᵀx and ‖x'‖²/2 = ‖x‖²/(2√d).
        let inputScale = Float(1 / Double(d).squareRoot().squareRoot())
        let outputScale = Float(1 / Double(m).squareRoot())
        for i in 0..<rows {
            let x = input + i * d
            var sumSquares = 0.0
            for c in 0..<d { let v = Double(x[c]); sumSquares += v * v }
            let halfNorm = Float(sumSquares / (2 * Double(d).squareRoot()))
            let e = products + i * m
            var largest = -Float.infinity
            for j in 0..<m {
                e[j] = inputScale * e[j] - halfNorm
                largest = max(largest, e[j])
            }
            let shift = role == .query ? largest : 0
            let target = output + i * m
            // Vectorised exp; exponents are clamped to ±88 (e^88·m^(−1/2) is finite), and a NaN input
            // must stay NaN rather than be clamped into a number.
            VectorMath.expShiftedClamped(e, count: m, shift: shift, limit: 88, scale: outputScale, output: target)
            for j in 0..<m where e[j].isNaN { target[j] = .nan }
        }
    }
}
