/// The chunk pieces forms share: loading rows and features, reading the state, the masked
/// intra-chunk product and the additive state update. Each works on the task's block of value
/// columns.
extension FormTask {
    /// True when the task's key head decays at all (a per-token log decay, or γ < 1).
    var decays: Bool { options.logDecay != nil || options.decay.decays(head: keyHead) }

    /// Keys and values of the chunk's rows, as loadRows loads them, and the number of leading
    /// rows whose value is finite.
    func loadKeys(_ chunk: inout ChunkRows) {
        loadRows(role: .key, head: keyHead, chunk)
        call.v!.gatherRows(batch: span.batch, head: keyHead, t0: span.start + chunk.t0, rows: chunk.rows, into: w[.valueRows])
        chunk.finiteRows = Self.finiteRows(w[.valueRows], rows: chunk.rows, width: call.valueDim)
    }

    /// Leading rows of a [rows, width] block with only finite entries (a NaN or ±inf row stops it).
    static func finiteRows(_ block: UnsafePointer<Float>, rows: Int, width: Int) -> Int {
        for i in 0..<rows {
            let row = block + i * width
            var sum: Float = 0
            // x·0 is 0 for finite x and NaN for NaN / ±inf: one multiply-add per entry.
            for j in 0..<width { sum += row[j] * 0 }
            if sum != 0 { return i }
        }
        return rows
    }

    /// The chunk's rows of `head` of q or k (by `role`) into w[.queryRows] / w[.keyRows] (raw) and
    /// their gates into w[.queryGates] / w[.keyGates]; then, unless the form keeps frames (it never
    /// forms features), their features into w[.phiQ] / w[.phiK], L2-normalised with qk_l2norm and gated.
    func loadRows(role: FeatureRole, head: Int, _ chunk: ChunkRows) {
        let (view, logits) = role == .key ? (call.k!, options.keyGateLogits) : (call.q!, options.queryGateLogits)
        let (input, gates, phi): (WorkspaceBlock, WorkspaceBlock, WorkspaceBlock) =
            role == .key ? (.keyRows, .keyGates, .phiK) : (.queryRows, .queryGates, .phiQ)
        let (t0, rows, m) = (span.start + chunk.t0, chunk.rows, map.featureDim)
        view.gatherRows(batch: span.batch, head: head, t0: t0, rows: rows, into: w[input])
        if let logits { HeadGates.fill(logits, batch: span.batch, t0: t0, rows: rows, head: head, into: w[gates]) }
        guard !call.framed else { return }
        map.features(role: role, head: keyHead, input: w[input], rows: rows, firstPosition: origin + chunk.t0,
                     output: w[phi], scratch: w[role == .key ? .keyScratch : .featureScratch])
        if options.qkL2Norm { Self.normaliseRows(w[phi], rows: rows, width: m) }
        if logits != nil { HeadGates.scaleRows(w[phi], rows: rows, width: m, by: w[gates]) }
    }

    /// Each row ← row / ‖row‖ (fla's use_qk_l2norm_in_kernel: ‖row‖ = sqrt(Σ x² + 1e-6)).
    static func normaliseRows(_ block: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for i in 0..<rows {
            let row = block + i * width
            var sum: Float = 0
            for f in 0..<width { sum += row[f] * row[f] }
            let inverse = 1 / (sum + 1e-6).squareRoot()
            for f in 0..<width { row[f] *= inverse }
        }
    }

    /// Inter-chunk readout: outputs = Φ_Q·S[:, columns], denominators = Φ_Q·z.
    func readState(rows: Int) {
        let (m, dv) = (map.featureDim, call.valueDim)
        Gemm.multiply(m: rows, n: columns.count, k: m, a: w[.phiQ], rowStrideA: m, columnStrideA: 1,
                      b: state + columns.lowerBound, rowStrideB: dv, columnStrideB: 1, c: w[.outputs], ldc: columns.count,
                      accumulate: false, workspace: w[.gemm])
        // Vector dot products: a scalar sum here was one dependent add per feature (8% of a prefill).
        for i in 0..<rows { w[.denominators][i] = DecodeKernels.dot(w[.phiQ] + i * m, normaliser, count: m) }
    }

    /// Row i of the outputs and denominators times factor(i) (the decay of the state before the
    /// chunk as row i sees it, or a query gate).
    @inline(__always)
    func scaleReadout(rows: Int, factor: (Int) -> Float) {
        for i in 0..<rows {
            let (row, scale) = (w[.outputs] + i * columns.count, factor(i))
            for j in 0..<columns.count { row[j] *= scale }
            w[.denominators][i] *= scale
        }
    }

