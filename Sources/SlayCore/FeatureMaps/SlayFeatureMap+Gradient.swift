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
    private func gradientLayout(rows: Int) -> [Int] {
        let c = configuration
        let estimator = polynomial as? SlayPolynomialGradient
        return [rows * c.headDim, rows * polynomial.width, rows * polynomial.width, rows * c.prfDim, rows * c.prfDim,
                rows * c.headDim, c.headDim * c.prfDim, rows * max(polynomial.spareWidth, 1),
                estimator?.gradientSpareFloats(rows: rows) ?? 0, Gemm.workspaceFloats]
    }

    public func gradientScratchFloats(rows: Int) -> Int {
        gradientLayout(rows: rows).reduce(0) { $0 + ScratchBuffer.footprint($1) }
    }

    public var parameterGradientUnavailable: String? {
        guard let estimator = polynomial as? SlayPolynomialGradient else { return "this SLAY polynomial has no gradient" }
        return estimator.parameterGradientUnavailable
    }

    public var parameterGradientExtraFloats: Int { (polynomial as? SlayPolynomialGradient)?.gradientExtraFloats ?? 0 }

    /// Offset of the accumulation space: the estimator's arrays, then ω.
    private var parameterTotal: Int {
        polynomial.parameterNames.reduce(0) { $0 + (polynomial.parameterShape($1)?.reduce(1, *) ?? 0) } + omega.count
    }

    public func parameterGradientFinisher() throws -> ((UnsafeMutablePointer<Double>) -> Void)? {
        guard let estimator = polynomial as? SlayPolynomialGradient, estimator.gradientExtraFloats > 0,
              let finish = try estimator.extraGradientFinisher() else { return nil }
        let offset = parameterTotal
        return { gradient in finish(gradient + offset, gradient) }
    }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        guard let estimator = polynomial as? SlayPolynomialGradient else { return }
        let c = configuration
        let (d, pf, mm, nodes) = (c.headDim, polynomial.width, c.prfDim, c.nodes)
        var carver = ScratchCarver(scratch)
        var sizes = gradientLayout(rows: rows).makeIterator()
        func next() -> UnsafeMutablePointer<Float> { carver.take(sizes.next()!) }
        let (units, poly, polyGradient, prf, exponentGradient) = (next(), next(), next(), next(), next())
        let (unitGradient, omegaBlock, featureSpare, estimatorSpare, gemmSpace) = (next(), next(), next(), next(), next())

        UnitDirections.normalise(input, rows: rows, width: d, into: units)
        polynomial.features(units, rows: rows, into: poly, spare: featureSpare, gemmSpace: gemmSpace)
        polyGradient.update(repeating: 0, count: rows * pf)
        unitGradient.update(repeating: 0, count: rows * d)
        let omegaOffset = polynomial.parameterNames.reduce(0) { $0 + (polynomial.parameterShape($1)?.reduce(1, *) ?? 0) }
        let clamp = Float(c.prfClamp)
        let m = featureDim
        for r in 0..<nodes {
            let blockIndex = (c.sharedOmega ? 0 : r) * c.numHeads + head
            let omegaBlockBase = omega.baseAddress + blockIndex * d * mm
            let rootTwoS = Float((2 * s[r]).squareRoot())
            let shift = Float(s[r])
            let scale = Float((w[r] / Double(mm)).squareRoot())
            Gemm.multiply(m: rows, n: mm, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: omegaBlockBase, rowStrideB: mm, columnStrideB: 1,
                          c: prf, ldc: mm, accumulate: false, workspace: gemmSpace)
            for i in 0..<rows {
                let g = outputGradient + i * m + r * pf * mm
                let polyRow = poly + i * pf
                let prfRow = prf + i * mm
                let eRow = exponentGradient + i * mm
                for j in 0..<mm {
                    let exponent = rootTwoS * prfRow[j] - shift
                    let clamped = exponent > clamp || exponent < -clamp
                    prfRow[j] = expf(min(max(exponent, -clamp), clamp)) * scale
                    eRow[j] = clamped ? 0 : 1
                }
                let dPoly = polyGradient + i * pf
                for p in 0..<pf {
                    let gp = g + p * mm
                    var dot: Float = 0
                    for j in 0..<mm { dot += gp[j] * prfRow[j] }
                    dPoly[p] += dot
                }
                for j in 0..<mm {
                    guard eRow[j] != 0 else { continue }
                    var dot: Float = 0
                    for p in 0..<pf { dot += g[p * mm + j] * polyRow[p] }
                    // ∂e = ∂prf·prf; the √(2 s_r) of ∂e/∂(ω·û) folds in here.
                    eRow[j] = dot * prfRow[j] * rootTwoS
                }
            }
            Gemm.multiply(m: rows, n: d, k: mm, a: exponentGradient, rowStrideA: mm, columnStrideA: 1,
                          b: omegaBlockBase, rowStrideB: 1, columnStrideB: mm,
                          c: unitGradient, ldc: d, accumulate: true, workspace: gemmSpace)
            if let parameterGradient {
                Gemm.multiply(m: d, n: mm, k: rows, a: units, rowStrideA: 1, columnStrideA: d,
                              b: exponentGradient, rowStrideB: mm, columnStrideB: 1, c: omegaBlock, ldc: mm,
                              accumulate: false, workspace: gemmSpace)
                let target = parameterGradient + omegaOffset + blockIndex * d * mm
                for i in 0..<(d * mm) { target[i] += Double(omegaBlock[i]) }
            }
        }
        estimator.addGradient(units, rows: rows, polyGradient: polyGradient, unitGradient: unitGradient,
                              parameterGradient: parameterGradient, spare: estimatorSpare, gemmSpace: gemmSpace)
        if let parameterGradient, estimator.gradientExtraFloats > 0 {
            estimator.addExtraGradient(units, rows: rows, polyGradient: polyGradient, extra: parameterGradient + parameterTotal,
                                       spare: estimatorSpare, gemmSpace: gemmSpace)
        }
        FeatureGradientParts.unitDirection(input, rows: rows, width: d, unitGradient: unitGradient, into: inputGradient)
    }
}
