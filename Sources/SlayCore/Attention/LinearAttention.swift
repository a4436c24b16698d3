/// Options of kernel-normalised linear attention; names match the C and Python APIs.
public struct LinearAttentionOptions: Sendable, Equatable {
    public var causal: Bool
    public var delta: Double
    public var chunkSize: Int
    public var nThreads: Int

    public static let maximumChunkSize = 4096
    public static let maximumThreads = 256

    public init(causal: Bool = true, delta: Double = 1e-6, chunkSize: Int = 64, nThreads: Int = 1) {
        self.causal = causal
        self.delta = delta
        self.chunkSize = chunkSize
        self.nThreads = nThreads
    }

    public func validate() throws {
        guard delta.isFinite && delta >= 0 else { throw SlayError.invalid("delta must be finite and >= 0, got \(delta)") }
        guard chunkSize >= 1 && chunkSize <= Self.maximumChunkSize else {
            throw SlayError.invalid("chunk_size must be in 1...\(Self.maximumChunkSize), got \(chunkSize)")
        }
        guard nThreads >= 1 && nThreads <= Self.maximumThreads else {
            throw SlayError.invalid("n_threads must be in 1...\(Self.maximumThreads), got \(nThreads)")
        }
    }
}

/// Kernel-normalised linear attention y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ) (MATH.md §5).
///
/// One engine for every feature map. Work is split over (batch, key head) pairs; each pair
/// walks its sequence in chunks of c rows, computing features of the chunk into workspace, so
/// memory is O(c·m + m·dv) per thread whatever T is. Causal chunks combine the state of all
/// earlier chunks (Φ_Q·S) with the masked intra-chunk block tril(Φ_Q Φ_Kᵀ)·V; the query heads of
/// a grouped-query group share the key features and the state.
public enum LinearAttention {
    public static func run(map: FeatureMap, q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           options: LinearAttentionOptions) throws {
        try options.validate()
        let shapes = try AttentionShapes(q: q, k: k, v: v, out: out)
        guard shapes.headDim == map.headDim else {
            throw SlayError.shape("q and k have head_dim \(shapes.headDim), the feature map expects \(map.headDim)")
        }
        guard shapes.keyHeads == map.numHeads else {
            throw SlayError.shape("k has \(shapes.keyHeads) heads, the feature map has \(map.numHeads)")
        }
        let tasks = shapes.batch * shapes.keyHeads
        let workers = min(options.nThreads, tasks)
        let layout = try WorkspaceLayout(map: map, shapes: shapes, chunk: min(options.chunkSize, shapes.length))
        // Allocate every worker's workspace up front: a failure is a status, never a partial write.
        var buffers: [ScratchBuffer] = []
        for _ in 0..<workers { buffers.append(try ScratchBuffer(floats: layout.totalFloats)) }
        let scratch = buffers
        ParallelFor.run(workers: workers) { worker in
            let workspace = Workspace(layout: layout, buffer: scratch[worker])
            for task in ParallelFor.share(of: tasks, worker: worker, workers: workers) {
                let batch = task / shapes.keyHeads
                let keyHead = task % shapes.keyHeads
                if options.causal {
                    runCausal(map: map, shapes: shapes, q: q, k: k, v: v, out: out, batch: batch,
                              keyHead: keyHead, delta: Float(options.delta), workspace: workspace)
                } else {
                    runBidirectional(map: map, shapes: shapes, q: q, k: k, v: v, out: out, batch: batch,
                                     keyHead: keyHead, delta: Float(options.delta), workspace: workspace)
                }
            }
        }
        withExtendedLifetime(buffers) {}
    }

    /// Floats of every workspace block, computed with overflow checks.
    struct WorkspaceLayout: Sendable {
        let chunk: Int
        let featureDim: Int
        let keyRowFloats: Int
        let valueRowFloats: Int
        let featureBlockFloats: Int
        let stateFloats: Int
        let featureScratch: Int
        let totalFloats: Int