    /// The masked intra-chunk part: the scores tril(w[.scores]) (diagonal included; entries above
    /// it are zeroed) add their row sums to the denominators and their product with the values
    /// (by default the task's columns of the chunk's value rows) to the outputs.
    func addIntraChunk(_ chunk: ChunkRows, values: UnsafePointer<Float>? = nil, stride: Int? = nil) {
        let rows = chunk.rows
        for i in 0..<rows {
            let row = w[.scores] + i * rows
            var total: Float = 0
            for j in 0...i { total += row[j] }
            for j in (i + 1)..<max(i + 1, rows) { row[j] = 0 }
            w[.denominators][i] += total
        }
        lowerProduct(w[.scores], rows: rows, finiteRows: chunk.finiteRows, b: values ?? UnsafePointer(w[.valueRows] + columns.lowerBound),
                     rowStrideB: stride ?? call.valueDim, width: columns.count, into: w[.outputs], accumulate: true)
    }

    /// C (+)= L·B, C [rows, width], for a lower-triangular rows × rows L (zeros above the diagonal,
    /// row stride rows) and B [rows, width] whose rows from `finiteRows` on may hold NaN or ±inf.
    /// Row i < finiteRows of C must not see them (0 · NaN is NaN) and must get exactly the bits it
    /// gets when they are finite: it is computed by the same product (same shape, so the same
    /// blocking and order) on a copy of B whose rows from finiteRows on are 0, adding 0 where the
    /// finite run adds 0 · v. The later rows then add the rest of their triangle,
    /// L[later, later]·B[later]: the columns where B's later rows are finite get their exact sums
    /// (a NaN in one column of a value row must not change the other columns), the others the NaN
    /// or ±inf they reach.
    func lowerProduct(_ l: UnsafePointer<Float>, rows: Int, finiteRows: Int, b: UnsafePointer<Float>,
                      rowStrideB: Int, width: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (masks, masked) = (finiteRows < rows, w[.maskedRows])
        if masks {
            for i in 0..<finiteRows { (masked + i * width).update(from: b + i * rowStrideB, count: width) }
            (masked + finiteRows * width).update(repeating: 0, count: (rows - finiteRows) * width)
        }
        Gemm.multiply(m: rows, n: width, k: rows, a: l, rowStrideA: rows, columnStrideA: 1,
                      b: masks ? UnsafePointer(masked) : b, rowStrideB: masks ? width : rowStrideB, columnStrideB: 1,
                      c: c, ldc: width, accumulate: accumulate, workspace: w[.gemm])
        guard masks else { return }
        Gemm.multiply(m: rows - finiteRows, n: width, k: rows - finiteRows, a: l + finiteRows * rows + finiteRows,
                      rowStrideA: rows, columnStrideA: 1, b: b + finiteRows * rowStrideB, rowStrideB: rowStrideB,
                      columnStrideB: 1, c: c + finiteRows * width, ldc: width, accumulate: true, workspace: w[.gemm])
    }

    /// S[:, columns] += Φ_Kᵀ·V (by default the task's columns of the chunk's value rows) and, with
    /// `normaliser`, z += Φ_Kᵀ·1 over the chunk's rows.
    func addKeysToState(rows: Int, values: UnsafePointer<Float>? = nil, stride: Int? = nil,
                        normaliser addsZ: Bool = true) {
        let (m, dv) = (map.featureDim, call.valueDim)
        Gemm.multiply(m: m, n: columns.count, k: rows, a: w[.phiK], rowStrideA: 1, columnStrideA: m,
                      b: values ?? UnsafePointer(w[.valueRows] + columns.lowerBound), rowStrideB: stride ?? dv,
                      columnStrideB: 1, c: state + columns.lowerBound, ldc: dv, accumulate: true, workspace: w[.gemm])
        for i in 0..<rows where addsZ {
            let phi = w[.phiK] + i * m
            for f in 0..<m { normaliser[f] += phi[f] }
        }
    }

    /// S[:, columns] and (`normaliser`) z scaled by `factor` per feature row (`factors[f]`, or one scalar).
    func scaleState(by factors: UnsafePointer<Float>?, scalar: Float = 1, normaliser scalesZ: Bool = true) {
        let (m, dv) = (map.featureDim, call.valueDim)
        for f in 0..<m {
            let factor = factors.map { $0[f] } ?? scalar
            let row = state + f * dv + columns.lowerBound
            for j in 0..<columns.count { row[j] *= factor }
            if scalesZ { normaliser[f] *= factor }
        }
    }

