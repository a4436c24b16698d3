// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// The delta rule's decode step for one (sequence, key head), S [rows, columns]:
///
///     u = Sᵀk,  w = β(v − α·u)
///     S ← α·S + k·wᵀ                     (= α(I − β k kᵀ) S + β k vᵀ)
///     outputs[g, :] = Sᵀq_g (the new S) = α·(Sᵀq_g) + (q_g·k)·w
///
/// u needs all of S before any row can be updated, so S is walked in column blocks of 16 floats:
/// a first pass over the block's rows accumulates u and Sᵀq_g in registers, and a second pass
/// updates the block while it is still in L1 (rows × 64 bytes: 32 KiB at m = 512). S therefore
/// comes from L2 or memory once, and each element is read twice and written once.
public enum DeltaRows {
    /// keys [rows] (φ(k), normalised if the caller asked for it), value [columns], queries
    /// [group, rows] with row stride `queryStride`, outputs [group, columns] overwritten.
    /// α = e^g ∈ [0, 1] (1 for DeltaNet), β ∈ [0, 2]. S rows are `rowStride` elements of `storage`.
    /// All arithmetic is fp32; half-precision rows are rounded once, at the store. `queryKey`
    /// (group floats) is scratch for the q_g·k products: the decode workspace's, so a step
    /// allocates nothing whatever the group; nil takes temporary memory (heap beyond 1 KiB).
    public static func step(state: UnsafeMutableRawPointer, storage: ElementFormat, rows: Int, columns: Int,
                            rowStride: Int, keys: UnsafePointer<Float>, alpha: Float, beta: Float,
                            value: UnsafePointer<Float>, queries: UnsafePointer<Float>, queryStride: Int, group: Int,
                            outputs: UnsafeMutablePointer<Float>, queryKey scratch: UnsafeMutablePointer<Float>? = nil) {
        func run(_ queryKey: UnsafeMutablePointer<Float>) {
            for g in 0..<group {
                queryKey[g] = DecodeRows.dot(queries + g * queryStride, keys, count: rows)
            }
            let plan = Plan(rows: rows, columns: columns, rowStride: rowStride, keys: keys, alpha: alpha, beta: beta,
                            value: value, queries: queries, queryStride: queryStride, group: group,
                            queryKey: UnsafePointer(queryKey), outputs: outputs)
            switch storage {
            case .f32: stream(F32Codec.self, state, plan)
            case .f16: stream(F16Codec.self, state, plan)
            case .bf16: stream(BF16Codec.self, state, plan)
            }
        }
        if let scratch { return run(scratch) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(group, 1)) { run($0.baseAddress!) }
    }

    struct Plan {
        let rows: Int, columns: Int, rowStride: Int
        let keys: UnsafePointer<Float>, alpha: Float, beta: Float
        let value: UnsafePointer<Float>
        let queries: UnsafePointer<Float>, queryStride: Int, group: Int
        let queryKey: UnsafePointer<Float>
        let outputs: UnsafeMutablePointer<Float>
    }

