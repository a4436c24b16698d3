/// SLAY: the spherical Yat kernel x²/(2 + ε − 2x) of unit directions, linearised as
/// Ψ(u) = concat_r √w_r · φ_poly(u) ⊗ φ_PRF(u; s_r) (docs/math.md §1). The polynomial factor
/// comes from a `SlayPolynomialEstimator` (one file per estimator); this file holds what every
/// estimator shares: unit directions, the PRF features and their product.
///
/// Feature index within a head: (r · P' + p) · M + j.
public final class SlayFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: SlayConfiguration
    public let kernel: SphericalYatKernel
    /// Laplace-variable nodes s_r and weights w_r.
    public let s: [Double]
    public let w: [Double]

    /// The estimator of the polynomial factor and its parameters.
    public private(set) var polynomial: any SlayPolynomialEstimator
    /// (R or 1, H, d, M) Gaussian PRF directions, row-major.
    public private(set) var omega: HeapArray<Float>
    public private(set) var identity: UInt64 = 0
    /// The estimator's gradient (nil when it has none) and how many floats its parameters hold
    /// (where ω's gradient starts), kept with `polynomial`: the backward asks for both per chunk,
    /// and a dynamic cast or a walk over the parameter names there costs allocations every time.
    private(set) var polynomialGradient: SlayPolynomialGradient?
    private(set) var polynomialParameterCount = 0

    /// √(2 s_r) · ω[r, h] as one (d, R·M) block per head (node r in columns r·M..<(r+1)·M): the
    /// right-hand operand of the PRF product, so one product per head serves every node.
    private var scaledOmega: HeapArray<Float>
    /// ω_rᵀ of every node stacked per head, (H, R·M, d) (node r in rows r·M..<(r+1)·M): the
    /// right-hand operand of the gradient's ∂û = ∂e Ωᵀ, formed when ω changes rather than per chunk.
    private(set) var stackedOmegaTransposed: HeapArray<Float>

    public init(_ configuration: SlayConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        self.kernel = try SphericalYatKernel(eps: configuration.eps)
        (self.s, self.w) = try kernel.quadrature(nodes: configuration.nodes)
        let generator = ParameterGenerator(seed: configuration.seed)
        let c = configuration
        polynomial = try c.polynomial.makeEstimator(c, generator)
        let omegaCount = try CheckedSize.multiply(c.omegaBlocks, c.numHeads, c.headDim, c.prfDim, what: "omega size")
        omega = c.orthogonal
            ? try FavorPlusFeatureMap.blockOrthogonalOmega(seed: c.seed, headDim: c.headDim, numHeads: c.omegaBlocks * c.numHeads,
                                                           features: c.prfDim, stream: ParameterGenerator.slayOrthogonalStream)
            : try generator.makeNormals(stream: ParameterGenerator.omegaStream, count: omegaCount, what: "omega")
        scaledOmega = try Self.scaledOmega(omega, configuration: c, s: s)
        stackedOmegaTransposed = try Self.stackedOmegaTransposed(omega, configuration: c)
        estimatorChanged()
        rebuildIdentity()
    }

    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var featureDim: Int { configuration.nodes * polynomial.width * configuration.prfDim }
    /// Ψ is one function of û whichever side it maps.
    public var rolesShareFeatures: Bool { true }
    /// The PRF factor is > 0, so the sign of the features is the polynomial's.
    public var isPositive: Bool { polynomial.isPositive }

    public var parameterNames: [String] { polynomial.parameterNames + ["omega"] }

    public func parameterShape(_ name: String) -> [Int]? {
        let c = configuration
        return name == "omega" ? [c.omegaBlocks, c.numHeads, c.headDim, c.prfDim] : polynomial.parameterShape(name)
    }

    public func parameter(_ name: String) -> HeapArray<Float>? {
        name == "omega" ? omega : polynomial.parameter(name)
    }

    /// Everything that can fail (allocation, the estimator's checks and derived matrices) happens
    /// before anything is replaced, so a refused call leaves the map as it was.
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        let checked = try FeatureMapParameters.checked(name, of: self, values: values)
        if name == "omega" {
            let scaled = try Self.scaledOmega(checked, configuration: configuration, s: s)
            let stacked = try Self.stackedOmegaTransposed(checked, configuration: configuration)
            (omega, scaledOmega, stackedOmegaTransposed) = (checked, scaled, stacked)
        } else {
            polynomial = try polynomial.replacing(name, with: checked)
            estimatorChanged()
        }
        rebuildIdentity()
    }

    /// √(2 s_r)·ω_r (ω_0 for every node when ω is shared), (H, d, R·M).
    private static func scaledOmega(_ omega: HeapArray<Float>, configuration c: SlayConfiguration,
                                    s: [Double]) throws -> HeapArray<Float> {
        let (d, mm, nodes) = (c.headDim, c.prfDim, c.nodes)
        let block = c.numHeads * d * mm
        let scaled = try HeapArray<Float>(count: try CheckedSize.multiply(nodes, block, what: "scaled omega"), what: "scaled omega")
        for r in 0..<nodes {
            let scale = Float((2 * s[r]).squareRoot())
            let source = omega.baseAddress + omegaBlockIndex(node: r, head: 0, configuration: c) * d * mm
            for h in 0..<c.numHeads {
                for i in 0..<d {
                    let (from, to) = (source + (h * d + i) * mm, scaled.baseAddress + ((h * d + i) * nodes + r) * mm)
                    for j in 0..<mm { to[j] = from[j] * scale }
                }
            }
        }
        return scaled
    }

    /// See `stackedOmegaTransposed`: the transposes are exact, so the gradient's products see
    /// the same floats as when it transposed ω per chunk.
    private static func stackedOmegaTransposed(_ omega: HeapArray<Float>, configuration c: SlayConfiguration) throws
        -> HeapArray<Float> {
        let (d, mm, nodes) = (c.headDim, c.prfDim, c.nodes)
        let count = try CheckedSize.multiply(c.numHeads, nodes, mm, d, what: "transposed omega")
        let stacked = try HeapArray<Float>(count: count, what: "transposed omega")
        for h in 0..<c.numHeads {
            for r in 0..<nodes {
                BlockTranspose.transpose(omega.baseAddress + omegaBlockIndex(node: r, head: h, configuration: c) * d * mm,
                                         rows: d, columns: mm, sourceStride: mm,
                                         into: stacked.baseAddress + (h * nodes + r) * mm * d, targetStride: d)
            }
        }
        return stacked
    }

    /// Node r's ω block of `head` in (R or 1, H, d, M) (the one block of every node when ω is shared).
    static func omegaBlockIndex(node r: Int, head: Int, configuration c: SlayConfiguration) -> Int {
        (c.sharedOmega ? 0 : r) * c.numHeads + head
    }

    /// polynomialGradient and polynomialParameterCount of the current `polynomial`.
    private func estimatorChanged() {
        polynomialGradient = polynomial as? SlayPolynomialGradient
        polynomialParameterCount = polynomial.parameterNames.reduce(0) { $0 + (polynomial.parameterShape($1)?.reduce(1, *) ?? 0) }
    }

    /// The hash keeps the words of the original single-file map (anchors, maclaurin, ω, then the
    /// sketch only for maps that have one), so every map keeps its identity and saved states
    /// keep loading.
    private func rebuildIdentity() {
        let c = configuration
        var hasher = IdentityHasher()
        hasher.combine("slay")
        hasher.combine(c.headDim); hasher.combine(c.numHeads); hasher.combine(c.nodes)
        hasher.combine(Int(c.polynomial.rawValue)); hasher.combine(polynomial.width); hasher.combine(c.prfDim)
        hasher.combine(c.eps); hasher.combine(c.prfClamp); hasher.combine(c.orthogonal ? 1 : 0); hasher.combine(c.sharedOmega ? 1 : 0)
        hasher.combine(polynomial.parameter("anchors")); hasher.combine(polynomial.parameter("maclaurin")); hasher.combine(omega)
        if let sketch = polynomial.parameter("sketch") { hasher.combine(sketch) }
        identity = hasher.value
    }

    public func scratchFloats(rows: Int) -> Int {
        let layout = scratchLayout(rows: rows)
        return layout.gemm + Gemm.workspaceFloats
    }

    public func scoreScratchFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * rows) + Gemm.workspaceFloats
    }

    /// Width per row of the PRF region, which the estimator borrows as spare space before the PRF
    /// features are computed.
    var prfRegionWidth: Int { max(configuration.nodes * configuration.prfDim, polynomial.spareWidth) }

    /// Where `features` leaves its intermediates in its scratch (units, poly, prf), which `scores`
    /// reads back; the one description that both sizes and carves the scratch.
    func scratchLayout(rows: Int) -> (units: Int, poly: Int, prf: Int, exponents: Int, gemm: Int) {
        let c = configuration
        let units = 0
        let poly = units + ScratchBuffer.footprint(rows * c.headDim)
        let prf = poly + ScratchBuffer.footprint(rows * polynomial.width)
        let exponents = prf + ScratchBuffer.footprint(rows * prfRegionWidth)
        let gemm = exponents + ScratchBuffer.footprint(rows * c.nodes * c.prfDim)
        return (units, poly, prf, exponents, gemm)
    }

    /// PRF features of unit rows for every node, √w_r folded in: prf[i, r·M + j] =
    /// exp(clamp(√(2 s_r) ω_{r,h,:,j}·û − s_r)) · √(w_r / M).
    func prfFeatures(_ units: UnsafePointer<Float>, rows: Int, head: Int, into prf: UnsafeMutablePointer<Float>,
                     exponents: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (d, mm, nodes) = (c.headDim, c.prfDim, c.nodes)
        let clamp = Float(c.prfClamp)
        let width = nodes * mm
        Gemm.multiply(m: rows, n: width, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                      b: scaledOmega.baseAddress + head * d * width, rowStrideB: width, columnStrideB: 1,
                      c: exponents, ldc: width, accumulate: false, workspace: gemmSpace)
        for r in 0..<nodes {
            let shift = Float(s[r])
            let scale = Float((w[r] / Double(mm)).squareRoot())
            for i in 0..<rows {
                VectorMath.expShiftedClamped(exponents + i * width + r * mm, count: mm, shift: shift, limit: clamp,
                                             scale: scale, output: prf + (i * nodes + r) * mm)
            }
        }
    }

    /// φ(q_i)·φ(k_j) for a block, without forming φ: the kernel factorises as
    /// (poly_q·poly_k)·(prf_q·prf_k), so the PRF Gram is multiplied by the estimator's factor.
    /// Costs O(c²·(P or d) + c²·R·M) instead of O(c²·R·P'·M), and reads û, poly and prf from the
    /// scratch of the `features` calls that just mapped these rows.
    public func scores(head: Int, rows: Int, queryScratch: UnsafePointer<Float>, keyScratch: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool {
        let rm = configuration.nodes * configuration.prfDim
        let layout = scratchLayout(rows: rows)
        let gram = scratch
        let gemmSpace = scratch + ScratchBuffer.footprint(rows * rows)
        Gemm.multiply(m: rows, n: rows, k: rm, a: queryScratch + layout.prf, rowStrideA: rm, columnStrideA: 1,
                      b: keyScratch + layout.prf, rowStrideB: 1, columnStrideB: rm, c: output, ldc: rows,
                      accumulate: false, workspace: gemmSpace)
        polynomial.multiplyScores(rows: rows,
                                  query: SlayScratchRows(units: queryScratch + layout.units, poly: queryScratch + layout.poly),
                                  key: SlayScratchRows(units: keyScratch + layout.units, poly: keyScratch + layout.poly),
                                  output: output, gram: gram, gemmSpace: gemmSpace)
        return true
    }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        features(head: head, input: input, rows: rows, output: output, rowStride: featureDim, scratch: scratch)
    }

    /// `features` with output rows `rowStride` floats apart (≥ featureDim).
    func features(head: Int, input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>,
                  rowStride: Int, scratch: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (pf, mm, nodes) = (polynomial.width, c.prfDim, c.nodes)
        let layout = scratchLayout(rows: rows)
        let (units, poly, prf) = (scratch + layout.units, scratch + layout.poly, scratch + layout.prf)
        let (exponents, gemmSpace) = (scratch + layout.exponents, scratch + layout.gemm)
        // û = x/‖x‖ with the norm in double, so huge inputs do not overflow; a zero row maps to 0.
        UnitDirections.normalise(input, rows: rows, width: c.headDim, into: units)
        polynomial.features(units, rows: rows, into: poly, spare: prf, gemmSpace: gemmSpace)
        prfFeatures(units, rows: rows, head: head, into: prf, exponents: exponents, gemmSpace: gemmSpace)

        // Ψ[i, (r·P' + p)·M + j] = poly[i, p] · prf[i, r, j]
        for i in 0..<rows {
            let row = output + i * rowStride
            let polyRow = poly + i * pf
            for r in 0..<nodes {
                VectorMath.outer(polyRow, count: pf, prf + (i * nodes + r) * mm, width: mm, output: row + r * pf * mm)
            }
        }
    }
}
