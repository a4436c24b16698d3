#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Options of kernel-normalised linear attention; names match the C and Python APIs.
public struct LinearAttentionOptions: Sendable {
    public var causal: Bool
    public var delta: Double
    /// Rows per causal chunk; 0 lets the library choose (see `chunk(for:length:)`).
    public var chunkSize: Int
    public var nThreads: Int
    /// Partitioned call: this invocation runs share `ith` of `nth` (see slay_attention_options).
    public var ith: Int
    public var nth: Int
    /// How y = num / den is guarded: `add` divides by den + δ (the default; right for positive
    /// maps), `clamp` by max(den, δ), which keeps signed maps (random Fourier features) from
    /// dividing by a denominator near 0 or below it.
    public var denominator: DenominatorMode
    /// false: y = φ(q)ᵀS without the normaliser (RetNet / GLA-style unnormalised attention).
    public var normalize: Bool
    /// Optional per-key-head decay (causal forms and states only).
    public var decay: HeadDecay
    /// GLA: optional log α ≤ 0 per token, key head and feature channel, [B, T, Hk, m] ([N, Hk, m]
    /// for decode steps): S_t = Diag(α_t) S_{t−1} + φ(k_t) v_tᵀ (causal forms and states only;
    /// combined with `decay` as log α + log γ).
    public var logDecay: TensorView?
    /// SLA: optional gate logits [B, T, Hq] / [B, T, Hk] ([N, H] for steps); the softmax over the
    /// heads of a token scales that token's query / key features.
    public var queryGateLogits: TensorView?
    public var keyGateLogits: TensorView?

    public static let maximumChunkSize = 4096

    /// The chunk a call over sequences of at most `length` rows uses: `chunkSize`, or when it is
    /// 0, 8 for the paths whose intra-chunk block costs an exp per pair and channel (GLA decay,
    /// Hadamard Exp's rescaling: their time per token grows with the chunk, fastest at 8 in
    /// `python -m slay.bench`) and 64 for the GEMM paths.
    public func chunk(for map: FeatureMap, length: Int) -> Int {
        let preferred = chunkSize > 0 ? chunkSize : (logDecay != nil || RescaledExpAttention.handles(map) ? 8 : 64)
        return min(preferred, max(length, 1))
    }
    public static let maximumThreads = 256

    public init(causal: Bool = true, delta: Double = 1e-6, chunkSize: Int = 0, nThreads: Int = 1,
                ith: Int = 0, nth: Int = 1, denominator: DenominatorMode = .add, normalize: Bool = true,
                decay: HeadDecay = .none, logDecay: TensorView? = nil, queryGateLogits: TensorView? = nil,
                keyGateLogits: TensorView? = nil) {
        self.denominator = denominator
        self.normalize = normalize
        self.decay = decay
        self.logDecay = logDecay
        self.queryGateLogits = queryGateLogits
        self.keyGateLogits = keyGateLogits
        self.causal = causal
        self.delta = delta
        self.chunkSize = chunkSize
        self.nThreads = nThreads
        self.ith = ith
        self.nth = nth
    }