    /// scores[i, j] ×= e^{b_i − b_j} for j ≤ i, from cumulative b in w[.rowDecay]; γ^(i−j) with `powers`.
    func decayScores(_ scores: UnsafeMutablePointer<Float>, rows: Int, powers: Bool = false) {
        let (b, scratch) = (w[.rowDecay], w[.decayFactors])
        for i in 0..<rows {
            for j in 0...i { scratch[j] = powers ? w[.powers][i - j] : min(b[i] - b[j], 0) }
            if !powers { DecayMath.expNonPositive(scratch, count: i + 1, output: scratch) }
            let row = scores + i * rows
            for j in 0...i { row[j] *= scratch[j] }
        }
    }

    /// The chunk's keys into the state under a scalar decay (additive and delta-rule forms): S (and,
    /// with `normaliser`, z) × e^{b_last}, then S += Φ_Kᵀ·(e^{b_last − b_j} values_j) and z += Σ_j
    /// e^{b_last − b_j} φ(k_j); with `powers`, γ^rows and γ^(last − j). The values are scaled, not
    /// the keys: they are the narrower rows (dv columns, m features). Without decay, addKeysToState.
    func addDecayedKeys(rows: Int, powers: Bool, values: UnsafePointer<Float>? = nil, stride: Int? = nil,
                        normaliser addsZ: Bool = true) {
        guard decays else { return addKeysToState(rows: rows, values: values, stride: stride, normaliser: addsZ) }
        let (m, width, last, b) = (map.featureDim, columns.count, rows - 1, w[.rowDecay])
        let (source, sourceStride) = (values ?? UnsafePointer(w[.valueRows] + columns.lowerBound), stride ?? call.valueDim)
        scaleState(by: nil, scalar: powers ? w[.powers][rows] : ScalarDecay.weight(b[last]), normaliser: addsZ)
        // Scaled values in the outputs buffer (free between query heads).
        for j in 0..<rows {
            let factor = powers ? w[.powers][last - j] : ScalarDecay.weight(b[last] - b[j])
            let (row, target, phi) = (source + j * sourceStride, w[.outputs] + j * width, w[.phiK] + j * m)
            for c in 0..<width { target[c] = row[c] * factor }
            if addsZ {
                for f in 0..<m { normaliser[f] += phi[f] * factor }
            }
        }
        addKeysToState(rows: rows, values: w[.outputs], stride: width, normaliser: false)
    }

    /// The chunk's rows of a per-head token tensor (β [B, T, Hk], or channel 0 of a log decay
    /// broadcast over m) into `target`; `absent` for every row without one.
    func headRows(_ view: TensorView?, _ chunk: ChunkRows, absent: Float, into target: UnsafeMutablePointer<Float>) {
        guard let view else { return target.update(repeating: absent, count: chunk.rows) }
        let base = span.batch * view.steps[0] + keyHead * view.steps[2]
        for i in 0..<chunk.rows { target[i] = view.load(base + (span.start + chunk.t0 + i) * view.steps[1]) }
    }

    /// b_i = Σ_{t ≤ i} (g_t + log γ) of the chunk's rows into w[.rowDecay] (per-head g; log γ alone
    /// without it).
    func cumulativeRowDecay(_ chunk: ChunkRows) {
        let (target, logGamma) = (w[.rowDecay], options.decay.logarithm(head: keyHead))
        headRows(options.logDecay, chunk, absent: 0, into: target)
        for i in 0..<chunk.rows { target[i] += logGamma }
        for i in 1..<max(1, chunk.rows) { target[i] += target[i - 1] }
    }

    /// Per-channel log α of the chunk's rows into w[.logDecay] [rows, m], plus log γ (log γ alone
    /// without log decay; −0 without either, so that adding it changes no bits, a −0 included).
    func channelLogDecay(_ chunk: ChunkRows) {
        let (m, logGamma) = (map.featureDim, options.decay.logarithm(head: keyHead))
        guard let logDecay = options.logDecay else {
            return w[.logDecay].update(repeating: logGamma == 0 ? -0.0 : logGamma, count: chunk.rows * m)
        }
        logDecay.gatherRows(batch: span.batch, head: keyHead, t0: span.start + chunk.t0, rows: chunk.rows, into: w[.logDecay])
        if logGamma != 0 {
            for i in 0..<(chunk.rows * m) { w[.logDecay][i] += logGamma }
        }
    }
}
