/// SLAY_DENOMINATOR_ADD / SLAY_DENOMINATOR_CLAMP.
public enum DenominatorMode: Int32, Sendable {
    case add = 0
    case clamp = 1

    /// 1 / (den + δ) or 1 / max(den, δ); 0 when that is 0 (δ = 0 and no attention mass, e.g. a
    /// relu query with no positive entry), so the output is 0 rather than 0/0 = NaN (slay.h).
    @inline(__always)
    public func inverse(_ denominator: Float, delta: Float) -> Float {
        let total = self == .add ? denominator + delta : max(denominator, delta)
        return total == 0 ? 0 : 1 / total
    }
}

/// SLAY_UPDATE_ADD / SLAY_UPDATE_DELTA: how a key enters the state.
public enum UpdateRule: Int32, Sendable {
    /// S_t = decay·S_{t−1} + φ(k_t) v_tᵀ (linear attention, RetNet, GLA).
    case add = 0
    /// S_t = α_t (I − β_t φ(k_t) φ(k_t)ᵀ) S_{t−1} + β_t φ(k_t) v_tᵀ (DeltaNet, Gated DeltaNet).
    case delta = 1
}

/// Per-key-head decay γ_h ∈ (0, 1] (RetNet): S_t = γ S_{t−1} + φ(k_t) v_tᵀ, likewise z. Read in
/// place from the caller's array (no copy on the decode path); nil means no decay.
public struct HeadDecay: @unchecked Sendable {
    public let pointer: UnsafePointer<Float>?
    public let count: Int

    public init(pointer: UnsafePointer<Float>?, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    public static let none = HeadDecay(pointer: nil, count: 0)

    public var isActive: Bool { pointer != nil }

    @inline(__always)
    public subscript(head: Int) -> Float { pointer.map { $0[head] } ?? 1 }

    /// True when `head` decays (γ < 1).
    @inline(__always)
    public func decays(head: Int) -> Bool { self[head] < 1 }

    /// log γ of `head` in double, rounded once; 0 without decay or for γ = 1.
    public func logarithm(head: Int) -> Float {
        let gamma = self[head]
        return gamma < 1 ? Float(log(Double(gamma))) : 0
    }

    /// Each γ finite and in (0, 1]; `heads` entries.
    public func validate(heads: Int) throws {
        guard let pointer else { return }
        guard count == heads else { throw SlayError.shape("decay has \(count) entries for \(heads) key heads") }
        for h in 0..<heads where !(pointer[h] > 0 && pointer[h] <= 1) {
            throw SlayError.invalid("decay[\(h)] is \(pointer[h]); each γ must be in (0, 1]")
        }
    }
}

/// Options of linear attention; names match the C and Python APIs. The struct travels whole from
/// the C boundary to the driver and the forms.
public struct LinearAttentionOptions: Sendable {
    public var causal: Bool = true
    public var delta: Double = 1e-6
    /// Rows per causal chunk; 0 lets the form choose (see AttentionCall.init).
    public var chunkSize: Int = 0
    public var nThreads: Int = 1
    /// Partitioned call: this invocation runs share `ith` of `nth` (see slay_attention_options).
    public var ith: Int = 0
    public var nth: Int = 1
    /// How y = num / den is guarded: `add` divides by den + δ (the default; right for positive
    /// maps), `clamp` by max(den, δ), which keeps signed maps (random Fourier features) from
    /// dividing by a denominator near 0 or below it.
    public var denominator: DenominatorMode = .add
    /// false: y = φ(q)ᵀS without the normaliser (RetNet / GLA / DeltaNet-style attention).
    public var normalize: Bool = true
    /// Optional per-key-head decay (causal forms and states only).
    public var decay: HeadDecay = .none
    /// GLA: optional log α ≤ 0 per token and key head, [B, T, Hk] (per head) or [B, T, Hk, m]
    /// (per channel); [N, Hk] / [N, Hk, m] for decode steps. With the delta rule, g of Gated
    /// DeltaNet, per head only.
    public var logDecay: TensorView? = nil
    /// SLA: optional gate logits [B, T, Hq] / [B, T, Hk] ([N, H] for steps); the softmax over the
    /// heads of a token scales that token's query / key features.
    public var queryGateLogits: TensorView? = nil
    public var keyGateLogits: TensorView? = nil
    /// The update rule; `.delta` selects the delta-rule form.
    public var update: UpdateRule = .add
    /// Delta rule: β_t ∈ [0, 2] per token and key head, [B, T, Hk] ([N, Hk] for steps).
    public var beta: TensorView? = nil
    /// L2-normalise φ(q) and φ(k) in the kernel (after the map, before gates).
    public var qkL2Norm: Bool = false
    /// Refuse non-finite q, k, v (SLAY_ERR_NON_FINITE) before anything is written.
    public var checkFinite: Bool = false