    public func validate() throws {
        guard delta.isFinite && delta >= 0 else { throw SlayError.invalid("delta must be finite and >= 0, got \(delta)") }
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
public struct SequenceSpan: Sendable, Equatable {
    public let batch: Int
    public let start: Int
    public let length: Int

    public init(batch: Int, start: Int, length: Int) {
        self.batch = batch
        self.start = start
        self.length = length
    }

    /// Spans of a packed batch from prefix offsets cu[0] = 0 ≤ cu[1] ≤ … ≤ cu[N] = total.
    public static func packed(offsets: [Int], total: Int) throws -> [SequenceSpan] {
        guard offsets.count >= 2 else { throw SlayError.shape("cu_seqlens needs N + 1 >= 2 offsets, got \(offsets.count)") }
        guard offsets[0] == 0 else { throw SlayError.shape("cu_seqlens[0] must be 0, got \(offsets[0])") }
        for i in 1..<offsets.count where offsets[i] < offsets[i - 1] {
            throw SlayError.shape("cu_seqlens is not monotone: cu_seqlens[\(i)] = \(offsets[i]) < cu_seqlens[\(i - 1)] = \(offsets[i - 1])")
        }
        guard offsets.last! == total else {
            throw SlayError.shape("cu_seqlens ends at \(offsets.last!), but the packed tensors have T = \(total)")
        }
        return (0..<(offsets.count - 1)).map { SequenceSpan(batch: 0, start: offsets[$0], length: offsets[$0 + 1] - offsets[$0]) }
    }
}

/// Kernel-normalised linear attention y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ) (docs/math.md §5).
///
/// One engine for every feature map and every entry point (whole-sequence attention, prefill
/// into recurrent states, decode steps, key absorption and read-only queries). Work is split over
/// (sequence, key head) pairs; each pair walks its sequence in chunks of c rows, computing
/// features of the chunk into workspace, so memory is O(c·m + m·dv) per thread whatever T is.
/// Causal chunks combine the state of all earlier chunks (Φ_Q·S) with the masked intra-chunk
/// block tril(Φ_Q Φ_Kᵀ)·V; the query heads of a grouped-query group share the key features and
/// the state. Pairs are independent, so results do not depend on the thread count.
public enum LinearAttention {
    public static func run(map: FeatureMap, q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           options: LinearAttentionOptions) throws {
        try options.validate()
        let shapes = try AttentionShapes(q: q, k: k, v: v, out: out)
        try checkMap(map, headDim: shapes.headDim, keyHeads: shapes.keyHeads)
        let spans = (0..<shapes.batch).map { SequenceSpan(batch: $0, start: 0, length: shapes.length) }
        let plan = try Plan(map: map, q: q, k: k, v: v, out: out, queryHeads: shapes.queryHeads,
                            valueDim: shapes.valueDim, spans: spans, state: nil, slots: [],
                            mode: options.causal ? .causal : .bidirectional, delta: options.delta,
                            chunk: options.chunk(for: map, length: shapes.length), denominator: options.denominator,
                            normalize: options.normalize, decay: options.decay, logDecay: options.logDecay,
                            queryGates: options.queryGateLogits, keyGates: options.keyGateLogits)
        try plan.execute(nThreads: options.nThreads, partition: (options.ith, options.nth), workspaces: nil)
    }

    static func checkMap(_ map: FeatureMap, headDim: Int, keyHeads: Int) throws {
        guard headDim == map.headDim else {
            throw SlayError.shape("q and k have head_dim \(headDim), the feature map expects \(map.headDim)")
        }
        guard keyHeads == map.numHeads else {
            throw SlayError.shape("k has \(keyHeads) heads, the feature map has \(map.numHeads)")
        }
    }

    /// What a pass over a sequence does.
    public enum Mode: Sendable {
        /// causal outputs; keys enter the state as they are passed
        case causal
        /// every query sees every key of its sequence
        case bidirectional
        /// keys and values enter the state; no queries, no outputs
        case absorb
        /// queries read the state; the state is not changed
        case query
    }

    /// A validated call: views, sequences, optional recurrent state slots and the mode.
    public struct Plan: @unchecked Sendable {
        let map: FeatureMap
        let q: TensorView?
        let k: TensorView?
        let v: TensorView?
        let out: TensorView?
        let queryHeads: Int
        let valueDim: Int
        let spans: [SequenceSpan]
        let state: RecurrentState?
        let slots: [Int]
        let mode: Mode
        let delta: Float
        let denominator: DenominatorMode
        let normalize: Bool
        let decay: HeadDecay
        /// GLA log α [B, T, Hk, m] and SLA gate logits [B, T, Hq] / [B, T, Hk], checked in init.
        let logDecay: TensorView?
        let queryGates: TensorView?
        let keyGates: TensorView?
        let layout: WorkspaceLayout
        /// Token position of each span's first row, for maps that need positions: the slot's
        /// position before the call (read here, before any share updates it), else 0.
        let origins: [Int]

        public init(map: FeatureMap, q: TensorView?, k: TensorView?, v: TensorView?, out: TensorView?,
                    queryHeads: Int, valueDim: Int, spans: [SequenceSpan], state: RecurrentState?, slots: [Int],
                    mode: Mode, delta: Double, chunk: Int, denominator: DenominatorMode = .add,
                    normalize: Bool = true, decay: HeadDecay = .none, logDecay: TensorView? = nil,
                    queryGates: TensorView? = nil, keyGates: TensorView? = nil) throws {
            guard !decay.isActive || mode == .causal || mode == .absorb || mode == .query else {
                throw SlayError.invalid("decay needs causal attention (set causal = 1)")
            }
            try decay.validate(heads: map.numHeads)
            try Self.checkTokenInputs(map: map, q: q, k: k, queryHeads: queryHeads, mode: mode, logDecay: logDecay,
                                      queryGates: queryGates, keyGates: keyGates)
            self.logDecay = mode == .query ? nil : logDecay
            self.queryGates = queryGates
            self.keyGates = mode == .query ? nil : keyGates
            self.denominator = denominator
            self.normalize = normalize
            self.decay = decay
            self.map = map
            self.q = q
            self.k = k
            self.v = v
            self.out = out
            self.queryHeads = queryHeads
            self.valueDim = valueDim
            self.spans = spans
            self.state = state
            self.slots = slots
            self.mode = mode
            self.delta = Float(delta)
            self.layout = try WorkspaceLayout(map: map, headDim: map.headDim, valueDim: valueDim, chunk: max(chunk, 1),
                                              channelDecay: self.logDecay != nil,
                                              gates: self.queryGates != nil || self.keyGates != nil)
            if map.needsPositions, let state {
                self.origins = slots.map { Int(state.positions[$0]) }
            } else {
                self.origins = [Int](repeating: 0, count: spans.count)
            }
        }

        var group: Int { queryHeads / map.numHeads }
        var taskCount: Int { spans.count * map.numHeads }

        /// Runs the tasks of partition `ith` of `nth` on up to `nThreads` threads. `workspaces`
        /// (one per thread, sized by `layout`) avoids allocation; nil allocates them here.
        ///
        /// With fewer (sequence, key head) pairs than threads, each pair is also split into blocks
        /// of value columns (multiples of 16): a block carries its columns of S through the whole
        /// sequence and recomputes the (cheap) features itself. Every output element is computed
        /// by the same operations in the same order whatever the split, so results are bitwise
        /// identical for any thread count.
        public func execute(nThreads: Int, partition: (ith: Int, nth: Int), workspaces: [ScratchBuffer]?) throws {
            // Hadamard Exp is evaluated in a rescaled frame by its own engine (overflow-free).
            if RescaledExpAttention.handles(map) { return try RescaledExpAttention.execute(self, nThreads: nThreads, partition: partition) }
            let mine = ParallelFor.share(of: taskCount, worker: partition.ith, workers: partition.nth)
            var blocks = 1
            if mine.count < nThreads && valueDim % 16 == 0 && workspaces == nil {
                blocks = min(valueDim / 16, (nThreads + max(mine.count, 1) - 1) / max(mine.count, 1))
            }
            let work = mine.count * blocks
            let workers = max(1, min(nThreads, work))
            var buffers: [ScratchBuffer] = []
            if let workspaces {
                guard workspaces.count >= workers, workspaces.allSatisfy({ $0.count >= layout.totalFloats }) else {
                    throw SlayError(.internal, "preallocated workspaces are too small for this call")
                }
                buffers = workspaces
            } else {
                // Allocate every worker's workspace up front: a failure is a status, never a partial write.
                for _ in 0..<workers { buffers.append(try ScratchBuffer(floats: layout.totalFloats)) }
            }
            // Every block starts from the normaliser as it was before the call (block 0 writes the
            // final one back), so snapshot the slots' z first.
            let m = map.featureDim
            let initialNormalisers = try ScratchBuffer(floats: try CheckedSize.multiply(max(mine.count, 1), m, what: "normalisers"))
            for (index, task) in mine.enumerated() {
                let target = initialNormalisers.pointer + index * m
                if let state {
                    target.update(from: state.normaliser(slot: slots[task / map.numHeads], head: task % map.numHeads), count: m)
                } else {
                    target.update(repeating: 0, count: m)
                }
            }
            let scratch = buffers
            let plan = self
            ParallelFor.run(workers: workers) { worker in
                let workspace = Workspace(layout: plan.layout, buffer: scratch[worker])
                for item in ParallelFor.share(of: work, worker: worker, workers: workers) {
                    let index = item / blocks
                    let block = item % blocks
                    let columns: Range<Int>
                    if blocks == 1 {
                        columns = 0..<plan.valueDim
                    } else {
                        let panels = ParallelFor.share(of: plan.valueDim / 16, worker: block, workers: blocks)
                        columns = (panels.lowerBound * 16)..<(panels.upperBound * 16)
                    }
                    plan.runTask(mine.lowerBound + index, columns: columns, writesNormaliser: block == 0,
                                 initialNormaliser: initialNormalisers.pointer + index * m, workspace: workspace)
                }
            }
            withExtendedLifetime((buffers, initialNormalisers)) {}
        }

        func runTask(_ task: Int, columns: Range<Int>, writesNormaliser: Bool,
                     initialNormaliser: UnsafePointer<Float>, workspace w: Workspace) {
            let span = spans[task / map.numHeads]
            let origin = origins[task / map.numHeads]
            let keyHead = task % map.numHeads
            let (m, dv) = (map.featureDim, valueDim)
            let stateMatrix: UnsafeMutablePointer<Float>
            if let state {
                stateMatrix = state.matrix(slot: slots[task / map.numHeads], head: keyHead)
            } else {
                stateMatrix = w.state
                for f in 0..<m { (stateMatrix + f * dv + columns.lowerBound).update(repeating: 0, count: columns.count) }
            }
            // z is private to the task (every column block needs all of it).
            let normaliser = w.normaliser
            normaliser.update(from: initialNormaliser, count: m)
            switch mode {
            case .causal:
                runCausal(span: span, origin: origin, keyHead: keyHead, columns: columns, state: stateMatrix, normaliser: normaliser, workspace: w)
            case .bidirectional:
                absorb(span: span, origin: origin, keyHead: keyHead, columns: columns, state: stateMatrix, normaliser: normaliser, workspace: w)
                query(span: span, origin: origin, keyHead: keyHead, columns: columns, state: stateMatrix, normaliser: normaliser, workspace: w)
            case .absorb:
                absorb(span: span, origin: origin, keyHead: keyHead, columns: columns, state: stateMatrix, normaliser: normaliser, workspace: w)
            case .query:
                query(span: span, origin: origin, keyHead: keyHead, columns: columns, state: stateMatrix, normaliser: normaliser, workspace: w)
            }
            if let state, writesNormaliser, mode != .query {
                state.normaliser(slot: slots[task / map.numHeads], head: keyHead).update(from: normaliser, count: m)
            }
        }

        /// Keys, values and key features of rows t0 ..< t0 + rows of a span whose first row is at
        /// token position `origin`.
        func loadKeys(span: SequenceSpan, origin: Int, keyHead: Int, t0: Int, rows: Int, workspace w: Workspace) {
            k!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.keyRows)
            v!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + t0, rows: rows, into: w.valueRows)
            map.features(role: .key, head: keyHead, input: w.keyRows, rows: rows, firstPosition: origin + t0,
                         output: w.phiK, scratch: w.keyScratch)
            if let keyGates {
                HeadGates.fill(keyGates, batch: span.batch, t0: span.start + t0, rows: rows, head: keyHead, into: w.keyGates)
                HeadGates.scaleRows(w.phiK, rows: rows, width: map.featureDim, by: w.keyGates)
            }
        }

        func loadQueries(span: SequenceSpan, origin: Int, keyHead: Int, queryHead: Int, t0: Int, rows: Int,
                         workspace w: Workspace) {
            q!.gatherRows(batch: span.batch, head: queryHead, t0: span.start + t0, rows: rows, into: w.queryRows)
            map.features(role: .query, head: keyHead, input: w.queryRows, rows: rows, firstPosition: origin + t0,
                         output: w.phiQ, scratch: w.featureScratch)
            if let queryGates {
                HeadGates.fill(queryGates, batch: span.batch, t0: span.start + t0, rows: rows, head: queryHead, into: w.queryGates)
                HeadGates.scaleRows(w.phiQ, rows: rows, width: map.featureDim, by: w.queryGates)
            }
        }

        func runCausal(span: SequenceSpan, origin: Int, keyHead: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                       normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
            if logDecay != nil {
                runChannelDecayCausal(span: span, origin: origin, keyHead: keyHead, columns: columns, state: state,
                                      normaliser: normaliser, workspace: w)
                return
            }
            let (m, dv, width) = (map.featureDim, valueDim, columns.count)
            let decayed = decay.isActive && decay[keyHead] < 1
            if decayed { fillPowers(decay[keyHead], count: w.chunk + 1, into: w.powers) }
            var t0 = 0
            while t0 < span.length {
                let rows = min(w.chunk, span.length - t0)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                for g in 0..<group {
                    let queryHead = keyHead * group + g
                    loadQueries(span: span, origin: origin, keyHead: keyHead, queryHead: queryHead, t0: t0, rows: rows, workspace: w)
                    LinearAttention.readState(rows: rows, m: m, dv: dv, columns: columns, state: state,
                                              normaliser: normaliser, workspace: w)
                    if decayed {
                        // The state holds keys before the chunk: row i sees them decayed by γ^(i+1).
                        for i in 0..<rows {
                            let factor = w.powers[i + 1]
                            let row = w.outputs + i * width
                            for j in 0..<width { row[j] *= factor }
                            w.denominators[i] *= factor
                        }
                    }
                    // Intra-chunk: scores = tril(Φ_Q Φ_Kᵀ), diagonal included; from the map's
                    // factorised kernel when it has one (far cheaper than the c × c × m product).
                    if map.scores(head: keyHead, rows: rows, queryScratch: w.featureScratch, keyScratch: w.keyScratch,
                                  output: w.scores, scratch: w.scoreScratch) {
                        // The shortcut saw the ungated features: gate its rows and columns instead.
                        if queryGates != nil || keyGates != nil { gateScores(rows: rows, workspace: w) }
                    } else {
                        Gemm.multiply(m: rows, n: rows, k: m, a: w.phiQ, rowStrideA: m, columnStrideA: 1,
                                      b: w.phiK, rowStrideB: 1, columnStrideB: m, c: w.scores, ldc: rows,
                                      accumulate: false, workspace: w.gemm)
                    }
                    if decayed {
                        for i in 0..<rows {
                            let row = w.scores + i * rows
                            for j in 0...i { row[j] *= w.powers[i - j] }
                        }
                    }
                    LinearAttention.addIntraChunk(rows: rows, dv: dv, columns: columns, workspace: w)
                    LinearAttention.normaliseAndStore(rows: rows, columns: columns, delta: delta, denominator: denominator,
                                                      normalize: normalize, workspace: w,
                                                      out: out!, batch: span.batch, head: queryHead, t0: span.start + t0)
                }
                updateState(rows: rows, keyHead: keyHead, columns: columns, state: state, normaliser: normaliser, workspace: w)
                t0 += rows
            }
        }

        /// powers[n] = γ^n for n < count, in double and rounded once (no drift from repeated products).
        func fillPowers(_ gamma: Float, count: Int, into powers: UnsafeMutablePointer<Float>) {
            let logGamma = log(Double(gamma))
            for n in 0..<count { powers[n] = Float(exp(Double(n) * logGamma)) }
        }

        /// S ← γ^rows S + Σ_j γ^(rows−1−j) φ(k_j) v_jᵀ (and z alike); without decay, S += Φ_Kᵀ V.
        func updateState(rows: Int, keyHead: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                         normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
            let (m, dv, width) = (map.featureDim, valueDim, columns.count)
            guard decay.isActive && decay[keyHead] < 1 else {
                LinearAttention.updateState(rows: rows, m: m, dv: dv, columns: columns, state: state,
                                            normaliser: normaliser, workspace: w)
                return
            }
            fillPowers(decay[keyHead], count: rows + 1, into: w.powers)
            let carry = w.powers[rows]
            for f in 0..<m {
                let row = state + f * dv + columns.lowerBound
                for j in 0..<width { row[j] *= carry }
                normaliser[f] *= carry
            }
            // Scaled values γ^(rows−1−j) v_j in the outputs buffer (free between query heads).
            for j in 0..<rows {
                let factor = w.powers[rows - 1 - j]
                let source = w.valueRows + j * dv + columns.lowerBound
                let target = w.outputs + j * width
                for c in 0..<width { target[c] = source[c] * factor }
                let phi = w.phiK + j * m
                for f in 0..<m { normaliser[f] += phi[f] * factor }
            }
            Gemm.multiply(m: m, n: width, k: rows, a: w.phiK, rowStrideA: 1, columnStrideA: m,
                          b: w.outputs, rowStrideB: width, columnStrideB: 1,
                          c: state + columns.lowerBound, ldc: dv, accumulate: true, workspace: w.gemm)
        }

        func absorb(span: SequenceSpan, origin: Int, keyHead: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                    normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
            var t0 = 0
            while t0 < span.length {
                let rows = min(w.chunk, span.length - t0)
                loadKeys(span: span, origin: origin, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                if logDecay != nil {
                    loadLogDecay(span: span, keyHead: keyHead, t0: t0, rows: rows, workspace: w)
                    updateStateChannelDecay(rows: rows, columns: columns, state: state, normaliser: normaliser, workspace: w)
                } else {
                    updateState(rows: rows, keyHead: keyHead, columns: columns, state: state, normaliser: normaliser, workspace: w)
                }
                t0 += rows
            }
        }

        func query(span: SequenceSpan, origin: Int, keyHead: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                   normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
            for g in 0..<group {
                let queryHead = keyHead * group + g
                var t0 = 0
                while t0 < span.length {
                    let rows = min(w.chunk, span.length - t0)
                    loadQueries(span: span, origin: origin, keyHead: keyHead, queryHead: queryHead, t0: t0, rows: rows, workspace: w)
                    LinearAttention.readState(rows: rows, m: map.featureDim, dv: valueDim, columns: columns, state: state,
                                              normaliser: normaliser, workspace: w)
                    LinearAttention.normaliseAndStore(rows: rows, columns: columns, delta: delta, denominator: denominator,
                                                      normalize: normalize, workspace: w,
                                                      out: out!, batch: span.batch, head: queryHead, t0: span.start + t0)
                    t0 += rows
                }
            }
        }
    }

    /// Floats of every workspace block, computed with overflow checks.
    public struct WorkspaceLayout: Sendable {
        let chunk: Int
        let featureDim: Int
        let keyRowFloats: Int
        let valueRowFloats: Int
        let featureBlockFloats: Int
        let stateFloats: Int
        /// Query features use featureScratch, key features keyScratch (same size): the scores
        /// shortcut reads both back.
        let featureScratch: Int
        let scoreScratch: Int
        public let totalFloats: Int

        /// GLA blocks (log α rows, decay factors, running exponents) and gate values; empty when unused.
        let channelDecayFloats: Int
        let runningFloats: Int
        let gateFloats: Int

        init(map: FeatureMap, headDim: Int, valueDim: Int, chunk: Int, channelDecay: Bool = false, gates: Bool = false) throws {
            let m = map.featureDim
            self.chunk = chunk
            self.featureDim = m
            self.keyRowFloats = try CheckedSize.multiply(chunk, headDim, what: "workspace")
            self.valueRowFloats = try CheckedSize.multiply(chunk, valueDim, what: "workspace")
            self.featureBlockFloats = try CheckedSize.multiply(chunk, m, what: "workspace (chunk_size · m)")
            self.stateFloats = try CheckedSize.multiply(m, valueDim, what: "state size m · dv")
            self.featureScratch = map.scratchFloats(rows: chunk)
            self.scoreScratch = map.scoreScratchFloats(rows: chunk)
            self.channelDecayFloats = channelDecay ? featureBlockFloats : 0
            self.runningFloats = channelDecay ? try CheckedSize.add(m, 8, what: "workspace") : 0
            self.gateFloats = gates ? chunk : 0
            var total = 0
            for piece in [keyRowFloats, keyRowFloats, valueRowFloats, featureBlockFloats, featureBlockFloats,
                          chunk * chunk, valueRowFloats, chunk, stateFloats, m, featureScratch, featureScratch, scoreScratch,
                          Gemm.workspaceFloats, chunk + 1, channelDecayFloats, channelDecayFloats, runningFloats,
                          gateFloats, gateFloats] {
                total = try CheckedSize.add(total, ScratchBuffer.footprint(piece), what: "workspace")
            }
            self.totalFloats = total
        }
    }

    /// One worker's blocks, carved from its ScratchBuffer in the order WorkspaceLayout sums them.
    struct Workspace {
        let queryRows, keyRows, valueRows, phiQ, phiK, scores, outputs, denominators, state, normaliser,
            featureScratch, keyScratch, scoreScratch, gemm, powers: UnsafeMutablePointer<Float>
        let logDecay, decayFactors, running, queryGates, keyGates: UnsafeMutablePointer<Float>
        let chunk: Int

        init(layout: WorkspaceLayout, buffer: ScratchBuffer) {
            chunk = layout.chunk
            var carver = ScratchCarver(buffer.pointer)
            queryRows = carver.take(layout.keyRowFloats)
            keyRows = carver.take(layout.keyRowFloats)
            valueRows = carver.take(layout.valueRowFloats)
            phiQ = carver.take(layout.featureBlockFloats)
            phiK = carver.take(layout.featureBlockFloats)
            scores = carver.take(layout.chunk * layout.chunk)
            outputs = carver.take(layout.valueRowFloats)
            denominators = carver.take(layout.chunk)
            state = carver.take(layout.stateFloats)
            normaliser = carver.take(layout.featureDim)
            featureScratch = carver.take(layout.featureScratch)
            keyScratch = carver.take(layout.featureScratch)
            scoreScratch = carver.take(layout.scoreScratch)
            gemm = carver.take(Gemm.workspaceFloats)
            powers = carver.take(layout.chunk + 1)
            logDecay = carver.take(layout.channelDecayFloats)
            decayFactors = carver.take(layout.channelDecayFloats)
            running = carver.take(layout.runningFloats)
            queryGates = carver.take(layout.gateFloats)
            keyGates = carver.take(layout.gateFloats)
        }
    }

    /// Output block [rows, columns] ← outputs / (den + δ), written to `out` at (batch, head).
    @inline(__always)
    static func normaliseAndStore(rows: Int, columns: Range<Int>, delta: Float, denominator: DenominatorMode,
                                  normalize: Bool = true, workspace w: Workspace,
                                  out: TensorView, batch: Int, head: Int, t0: Int) {
        let width = columns.count
        let base = out.base + batch * out.steps[0] + head * out.steps[2] + columns.lowerBound * out.steps[3]
        let (rowStride, columnStride) = (out.steps[1], out.steps[3])
        for i in 0..<rows {
            let inverse = normalize ? denominator.inverse(w.denominators[i], delta: delta) : 1
            let row = w.outputs + i * width
            let target = base + (t0 + i) * rowStride
            if columnStride == 1 {
                for j in 0..<width { target[j] = row[j] * inverse }
            } else {
                for j in 0..<width { target[j * columnStride] = row[j] * inverse }
            }
        }
    }

    /// Inter-chunk readout for a block of value columns: outputs = Φ_Q·S[:, columns],
    /// denominators = Φ_Q·z.
    @inline(__always)
    static func readState(rows: Int, m: Int, dv: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                          normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
        Gemm.multiply(m: rows, n: columns.count, k: m, a: w.phiQ, rowStrideA: m, columnStrideA: 1,
                      b: state + columns.lowerBound, rowStrideB: dv, columnStrideB: 1, c: w.outputs, ldc: columns.count,
                      accumulate: false, workspace: w.gemm)
        for i in 0..<rows {
            let phi = w.phiQ + i * m
            var total: Float = 0
            for f in 0..<m { total += phi[f] * normaliser[f] }
            w.denominators[i] = total
        }
    }

    /// Intra-chunk part of a causal chunk: the masked scores tril(w.scores) (diagonal included;
    /// entries above it are zeroed) add their row sums to the denominators and their product with
    /// the chunk's values to the outputs.
    @inline(__always)
    static func addIntraChunk(rows: Int, dv: Int, columns: Range<Int>, workspace w: Workspace) {
        for i in 0..<rows {
            let row = w.scores + i * rows
            var total: Float = 0
            for j in 0...i { total += row[j] }
            for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
            w.denominators[i] += total
        }
        Gemm.multiply(m: rows, n: columns.count, k: rows, a: w.scores, rowStrideA: rows, columnStrideA: 1,
                      b: w.valueRows + columns.lowerBound, rowStrideB: dv, columnStrideB: 1,
                      c: w.outputs, ldc: columns.count, accumulate: true, workspace: w.gemm)
    }

    /// State update: S[:, columns] += Φ_Kᵀ·V[:, columns], z += Φ_Kᵀ·1 over the chunk's rows.
    @inline(__always)
    static func updateState(rows: Int, m: Int, dv: Int, columns: Range<Int>, state: UnsafeMutablePointer<Float>,
                            normaliser: UnsafeMutablePointer<Float>, workspace w: Workspace) {
        Gemm.multiply(m: m, n: columns.count, k: rows, a: w.phiK, rowStrideA: 1, columnStrideA: m,
                      b: w.valueRows + columns.lowerBound, rowStrideB: dv, columnStrideB: 1,
                      c: state + columns.lowerBound, ldc: dv, accumulate: true, workspace: w.gemm)
        for i in 0..<rows {
            let phi = w.phiK + i * m
            for f in 0..<m { normaliser[f] += phi[f] }
        }
    }
}
