#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SLAY Ψ[(r·P' + p)·M + j] = poly_p(û) · prf_{r,j}(û), prf_{r,j} = e^{clamp(e_{r,j})}·√(w_r/M),
/// e_{r,j} = √(2 s_r) ω_{r,h,:,j}·û − s_r. From g = ∂L/∂Ψ:
///   ∂poly_p = Σ_{r,j} g·prf_{r,j},  ∂e_{r,j} = (Σ_p g·poly_p)·prf_{r,j} (0 where the forward
///   clamped e: a clamped exponent is constant and passes no gradient),
///   ∂û += √(2 s_r) Σ_j ∂e_{r,j} ω_{r,h,:,j} + the estimator's ∂û, ∂ω_{r,h} += √(2 s_r) Ûᵀ ∂e_r,
/// then x̂ = x/‖x‖ backwards (0 at x = 0, where the forward's û is 0). With a shared ω every
/// node's gradient lands on the one block. Parameters: the estimator's arrays, then "omega".
extension SlayFeatureMap: FeatureMapGradient {
    /// Sizes of the gradient's scratch regions, in the order they are carved (fixed-size: this runs
    /// per chunk, and an Array would allocate).
    func gradientLayout(rows: Int) -> InlineArray<13, Int> {
        let c = configuration
        let rm = c.nodes * c.prfDim
        return [rows * c.headDim, rows * polynomial.width, rows * polynomial.width, rows * rm,
                rows * c.headDim, rm * c.headDim, rows * max(polynomial.spareWidth, 1),
                polynomialGradient?.gradientSpareFloats(rows: rows) ?? 0, Gemm.workspaceFloats, rows * c.prfDim,
                c.prfDim * c.headDim, rows * rm, rows * rm]
    }

    /// The scratch regions of `gradientLayout`, carved from `scratch` in order.
    func gradientRegions(rows: Int, scratch: UnsafeMutablePointer<Float>) -> InlineArray<13, UnsafeMutablePointer<Float>> {
        let sizes = gradientLayout(rows: rows)
        var carver = ScratchCarver(scratch)
        return InlineArray { carver.take(sizes[$0]) }
    }

    public func gradientScratchFloats(rows: Int) -> Int {
        let sizes = gradientLayout(rows: rows)
        return sizes.indices.reduce(0) { $0 + ScratchBuffer.footprint(sizes[$1]) }
    }

    public var parameterGradientUnavailable: String? {
        guard let estimator = polynomialGradient else { return "this SLAY polynomial has no gradient" }
        return estimator.parameterGradientUnavailable
    }

    public var parameterGradientExtraFloats: Int { polynomialGradient?.gradientExtraFloats ?? 0 }

    /// Offset of the accumulation space: the estimator's arrays, then ω.
    var parameterTotal: Int { polynomialParameterCount + omega.count }

