/// Recurrent linear-attention states of N sequences (slots) for one feature map:
/// per slot, S [H, m, dv] and the normaliser z [H, m], plus the token count absorbed. S and z are
/// stored as fp32 (the default), bf16 or fp16 (`storageType`, fixed at creation): half precision
/// halves the memory and the decode traffic; every computation on them is fp32 (rows are
/// converted when loaded and rounded to nearest-even when stored, see docs/half-precision.md).
/// Maps evaluated in a rescaled frame (SLAY_KIND_HADAMARD_EXP, see RescaledExpForm) also keep
/// per slot and head the m running maxima μ that frame is relative to; other maps keep none.
///
/// One object holds many slots so an engine with a slot-indexed cache can prefill or step any
/// subset of its sequences in one call (continuous batching) and fork or roll back single slots.
/// A state keeps its feature map alive and records the map's identity; calls fail if the map's
/// parameters were replaced since. Not thread-safe: one call at a time, except partitioned
/// (ith, nth) calls, which touch disjoint slots and heads.
public final class RecurrentState: @unchecked Sendable {
    public let map: FeatureMap
    public let mapIdentity: UInt64
    public let numSequences: Int
    public let numHeads: Int
    public let featureDim: Int
    public let valueDim: Int
    public let maxThreads: Int
    /// Elements per slot (of `storageType`): H·m·dv + H·m.
    public let slotFloats: Int
    /// Element type of S and z.
    public let storageType: ElementType
    let storage: ScratchBuffer
    /// μ [N, H, m] for RescaledExpForm (−inf = empty, no key yet); nil for every other map.
    let maximaStorage: ScratchBuffer?
    /// Tokens absorbed per slot (num_seqs ≤ 2^20 entries, so fallibly allocated).
    public let positions: HeapArray<Int64>
    /// Decode-step workspaces, one per thread index (see DecodeWorkspace); a Swift array of at
    /// most LinearAttentionOptions.maximumThreads (256) references, their buffers fallible.
    let decodeWorkspaces: [DecodeWorkspace]

    public static let maximumSequences = 1 << 20

    public init(map: FeatureMap, numSequences: Int, valueDim: Int, maxThreads: Int = 1,
                storageType: ElementType = .f32) throws {
        guard numSequences >= 1 && numSequences <= Self.maximumSequences else {
            throw SlayError.shape("num_seqs must be in 1...\(Self.maximumSequences), got \(numSequences)")
        }
        guard valueDim >= 1 && valueDim <= SlayConfiguration.maximumDimension else {
            throw SlayError.shape("value_dim must be in 1...\(SlayConfiguration.maximumDimension), got \(valueDim)")
        }
        guard maxThreads >= 1 && maxThreads <= LinearAttentionOptions.maximumThreads else {
            throw SlayError.invalid("max_threads must be in 1...\(LinearAttentionOptions.maximumThreads), got \(maxThreads)")
        }
        self.map = map
        self.mapIdentity = map.identity
        self.numSequences = numSequences
        self.numHeads = map.numHeads
        self.featureDim = map.featureDim
        self.valueDim = valueDim
        self.maxThreads = maxThreads
        self.storageType = storageType
        let perHead = try CheckedSize.add(try CheckedSize.multiply(featureDim, valueDim, what: "state size"), featureDim,
                                          what: "state size")
        self.slotFloats = try CheckedSize.multiply(perHead, numHeads, what: "state size")
        let total = try CheckedSize.multiply(slotFloats, numSequences, what: "state size")
        // Whole floats of storage; half-precision elements are 2 bytes, so round up.
        let floats = storageType == .f32 ? total : try CheckedSize.add(total, 1, what: "state size") / 2
        self.storage = try ScratchBuffer(floats: floats)
        storage.pointer.update(repeating: 0, count: floats)
        if AttentionForms.keepMaxima(map) {
            let count = try CheckedSize.multiply(numSequences, numHeads, featureDim, what: "state size")
            let maxima = try ScratchBuffer(floats: count)
            maxima.pointer.update(repeating: AttentionForms.emptyMaximum, count: count)
            self.maximaStorage = maxima
        } else {
            self.maximaStorage = nil
        }
        self.positions = try HeapArray<Int64>(count: numSequences, what: "state positions")
        self.decodeWorkspaces = try (0..<maxThreads).map { _ in try DecodeWorkspace(sequences: numSequences) }
        // Group size 1 covers the common case, so the first step does not allocate either.
        for workspace in decodeWorkspaces { try workspace.ensure(group: 1, map: map, valueDim: valueDim) }
    }


    /// A deep copy (a fork of every slot).
    public func copy() throws -> RecurrentState {
        let clone = try RecurrentState(map: map, numSequences: numSequences, valueDim: valueDim, maxThreads: maxThreads,
                                       storageType: storageType)
        clone.rawData.copyMemory(from: rawData, byteCount: totalBytes)
        if let maximaStorage { clone.maximaStorage!.pointer.update(from: maximaStorage.pointer, count: maximaFloats) }
        clone.positions.baseAddress.update(from: positions.baseAddress, count: numSequences)
        return clone
    }