    public static let maximumChunkSize = 4096
    public static let maximumThreads = 256
    /// The defaults of slay_attention_options_init, for other modules (the memberwise initialiser
    /// SlayCore and its tests set options with is internal).
    public static let defaults = LinearAttentionOptions()

    /// Scalar options, each in the precision it is used in: δ is applied in fp32, so a δ that is
    /// finite in double but not in float (1e39) is refused too.
    public func validate() throws {
        guard delta.isFinite && delta >= 0 && Float(delta).isFinite else {
            throw SlayError.invalid("delta must be finite (in float32, where it is used) and >= 0, got \(delta)")
        }
        guard chunkSize >= 0 && chunkSize <= Self.maximumChunkSize else {
            throw SlayError.invalid("chunk_size must be 0 (automatic) or in 1...\(Self.maximumChunkSize), got \(chunkSize)")
        }
        guard nThreads >= 1 && nThreads <= Self.maximumThreads else {
            throw SlayError.invalid("n_threads must be in 1...\(Self.maximumThreads), got \(nThreads)")
        }
        guard nth >= 1 && nth <= 65536 else { throw SlayError.invalid("nth must be in 1...65536, got \(nth)") }
        guard ith >= 0 && ith < nth else { throw SlayError.invalid("ith must be in 0..<nth = \(nth), got \(ith)") }
    }
}

/// One sequence of a call: rows start ..< start + length of batch entry `batch`
/// (padded batches: (b, 0, T); packed variable-length batches: (0, cu[i], cu[i+1] − cu[i])).
public struct SequenceSpan: Sendable, Equatable, BitwiseCopyable {
    public let batch, start, length: Int

    /// Spans (b, 0, length) of a padded batch of `batch` sequences, in fallibly allocated memory
    /// (the batch is caller-sized).
    public static func padded(batch: Int, length: Int) throws -> HeapArray<SequenceSpan> {
        let spans = try HeapArray<SequenceSpan>(count: batch, what: "the spans of \(batch) sequences")
        for b in 0..<batch { spans.baseAddress[b] = SequenceSpan(batch: b, start: 0, length: length) }
        return spans
    }

    /// Spans of a packed batch from prefix offsets cu[0] = 0 ≤ cu[1] ≤ … ≤ cu[N] = total, read in
    /// place (a caller's cu_seqlens array or a Swift array).
    public static func packed<Offsets: RandomAccessCollection>(offsets: Offsets, total: Int) throws -> HeapArray<SequenceSpan>
    where Offsets.Element: BinaryInteger {
        let count = offsets.count
        guard count >= 2 else { throw SlayError.shape("cu_seqlens needs N + 1 >= 2 offsets, got \(count)") }
        func offset(_ i: Int) -> Int { Int(truncatingIfNeeded: offsets[offsets.index(offsets.startIndex, offsetBy: i)]) }
        guard offset(0) == 0 else { throw SlayError.shape("cu_seqlens[0] must be 0, got \(offset(0))") }
        for i in 1..<count where offset(i) < offset(i - 1) {
            throw SlayError.shape("cu_seqlens is not monotone: cu_seqlens[\(i)] = \(offset(i)) < cu_seqlens[\(i - 1)] = \(offset(i - 1))")
        }
        guard offset(count - 1) == total else {
            throw SlayError.shape("cu_seqlens ends at \(offset(count - 1)), but the packed tensors have T = \(total)")
        }
        let spans = try HeapArray<SequenceSpan>(count: count - 1, what: "the spans of \(count - 1) sequences")
        for i in 0..<(count - 1) {
            spans.baseAddress[i] = SequenceSpan(batch: 0, start: offset(i), length: offset(i + 1) - offset(i))
        }
        return spans
    }
}