    public func parameterGradientFinisher() throws -> ((UnsafeMutablePointer<Double>) -> Void)? {
        guard let estimator = polynomialGradient, estimator.gradientExtraFloats > 0,
              let finish = try estimator.extraGradientFinisher() else { return nil }
        let offset = parameterTotal
        return { gradient in finish(gradient + offset, gradient) }
    }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        factorisedGradient(head: head, input: input, rows: rows, outputGradient: outputGradient, extraPoly: nil,
                           extraPrf: nil, inputGradient: inputGradient, parameterGradient: parameterGradient, scratch: scratch)
    }

    /// `featureGradient` with ∂L/∂poly [rows, P'] and ∂L/∂prf [rows, R·M] terms added to the ones
    /// `outputGradient` implies (either may be nil): how the backward pass feeds its intra-chunk
    /// terms through the factors without forming them as [rows, m] blocks. `features`, when not
    /// nil, is the scratch of the `features` call that mapped these rows: its û, poly and prf are
    /// used instead of being computed again.
    func factorisedGradient(head: Int, input: UnsafePointer<Float>, rows: Int, outputGradient: UnsafePointer<Float>,
                            extraPoly: UnsafePointer<Float>?, extraPrf: UnsafePointer<Float>?,
                            inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                            scratch: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>? = nil) {
        guard let estimator = polynomialGradient else { return }
        let c = configuration
        let (d, pf, mm, nodes) = (c.headDim, polynomial.width, c.prfDim, c.nodes)
        let r = gradientRegions(rows: rows, scratch: scratch)
        let (ownUnits, ownPoly, polyGradient, exponentGradient) = (r[0], r[1], r[2], r[3])
        let (unitGradient, omegaBlock, featureSpare, estimatorSpare, gemmSpace) = (r[4], r[5], r[6], r[7], r[8])
        let (prfGradient, omegaScratch, ownPrf, exponents) = (r[9], r[10], r[11], r[12])

        // û, poly and prf [rows, R·M] (node r at offset r·M of a row), as `features` forms them.
        let units: UnsafePointer<Float>, poly: UnsafePointer<Float>, prf: UnsafePointer<Float>
        if let features {
            let layout = scratchLayout(rows: rows)
            (units, poly, prf) = (features + layout.units, features + layout.poly, features + layout.prf)
        } else {
            UnitDirections.normalise(input, rows: rows, width: d, into: ownUnits)
            polynomial.features(ownUnits, rows: rows, into: ownPoly, spare: featureSpare, gemmSpace: gemmSpace)
            prfFeatures(ownUnits, rows: rows, head: head, into: ownPrf, exponents: exponents, gemmSpace: gemmSpace)
            (units, poly, prf) = (UnsafePointer(ownUnits), UnsafePointer(ownPoly), UnsafePointer(ownPrf))
        }
        if let extraPoly {
            polyGradient.update(from: extraPoly, count: rows * pf)
        } else {
            polyGradient.update(repeating: 0, count: rows * pf)
        }
        let m = featureDim
        let rm = nodes * mm
        for r in 0..<nodes {
            let (rootTwoS, edges) = nodeConstants(node: r)
            // ∂poly_p = Σ_j g[p, j]·prf_j and ∂prf_j = Σ_p g[p, j]·poly_p (from the extra term).
            if let extraPrf {
                for i in 0..<rows { (prfGradient + i * mm).update(from: extraPrf + i * nodes * mm + r * mm, count: mm) }
            } else {
                prfGradient.update(repeating: 0, count: rows * mm)
            }
            for i in 0..<rows {
                let prfRow = prf + (i * nodes + r) * mm
                VectorMath.outerGradient(outputGradient + i * m + r * pf * mm, count: pf, scales: poly + i * pf,
                                         row: prfRow, width: mm, scalesGradient: polyGradient + i * pf,
                                         rowGradient: prfGradient + i * mm)
                // ∂e = ∂prf·prf (0 where clamped), times the √(2 s_r) of ∂e/∂(ω·û); node r's
                // columns r·M ..< (r + 1)·M of the [rows, R·M] block.
                BackwardKernels.clampedExponentGradient(prfRow, gradient: prfGradient + i * mm, scale: rootTwoS, edges: edges,
                                                        count: mm, into: exponentGradient + i * rm + r * mm)
            }
        }
        exponentProducts(head: head, exponentGradient: exponentGradient, rowStride: rm, columnStride: 1, rows: rows,
                         units: units, unitGradient: unitGradient, parameterGradient: parameterGradient,
                         omegaScratch: omegaScratch, omegaBlock: omegaBlock, gemmSpace: gemmSpace)
        finishInputGradient(estimator, input: input, units: units, rows: rows, polyGradient: polyGradient,
                            unitGradient: unitGradient, inputGradient: inputGradient, parameterGradient: parameterGradient,
                            spare: estimatorSpare, gemmSpace: gemmSpace)
    }
}

