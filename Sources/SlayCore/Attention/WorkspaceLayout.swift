/// The named blocks of an attention worker's workspace. A layout gives each a size; the same
/// layout then both sizes the buffer and locates every block in it, so nothing is summed in one
/// place and carved in the same order somewhere else.
enum WorkspaceBlock: Int, CaseIterable {
    // rows of the chunk as gathered from the caller's tensors
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
    private(set) var sizes = [Int](repeating: 0, count: WorkspaceBlock.allCases.count)
    private(set) var offsets = [Int](repeating: 0, count: WorkspaceBlock.allCases.count)
    public private(set) var totalFloats = 0
    /// Rows per chunk (decode steps: query heads per key head).
    let chunk: Int

    init(chunk: Int) { self.chunk = chunk }

    /// Sets `block` to `floats` (a block reserved twice keeps the larger size).
    mutating func reserve(_ block: WorkspaceBlock, _ floats: Int) throws {
        guard floats >= 0 else { throw SlayError.overflow("workspace block \(block) has a negative size") }
        sizes[block.rawValue] = max(sizes[block.rawValue], floats)
        var total = 0
        for b in WorkspaceBlock.allCases {
            offsets[b.rawValue] = total
            total = try CheckedSize.add(total, ScratchBuffer.footprint(sizes[b.rawValue]), what: "workspace")
        }
        totalFloats = total
    }

    /// `block` = rows × width floats.
    mutating func reserve(_ block: WorkspaceBlock, _ rows: Int, _ width: Int) throws {
        try reserve(block, try CheckedSize.multiply(rows, width, what: "workspace (\(block))"))
    }

    func size(_ block: WorkspaceBlock) -> Int { sizes[block.rawValue] }
    func offset(_ block: WorkspaceBlock) -> Int { offsets[block.rawValue] }
}

/// One worker's blocks in its buffer, located by the layout.
struct Workspace {
    let queryRows, keyRows, valueRows, phiQ, phiK, scores, outputs, denominators, references, state, normaliser,
        maxima, featureScratch, keyScratch, scoreScratch, gemm, powers, rowDecay, logDecay, decayFactors, running,
        queryGates, keyGates, maskedRows, formSquare, formKeys, formValues, formRows: UnsafeMutablePointer<Float>
    let chunk: Int

    init(layout: WorkspaceLayout, buffer: UnsafeMutablePointer<Float>) {
        func at(_ block: WorkspaceBlock) -> UnsafeMutablePointer<Float> { buffer + layout.offset(block) }
        chunk = layout.chunk
        queryRows = at(.queryRows)
        keyRows = at(.keyRows)
        valueRows = at(.valueRows)
        phiQ = at(.phiQ)
        phiK = at(.phiK)
        scores = at(.scores)
        outputs = at(.outputs)
        denominators = at(.denominators)
        references = at(.references)
        state = at(.state)
        normaliser = at(.normaliser)
        maxima = at(.maxima)
        featureScratch = at(.featureScratch)
        keyScratch = at(.keyScratch)
        scoreScratch = at(.scoreScratch)
        gemm = at(.gemm)
        powers = at(.powers)
        rowDecay = at(.rowDecay)
        logDecay = at(.logDecay)
        decayFactors = at(.decayFactors)
        running = at(.running)
        queryGates = at(.queryGates)
        keyGates = at(.keyGates)
        maskedRows = at(.maskedRows)
        formSquare = at(.formSquare)
        formKeys = at(.formKeys)
        formValues = at(.formValues)
        formRows = at(.formRows)
    }
}
