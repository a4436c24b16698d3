// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// The row stream of one decode step for one (sequence, key head): a single pass over the state
/// S [rows, columns] that updates each row and reads it out into every query head of the GQA
/// group while it is in registers. A step is bound by this traffic (S is m × dv per head), so S is
/// read and written exactly once and the group's outputs never leave registers until the end.
///
/// S is walked in column blocks across all rows, with the block's accumulators for up to 4 query
/// heads (at most 8 of the 16 vector registers) held in registers; a group of more than 4 heads
/// takes further read-only passes over the block, which is then L1/L2-resident. S may be stored as fp32, fp16 or bf16: rows are
/// converted to fp32 in the loads and rounded back in the stores, and all arithmetic is fp32; the
/// outputs read the updated rows as stored (rounded), so every head of a group sees the same S.
public enum DecodeRows {
    /// The additive update with optional per-row decay, read out by a group of query heads:
    ///
    ///     S_f ← a_f·S_f + b_f·v                   for f < rows
    ///     outputs[g, :] = Σ_f w[g, f]·S_f          (the updated rows), g < group
    ///
    /// with a_f = stateScales[f·stateScaleStride] (1 when stateScales is nil; stride 0 gives one
    /// decay for all rows, RetNet γ), b_f = keyScales[f] (φ(k) times its gate and any rescaling),
    /// w[g, f] = queries[g·queryStride + f]. S rows are `rowStride` elements apart, of `storage`.
    /// outputs is [group, columns], contiguous, overwritten. Rescaled-exp (Hadamard Exp) passes
    /// its per-row rescaling of S in stateScales and of the key in keyScales.
    public static func additive(state: UnsafeMutableRawPointer, storage: ElementFormat, rows: Int, columns: Int,
                                rowStride: Int, stateScales: UnsafePointer<Float>?, stateScaleStride: Int,
                                keyScales: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                queries: UnsafePointer<Float>, queryStride: Int, group: Int,
                                outputs: UnsafeMutablePointer<Float>) {
        let plan = Plan(rows: rows, columns: columns, rowStride: rowStride, stateScales: stateScales,
                        stateScaleStride: stateScaleStride, keyScales: keyScales, value: value, queries: queries,
                        queryStride: queryStride, group: group, outputs: outputs)
        switch storage {
        case .f32: stream(F32Codec.self, state, plan)
        case .f16: stream(F16Codec.self, state, plan)
        case .bf16: stream(BF16Codec.self, state, plan)
        }
    }

    /// The normaliser's part of the same step, z [rows] in fp32:
    /// z_f ← a_f·z_f + b_f, denominators[g] = Σ_f w[g, f]·z_f (overwritten), a, b and w as in
    /// `additive`. Summed in 8 lanes, then the lanes in a fixed order (deterministic).
    public static func normaliser(_ z: UnsafeMutablePointer<Float>, rows: Int, stateScales: UnsafePointer<Float>?,
                                  stateScaleStride: Int, keyScales: UnsafePointer<Float>,
                                  queries: UnsafePointer<Float>, queryStride: Int, group: Int,
                                  denominators: UnsafeMutablePointer<Float>) {
        let vectorRows = stateScaleStride == 1 || stateScales == nil ? rows & ~7 : 0
        var f = 0
        while f < vectorRows {
            var updated = F32Codec.load8(z + f)
            let b = F32Codec.load8(keyScales + f)
            if let stateScales {
                updated = fma(updated, F32Codec.load8(stateScales + f), b)
            } else {
                updated += b
            }
            F32Codec.store8(updated, z + f)
            f += 8
        }
        while f < rows {
            let a = stateScales.map { $0[f * stateScaleStride] } ?? 1
            z[f] = a * z[f] + keyScales[f]
            f += 1
        }
        for g in 0..<group { denominators[g] = dot(queries + g * queryStride, z, count: rows) }
    }