/// Feature maps whose features factorise per row as Ψ = poly ⊗ prf (SLAY, index (r·P' + p)·M + j
/// with prf laid out r-major): φ(q)·φ(k) = (poly_q·poly_k)(prf_q·prf_k), so the backward pass
/// forms the intra-chunk scores and their gradients through the two narrow factors (widths P'
/// and R·M) instead of the m-wide features.
protocol FactorisedFeatureGradient: FeatureMapGradient {
    /// (P', R·M), or nil when the map cannot take factor gradients.
    var factorWidths: (poly: Int, prf: Int)? { get }
    /// The factors `features(rows:)` left in its scratch: poly [rows, P'] and prf [rows, R·M].
    func factors(scratch: UnsafePointer<Float>, rows: Int) -> (poly: UnsafePointer<Float>, prf: UnsafePointer<Float>)
    /// `features` with output rows `rowStride` floats apart (≥ featureDim), so the backward pass
    /// can lay them out at the state products' padded stride directly.
    func features(head: Int, input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>,
                  rowStride: Int, scratch: UnsafeMutablePointer<Float>)
    func factorisedGradient(head: Int, input: UnsafePointer<Float>, rows: Int, outputGradient: UnsafePointer<Float>,
                            extraPoly: UnsafePointer<Float>?, extraPrf: UnsafePointer<Float>?,
                            inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                            scratch: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>?)
    /// Whether `factorisedGradientColumns` can run for this map.
    var takesColumnGradients: Bool { get }
    /// `factorisedGradient` with ∂L/∂Ψ given transposed, [featureDim, rows] with row stride `ld`
    /// (column i is row i), and the factors transposed too: polyColumns [P', ·] and prfColumns
    /// [R·M, ·] with row stride `factorStride`; `features` (not optional here) is the scratch
    /// of the `features` call that mapped these rows. Bitwise the same results as
    /// `factorisedGradient` on the untransposed block.
    func factorisedGradientColumns(head: Int, input: UnsafePointer<Float>, rows: Int, outputGradient: UnsafePointer<Float>,
                                   ld: Int, polyColumns: UnsafePointer<Float>, prfColumns: UnsafePointer<Float>,
                                   factorStride: Int, extraPoly: UnsafePointer<Float>?, extraPrf: UnsafePointer<Float>?,
                                   inputGradient: UnsafeMutablePointer<Float>,
                                   parameterGradient: UnsafeMutablePointer<Double>?,
                                   scratch: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>)
}

extension SlayFeatureMap: FactorisedFeatureGradient {
    var factorWidths: (poly: Int, prf: Int)? {
        polynomialGradient != nil ? (polynomial.width, configuration.nodes * configuration.prfDim) : nil
    }

    func factors(scratch: UnsafePointer<Float>, rows: Int) -> (poly: UnsafePointer<Float>, prf: UnsafePointer<Float>) {
        let layout = scratchLayout(rows: rows)
        return (scratch + layout.poly, scratch + layout.prf)
    }
}

extension SlayFeatureMap {
    /// The column kernel takes the PRF width in whole 8-lane vectors (and ≥ the GEMM's tile rows).
    var takesColumnGradients: Bool {
        polynomialGradient != nil && configuration.prfDim % 8 == 0
    }

