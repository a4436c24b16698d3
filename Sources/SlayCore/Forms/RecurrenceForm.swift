/// A recurrence form: how keys enter the state and how queries read it (docs/attention-forms.md).
///
/// The driver (AttentionCall) owns sequences, slots, threads, the workspace and the chunk and
/// query-head loops; a form supplies the mathematics of one chunk and of one decode step, for one
/// (sequence, key head) task. Its file holds both, side by side, with its refusals, its workspace
/// blocks and its preferred chunk. The per-chunk pieces are separate functions (prepare the keys,
/// answer one query head, absorb the chunk), so a backward pass can recompute them chunk by chunk.
///
/// A new form is one file conforming to this protocol plus one line in `AttentionForms.registered`.
protocol RecurrenceForm {
    /// Whether this form evaluates calls with `map` and `options`; the first registered form that
    /// claims a call runs it.
    static func claims(map: FeatureMap, options: LinearAttentionOptions) -> Bool
    /// The refusals of this form (the form × option table of slay.h): SLAY_ERR_UNSUPPORTED for
    /// combinations whose mathematics is undefined or not implemented.
    static func check(_ options: LinearAttentionOptions, mode: AttentionMode) throws
    /// Rows per chunk when options.chunk_size is 0.
    static var preferredChunk: Int { get }
    /// True when states of `map` keep per-feature running maxima μ (an extra blob section). Such a
    /// form keeps its outputs in per-row frames e^{references[i]} (see outputScale), and its tasks
    /// are not split into blocks of value columns (μ is shared by all of them).
    static func keepsMaxima(_ map: FeatureMap) -> Bool

    /// Workspace blocks beyond the driver's own, for chunks of layout.chunk rows or (`step`) for
    /// decode steps of a group of layout.chunk query heads.
    static func reserve(_ layout: inout WorkspaceLayout, map: FeatureMap, valueDim: Int, step: Bool) throws
    /// Whatever key-side data the form derives from the chunk's keys and values (FormTask.loadKeys).
    static func prepareKeys(_ task: FormTask, _ chunk: inout ChunkRows)
    /// w[.outputs] / w[.denominators] (/ w[.references]) of the query rows FormTask.loadRows loaded:
    /// against the state before the chunk and, when causal, the chunk's own keys j ≤ i.
    static func queryChunk(_ task: FormTask, _ chunk: ChunkRows, causal: Bool)
    /// The chunk's keys enter the state.
    static func absorbChunk(_ task: FormTask, _ chunk: ChunkRows)

    /// One decode token of one (sequence, key head) task, in place on the slot's state, into
    /// w[.outputs] / w[.denominators] (/ w[.references]) of the rows and features StepTask.load loaded.
    static func step(_ task: StepTask)
}

extension RecurrenceForm {
    static func keepsMaxima(_ map: FeatureMap) -> Bool { false }
    static func check(_ options: LinearAttentionOptions, mode: AttentionMode) throws {}
}

/// The registered forms, in the order they are asked to claim a call.
enum AttentionForms {
    nonisolated(unsafe) static let registered: [RecurrenceForm.Type] = [
        RescaledExpForm.self,
        DeltaRuleForm.self,
        GatedForm.self,
        AdditiveForm.self,
    ]

    /// The form of a call (the first that claims it), after its refusals and (check_finite) the
    /// finiteness of q, k and v.
    static func select(map: FeatureMap, options: LinearAttentionOptions, mode: AttentionMode,
                       q: TensorView?, k: TensorView?, v: TensorView?) throws -> RecurrenceForm.Type {
        let form = registered.first { $0.claims(map: map, options: options) } ?? AdditiveForm.self
        try form.check(options, mode: mode)
        if options.checkFinite {
            if let q { try TokenTensors.checkFinite(q, "q") }
            if let k { try TokenTensors.checkFinite(k, "k") }
            if let v { try TokenTensors.checkFinite(v, "v") }
        }
        return form
    }

    /// Whether states of `map` keep running maxima (for RecurrentState's storage).
    static func keepMaxima(_ map: FeatureMap) -> Bool {
        registered.contains { $0.keepsMaxima(map) }
    }

    /// μ of a feature dimension no key has reached yet.
    static let emptyMaximum = -Float.infinity
}