    @inline(__always)
    static func stream<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan) {
        var column = 0
        while column + 8 <= plan.columns {
            let wide = column + 16 <= plan.columns
            if wide { vectorBlock(C.self, state, plan, column, wide: true) } else { vectorBlock(C.self, state, plan, column, wide: false) }
            column += wide ? 16 : 8
        }
        if column < plan.columns { scalarColumns(C.self, state, plan, from: column) }
    }

    /// One column block: the projection passes (u with up to 3 heads, then 4 heads at a time),
    /// the outputs, then the update pass.
    @inline(__always)
    static func vectorBlock<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, _ column: Int,
                                         wide: Bool) {
        let first = min(3, plan.group)
        let (u0, u1): (SIMD8<Float>, SIMD8<Float>)
        switch first {
        case 0: (u0, u1) = project(C.self, state, plan, column, wide: wide, firstHead: 0, heads: 0, withKey: true)
        case 1: (u0, u1) = project(C.self, state, plan, column, wide: wide, firstHead: 0, heads: 1, withKey: true)
        case 2: (u0, u1) = project(C.self, state, plan, column, wide: wide, firstHead: 0, heads: 2, withKey: true)
        default: (u0, u1) = project(C.self, state, plan, column, wide: wide, firstHead: 0, heads: 3, withKey: true)
        }
        var head = first
        while head < plan.group {
            switch min(4, plan.group - head) {
            case 1: _ = project(C.self, state, plan, column, wide: wide, firstHead: head, heads: 1, withKey: false)
            case 2: _ = project(C.self, state, plan, column, wide: wide, firstHead: head, heads: 2, withKey: false)
            case 3: _ = project(C.self, state, plan, column, wide: wide, firstHead: head, heads: 3, withKey: false)
            default: _ = project(C.self, state, plan, column, wide: wide, firstHead: head, heads: 4, withKey: false)
            }
            head += 4
        }
        let alpha = SIMD8<Float>(repeating: plan.alpha), beta = SIMD8<Float>(repeating: plan.beta)
        let w0 = beta * (F32Codec.load8(plan.value + column) - alpha * u0)
        let w1 = wide ? beta * (F32Codec.load8(plan.value + column + 8) - alpha * u1) : SIMD8<Float>()
        for g in 0..<plan.group {
            let out = plan.outputs + g * plan.columns + column
            let qk = SIMD8<Float>(repeating: plan.queryKey[g])
            F32Codec.store8(Lanes.fma(qk, w0, alpha * F32Codec.load8(out)), out)
            if wide { F32Codec.store8(Lanes.fma(qk, w1, alpha * F32Codec.load8(out + 8)), out + 8) }
        }
        let rowBytes = plan.rowStride * C.stride
        var row = state + column * C.stride
        let unit = plan.alpha == 1
        for f in 0..<plan.rows {
            let k = SIMD8<Float>(repeating: plan.keys[f])
            if unit {
                _ = C.storeRounded(Lanes.fma(k, w0, C.load8(row)), row)
                if wide { _ = C.storeRounded(Lanes.fma(k, w1, C.load8(row + 8 * C.stride)), row + 8 * C.stride) }
            } else {
                _ = C.storeRounded(Lanes.fma(alpha, C.load8(row), k * w0), row)
                if wide { _ = C.storeRounded(Lanes.fma(alpha, C.load8(row + 8 * C.stride), k * w1), row + 8 * C.stride) }
            }
            row += rowBytes
        }
    }

    /// Read-only pass over one column block: returns Sᵀk for the block when `withKey` (else
    /// zeros) and stores Sᵀq_g for `heads` heads from `firstHead` into their outputs rows.
    @inline(__always)
    static func project<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, _ column: Int,
                                     wide: Bool, firstHead: Int, heads: Int, withKey: Bool) -> (SIMD8<Float>, SIMD8<Float>) {
        var u0 = SIMD8<Float>(), u1 = SIMD8<Float>()
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), d0 = SIMD8<Float>(), d1 = SIMD8<Float>()
        let q = plan.queries + firstHead * plan.queryStride
        let qs = plan.queryStride
        let rowBytes = plan.rowStride * C.stride
        var row = UnsafeRawPointer(state + column * C.stride)
        for f in 0..<plan.rows {
            let s0 = C.load8(row)
            let s1 = wide ? C.load8(row + 8 * C.stride) : SIMD8<Float>()
            if withKey {
                let k = SIMD8<Float>(repeating: plan.keys[f])
                u0 = Lanes.fma(k, s0, u0)
                if wide { u1 = Lanes.fma(k, s1, u1) }
            }
            if heads > 0 {
                let w = SIMD8<Float>(repeating: q[f])
                a0 = Lanes.fma(w, s0, a0)
                if wide { a1 = Lanes.fma(w, s1, a1) }
            }
            if heads > 1 {
                let w = SIMD8<Float>(repeating: q[qs + f])
                b0 = Lanes.fma(w, s0, b0)
                if wide { b1 = Lanes.fma(w, s1, b1) }
            }
            if heads > 2 {
                let w = SIMD8<Float>(repeating: q[2 * qs + f])
                c0 = Lanes.fma(w, s0, c0)
                if wide { c1 = Lanes.fma(w, s1, c1) }
            }
            if heads > 3 {
                let w = SIMD8<Float>(repeating: q[3 * qs + f])
                d0 = Lanes.fma(w, s0, d0)
                if wide { d1 = Lanes.fma(w, s1, d1) }
            }
            row += rowBytes
        }
        let out = plan.outputs + firstHead * plan.columns + column
        let n = plan.columns
        if heads > 0 { F32Codec.store8(a0, out); if wide { F32Codec.store8(a1, out + 8) } }
        if heads > 1 { F32Codec.store8(b0, out + n); if wide { F32Codec.store8(b1, out + n + 8) } }
        if heads > 2 { F32Codec.store8(c0, out + 2 * n); if wide { F32Codec.store8(c1, out + 2 * n + 8) } }
        if heads > 3 { F32Codec.store8(d0, out + 3 * n); if wide { F32Codec.store8(d1, out + 3 * n + 8) } }
        return (u0, u1)
    }

    /// The last columns (fewer than 8) one at a time, in the same two passes.
    static func scalarColumns<C: RowCodec>(_: C.Type, _ state: UnsafeMutableRawPointer, _ plan: Plan, from: Int) {
        let rowBytes = plan.rowStride * C.stride
        for j in from..<plan.columns {
            var u: Float = 0
            for g in 0..<plan.group { plan.outputs[g * plan.columns + j] = 0 }
            var element = state + j * C.stride
            for f in 0..<plan.rows {
                let s = C.load1(element)
                u += plan.keys[f] * s
                for g in 0..<plan.group { plan.outputs[g * plan.columns + j] += plan.queries[g * plan.queryStride + f] * s }
                element += rowBytes
            }
            let w = plan.beta * (plan.value[j] - plan.alpha * u)
            for g in 0..<plan.group {
                let out = plan.outputs + g * plan.columns + j
                out.pointee = plan.queryKey[g] * w + plan.alpha * out.pointee
            }
            element = state + j * C.stride
            for f in 0..<plan.rows {
                C.store1(plan.alpha * C.load1(element) + plan.keys[f] * w, element)
                element += rowBytes
            }
        }
    }
}
