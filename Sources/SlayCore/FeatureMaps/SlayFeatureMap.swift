#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How SLAY estimates the polynomial factor (q̂·k̂)² (docs/math.md §1).
public enum SlayPolynomial: Int32, Sendable {
    /// [(a_p·û)²]_p / √P with P unit anchors: the paper's default; converges to (1 + 2x²)/(d(d+2)),
    /// not x², so orthogonal keys keep weight.
    case anchor = 1
    /// vec(ûûᵀ) packed over i ≤ j (row-major upper triangle), off-diagonals × √2: exact, d(d+1)/2.
    case exact = 2
    /// vec(ûûᵀ) unpacked: exact, d².
    case exactFull = 3
    /// No polynomial factor (one constant feature 1): Ψ_r = √w_r·φ_PRF(û; s_r), the Laplace-only
    /// estimator of Σ_r w_r e^{2 s_r x} ∝ C/(C − 2x) — a different kernel from Yat, for comparison.
    case laplace = 4
    /// Random Maclaurin: [(r1_p·û)(r2_p·û)]_p / √P with r1, r2 i.i.d. N(0, I) ("maclaurin", (2, P, d)):
    /// unbiased for x², but SIGNED, so the normaliser can be ≤ 0 (use the clamp denominator).
    case randomMaclaurin = 5
    /// TensorSketch of û ⊗ û with two CountSketches ("sketch", (2, 2, d), stream 9): P features,
    /// unbiased for x², SIGNED (see TensorSketch).
    case tensorSketch = 6
    /// Nyström: (K_AA + λI)^{−1/2} [(a_p·û)²]_p with the anchor poly's unit anchors ("anchors",
    /// stream 1), K_AA = (A Aᵀ)∘(A Aᵀ), λ = 1e-3: P features, SIGNED, close to x² once the anchors
    /// span the d(d+1)/2 quadratic forms (see NystromWhitening).
    case nystrom = 7

    /// Whether P (poly_dim) sets the width, i.e. the estimator has P random directions or buckets.
    public var usesPolyDim: Bool { self == .anchor || self == .randomMaclaurin || self == .tensorSketch || self == .nystrom }

    /// Whether the map has the (P, d) "anchors" parameter.
    public var usesAnchors: Bool { self == .anchor || self == .nystrom }
}

/// Everything that defines a SLAY map besides its random matrices.
public struct SlayConfiguration: Sendable, Equatable {
    public var headDim: Int
    public var numHeads: Int
    public var nodes: Int
    public var polynomial: SlayPolynomial
    public var polyDim: Int
    public var prfDim: Int
    public var eps: Double
    public var prfClamp: Double
    public var seed: UInt64
    /// Block-orthogonal PRF directions (orthogonal within each node and head, norms chi-distributed):
    /// the same expectation as i.i.d. Gaussian ω with lower variance.
    public var orthogonal: Bool
    /// One ω shared by every quadrature node (the "hadamard" variant): ω has shape (1, H, d, M) and
    /// node r uses √(2 s_r)·ω. The nodes' estimates become correlated; fewer parameters.
    public var sharedOmega: Bool

    /// Quadrature nodes that own a separate ω block: R, or 1 when ω is shared.
    public var omegaBlocks: Int { sharedOmega ? 1 : nodes }

    public init(headDim: Int, numHeads: Int = 1, nodes: Int = 2, polynomial: SlayPolynomial = .anchor,
                polyDim: Int = 8, prfDim: Int = 8, eps: Double = 1e-6, prfClamp: Double = 20, seed: UInt64 = 0,
                orthogonal: Bool = false, sharedOmega: Bool = false) {
        self.orthogonal = orthogonal
        self.sharedOmega = sharedOmega
        self.headDim = headDim
        self.numHeads = numHeads
        self.nodes = nodes
        self.polynomial = polynomial
        self.polyDim = polyDim
        self.prfDim = prfDim
        self.eps = eps
        self.prfClamp = prfClamp
        self.seed = seed
    }

    public static let maximumDimension = 65536
    public static let maximumFeatureDim = 1 << 24
    /// Parameter arrays live in Swift arrays (whose allocation failure would abort the host), so
    /// they are capped at 2^28 floats (1 GiB) each.
    public static let maximumParameterFloats = 1 << 28