    /// See FactorisedFeatureGradient.factorisedGradientColumns. The same steps as
    /// `factorisedGradient`, with the chunk's rows as lanes: ∂poly and ∂prf from
    /// BackwardRows.outerGradientColumns (no per-row horizontal sums), ∂e transposed, and the ω
    /// products reading it through strides (their sums run in the same order).
    func factorisedGradientColumns(head: Int, input: UnsafePointer<Float>, rows: Int, outputGradient: UnsafePointer<Float>,
                                   ld: Int, polyColumns: UnsafePointer<Float>, prfColumns: UnsafePointer<Float>,
                                   factorStride: Int, extraPoly: UnsafePointer<Float>?, extraPrf: UnsafePointer<Float>?,
                                   inputGradient: UnsafeMutablePointer<Float>,
                                   parameterGradient: UnsafeMutablePointer<Double>?,
                                   scratch: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>) {
        guard let estimator = polynomialGradient else { return }
        let c = configuration
        let (pf, mm, nodes) = (polynomial.width, c.prfDim, c.nodes)
        let r = gradientRegions(rows: rows, scratch: scratch)
        // The regions `factorisedGradient` uses for its own û, poly and prf hold the transposed
        // gradients here (`features` has those rows): ∂polyᵀ [P', rows], ∂prfᵀ [R·M, rows], ∂eᵀ [M, rows].
        let (polyColumnsGradient, polyGradient, exponentColumns) = (r[1], r[2], r[3])
        let (unitGradient, omegaBlock, estimatorSpare, gemmSpace) = (r[4], r[5], r[7], r[8])
        let (omegaScratch, prfColumnsGradient) = (r[10], r[11])
        let units = features + scratchLayout(rows: rows).units
        let rm = nodes * mm
        if let extraPoly {
            BlockTranspose.transpose(extraPoly, rows: rows, columns: pf, sourceStride: pf, into: polyColumnsGradient, targetStride: rows)
        } else {
            polyColumnsGradient.update(repeating: 0, count: rows * pf)
        }
        if let extraPrf {
            BlockTranspose.transpose(extraPrf, rows: rows, columns: rm, sourceStride: rm, into: prfColumnsGradient, targetStride: rows)
        } else {
            prfColumnsGradient.update(repeating: 0, count: rows * rm)
        }
        BackwardKernels.outerGradientColumns(outputGradient, ldg: ld, poly: polyColumns, ldp: factorStride, prf: prfColumns,
                                             ldr: factorStride, nodes: nodes, polyWidth: pf, prfWidth: mm, lanes: rows,
                                             polyGradient: polyColumnsGradient, ldpg: rows,
                                             prfGradient: prfColumnsGradient, ldrg: rows)
        for r in 0..<nodes {
            let (rootTwoS, edges) = nodeConstants(node: r)
            for j in 0..<mm {
                BackwardKernels.clampedExponentGradient(prfColumns + (r * mm + j) * factorStride,
                                                        gradient: prfColumnsGradient + (r * mm + j) * rows, scale: rootTwoS,
                                                        edges: edges, count: rows, into: exponentColumns + (r * mm + j) * rows)
            }
        }
        // ∂e read through the transposed block's strides: bitwise the row form's products.
        exponentProducts(head: head, exponentGradient: exponentColumns, rowStride: 1, columnStride: rows, rows: rows,
                         units: units, unitGradient: unitGradient, parameterGradient: parameterGradient,
                         omegaScratch: omegaScratch, omegaBlock: omegaBlock, gemmSpace: gemmSpace)
        BlockTranspose.transpose(polyColumnsGradient, rows: pf, columns: rows, sourceStride: rows, into: polyGradient,
                                 targetStride: pf)
        finishInputGradient(estimator, input: input, units: units, rows: rows, polyGradient: polyGradient,
                            unitGradient: unitGradient, inputGradient: inputGradient, parameterGradient: parameterGradient,
                            spare: estimatorSpare, gemmSpace: gemmSpace)
    }

