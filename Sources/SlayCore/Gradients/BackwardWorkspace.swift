/// One worker's workspace of the backward pass, sized and carved from one description
/// (`BackwardWorkspace.Layout`): three m × dv matrices (the state S, its gradient Ŝ and a
/// transposed copy of either, rows padded by a cache line), three m-vectors, and per chunk of c
/// rows the key, value and decay blocks (and their transposes) plus, for each of the G query
/// heads of a key head, its query blocks. O(G·c·(d + m + dv) + m·dv) floats, independent of T.
struct BackwardWorkspace {
    struct Layout {
        let chunk: Int
        let group: Int
        let headDim: Int
        let featureDim: Int
        let valueDim: Int
        let mapScratch: Int
        /// Scratch of the key rows' `features` call, kept through the chunk (the factors live there).
        let keyScratch: Int
        /// Factor widths (P', R·M) of a factorised map (FactorisedFeatureGradient), else 0.
        let factorPoly: Int
        let factorPrf: Int
        /// Per-channel GLA decay (BackwardPass+Gated): its c × m factor blocks are carved.
        let channelDecay: Bool
        /// Floats of a form's own region (the delta rule's states, `DeltaRuleBackward`); 0 otherwise.
        var formScratch: Int = 0

        /// Block sizes in carving order; `carve` takes them in the same order.
        var blocks: [Int] {
            let (c, g, d, m, dv) = (chunk, group, headDim, featureDim, valueDim)
            return [m * dv, m * dv, m, m, m, dv,
                    c * d, c * m, c * transposedStride, c * m, c * d, c * dv, c * dv, c * m, c * m, c,
                    g * c * d, g * c * m, g * c * transposedStride, g * c * m, g * c * dv, g * c, g * c, c * d,
                    mapScratch, c * c, c * c, c * max(m, dv), c + 1, Gemm.workspaceFloats,
                    keyScratch, c * c, c, c, c * c, c * c, c * c, g * c * factorPoly, g * c * factorPrf,
                    c * factorPoly, c * factorPrf, c]
                    + (channelDecay ? [c * m, c * m, c * m, c * m, m, m + 8, m, c * m] : [0, 0, 0, 0, 0, 0, 0, 0])
                    + [c, g * c, formScratch, dv * transposedStride, c * transposedStride,
                       c * (dv + factorPoly + factorPrf), g * ScratchBuffer.footprint(keyScratch), c * c, c,
                       m * BackwardWorkspace.columnStride(rows: c)]
        }

        /// Row stride of the transposed state blocks (`transposedState`): m plus one cache line,
        /// so that the dv rows of a column block do not all fall into the same few cache sets
        /// (a stride of 2 KiB at m = 512 thrashed L1).
        var transposedStride: Int { BackwardWorkspace.transposedStride(featureDim: featureDim) }

        func totalFloats() throws -> Int {
            var total = 0
            for block in blocks { total = try CheckedSize.add(total, ScratchBuffer.footprint(block), what: "backward workspace") }
            return total
        }
    }

