/// Recurrent linear-attention states of N sequences (slots) for one feature map:
/// per slot, S [H, m, dv] and the normaliser z [H, m] in fp32, plus the token count absorbed.
/// Maps evaluated in a rescaled frame (SLAY_KIND_HADAMARD_EXP, see RescaledExpAttention) also keep
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
    /// Floats per slot: H·m·dv + H·m.
    public let slotFloats: Int
    let storage: ScratchBuffer
    /// μ [N, H, m] for RescaledExpAttention (−inf = empty, no key yet); nil for every other map.
    let maximaStorage: ScratchBuffer?
    public internal(set) var positions: [Int64]
    /// Decode-step workspaces, one per thread index (see DecodeWorkspace).
    let decodeWorkspaces: [DecodeWorkspace]

    public static let maximumSequences = 1 << 20

    public init(map: FeatureMap, numSequences: Int, valueDim: Int, maxThreads: Int = 1) throws {
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
        let perHead = try CheckedSize.add(try CheckedSize.multiply(featureDim, valueDim, what: "state size"), featureDim,
                                          what: "state size")
        self.slotFloats = try CheckedSize.multiply(perHead, numHeads, what: "state size")
        let total = try CheckedSize.multiply(slotFloats, numSequences, what: "state size")
        self.storage = try ScratchBuffer(floats: total)
        storage.pointer.update(repeating: 0, count: total)
        if RescaledExpAttention.handles(map) {
            let count = try CheckedSize.multiply(numSequences, numHeads, featureDim, what: "state size")
            let maxima = try ScratchBuffer(floats: count)
            maxima.pointer.update(repeating: RescaledExpAttention.empty, count: count)
            self.maximaStorage = maxima
        } else {
            self.maximaStorage = nil
        }
        self.positions = [Int64](repeating: 0, count: numSequences)
        self.decodeWorkspaces = (0..<maxThreads).map { _ in DecodeWorkspace() }
        // Group size 1 covers the common case, so the first step does not allocate either.
        for workspace in decodeWorkspaces { _ = try workspace.ensure(group: 1, map: map, valueDim: valueDim) }
    }


    /// A deep copy (a fork of every slot).
    public func copy() throws -> RecurrentState {
        let clone = try RecurrentState(map: map, numSequences: numSequences, valueDim: valueDim, maxThreads: maxThreads)
        clone.storage.pointer.update(from: storage.pointer, count: slotFloats * numSequences)
        if let maximaStorage { clone.maximaStorage!.pointer.update(from: maximaStorage.pointer, count: maximaFloats) }
        clone.positions = positions
        return clone
    }

    public var totalFloats: Int { slotFloats * numSequences }
    public var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Floats of the running maxima of all slots: N·H·m for a rescaled map, else 0.
    public var maximaFloats: Int { maximaStorage == nil ? 0 : numSequences * numHeads * featureDim }
    /// Floats of the running maxima of one slot: H·m for a rescaled map, else 0.
    var slotMaximaFloats: Int { maximaStorage == nil ? 0 : numHeads * featureDim }

    /// μ [m] of (slot, head) for a rescaled map, nil otherwise.
    public func maxima(slot: Int, head: Int) -> UnsafeMutablePointer<Float>? {
        maximaStorage.map { $0.pointer + (slot * numHeads + head) * featureDim }
    }

    func slotBase(_ slot: Int) -> UnsafeMutablePointer<Float> { storage.pointer + slot * slotFloats }

    public func matrix(slot: Int, head: Int) -> UnsafeMutablePointer<Float> {
        slotBase(slot) + head * featureDim * valueDim
    }

    public func normaliser(slot: Int, head: Int) -> UnsafeMutablePointer<Float> {
        slotBase(slot) + numHeads * featureDim * valueDim + head * featureDim
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
            slotBase(slot).update(repeating: 0, count: slotFloats)
            maxima(slot: slot, head: 0)?.update(repeating: RescaledExpAttention.empty, count: slotMaximaFloats)
            positions[slot] = 0
        } else {
            storage.pointer.update(repeating: 0, count: totalFloats)
            maximaStorage?.pointer.update(repeating: RescaledExpAttention.empty, count: maximaFloats)
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
        if source === self && slot == sourceSlot { return }
        slotBase(slot).update(from: source.slotBase(sourceSlot), count: slotFloats)
        // Same identity, so both states keep maxima or neither does.
        if let target = maxima(slot: slot, head: 0), let origin = source.maxima(slot: sourceSlot, head: 0) {
            target.update(from: origin, count: slotMaximaFloats)
        }
        positions[slot] = source.positions[sourceSlot]
    }
}