    /// Polynomial features per node, P'.
    public var polyFeatures: Int {
        switch polynomial {
        case .anchor: return polyDim
        case .exact: return headDim * (headDim + 1) / 2
        case .exactFull: return headDim * headDim
        case .laplace: return 1
        case .randomMaclaurin, .tensorSketch, .nystrom: return polyDim
        }
    }

    /// Checks ranges and sizes; every message names the offending field.
    public func validate() throws {
        for (name, value) in [("head_dim", headDim), ("num_heads", numHeads), ("prf_dim", prfDim)] {
            guard value >= 1 && value <= Self.maximumDimension else {
                throw SlayError.shape("\(name) must be in 1...\(Self.maximumDimension), got \(value)")
            }
        }
        if polynomial.usesPolyDim {
            guard polyDim >= 1 && polyDim <= Self.maximumDimension else {
                throw SlayError.shape("poly_dim must be in 1...\(Self.maximumDimension), got \(polyDim)")
            }
        }
        if polynomial == .nystrom {
            guard polyDim <= NystromWhitening.maximumAnchors else {
                throw SlayError.shape("poly_dim must be in 1...\(NystromWhitening.maximumAnchors) for the Nyström polynomial (its whitening is an O(P³) eigen-decomposition), got \(polyDim)")
            }
        }
        guard nodes >= 1 && nodes <= GaussLaguerreRule.maximumNodes else {
            throw SlayError.invalid("nodes must be in 1...\(GaussLaguerreRule.maximumNodes), got \(nodes)")
        }
        guard eps.isFinite && eps > 0 else { throw SlayError.invalid("eps must be finite and > 0, got \(eps)") }
        guard prfClamp.isFinite && prfClamp > 0 else {
            throw SlayError.invalid("prf_clamp must be finite and > 0, got \(prfClamp)")
        }
        let m = try CheckedSize.multiply(nodes, polyFeatures, prfDim, what: "feature dimension R·P'·M")
        guard m <= Self.maximumFeatureDim else {
            throw SlayError.overflow("feature dimension R·P'·M = \(m) exceeds the maximum \(Self.maximumFeatureDim)")
        }
        if polynomial.usesPolyDim {
            let anchors = try CheckedSize.multiply(2, polyDim, headDim, what: "anchors size P·d")
            guard anchors <= Self.maximumParameterFloats else {
                throw SlayError.overflow("anchors would hold \(anchors) floats; the maximum is 2^28")
            }
        }
        let omega = try CheckedSize.multiply(nodes, numHeads, headDim, prfDim, what: "omega size R·H·d·M")
        guard omega <= Self.maximumParameterFloats else {
            throw SlayError.overflow("omega would hold \(omega) floats; the maximum is 2^28")
        }
    }
}

