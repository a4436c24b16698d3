import SlayKernels
import SlayKernelsAVX2

/// The backward pass's row kernels (SlayKernels' BackwardRows) through the active kernel variant
/// (see KernelVariant). Both builds give the same bits: the kernels use no fused multiply-adds.
enum BackwardKernels {
    /// sums[f] += w_j·x_j[f] over rows j in order (w_j = 1 without weights; `skipZero` leaves
    /// out rows of weight 0), bitwise the scalar loop.
    @inline(__always)
    static func addWeightedRows(_ x: UnsafePointer<Float>, rows: Int, rowStride: Int, width: Int,
                                weights: UnsafePointer<Float>?, skipZero: Bool, into sums: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.BackwardRows.addWeightedRows(x, rows: rows, rowStride: rowStride, width: width, weights: weights,
                                                         skipZero: skipZero, into: sums)
        case .portable:
            SlayKernels.BackwardRows.addWeightedRows(x, rows: rows, rowStride: rowStride, width: width, weights: weights,
                                                     skipZero: skipZero, into: sums)
        }
    }

    /// x ← a·x + b·y elementwise.
    @inline(__always)
    static func combine(_ x: UnsafeMutablePointer<Float>, _ a: Float, _ y: UnsafePointer<Float>, _ b: Float, count: Int) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.BackwardRows.combine(x, a, y, b, count: count)
        case .portable: SlayKernels.BackwardRows.combine(x, a, y, b, count: count)
        }
    }

    /// x ← a·(x + y) elementwise.
    @inline(__always)
    static func addThenScale(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ a: Float, count: Int) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.BackwardRows.addThenScale(x, y, a, count: count)
        case .portable: SlayKernels.BackwardRows.addThenScale(x, y, a, count: count)
        }
    }

    /// out = tril(a ∘ b) (zeros above the diagonal) of rows × rows blocks; with `second`,
    /// out2 = tril(a ∘ second) in the same pass.
    @inline(__always)
    static func lowerProducts(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, rows: Int,
                              into out: UnsafeMutablePointer<Float>,
                              second: UnsafePointer<Float>? = nil, into2 out2: UnsafeMutablePointer<Float>? = nil) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.BackwardRows.lowerProducts(a, b, rows: rows, into: out, second: second, into2: out2)
        case .portable: SlayKernels.BackwardRows.lowerProducts(a, b, rows: rows, into: out, second: second, into2: out2)
        }
    }

    /// The PRF exponent's gradient (s·gradient)·value, 0 where value is one of the clamp edges.
    @inline(__always)
    static func clampedExponentGradient(_ value: UnsafePointer<Float>, gradient: UnsafePointer<Float>, scale: Float,
                                        edges: (Float, Float), count: Int, into out: UnsafeMutablePointer<Float>) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.BackwardRows.clampedExponentGradient(value, gradient: gradient, scale: scale, edges: edges,
                                                                 count: count, into: out)
        case .portable:
            SlayKernels.BackwardRows.clampedExponentGradient(value, gradient: gradient, scale: scale, edges: edges,
                                                             count: count, into: out)
        }
    }
}

extension BackwardKernels {
    /// VectorProducts.outerGradient over the columns of transposed blocks (BackwardRows.outerGradientColumns).
    @inline(__always)
    static func outerGradientColumns(_ g: UnsafePointer<Float>, ldg: Int, poly: UnsafePointer<Float>, ldp: Int,
                                     prf: UnsafePointer<Float>, ldr: Int, nodes: Int, polyWidth: Int, prfWidth: Int,
                                     lanes: Int, polyGradient: UnsafeMutablePointer<Float>, ldpg: Int,
                                     prfGradient: UnsafeMutablePointer<Float>, ldrg: Int) {
        switch KernelVariant.active {
        case .avx2:
            SlayKernelsAVX2.BackwardRows.outerGradientColumns(g, ldg: ldg, poly: poly, ldp: ldp, prf: prf, ldr: ldr, nodes: nodes,
                                                              polyWidth: polyWidth, prfWidth: prfWidth, lanes: lanes,
                                                              polyGradient: polyGradient, ldpg: ldpg,
                                                              prfGradient: prfGradient, ldrg: ldrg)
        case .portable:
            SlayKernels.BackwardRows.outerGradientColumns(g, ldg: ldg, poly: poly, ldp: ldp, prf: prf, ldr: ldr, nodes: nodes,
                                                          polyWidth: polyWidth, prfWidth: prfWidth, lanes: lanes,
                                                          polyGradient: polyGradient, ldpg: ldpg,
                                                          prfGradient: prfGradient, ldrg: ldrg)
        }
    }

    /// x[f, i] ← w_i·(x[f, i] + z[f]) (BackwardRows.addColumnThenScale).
    @inline(__always)
    static func addColumnThenScale(_ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int,
                                   z: UnsafePointer<Float>, weights: UnsafePointer<Float>?) {
        switch KernelVariant.active {
        case .avx2: SlayKernelsAVX2.BackwardRows.addColumnThenScale(x, rows: rows, columns: columns, ld: ld, z: z, weights: weights)
        case .portable: SlayKernels.BackwardRows.addColumnThenScale(x, rows: rows, columns: columns, ld: ld, z: z, weights: weights)
        }
    }
}