    /// Σ_i x[i]·y[i] in 8 lanes, then the lanes in a fixed order.
    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        var lanes = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            lanes = fma(F32Codec.load8(x + i), F32Codec.load8(y + i), lanes)
            i += 8
        }
        var total = laneSum(lanes)
        while i < count {
            total += x[i] * y[i]
            i += 1
        }
        return total
    }

    /// a·b + c: fused on AVX2/FMA; `a * b + c` on the baseline, where the fused form is
    /// scalarised (no FMA instruction).
    @inline(__always)
    static func fma(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
        #if SLAY_AVX2
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    @inline(__always)
    static func laneSum(_ v: SIMD8<Float>) -> Float {
        let half = v.lowHalf + v.highHalf
        let quarter = half.lowHalf + half.highHalf
        return quarter[0] + quarter[1]
    }

    /// The arguments of one call, so the specialised blocks take one value.
    struct Plan {
        let rows: Int, columns: Int, rowStride: Int
        let stateScales: UnsafePointer<Float>?, stateScaleStride: Int
        let keyScales: UnsafePointer<Float>, value: UnsafePointer<Float>
        let queries: UnsafePointer<Float>, queryStride: Int, group: Int
        let outputs: UnsafeMutablePointer<Float>
    }

    /// Column blocks of `vectors` × 8 floats per query-head set: the widest block whose
    /// accumulators (heads × vectors) fit in 8 registers, so a group of 1 walks whole rows of
    /// dv = 64 front to back (sequential memory traffic, which DRAM-bound batches need) and larger
    /// groups walk narrower column blocks.
    @inline(__always)
    static func stream<C: RowCodec>(_ codec: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan) {
        let heads = min(4, max(plan.group, 1))
        let scaled = plan.stateScales != nil
        var column = 0
        while column + 8 <= plan.columns {
            let available = (plan.columns - column) / 8
            let vectors = min(available >= 8 ? 8 : available >= 4 ? 4 : available >= 2 ? 2 : 1, 8 / heads)
            // Heads in sets of up to 4; the first set also updates the block.
            var head = 0
            while head < plan.group {
                let set = min(4, plan.group - head)
                let update = head == 0
                switch (vectors, set, update, scaled) {
                case (8, 1, true, false): block(C.self, state, plan, column, head, vectors: 8, heads: 1, update: true, scaled: false)
                case (8, 1, true, true): block(C.self, state, plan, column, head, vectors: 8, heads: 1, update: true, scaled: true)
                case (4, 2, true, false): block(C.self, state, plan, column, head, vectors: 4, heads: 2, update: true, scaled: false)
                case (4, 2, true, true): block(C.self, state, plan, column, head, vectors: 4, heads: 2, update: true, scaled: true)
                case (2, 4, true, false): block(C.self, state, plan, column, head, vectors: 2, heads: 4, update: true, scaled: false)
                case (2, 4, true, true): block(C.self, state, plan, column, head, vectors: 2, heads: 4, update: true, scaled: true)
                case (2, 4, false, _): block(C.self, state, plan, column, head, vectors: 2, heads: 4, update: false, scaled: false)
                case (2, 3, true, false): block(C.self, state, plan, column, head, vectors: 2, heads: 3, update: true, scaled: false)
                case (2, 3, true, true): block(C.self, state, plan, column, head, vectors: 2, heads: 3, update: true, scaled: true)
                default:
                    // Narrow tails, odd sets and leftover heads: the same block, not specialised.
                    block(C.self, state, plan, column, head, vectors: vectors, heads: set, update: update, scaled: scaled)
                }
                head += 4
            }
            column += vectors * 8
        }
        if column < plan.columns { scalarColumns(C.self, state, plan, from: column, to: plan.columns) }
    }

    /// One column block of `vectors` × 8 floats for `heads` (≤ 4, heads × vectors ≤ 8) query heads
    /// starting at `firstHead`, over all rows. The arguments are constants at the specialised call
    /// sites, so the loops over vectors and heads unroll and the accumulators live in registers.
    @inline(__always)
    static func block<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, _ column: Int,
                                   _ firstHead: Int, vectors: Int, heads: Int, update: Bool, scaled: Bool) {
        var accumulators = InlineArray<8, SIMD8<Float>>(repeating: SIMD8<Float>())
        var s = InlineArray<8, SIMD8<Float>>(repeating: SIMD8<Float>())
        let q = plan.queries + firstHead * plan.queryStride
        let qs = plan.queryStride
        let scales = plan.stateScales ?? plan.keyScales
        let scaleStride = plan.stateScaleStride
        let value = plan.value + column
        let rowBytes = plan.rowStride * C.stride
        var row = state + column * C.stride
        for f in 0..<plan.rows {
            for w in 0..<vectors { s[w] = C.load8(row + 8 * w * C.stride) }
            if update {
                let b = SIMD8<Float>(repeating: plan.keyScales[f])
                if scaled {
                    let a = SIMD8<Float>(repeating: scales[f * scaleStride])
                    for w in 0..<vectors { s[w] = fma(a, s[w], b * F32Codec.load8(value + 8 * w)) }
                } else {
                    for w in 0..<vectors { s[w] = fma(b, F32Codec.load8(value + 8 * w), s[w]) }
                }
                for w in 0..<vectors { C.store8(s[w], row + 8 * w * C.stride) }
                if C.stride != 4 {
                    // Half-precision storage: the heads read the row as stored, like later passes.
                    for w in 0..<vectors { s[w] = C.load8(row + 8 * w * C.stride) }
                }
            }
            for h in 0..<heads {
                let weight = SIMD8<Float>(repeating: q[h * qs + f])
                for w in 0..<vectors { accumulators[h * vectors + w] = fma(weight, s[w], accumulators[h * vectors + w]) }
            }
            row += rowBytes
        }
        let out = plan.outputs + firstHead * plan.columns + column
        for h in 0..<heads {
            for w in 0..<vectors { F32Codec.store8(accumulators[h * vectors + w], out + h * plan.columns + 8 * w) }
        }
    }

    /// Columns [from, to) (fewer than 8 at the right edge) one element at a time, update and every
    /// head; like the vector blocks, the heads read the update as stored.
    static func scalarColumns<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, from: Int, to: Int) {
        for j in from..<to {
            for g in 0..<plan.group { plan.outputs[g * plan.columns + j] = 0 }
            var element = state + j * C.stride
            for f in 0..<plan.rows {
                var s = C.load1(element)
                let b = plan.keyScales[f]
                if let scales = plan.stateScales {
                    s = scales[f * plan.stateScaleStride] * s + b * plan.value[j]
                } else {
                    s = b * plan.value[j] + s
                }
                C.store1(s, element)
                s = C.load1(element)
                for g in 0..<plan.group {
                    plan.outputs[g * plan.columns + j] += plan.queries[g * plan.queryStride + f] * s
                }
                element += plan.rowStride * C.stride
            }
        }
    }
}