/// SLAY: the spherical Yat kernel x²/(2 + ε − 2x) of unit directions, linearised as
/// Ψ(u) = concat_r √w_r · φ_poly(u) ⊗ φ_PRF(u; s_r) (docs/math.md §1).
///
/// Feature index within a head: (r · P' + p) · M + j.
public final class SlayFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: SlayConfiguration
    public let kernel: SphericalYatKernel
    /// Laplace-variable nodes s_r and weights w_r.
    public let s: [Double]
    public let w: [Double]

    /// (P, d) unit anchors, row-major (anchor polynomial only).
    public private(set) var anchors: [Float]
    /// (R, H, d, M) Gaussian PRF directions, row-major.
    public private(set) var omega: [Float]
    public private(set) var identity: UInt64 = 0

    /// √(2 s_r) · ω[r, h] as (d, M) blocks, the right-hand operand of the PRF product.
    private var scaledOmega: [Float] = []
    /// Anchors transposed to (d, P).
    private var anchorsTransposed: [Float] = []
    /// Random Maclaurin directions (2, P, d), and both transposed to (d, P).
    public private(set) var maclaurin: [Float] = []
    private var maclaurinTransposed: [Float] = []
    /// TensorSketch hashes and signs (2, 2, d) as floats, and decoded.
    public private(set) var sketch: [Float] = []
    private var tensorSketch: TensorSketch?
    /// Nyström whitening (K_AA + λI)^{−1/2} (P, P) of the current anchors.
    public private(set) var nystromWhitening: [Float] = []

    public init(_ configuration: SlayConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        self.kernel = try SphericalYatKernel(eps: configuration.eps)
        (self.s, self.w) = try kernel.quadrature(nodes: configuration.nodes)
        let generator = ParameterGenerator(seed: configuration.seed)
        let c = configuration
        self.anchors = c.polynomial.usesAnchors
            ? generator.unitRows(stream: ParameterGenerator.anchorStream, rows: c.polyDim, cols: c.headDim)
            : []
        self.maclaurin = c.polynomial == .randomMaclaurin
            ? generator.normals(stream: ParameterGenerator.maclaurinStream, count: 2 * c.polyDim * c.headDim)
            : []
        if c.polynomial == .tensorSketch {
            sketch = TensorSketch.generate(generator, stream: ParameterGenerator.tensorSketchStream,
                                           headDim: c.headDim, polyDim: c.polyDim)
            tensorSketch = try TensorSketch(parameter: sketch, headDim: c.headDim, polyDim: c.polyDim)
        }
        if c.polynomial == .nystrom {
            nystromWhitening = try NystromWhitening.matrix(anchors: anchors, count: c.polyDim, headDim: c.headDim)
        }
        self.omega = c.orthogonal
            ? FavorPlusFeatureMap.blockOrthogonalOmega(seed: c.seed, headDim: c.headDim, numHeads: c.omegaBlocks * c.numHeads,
                                                       features: c.prfDim, stream: ParameterGenerator.slayOrthogonalStream)
            : generator.normals(stream: ParameterGenerator.omegaStream, count: c.omegaBlocks * c.numHeads * c.headDim * c.prfDim)
        rebuildDerived()
    }

    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var featureDim: Int { configuration.nodes * configuration.polyFeatures * configuration.prfDim }
    /// Anchor features are ≥ 0; exact ones are signed (vec(ûûᵀ)), though their kernel
    /// x²·e^{…} is never negative.
    public var isPositive: Bool { configuration.polynomial == .anchor || configuration.polynomial == .laplace }

    public var parameterNames: [String] {
        switch configuration.polynomial {
        case .anchor, .nystrom: return ["anchors", "omega"]
        case .randomMaclaurin: return ["maclaurin", "omega"]
        case .tensorSketch: return ["sketch", "omega"]
        default: return ["omega"]
        }
    }

    public func parameterShape(_ name: String) -> [Int]? {
        let c = configuration
        switch name {
        case "anchors" where c.polynomial.usesAnchors: return [c.polyDim, c.headDim]
        case "maclaurin" where c.polynomial == .randomMaclaurin: return [2, c.polyDim, c.headDim]
        case "sketch" where c.polynomial == .tensorSketch: return [2, 2, c.headDim]
        case "omega": return [c.omegaBlocks, c.numHeads, c.headDim, c.prfDim]
        default: return nil
        }
    }

    public func parameterValues(_ name: String) -> [Float]? {
        switch name {
        case "anchors" where configuration.polynomial.usesAnchors: return anchors
        case "maclaurin" where configuration.polynomial == .randomMaclaurin: return maclaurin
        case "sketch" where configuration.polynomial == .tensorSketch: return sketch
        case "omega": return omega
        default: return nil
        }
    }

    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        guard let shape = parameterShape(name) else {
            throw SlayError.invalid("unknown parameter '\(name)'; this map has \(parameterNames.joined(separator: ", "))")
        }
        let expected = shape.reduce(1, *)
        guard values.count == expected else {
            throw SlayError.shape("parameter '\(name)' has shape \(shape) (\(expected) floats), got \(values.count) floats")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw SlayError.invalid("parameter '\(name)' element \(bad) is \(values[bad]); all values must be finite")
        }
        // Derived matrices that can fail are computed before anything changes, so a refused call
        // leaves the map as it was.
        let c = configuration
        switch name {
        case "anchors":
            if c.polynomial == .nystrom {
                nystromWhitening = try NystromWhitening.matrix(anchors: Array(values), count: c.polyDim, headDim: c.headDim)
            }
            anchors = Array(values)
        case "maclaurin": maclaurin = Array(values)
        case "sketch":
            tensorSketch = try TensorSketch(parameter: Array(values), headDim: c.headDim, polyDim: c.polyDim)
            sketch = Array(values)
        default: omega = Array(values)
        }
        rebuildDerived()
    }

    private func rebuildDerived() {
        let c = configuration
        let (d, m, h) = (c.headDim, c.prfDim, c.numHeads)
        // R scaled blocks √(2 s_r)·ω_r (ω_0 for every node when shared).
        let block = h * d * m
        scaledOmega = [Float](repeating: 0, count: c.nodes * block)
        for r in 0..<c.nodes {
            let scale = Float((2 * s[r]).squareRoot())
            let source = (c.sharedOmega ? 0 : r) * block
            for i in 0..<block { scaledOmega[r * block + i] = omega[source + i] * scale }
        }
        anchorsTransposed = [Float](repeating: 0, count: anchors.count)
        for p in 0..<(c.polynomial.usesAnchors ? c.polyDim : 0) {
            for j in 0..<d { anchorsTransposed[j * c.polyDim + p] = anchors[p * d + j] }
        }
        maclaurinTransposed = [Float](repeating: 0, count: maclaurin.count)
        if c.polynomial == .randomMaclaurin {
            let pd = c.polyDim * d
            for half in 0..<2 {
                for p in 0..<c.polyDim {
                    for j in 0..<d { maclaurinTransposed[half * pd + j * c.polyDim + p] = maclaurin[half * pd + p * d + j] }
                }
            }
        }
        var hasher = IdentityHasher()
        hasher.combine("slay")
        hasher.combine(d); hasher.combine(h); hasher.combine(c.nodes)
        hasher.combine(Int(c.polynomial.rawValue)); hasher.combine(c.polyFeatures); hasher.combine(m)
        hasher.combine(c.eps); hasher.combine(c.prfClamp); hasher.combine(c.orthogonal ? 1 : 0); hasher.combine(c.sharedOmega ? 1 : 0)
        hasher.combine(anchors); hasher.combine(maclaurin); hasher.combine(omega)
        // Only maps that have a sketch hash it, so the other polynomials keep their identities.
        if c.polynomial == .tensorSketch { hasher.combine(sketch) }
        identity = hasher.value
    }

    public func scratchFloats(rows: Int) -> Int {
        let c = configuration
        // Mirrors scratchLayout.
        return ScratchBuffer.footprint(rows * c.headDim)
            + ScratchBuffer.footprint(rows * c.polyFeatures)
            + ScratchBuffer.footprint(rows * prfRegionWidth)
            + ScratchBuffer.footprint(rows * c.prfDim)
            + Gemm.workspaceFloats
    }

    public func scoreScratchFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * rows) + Gemm.workspaceFloats
    }

    /// Where `features` leaves its intermediates in its scratch (units, poly, prf), which
    /// `scores` reads back.
    /// Width per row of the PRF region, which random Maclaurin also borrows (for its second
    /// projection) before the PRF features are computed.
    var prfRegionWidth: Int {
        let c = configuration
        switch c.polynomial {
        case .randomMaclaurin, .nystrom: return max(c.nodes * c.prfDim, c.polyDim)
        // The two count sketches of the row being mapped.
        case .tensorSketch: return max(c.nodes * c.prfDim, 2 * c.polyDim)
        default: return c.nodes * c.prfDim
        }
    }

    func scratchLayout(rows: Int) -> (units: Int, poly: Int, prf: Int, exponents: Int, gemm: Int) {
        let c = configuration
        let units = 0
        let poly = units + ScratchBuffer.footprint(rows * c.headDim)
        let prf = poly + ScratchBuffer.footprint(rows * c.polyFeatures)
        let exponents = prf + ScratchBuffer.footprint(rows * prfRegionWidth)
        let gemm = exponents + ScratchBuffer.footprint(rows * c.prfDim)
        return (units, poly, prf, exponents, gemm)
    }

    /// û = x/‖x‖ with the norm in double, so huge inputs do not overflow; a zero row maps to 0.
    func unitRows(_ input: UnsafePointer<Float>, rows: Int, into units: UnsafeMutablePointer<Float>) {
        UnitDirections.normalise(input, rows: rows, width: configuration.headDim, into: units)
    }

    /// (a_p·û)² · scale for every anchor p of unit rows: the anchor features (scale 1/√P) and the
    /// input of the Nyström whitening (scale 1).
    func squaredAnchorProjections(_ units: UnsafePointer<Float>, rows: Int, scale: Float,
                                  into poly: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, pf) = (configuration.headDim, configuration.polyDim)
        anchorsTransposed.withUnsafeBufferPointer { at in
            Gemm.multiply(m: rows, n: pf, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: at.baseAddress!, rowStrideB: pf, columnStrideB: 1,
                          c: poly, ldc: pf, accumulate: false, workspace: gemmSpace)
        }
        for i in 0..<(rows * pf) { poly[i] = poly[i] * poly[i] * scale }
    }

    /// Anchor features [(a_p·û)²]/√P of unit rows.
    func anchorFeatures(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                        gemmSpace: UnsafeMutablePointer<Float>) {
        squaredAnchorProjections(units, rows: rows, scale: 1 / Float(configuration.polyDim).squareRoot(), into: poly,
                                 gemmSpace: gemmSpace)
    }

    /// Random Maclaurin features (r1_p·û)(r2_p·û)/√P; `spare` holds rows·P floats.
    func maclaurinFeatures(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                           spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, pf) = (configuration.headDim, configuration.polyDim)
        maclaurinTransposed.withUnsafeBufferPointer { mt in
            Gemm.multiply(m: rows, n: pf, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: mt.baseAddress!, rowStrideB: pf, columnStrideB: 1,
                          c: poly, ldc: pf, accumulate: false, workspace: gemmSpace)
            Gemm.multiply(m: rows, n: pf, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: mt.baseAddress! + pf * d, rowStrideB: pf, columnStrideB: 1,
                          c: spare, ldc: pf, accumulate: false, workspace: gemmSpace)
        }
        let scale = 1 / Float(pf).squareRoot()
        for i in 0..<(rows * pf) { poly[i] = poly[i] * spare[i] * scale }
    }

    /// Nyström features W [(a_p·û)²]_p; `spare` holds rows·P floats.
    func nystromFeatures(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let pf = configuration.polyDim
        squaredAnchorProjections(units, rows: rows, scale: 1, into: spare, gemmSpace: gemmSpace)
        nystromWhitening.withUnsafeBufferPointer { w in
            Gemm.multiply(m: rows, n: pf, k: pf, a: spare, rowStrideA: pf, columnStrideA: 1,
                          b: w.baseAddress!, rowStrideB: pf, columnStrideB: 1,
                          c: poly, ldc: pf, accumulate: false, workspace: gemmSpace)
        }
    }

    /// PRF features of unit rows for every node, √w_r folded in: prf[i, r·M + j] =
    /// exp(clamp(√(2 s_r) ω_{r,h,:,j}·û − s_r)) · √(w_r / M).
    func prfFeatures(_ units: UnsafePointer<Float>, rows: Int, head: Int, into prf: UnsafeMutablePointer<Float>,
                     exponents: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (d, mm, nodes) = (c.headDim, c.prfDim, c.nodes)
        let clamp = Float(c.prfClamp)
        scaledOmega.withUnsafeBufferPointer { omegaBuffer in
            for r in 0..<nodes {
                let block = omegaBuffer.baseAddress! + (r * c.numHeads + head) * d * mm
                Gemm.multiply(m: rows, n: mm, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                              b: block, rowStrideB: mm, columnStrideB: 1,
                              c: exponents, ldc: mm, accumulate: false, workspace: gemmSpace)
                let shift = Float(s[r])
                let scale = Float((w[r] / Double(mm)).squareRoot())
                for i in 0..<rows {
                    VectorMath.expShiftedClamped(exponents + i * mm, count: mm, shift: shift, limit: clamp,
                                                 scale: scale, output: prf + (i * nodes + r) * mm)
                }
            }
        }
    }

    /// φ(q_i)·φ(k_j) for a block, without forming φ: the kernel factorises as
    /// (poly_q·poly_k)·(prf_q·prf_k), and for exact polynomials poly_q·poly_k = (û_q·û_k)².
    /// Costs O(c²·(P or d) + c²·R·M) instead of O(c²·R·P'·M), and reads û, poly and prf from the
    /// scratch of the `features` calls that just mapped these rows.
    public func scores(head: Int, rows: Int, queryScratch: UnsafePointer<Float>, keyScratch: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool {
        let c = configuration
        let (d, rm) = (c.headDim, c.nodes * c.prfDim)
        let layout = scratchLayout(rows: rows)
        let gram = scratch
        let gemmSpace = scratch + ScratchBuffer.footprint(rows * rows)
        Gemm.multiply(m: rows, n: rows, k: rm, a: queryScratch + layout.prf, rowStrideA: rm, columnStrideA: 1,
                      b: keyScratch + layout.prf, rowStrideB: 1, columnStrideB: rm, c: output, ldc: rows,
                      accumulate: false, workspace: gemmSpace)
        if c.polynomial.usesPolyDim {
            let p = c.polyDim
            Gemm.multiply(m: rows, n: rows, k: p, a: queryScratch + layout.poly, rowStrideA: p, columnStrideA: 1,
                          b: keyScratch + layout.poly, rowStrideB: 1, columnStrideB: p, c: gram, ldc: rows,
                          accumulate: false, workspace: gemmSpace)
            for i in 0..<(rows * rows) { output[i] *= gram[i] }
        } else if c.polynomial == .laplace {
            // No polynomial factor: the PRF Gram is the whole kernel.
        } else {
            Gemm.multiply(m: rows, n: rows, k: d, a: queryScratch + layout.units, rowStrideA: d, columnStrideA: 1,
                          b: keyScratch + layout.units, rowStrideB: 1, columnStrideB: d, c: gram, ldc: rows,
                          accumulate: false, workspace: gemmSpace)
            for i in 0..<(rows * rows) { output[i] *= gram[i] * gram[i] }
        }
        return true
    }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (d, pf, mm, nodes) = (c.headDim, c.polyFeatures, c.prfDim, c.nodes)
        let layout = scratchLayout(rows: rows)
        let (units, poly, prf) = (scratch + layout.units, scratch + layout.poly, scratch + layout.prf)
        let (exponents, gemmSpace) = (scratch + layout.exponents, scratch + layout.gemm)
        unitRows(input, rows: rows, into: units)

        switch c.polynomial {
        case .anchor:
            anchorFeatures(units, rows: rows, into: poly, gemmSpace: gemmSpace)
        case .exact:
            let root2 = Float(2.0.squareRoot())
            for i in 0..<rows {
                let u = units + i * d
                var target = poly + i * pf
                for a in 0..<d {
                    target[0] = u[a] * u[a]
                    let ua = u[a] * root2
                    for b in (a + 1)..<max(a + 1, d) { target[b - a] = ua * u[b] }
                    target += d - a
                }
            }
        case .exactFull:
            for i in 0..<rows {
                let u = units + i * d
                let target = poly + i * pf
                for a in 0..<d { for b in 0..<d { target[a * d + b] = u[a] * u[b] } }
            }
        case .laplace:
            poly.update(repeating: 1, count: rows)
        case .randomMaclaurin:
            maclaurinFeatures(units, rows: rows, into: poly, spare: prf, gemmSpace: gemmSpace)
        case .tensorSketch:
            tensorSketch?.features(units, rows: rows, into: poly, spare: prf)
        case .nystrom:
            nystromFeatures(units, rows: rows, into: poly, spare: prf, gemmSpace: gemmSpace)
        }
        prfFeatures(units, rows: rows, head: head, into: prf, exponents: exponents, gemmSpace: gemmSpace)

        // Ψ[i, (r·P' + p)·M + j] = poly[i, p] · prf[i, r, j]
        let m = featureDim
        for i in 0..<rows {
            let row = output + i * m
            let polyRow = poly + i * pf
            for r in 0..<nodes {
                let prfRow = prf + (i * nodes + r) * mm
                for p in 0..<pf {
                    let value = polyRow[p]
                    let target = row + (r * pf + p) * mm
                    for j in 0..<mm { target[j] = value * prfRow[j] }
                }
            }
        }
    }
}