    let state: UnsafeMutablePointer<Float>
    let stateGradient: UnsafeMutablePointer<Float>
    let normaliser: UnsafeMutablePointer<Float>
    let normaliserGradient: UnsafeMutablePointer<Float>
    /// Per channel: the running suffix sum of ∂L/∂(cumulative log decay) (GLA d log α).
    let decaySuffix: UnsafeMutablePointer<Float>
    let numerator: UnsafeMutablePointer<Float>
    let keyInput: UnsafeMutablePointer<Float>
    let keyRaw: UnsafeMutablePointer<Float>
    /// Rows m floats apart, or `transposedStride` apart where the causal chunked pass has a
    /// factorised map write them so (its `fs`); queryFeatures alike, head g at offset g·c·(stride).
    let keyFeatures: UnsafeMutablePointer<Float>
    let keyFeatureGradient: UnsafeMutablePointer<Float>
    let keyInputGradient: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>
    let valueGradient: UnsafeMutablePointer<Float>
    /// α = e^{log α} per row and channel, and the rows of d log α being built.
    let decay: UnsafeMutablePointer<Float>
    let decayGradient: UnsafeMutablePointer<Float>
    let keyGates: UnsafeMutablePointer<Float>
    /// Query blocks, head g of the group at offset g·c·(width).
    let queryInput: UnsafeMutablePointer<Float>
    let queryRaw: UnsafeMutablePointer<Float>
    let queryFeatures: UnsafeMutablePointer<Float>
    let queryFeatureGradient: UnsafeMutablePointer<Float>
    let outputGradient: UnsafeMutablePointer<Float>
    let queryGates: UnsafeMutablePointer<Float>
    /// Per query row of the chunk (reverse pass): ∂L/∂den.
    let denominatorGradient: UnsafeMutablePointer<Float>
    let queryInputGradient: UnsafeMutablePointer<Float>
    let mapScratch: UnsafeMutablePointer<Float>
    /// Chunked path: the c × c scores and their gradient, a c × max(m, dv) block, γ^n, GEMM space.
    let scores: UnsafeMutablePointer<Float>
    let scoreGradient: UnsafeMutablePointer<Float>
    let block: UnsafeMutablePointer<Float>
    let powers: UnsafeMutablePointer<Float>
    let gemm: UnsafeMutablePointer<Float>
    /// The key rows' feature scratch (their factors, for the factorised intra-chunk terms).
    let keyScratch: UnsafeMutablePointer<Float>
    /// Chunk decay: Γ_ij = e^{b_i − b_j} (j ≤ i), p_i = e^{b_i}, w_j = e^{b_last − b_j}.
    let decayMatrix: UnsafeMutablePointer<Float>
    let rowScale: UnsafeMutablePointer<Float>
    let keyScale: UnsafeMutablePointer<Float>
    /// Factorised path: the two factor Grams of a query head and a c × c product of them.
    let polyGram: UnsafeMutablePointer<Float>
    let prfGram: UnsafeMutablePointer<Float>
    let product: UnsafeMutablePointer<Float>
    /// ∂L/∂poly and ∂L/∂prf from the intra-chunk block: per query head of the group, and the keys'.
    let queryPolyGradient: UnsafeMutablePointer<Float>
    let queryPrfGradient: UnsafeMutablePointer<Float>
    let keyPolyGradient: UnsafeMutablePointer<Float>
    let keyPrfGradient: UnsafeMutablePointer<Float>
    /// Per key row: Σ_g Σ_i dA_ij·Ã_ij, the intra-chunk part of φ(k_j)·dφ(k_j) (d log α).
    let keyIntraDot: UnsafeMutablePointer<Float>
    /// Per-channel GLA: b (cumulative log decay in the chunk), e^{b}, e^{b_last − b}, a scaled
    /// feature block, e^{b_last}, the decayed-score kernel's running sums, one pair's weights, α.
    let gatedCumulative: UnsafeMutablePointer<Float>
    let gatedQueryScale: UnsafeMutablePointer<Float>
    let gatedKeyScale: UnsafeMutablePointer<Float>
    let gatedScaled: UnsafeMutablePointer<Float>
    let pairFactors: UnsafeMutablePointer<Float>
    let gatedRunning: UnsafeMutablePointer<Float>
    let gatedPair: UnsafeMutablePointer<Float>
    let gatedAlpha: UnsafeMutablePointer<Float>
    /// qk_l2norm: 1/‖φ‖ per key row and per query row (head g at offset g·c) of the chunk.
    let keyInverseNorms: UnsafeMutablePointer<Float>
    let queryInverseNorms: UnsafeMutablePointer<Float>
    /// The form's own region (`Layout.formScratch` floats).
    let form: UnsafeMutablePointer<Float>
    /// A transposed state, dv rows of `transposedStride` floats (causal chunked path: Sᵀ in the
    /// forward pass, Ŝᵀ in the reverse pass), so its products read B's rows without packing.
    let transposedState: UnsafeMutablePointer<Float>
    /// A chunk's feature rows copied at `transposedStride` (the state products' operand).
    let paddedRows: UnsafeMutablePointer<Float>
    /// Key-side operands of the intra-chunk products, transposed with row stride c: Vᵀ [dv, c],
    /// then (factorised maps) P_Kᵀ [P', c] and R_Kᵀ [R·M, c].
    let keyTransposed: UnsafeMutablePointer<Float>
    /// The query rows' feature scratch, head g of the group at offset g·(keyScratch floats), kept
    /// through the chunk: a factorised map's factors, which its gradient reuses.
    let queryScratch: UnsafeMutablePointer<Float>
    let queryScratchStride: Int
    /// Factorised path: the second weighted product of dA (P_Q P_Kᵀ's), next to `product`.
    let secondProduct: UnsafeMutablePointer<Float>
    /// Per row of a chunk: weights of a row sum (∂L/∂den·e^{b} in the reverse pass's ẑ update).
    let rowWeights: UnsafeMutablePointer<Float>
    /// dφ(k) transposed, [m, columnStride(rows)] (the causal chunked pass's column path).
    let keyColumnGradient: UnsafeMutablePointer<Float>

    /// Row stride of a transposed [m, rows] block: rows rounded up to 16, plus 8, so that rows
    /// 16 apart (a node's p-steps at M = 16) do not fall 4 KiB apart into the same L1 sets.
    static func columnStride(rows: Int) -> Int { (rows + 15) / 16 * 16 + 8 }

    static func transposedStride(featureDim m: Int) -> Int { m + 16 }

    init(_ region: UnsafeMutablePointer<Float>, layout: Layout) {
        var carver = ScratchCarver(region)
        var sizes = layout.blocks.makeIterator()
        func next() -> UnsafeMutablePointer<Float> { carver.take(sizes.next()!) }
        state = next(); stateGradient = next(); normaliser = next(); normaliserGradient = next()
        decaySuffix = next(); numerator = next()
        keyInput = next(); keyRaw = next(); keyFeatures = next(); keyFeatureGradient = next(); keyInputGradient = next()
        values = next(); valueGradient = next(); decay = next(); decayGradient = next(); keyGates = next()
        queryInput = next(); queryRaw = next(); queryFeatures = next(); queryFeatureGradient = next()
        outputGradient = next(); queryGates = next(); denominatorGradient = next()
        queryInputGradient = next()
        mapScratch = next()
        scores = next(); scoreGradient = next(); block = next(); powers = next(); gemm = next()
        keyScratch = next(); decayMatrix = next(); rowScale = next(); keyScale = next()
        polyGram = next(); prfGram = next(); product = next()
        queryPolyGradient = next(); queryPrfGradient = next(); keyPolyGradient = next(); keyPrfGradient = next()
        keyIntraDot = next()
        gatedCumulative = next(); gatedQueryScale = next(); gatedKeyScale = next(); gatedScaled = next()
        pairFactors = next(); gatedRunning = next(); gatedPair = next(); gatedAlpha = next()
        keyInverseNorms = next(); queryInverseNorms = next(); form = next()
        transposedState = next(); paddedRows = next(); keyTransposed = next()
        queryScratch = next(); queryScratchStride = ScratchBuffer.footprint(layout.keyScratch)
        secondProduct = next(); rowWeights = next(); keyColumnGradient = next()
    }
}
