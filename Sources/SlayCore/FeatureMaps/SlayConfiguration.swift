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
    /// Each parameter array is capped at 2^28 floats (1 GiB); its storage is a HeapArray, so a map
    /// that does not fit in memory is SLAY_ERR_OUT_OF_MEMORY, not an abort.
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

    /// A double setting the kernels use in fp32 (the clamp of the PRF exponents, ε through the
    /// quadrature nodes and the Taylor coefficients): it must be finite and > 0 as a float too,
    /// so 1e39 (inf in fp32) and 1e-50 (0 in fp32) are refused rather than silently changing
    /// every output.
    public static func validatePositiveFloat(_ value: Double, _ name: String) throws {
        guard value.isFinite && value > 0 else { throw SlayError.invalid("\(name) must be finite and > 0, got \(value)") }
        let single = Float(value)
        guard single.isFinite && single > 0 else {
            throw SlayError.invalid("\(name) is \(value), which is \(single) in float32; it must be finite and > 0 in float32 (about 1.4e-45 to 3.4e38)")
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
        try Self.validatePositiveFloat(eps, "eps")
        try Self.validatePositiveFloat(prfClamp, "prf_clamp")
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