        init(map: FeatureMap, shapes: AttentionShapes, chunk: Int) throws {
            let m = map.featureDim
            self.chunk = chunk
            self.featureDim = m
            self.keyRowFloats = try CheckedSize.multiply(chunk, shapes.headDim, what: "workspace")
            self.valueRowFloats = try CheckedSize.multiply(chunk, shapes.valueDim, what: "workspace")
            self.featureBlockFloats = try CheckedSize.multiply(chunk, m, what: "workspace (chunk_size · m)")
            self.stateFloats = try CheckedSize.multiply(m, shapes.valueDim, what: "state size m · dv")
            self.featureScratch = map.scratchFloats(rows: chunk)
            var total = 0
            for piece in [keyRowFloats, keyRowFloats, valueRowFloats, featureBlockFloats, featureBlockFloats,
                          chunk * chunk, valueRowFloats, chunk, stateFloats, m, featureScratch,
                          Gemm.workspaceFloats] {
                total = try CheckedSize.add(total, ScratchBuffer.footprint(piece), what: "workspace")
            }
            self.totalFloats = total
        }
    }

    /// One worker's blocks, carved from its ScratchBuffer in the order WorkspaceLayout sums them.
    struct Workspace {
        let queryRows, keyRows, valueRows, phiQ, phiK, scores, outputs, denominators, state, normaliser,
            featureScratch, gemm: UnsafeMutablePointer<Float>
        let chunk: Int

        init(layout: WorkspaceLayout, buffer: ScratchBuffer) {
            chunk = layout.chunk
            var cursor = buffer.pointer
            func take(_ count: Int) -> UnsafeMutablePointer<Float> {
                let result = cursor
                cursor += ScratchBuffer.footprint(count)
                return result
            }
            queryRows = take(layout.keyRowFloats)
            keyRows = take(layout.keyRowFloats)
            valueRows = take(layout.valueRowFloats)
            phiQ = take(layout.featureBlockFloats)
            phiK = take(layout.featureBlockFloats)
            scores = take(layout.chunk * layout.chunk)
            outputs = take(layout.valueRowFloats)
            denominators = take(layout.chunk)
            state = take(layout.stateFloats)
            normaliser = take(layout.featureDim)
            featureScratch = take(layout.featureScratch)
            gemm = take(Gemm.workspaceFloats)
        }
    }

    /// y rows ← (y rows) / (den + δ), then written to `out` at (batch, head).
    @inline(__always)
    static func normaliseAndStore(rows: Int, valueDim dv: Int, delta: Float, workspace w: Workspace,
                                  out: TensorView, batch: Int, head: Int, t0: Int) {
        for i in 0..<rows {
            let inverse = 1 / (w.denominators[i] + delta)
            let row = w.outputs + i * dv
            for j in 0..<dv { row[j] *= inverse }
        }
        out.scatterRows(batch: batch, head: head, t0: t0, rows: rows, from: w.outputs)
    }

    /// Inter-chunk readout: outputs = Φ_Q·S, denominators = Φ_Q·z.
    @inline(__always)
    static func readState(rows: Int, m: Int, dv: Int, workspace w: Workspace) {
        Gemm.multiply(m: rows, n: dv, k: m, a: w.phiQ, rowStrideA: m, columnStrideA: 1,
                      b: w.state, rowStrideB: dv, columnStrideB: 1, c: w.outputs, ldc: dv,
                      accumulate: false, workspace: w.gemm)
        for i in 0..<rows {
            let phi = w.phiQ + i * m
            var total: Float = 0
            for f in 0..<m { total += phi[f] * w.normaliser[f] }
            w.denominators[i] = total
        }
    }

    /// State update: S += Φ_Kᵀ·V, z += Φ_Kᵀ·1 over the chunk's rows.
    @inline(__always)
    static func updateState(rows: Int, m: Int, dv: Int, workspace w: Workspace) {
        Gemm.multiply(m: m, n: dv, k: rows, a: w.phiK, rowStrideA: 1, columnStrideA: m,
                      b: w.valueRows, rowStrideB: dv, columnStrideB: 1, c: w.state, ldc: dv,
                      accumulate: true, workspace: w.gemm)
        for i in 0..<rows {
            let phi = w.phiK + i * m
            for f in 0..<m { w.normaliser[f] += phi[f] }
        }
    }