    /// From ∂e [rows, R·M] (node r at columns r·M, read through the strides given): ∂û = ∂e Ωᵀ,
    /// Ωᵀ = [ω_0ᵀ; …; ω_{R−1}ᵀ] (written, not added: the estimator adds its part after), and,
    /// when wanted, ∂ω_r += (∂e_rᵀ Û)ᵀ in double. One product of depth R·M for all the nodes
    /// instead of one of depth M per node: the C tile is read and written once, not R times.
    /// `omegaScratch` holds M × d floats.
    func exponentProducts(head: Int, exponentGradient: UnsafePointer<Float>, rowStride: Int, columnStride: Int, rows: Int,
                          units: UnsafePointer<Float>, unitGradient: UnsafeMutablePointer<Float>,
                          parameterGradient: UnsafeMutablePointer<Double>?, omegaScratch: UnsafeMutablePointer<Float>,
                          omegaBlock: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (d, mm, nodes) = (c.headDim, c.prfDim, c.nodes)
        let rm = nodes * mm
        // Ωᵀ [R·M, d] of the head, so that ∂e Ωᵀ reads B's rows directly (no packing).
        Gemm.multiply(m: rows, n: d, k: rm, a: exponentGradient, rowStrideA: rowStride, columnStrideA: columnStride,
                      b: stackedOmegaTransposed.baseAddress + head * rm * d, rowStrideB: d, columnStrideB: 1,
                      c: unitGradient, ldc: d, accumulate: false, workspace: gemmSpace)
        guard let parameterGradient else { return }
        // (∂ω_r)ᵀ = ∂e_rᵀ Û, [M, d] per node, then back to ω's [d, M] layout (exact), so the
        // double sums read it in order. A shared ω gets every node's block.
        Gemm.multiply(m: rm, n: d, k: rows, a: exponentGradient, rowStrideA: columnStride, columnStrideA: rowStride,
                      b: units, rowStrideB: d, columnStrideB: 1, c: omegaBlock, ldc: d,
                      accumulate: false, workspace: gemmSpace)
        for r in 0..<nodes {
            BlockTranspose.transpose(omegaBlock + r * mm * d, rows: mm, columns: d, sourceStride: d, into: omegaScratch,
                                     targetStride: mm)
            let block = Self.omegaBlockIndex(node: r, head: head, configuration: c)
            let target = parameterGradient + polynomialParameterCount + block * d * mm
            for i in 0..<(d * mm) { target[i] += Double(omegaScratch[i]) }
        }
    }

    /// Node r's √(2 s_r) of ∂e/∂(ω·û), and its clamp edges. A clamped exponent is constant and
    /// passes no gradient. Its prf is the kernel's value at the clamp, bitwise: the same exp of the
    /// clamped input, so it is recognised from prf alone (an exponent exactly at the clamp counts
    /// as clamped: either side's derivative is a valid one there).
    func nodeConstants(node r: Int) -> (rootTwoS: Float, edges: (Float, Float)) {
        let c = configuration
        let scale = Float((w[r] / Double(c.prfDim)).squareRoot())
        return (Float((2 * s[r]).squareRoot()),
                clampEdges(shift: Float(s[r]), clamp: Float(c.prfClamp), scale: scale))
    }

    /// The estimator's part of ∂û (and of its parameters), then x̂ = x/‖x‖ backwards: the last
    /// steps of both gradient passes.
    func finishInputGradient(_ estimator: SlayPolynomialGradient, input: UnsafePointer<Float>, units: UnsafePointer<Float>,
                             rows: Int, polyGradient: UnsafeMutablePointer<Float>, unitGradient: UnsafeMutablePointer<Float>,
                             inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                             spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        estimator.addGradient(units, rows: rows, polyGradient: polyGradient, unitGradient: unitGradient,
                              parameterGradient: parameterGradient, spare: spare, gemmSpace: gemmSpace)
        if let parameterGradient, estimator.gradientExtraFloats > 0 {
            estimator.addExtraGradient(units, rows: rows, polyGradient: polyGradient, extra: parameterGradient + parameterTotal,
                                       spare: spare, gemmSpace: gemmSpace)
        }
        VectorMath.unitRowsGradient(input, rows: rows, width: configuration.headDim, unitGradient: unitGradient,
                                    into: inputGradient)
    }

    /// The prf values of an exponent clamped low and high (see `nodeConstants`).
    func clampEdges(shift: Float, clamp: Float, scale: Float) -> (Float, Float) {
        var edges: (Float, Float) = (0, 0)
        let edgeInputs: (Float, Float) = (shift + 2 * clamp, shift - 2 * clamp)
        withUnsafePointer(to: edgeInputs) { inputs in
            withUnsafeMutablePointer(to: &edges) { outputs in
                inputs.withMemoryRebound(to: Float.self, capacity: 2) { x in
                    outputs.withMemoryRebound(to: Float.self, capacity: 2) { y in
                        VectorMath.expShiftedClamped(x, count: 2, shift: shift, limit: clamp, scale: scale, output: y)
                    }
                }
            }
        }
        return edges
    }
}
