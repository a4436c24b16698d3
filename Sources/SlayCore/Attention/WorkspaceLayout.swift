/// The named blocks of an attention worker's workspace. A layout gives each a size; the same
/// layout then both sizes the buffer and locates every block in it, so nothing is summed in one
/// place and carved in the same order somewhere else.
enum WorkspaceBlock: Int, CaseIterable {
    // rows of the chunk as gathered from the caller's tensors; queryRows directly before keyRows
    // and phiQ directly before phiK, so that a decode step can map both in one call (StepTask)
    case queryRows, keyRows, valueRows
    // features, scores, outputs of one query head
    case phiQ, phiK, scores, outputs, denominators
    /// per output row, the log of the frame its num and den are scaled by (forms with frames)
    case references
    /// a private S [m, dv] and z [m] (and μ [m]) for calls without a state
    case state, normaliser, maxima
    case featureScratch, keyScratch, scoreScratch, gemm
    /// decay: γ powers or per-row cumulative log decay, per-channel log α and factors, running sums
    case powers, rowDecay, logDecay, decayFactors, running
    case queryGates, keyGates
    /// a copy of a product's right-hand rows with the rows after a non-finite one zeroed
    case maskedRows
    /// free for a form's own use (delta rule: T, W, U, β; rescaled exp: prefix maxima, exponents)
    case formSquare, formKeys, formValues, formRows
}

/// Floats of every block, computed with overflow checks, and where each block starts.
public struct WorkspaceLayout: Sendable {
    private(set) var sizes = SIMD32<Int>()
    private(set) var offsets = SIMD32<Int>()
    public private(set) var totalFloats = 0
    /// Rows per chunk (decode steps: query heads per key head).
    let chunk: Int

    init(chunk: Int) { self.chunk = chunk }

    /// Sets `block` to `floats` (a block reserved twice keeps the larger size).
    mutating func reserve(_ block: WorkspaceBlock, _ floats: Int) throws {
        guard floats >= 0 else { throw SlayError.overflow("workspace block \(block) has a negative size") }
        sizes[block.rawValue] = max(sizes[block.rawValue], floats)
        totalFloats = 0
        for b in WorkspaceBlock.allCases {
            offsets[b.rawValue] = totalFloats
            totalFloats = try CheckedSize.add(totalFloats, ScratchBuffer.footprint(sizes[b.rawValue]), what: "workspace")
        }
    }

    /// The blocks of every call: `queries` query rows and `keys` key and value rows, gathered and
    /// mapped, and the query rows' outputs.
    mutating func reserveRows(queries: Int, keys: Int, map: FeatureMap, valueDim: Int) throws {
        try reserve(.queryRows, queries, map.headDim)
        try reserve(.keyRows, keys, map.headDim)
        try reserve(.valueRows, keys, valueDim)
        try reserve(.phiQ, queries, map.featureDim)
        try reserve(.phiK, keys, map.featureDim)
        try reserve(.outputs, queries, valueDim)
        try reserve(.denominators, queries)
    }

    /// `block` = rows × width floats.
    mutating func reserve(_ block: WorkspaceBlock, _ rows: Int, _ width: Int) throws {
        try reserve(block, try CheckedSize.multiply(rows, width, what: "workspace (\(block))"))
    }
}

/// One worker's buffer, its blocks located by the layout: w[.phiQ] is where φ(Q) starts.
struct Workspace {
    let layout: WorkspaceLayout
    let buffer: UnsafeMutablePointer<Float>

    @inline(__always)
    subscript(block: WorkspaceBlock) -> UnsafeMutablePointer<Float> { buffer + layout.offsets[block.rawValue] }
}