    static func runCausal(map: FeatureMap, shapes: AttentionShapes, q: TensorView, k: TensorView, v: TensorView,
                          out: TensorView, batch: Int, keyHead: Int, delta: Float, workspace w: Workspace) {
        let (m, dv, chunk) = (map.featureDim, shapes.valueDim, w.chunk)
        w.state.update(repeating: 0, count: m * dv)
        w.normaliser.update(repeating: 0, count: m)
        var t0 = 0
        while t0 < shapes.length {
            let rows = min(chunk, shapes.length - t0)
            k.gatherRows(batch: batch, head: keyHead, t0: t0, rows: rows, into: w.keyRows)
            v.gatherRows(batch: batch, head: keyHead, t0: t0, rows: rows, into: w.valueRows)
            map.features(role: .key, head: keyHead, input: w.keyRows, rows: rows, output: w.phiK,
                         scratch: w.featureScratch)
            for g in 0..<shapes.group {
                let queryHead = keyHead * shapes.group + g
                q.gatherRows(batch: batch, head: queryHead, t0: t0, rows: rows, into: w.queryRows)
                map.features(role: .query, head: keyHead, input: w.queryRows, rows: rows, output: w.phiQ,
                             scratch: w.featureScratch)
                readState(rows: rows, m: m, dv: dv, workspace: w)
                // Intra-chunk: scores = tril(Φ_Q Φ_Kᵀ), diagonal included.
                Gemm.multiply(m: rows, n: rows, k: m, a: w.phiQ, rowStrideA: m, columnStrideA: 1,
                              b: w.phiK, rowStrideB: 1, columnStrideB: m, c: w.scores, ldc: rows,
                              accumulate: false, workspace: w.gemm)
                for i in 0..<rows {
                    let row = w.scores + i * rows
                    var total: Float = 0
                    for j in 0...i { total += row[j] }
                    for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
                    w.denominators[i] += total
                }
                Gemm.multiply(m: rows, n: dv, k: rows, a: w.scores, rowStrideA: rows, columnStrideA: 1,
                              b: w.valueRows, rowStrideB: dv, columnStrideB: 1, c: w.outputs, ldc: dv,
                              accumulate: true, workspace: w.gemm)
                normaliseAndStore(rows: rows, valueDim: dv, delta: delta, workspace: w, out: out,
                                  batch: batch, head: queryHead, t0: t0)
            }
            updateState(rows: rows, m: m, dv: dv, workspace: w)
            t0 += rows
        }
    }

    static func runBidirectional(map: FeatureMap, shapes: AttentionShapes, q: TensorView, k: TensorView,
                                 v: TensorView, out: TensorView, batch: Int, keyHead: Int, delta: Float,
                                 workspace w: Workspace) {
        let (m, dv, chunk) = (map.featureDim, shapes.valueDim, w.chunk)
        w.state.update(repeating: 0, count: m * dv)
        w.normaliser.update(repeating: 0, count: m)
        var t0 = 0
        while t0 < shapes.length {
            let rows = min(chunk, shapes.length - t0)
            k.gatherRows(batch: batch, head: keyHead, t0: t0, rows: rows, into: w.keyRows)
            v.gatherRows(batch: batch, head: keyHead, t0: t0, rows: rows, into: w.valueRows)
            map.features(role: .key, head: keyHead, input: w.keyRows, rows: rows, output: w.phiK,
                         scratch: w.featureScratch)
            updateState(rows: rows, m: m, dv: dv, workspace: w)
            t0 += rows
        }
        for g in 0..<shapes.group {
            let queryHead = keyHead * shapes.group + g
            t0 = 0
            while t0 < shapes.length {
                let rows = min(chunk, shapes.length - t0)
                q.gatherRows(batch: batch, head: queryHead, t0: t0, rows: rows, into: w.queryRows)
                map.features(role: .query, head: keyHead, input: w.queryRows, rows: rows, output: w.phiQ,
                             scratch: w.featureScratch)
                readState(rows: rows, m: m, dv: dv, workspace: w)
                normaliseAndStore(rows: rows, valueDim: dv, delta: delta, workspace: w, out: out,
                                  batch: batch, head: queryHead, t0: t0)
                t0 += rows
            }
        }
    }
}
