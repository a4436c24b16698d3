/// One worker's workspace of the backward pass, sized and carved from one description
/// (`BackwardWorkspace.Layout`): two m × dv matrices (the state S and its gradient Ŝ), three
/// m-vectors, and per chunk of c rows the key, value and decay blocks plus, for each of the G
/// query heads of a key head, its query blocks. O(G·c·(d + m + dv) + m·dv) floats, independent
/// of T.
struct BackwardWorkspace {
    struct Layout {
        let chunk: Int
        let group: Int
        let headDim: Int
        let featureDim: Int
        let valueDim: Int
        let mapScratch: Int
        /// Floats of a form's own region (the delta rule's states, `DeltaRuleBackward`); 0 otherwise.
        var formScratch: Int = 0

        /// Block sizes in carving order; `carve` takes them in the same order.
        var blocks: [Int] {
            let (c, g, d, m, dv) = (chunk, group, headDim, featureDim, valueDim)
            return [m * dv, m * dv, m, m, m, dv,
                    c * d, c * m, c * m, c * m, c * d, c * dv, c * dv, c * m, c * m, c,
                    g * c * d, g * c * m, g * c * m, g * c * m, g * c * dv, g * c, g * c, c * d,
                    mapScratch, c * c, c * c, c * max(m, dv), c + 1, Gemm.workspaceFloats,
                    c, g * c, formScratch]
        }

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
    /// qk_l2norm: 1/‖φ‖ per key row and per query row (head g at offset g·c) of the chunk.
    let keyInverseNorms: UnsafeMutablePointer<Float>
    let queryInverseNorms: UnsafeMutablePointer<Float>
    /// The form's own region (`Layout.formScratch` floats).
    let form: UnsafeMutablePointer<Float>

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
        keyInverseNorms = next(); queryInverseNorms = next(); form = next()
    }
}