    /// Elements of S and z of all slots, and their bytes.
    public var totalFloats: Int { slotFloats * numSequences }
    public var totalBytes: Int { totalFloats * storageType.bytes }
    /// S and z of all slots, elements of `storageType`.
    public var rawData: UnsafeMutableRawPointer { UnsafeMutableRawPointer(storage.pointer) }
    /// S and z of all slots as fp32; only for states stored as fp32.
    public var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Floats of the running maxima of all slots: N·H·m for a rescaled map, else 0.
    public var maximaFloats: Int { maximaStorage == nil ? 0 : numSequences * numHeads * featureDim }
    /// Floats of the running maxima of one slot: H·m for a rescaled map, else 0.
    var slotMaximaFloats: Int { maximaStorage == nil ? 0 : numHeads * featureDim }

    /// μ [m] of (slot, head) for a rescaled map, nil otherwise.
    public func maxima(slot: Int, head: Int) -> UnsafeMutablePointer<Float>? {
        maximaStorage.map { $0.pointer + (slot * numHeads + head) * featureDim }
    }

    func slotBase(_ slot: Int) -> UnsafeMutableRawPointer { rawData + slot * slotFloats * storageType.bytes }

    /// S [m, dv] of (slot, head), elements of `storageType`.
    public func rawMatrix(slot: Int, head: Int) -> UnsafeMutableRawPointer {
        slotBase(slot) + head * featureDim * valueDim * storageType.bytes
    }

    /// z [m] of (slot, head), elements of `storageType`.
    public func rawNormaliser(slot: Int, head: Int) -> UnsafeMutableRawPointer {
        slotBase(slot) + (numHeads * featureDim * valueDim + head * featureDim) * storageType.bytes
    }

    /// S of (slot, head) as fp32: only for states stored as fp32 (others go through rawMatrix and
    /// the DecodeKernels conversions).
    public func matrix(slot: Int, head: Int) -> UnsafeMutablePointer<Float> {
        rawMatrix(slot: slot, head: head).assumingMemoryBound(to: Float.self)
    }

    /// z of (slot, head) as fp32: only for states stored as fp32.
    public func normaliser(slot: Int, head: Int) -> UnsafeMutablePointer<Float> {
        rawNormaliser(slot: slot, head: head).assumingMemoryBound(to: Float.self)
    }

    /// Fails if the feature map's parameters were replaced after the state was created.
    public func checkMapUnchanged() throws {
        guard map.identity == mapIdentity else {
            throw SlayError(.stateMismatch, "the feature map's parameters changed since this state was created (identity \(String(mapIdentity, radix: 16)) → \(String(map.identity, radix: 16)))")
        }
    }

    public func checkSlot(_ slot: Int, _ name: String = "slot") throws {
        guard slot >= 0 && slot < numSequences else {
            throw SlayError.invalid("\(name) is \(slot); the state has slots 0..<\(numSequences)")
        }
    }

    /// Zeroes one slot (and empties its maxima), or all when `slot` is nil.
    public func reset(slot: Int?) throws {
        if let slot {
            try checkSlot(slot)
            slotBase(slot).initializeMemory(as: UInt8.self, repeating: 0, count: slotFloats * storageType.bytes)
            maxima(slot: slot, head: 0)?.update(repeating: AttentionForms.emptyMaximum, count: slotMaximaFloats)
            positions[slot] = 0
        } else {
            rawData.initializeMemory(as: UInt8.self, repeating: 0, count: totalBytes)
            maximaStorage?.pointer.update(repeating: AttentionForms.emptyMaximum, count: maximaFloats)
            for i in 0..<numSequences { positions[i] = 0 }
        }
    }

    /// Copies slot `sourceSlot` of `source` into slot `slot` of this state (fork / rollback).
    public func copySlot(_ slot: Int, from source: RecurrentState, slot sourceSlot: Int) throws {
        try checkSlot(slot, "dst_slot")
        try source.checkSlot(sourceSlot, "src_slot")
        guard source.mapIdentity == mapIdentity && source.valueDim == valueDim && source.numHeads == numHeads
                && source.featureDim == featureDim else {
            throw SlayError(.stateMismatch, "source and destination states belong to different feature maps or value dims")
        }
        guard source.storageType == storageType else {
            throw SlayError(.dtype, "the source state stores S and z as \(source.storageType.name), this one as \(storageType.name); copy between states of one storage dtype")
        }
        if source === self && slot == sourceSlot { return }
        slotBase(slot).copyMemory(from: source.slotBase(sourceSlot), byteCount: slotFloats * storageType.bytes)
        // Same identity, so both states keep maxima or neither does.
        if let target = maxima(slot: slot, head: 0), let origin = source.maxima(slot: sourceSlot, head: 0) {
            target.update(from: origin, count: slotMaximaFloats)
        }
        positions[slot] = source.positions[sourceSlot]
    }
}
