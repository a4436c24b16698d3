// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).
import CSlayCPU

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

    /// The normaliser's part of the same step, z [rows] of `storage`:
    /// z_f ← a_f·z_f + b_f, denominators[g] = Σ_f w[g, f]·z_f (z as stored; overwritten), a, b and
    /// w as in `additive`. Summed in 8 lanes, then the lanes in a fixed order (deterministic).
    public static func normaliser(_ z: UnsafeMutableRawPointer, storage: ElementFormat, rows: Int,
                                  stateScales: UnsafePointer<Float>?, stateScaleStride: Int,
                                  keyScales: UnsafePointer<Float>, queries: UnsafePointer<Float>, queryStride: Int,
                                  group: Int, denominators: UnsafeMutablePointer<Float>) {
        switch storage {
        case .f32:
            normaliser(F32Codec.self, z, rows, stateScales, stateScaleStride, keyScales, queries, queryStride, group,
                       denominators)
        case .f16:
            normaliser(F16Codec.self, z, rows, stateScales, stateScaleStride, keyScales, queries, queryStride, group,
                       denominators)
        case .bf16:
            normaliser(BF16Codec.self, z, rows, stateScales, stateScaleStride, keyScales, queries, queryStride, group,
                       denominators)
        }
    }

    @inline(__always)
    static func normaliser<C: RowCodec>(_: C.Type, _ z: UnsafeMutableRawPointer, _ rows: Int,
                                        _ stateScales: UnsafePointer<Float>?, _ stateScaleStride: Int,
                                        _ keyScales: UnsafePointer<Float>, _ queries: UnsafePointer<Float>,
                                        _ queryStride: Int, _ group: Int, _ denominators: UnsafeMutablePointer<Float>) {
        let vectorRows = stateScaleStride == 1 || stateScales == nil ? rows & ~7 : 0
        for g in 0..<group { denominators[g] = 0 }
        if group == 1 {
            singleHeadNormaliser(C.self, z, rows, vectorRows, stateScales, stateScaleStride, keyScales, queries,
                                 denominators)
            return
        }
        var sums = InlineArray<8, SIMD8<Float>>(repeating: SIMD8<Float>())
        let lanesGroup = min(group, 8)
        var f = 0
        while f < vectorRows {
            let updated = updatedNormaliser(C.self, z, f, stateScales, keyScales)
            for g in 0..<lanesGroup { sums[g] = Lanes.fma(F32Codec.load8(queries + g * queryStride + f), updated, sums[g]) }
            f += 8
        }
        for g in 0..<lanesGroup { denominators[g] = Lanes.sum(sums[g]) }
        let tail = f
        while f < rows {
            let a = stateScales.map { $0[f * stateScaleStride] } ?? 1
            C.store1(a * C.load1(z + f * C.stride) + keyScales[f], z + f * C.stride)
            f += 1
        }
        // The tail rows, and every row for heads beyond the first 8, against z as stored.
        for g in 0..<group {
            var total: Float = 0
            for r in (g < lanesGroup ? tail : 0)..<rows { total += queries[g * queryStride + r] * C.load1(z + r * C.stride) }
            denominators[g] += total
        }
    }

    /// z[f ..< f + 8] ← a·z + b (a = 1 without stateScales, which then have stride 1), stored in
    /// z's format; returns the rows as stored, which the denominators read.
    @inline(__always)
    static func updatedNormaliser<C: RowCodec>(_: C.Type, _ z: UnsafeMutableRawPointer, _ f: Int,
                                               _ stateScales: UnsafePointer<Float>?,
                                               _ keyScales: UnsafePointer<Float>) -> SIMD8<Float> {
        var row = C.load8(z + f * C.stride)
        let b = F32Codec.load8(keyScales + f)
        if let stateScales {
            row = Lanes.fma(row, F32Codec.load8(stateScales + f), b)
        } else {
            row += b
        }
        return C.storeRounded(row, z + f * C.stride)
    }

    /// `normaliser` for a group of one query head (no GQA), in four independent sums: a single sum
    /// would wait on the previous FMA for every 8 rows, and this loop is short enough (m rows) for
    /// that latency, not memory, to set its time.
    @inline(__always)
    static func singleHeadNormaliser<C: RowCodec>(_: C.Type, _ z: UnsafeMutableRawPointer, _ rows: Int, _ vectorRows: Int,
                                                  _ stateScales: UnsafePointer<Float>?, _ stateScaleStride: Int,
                                                  _ keyScales: UnsafePointer<Float>, _ queries: UnsafePointer<Float>,
                                                  _ denominators: UnsafeMutablePointer<Float>) {
        @inline(__always)
        func updated(_ f: Int) -> SIMD8<Float> { updatedNormaliser(C.self, z, f, stateScales, keyScales) }
        var sums = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
        var f = 0
        while f + 32 <= vectorRows {
            sums.0 = Lanes.fma(F32Codec.load8(queries + f), updated(f), sums.0)
            sums.1 = Lanes.fma(F32Codec.load8(queries + f + 8), updated(f + 8), sums.1)
            sums.2 = Lanes.fma(F32Codec.load8(queries + f + 16), updated(f + 16), sums.2)
            sums.3 = Lanes.fma(F32Codec.load8(queries + f + 24), updated(f + 24), sums.3)
            f += 32
        }
        while f < vectorRows {
            sums.0 = Lanes.fma(F32Codec.load8(queries + f), updated(f), sums.0)
            f += 8
        }
        var total = Lanes.sum((sums.0 + sums.1) + (sums.2 + sums.3))
        while f < rows {
            let a = stateScales.map { $0[f * stateScaleStride] } ?? 1
            C.store1(a * C.load1(z + f * C.stride) + keyScales[f], z + f * C.stride)
            total += queries[f] * C.load1(z + f * C.stride)
            f += 1
        }
        denominators[0] = total
    }

    /// Σ_i x[i]·y[i] in 8 lanes, then the lanes in a fixed order.
    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        var lanes = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            lanes = Lanes.fma(F32Codec.load8(x + i), F32Codec.load8(y + i), lanes)
            i += 8
        }
        var total = Lanes.sum(lanes)
        while i < count {
            total += x[i] * y[i]
            i += 1
        }
        return total
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
                shaped(C.self, state, plan, column, head, vectors: vectors, heads: set, update: update, scaled: scaled)
                head += 4
            }
            column += vectors * 8
        }
        if column < plan.columns { scalarColumns(C.self, state, plan, from: column, to: plan.columns) }
    }

    /// Calls `block` specialised for (vectors, heads): each shape is a type, so its specialisation
    /// has both as constants whether or not the optimiser inlines it.
    @inline(__always)
    static func shaped<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, _ column: Int,
                                    _ firstHead: Int, vectors: Int, heads: Int, update: Bool, scaled: Bool) {
        func run<S: BlockShape>(_: S.Type) {
            block(C.self, S.self, state, plan, column, firstHead, update: update, scaled: scaled)
        }
        switch (vectors, heads) {
        case (8, _): run(Shape<V8, H1>.self)
        case (4, 1): run(Shape<V4, H1>.self)
        case (4, _): run(Shape<V4, H2>.self)
        case (2, 1): run(Shape<V2, H1>.self)
        case (2, 2): run(Shape<V2, H2>.self)
        case (2, 3): run(Shape<V2, H3>.self)
        case (2, _): run(Shape<V2, H4>.self)
        case (_, 1): run(Shape<V1, H1>.self)
        case (_, 2): run(Shape<V1, H2>.self)
        case (_, 3): run(Shape<V1, H3>.self)
        default: run(Shape<V1, H4>.self)
        }
    }

    /// One column block of `vectors` × 8 floats for `heads` (≤ 4, heads × vectors ≤ 8) query heads
    /// starting at `firstHead`, over all rows. Each shape is a type, so its specialisation has the
    /// counts as constants: every `if` on them folds away and the named vectors stay in registers.
    /// Pairs of vectors go through the codec's 16-element loads and stores, which may hold the
    /// elements in a permuted lane order (bf16: one unpack per vector); v is permuted the same way
    /// before the row loop and the sums are put back in order after it.
    @inline(__always)
    static func block<C: RowCodec, S: BlockShape>(_: C.Type, _: S.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan,
                                                  _ column: Int, _ firstHead: Int, update: Bool, scaled: Bool) {
        let (vectors, heads) = (S.vectors, S.heads)
        let zero = SIMD8<Float>()
        let value = plan.value + column
        var v = InlineArray<8, SIMD8<Float>>(repeating: zero)
        if vectors == 1 {
            v[0] = F32Codec.load8(value)
        } else {
            for pair in stride(from: 0, to: vectors, by: 2) {
                (v[pair], v[pair + 1]) = C.permute16(F32Codec.load8(value + 8 * pair), F32Codec.load8(value + 8 * pair + 8))
            }
        }
        // One loop per update kind, so each loop body is straight-line code with no flag tests
        // and the accumulators keep their registers from one row to the next.
        let sums: InlineArray<8, SIMD8<Float>>
        if !update {
            sums = rows(C.self, S.self, ReadOnly.self, state, plan, column, firstHead, v)
        } else if scaled {
            sums = rows(C.self, S.self, ScaledUpdate.self, state, plan, column, firstHead, v)
        } else {
            sums = rows(C.self, S.self, AddUpdate.self, state, plan, column, firstHead, v)
        }
        var accumulators = sums
        let out = plan.outputs + firstHead * plan.columns + column
        if vectors > 1 {
            for pair in stride(from: 0, to: heads * vectors, by: 2) {
                (accumulators[pair], accumulators[pair + 1]) = C.unpermute16(accumulators[pair], accumulators[pair + 1])
            }
        }
        for h in 0..<heads {
            for w in 0..<vectors { F32Codec.store8(accumulators[h * vectors + w], out + h * plan.columns + 8 * w) }
        }
    }

    /// The row loop of `block` for one update kind U. Each vector (pair) of a row is loaded,
    /// updated, stored and read out before the next is loaded, so a row needs only the
    /// accumulators, two broadcasts and one pair of registers (v is read from L1 by the FMAs).
    @inline(__always)
    static func rows<C: RowCodec, S: BlockShape, U: RowUpdate>(_: C.Type, _: S.Type, _: U.Type,
                                                               _ state: UnsafeMutableRawPointer, _ plan: Plan,
                                                               _ column: Int, _ firstHead: Int,
                                                               _ v: InlineArray<8, SIMD8<Float>>) -> InlineArray<8, SIMD8<Float>> {
        let (vectors, heads) = (S.vectors, S.heads)
        let zero = SIMD8<Float>()
        // Accumulator (h, w) is acc[h · vectors + w]; named so they can live in registers.
        var acc0 = zero, acc1 = zero, acc2 = zero, acc3 = zero, acc4 = zero, acc5 = zero, acc6 = zero, acc7 = zero
        let (v0, v1, v2, v3, v4, v5, v6, v7) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
        let q = plan.queries + firstHead * plan.queryStride
        let qs = plan.queryStride
        let scales = plan.stateScales ?? plan.keyScales
        let scaleStride = plan.stateScaleStride
        let keyScales = plan.keyScales
        let rowBytes = plan.rowStride * C.stride
        let e = 8 * C.stride
        var row = state + column * C.stride
        // The updating pass streams the block from memory (batches whose states exceed the
        // caches): request the row about 2 KiB of block ahead, so the loads find it on its way.
        // Half-precision rows are half as long, so they look twice as many rows ahead.
        let blockBytes = vectors * e
        let ahead = Swift.max(1, 2048 / blockBytes)
        let prefetchRows = U.updates ? Swift.max(0, plan.rows &- ahead) : 0
        let aheadBytes = ahead &* rowBytes
        for f in 0..<plan.rows {
            if f < prefetchRows {
                let next = row + aheadBytes
                var offset = 0
                while offset < blockBytes {
                    slaycpu_prefetch(next + offset)
                    offset &+= 64
                }
            }
            let a = U.scales ? SIMD8<Float>(repeating: scales[f &* scaleStride]) : zero
            let b = U.updates ? SIMD8<Float>(repeating: keyScales[f]) : zero
            // Heads read the row as stored (rounded, for half precision), like later passes.
            @inline(__always) func pair(_ offset: Int, _ va: SIMD8<Float>, _ vb: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
                var (x, y) = C.load16(row + offset)
                guard U.updates else { return (x, y) }
                (x, y) = (U.apply(x, a, b, va), U.apply(y, a, b, vb))
                return C.storeRounded16(x, y, row + offset)
            }
            @inline(__always) func single(_ va: SIMD8<Float>) -> SIMD8<Float> {
                let x = C.load8(row)
                guard U.updates else { return x }
                return C.storeRounded(U.apply(x, a, b, va), row)
            }
            if vectors == 8 && C.stride == 4 {
                let w = SIMD8<Float>(repeating: q[f])
                let (s0, s1) = pair(0, v0, v1)
                acc0 = Lanes.fma(w, s0, acc0); acc1 = Lanes.fma(w, s1, acc1)
                let (s2, s3) = pair(2 * e, v2, v3)
                acc2 = Lanes.fma(w, s2, acc2); acc3 = Lanes.fma(w, s3, acc3)
                let (s4, s5) = pair(4 * e, v4, v5)
                acc4 = Lanes.fma(w, s4, acc4); acc5 = Lanes.fma(w, s5, acc5)
                let (s6, s7) = pair(6 * e, v6, v7)
                acc6 = Lanes.fma(w, s6, acc6); acc7 = Lanes.fma(w, s7, acc7)
            } else if vectors == 8 {
                // Half-precision rows: the conversions' constants leave too few registers to
                // interleave, so the row is loaded, updated and stored before the heads read it
                // (measured: 10% faster for bf16, 30% slower for fp32).
                let (s0, s1) = pair(0, v0, v1)
                let (s2, s3) = pair(2 * e, v2, v3)
                let (s4, s5) = pair(4 * e, v4, v5)
                let (s6, s7) = pair(6 * e, v6, v7)
                let w = SIMD8<Float>(repeating: q[f])
                acc0 = Lanes.fma(w, s0, acc0); acc1 = Lanes.fma(w, s1, acc1); acc2 = Lanes.fma(w, s2, acc2); acc3 = Lanes.fma(w, s3, acc3)
                acc4 = Lanes.fma(w, s4, acc4); acc5 = Lanes.fma(w, s5, acc5); acc6 = Lanes.fma(w, s6, acc6); acc7 = Lanes.fma(w, s7, acc7)
            } else if vectors == 4 {
                let (s0, s1) = pair(0, v0, v1)
                let (s2, s3) = pair(2 * e, v2, v3)
                let w0 = SIMD8<Float>(repeating: q[f])
                acc0 = Lanes.fma(w0, s0, acc0); acc1 = Lanes.fma(w0, s1, acc1); acc2 = Lanes.fma(w0, s2, acc2); acc3 = Lanes.fma(w0, s3, acc3)
                if heads > 1 {
                    let w1 = SIMD8<Float>(repeating: q[qs &+ f])
                    acc4 = Lanes.fma(w1, s0, acc4); acc5 = Lanes.fma(w1, s1, acc5); acc6 = Lanes.fma(w1, s2, acc6); acc7 = Lanes.fma(w1, s3, acc7)
                }
            } else if vectors == 2 {
                let (s0, s1) = pair(0, v0, v1)
                let w0 = SIMD8<Float>(repeating: q[f])
                acc0 = Lanes.fma(w0, s0, acc0); acc1 = Lanes.fma(w0, s1, acc1)
                if heads > 1 { let w = SIMD8<Float>(repeating: q[qs &+ f]); acc2 = Lanes.fma(w, s0, acc2); acc3 = Lanes.fma(w, s1, acc3) }
                if heads > 2 { let w = SIMD8<Float>(repeating: q[2 &* qs &+ f]); acc4 = Lanes.fma(w, s0, acc4); acc5 = Lanes.fma(w, s1, acc5) }
                if heads > 3 { let w = SIMD8<Float>(repeating: q[3 &* qs &+ f]); acc6 = Lanes.fma(w, s0, acc6); acc7 = Lanes.fma(w, s1, acc7) }
            } else {
                let s0 = single(v0)
                acc0 = Lanes.fma(SIMD8<Float>(repeating: q[f]), s0, acc0)
                if heads > 1 { acc1 = Lanes.fma(SIMD8<Float>(repeating: q[qs &+ f]), s0, acc1) }
                if heads > 2 { acc2 = Lanes.fma(SIMD8<Float>(repeating: q[2 &* qs &+ f]), s0, acc2) }
                if heads > 3 { acc3 = Lanes.fma(SIMD8<Float>(repeating: q[3 &* qs &+ f]), s0, acc3) }
            }
            row += rowBytes
        }
        return [acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7]
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

/// How DecodeRows.rows changes a state row s before reading it out, as a type so that each
/// row loop is compiled for one kind: not at all (later head sets), s + b·v, or a·s + b·v.
protocol RowUpdate {
    static var updates: Bool { get }
    static var scales: Bool { get }
    static func apply(_ s: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float>
}
enum ReadOnly: RowUpdate {
    static var updates: Bool { false }
    static var scales: Bool { false }
    @inline(__always) static func apply(_ s: SIMD8<Float>, _: SIMD8<Float>, _: SIMD8<Float>, _: SIMD8<Float>) -> SIMD8<Float> { s }
}
enum AddUpdate: RowUpdate {
    static var updates: Bool { true }
    static var scales: Bool { false }
    @inline(__always) static func apply(_ s: SIMD8<Float>, _: SIMD8<Float>, _ b: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        Lanes.fma(b, v, s)
    }
}
enum ScaledUpdate: RowUpdate {
    static var updates: Bool { true }
    static var scales: Bool { true }
    @inline(__always) static func apply(_ s: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        Lanes.fma(a, s, b * v)
    }
}

/// A column-block shape of DecodeRows.block as types: vectors of 8 floats × query heads.
protocol BlockShape {
    static var vectors: Int { get }
    static var heads: Int { get }
}
protocol ShapeCount { static var count: Int { get } }
enum V1: ShapeCount { static var count: Int { 1 } }
enum V2: ShapeCount { static var count: Int { 2 } }
enum V4: ShapeCount { static var count: Int { 4 } }
enum V8: ShapeCount { static var count: Int { 8 } }
enum H1: ShapeCount { static var count: Int { 1 } }
enum H2: ShapeCount { static var count: Int { 2 } }
enum H3: ShapeCount { static var count: Int { 3 } }
enum H4: ShapeCount { static var count: Int { 4 } }
enum Shape<Vectors: ShapeCount, Heads: ShapeCount>: BlockShape {
    static var vectors: Int { Vectors.count }
    static var heads: Int { Heads.count }
}
