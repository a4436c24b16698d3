/// SLAY_EXPANSION_TAYLOR: feature j = scale_j · monomial_{d+j}(û), each monomial of degree k ≥ 2
/// the product of a parent of degree k − 1 and one coordinate û_i (the first d monomials are û).
/// Backwards, from g = ∂L/∂features: ∂monomial_{d+j} = scale_j g_j, then degree by degree from
/// the top, for child = parent · û_i: ∂parent += ∂child · û_i and ∂û_i += ∂child · parent; the
/// degree-1 monomials are û itself, so ∂û += their gradient; then x̂ = x/‖x‖ backwards (0 at
/// x = 0, where the forward's û is 0). No parameters.
extension YatTaylorFeatureMap: FeatureMapGradient {
    /// Unit rows, their gradient, one row's monomials and their gradient.
    public func gradientScratchFloats(rows: Int) -> Int {
        2 * ScratchBuffer.footprint(rows * headDim) + 2 * ScratchBuffer.footprint(featureDim + headDim)
    }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let (d, m, degree) = (headDim, featureDim, configuration.degree)
        var carver = ScratchCarver(scratch)
        let units = carver.take(rows * d)
        let unitGradient = carver.take(rows * d)
        let monomial = carver.take(m + d)
        let gradient = carver.take(m + d)
        UnitDirections.normalise(input, rows: rows, width: d, into: units)
        // Start of each degree's monomials: level[k − 1] for degree k = 1 ... N, level[N] = m + d
        // (N ≤ 8: on the stack, no allocation).
        withUnsafeTemporaryAllocation(of: Int.self, capacity: degree + 1) { level in
        level.initialize(repeating: 0)
        last.withUnsafeBufferPointer { last in
            var (start, next) = (0, d)
            level[1] = d
            for k in 2...degree {
                for p in start..<level[k - 1] { next += d - Int(last[p]) }
                start = level[k - 1]
                level[k] = next
            }
        }
        last.withUnsafeBufferPointer { last in
            scale.withUnsafeBufferPointer { scale in
                for r in 0..<rows {
                    let u = units + r * d
                    // The forward's monomials of this row.
                    monomial.update(from: u, count: d)
                    var next = d
                    for k in 2...degree {
                        for p in level[k - 2]..<level[k - 1] {
                            let (value, first) = (monomial[p], Int(last[p]))
                            let run = monomial + next - first
                            for i in first..<d { run[i] = value * u[i] }
                            next += d - first
                        }
                    }
                    let g = outputGradient + r * m
                    gradient.update(repeating: 0, count: d)
                    for j in 0..<m { gradient[d + j] = scale[j] * g[j] }
                    let du = unitGradient + r * d
                    du.update(repeating: 0, count: d)
                    for k in stride(from: degree, through: 2, by: -1) {
                        // Children of degree k sit at level[k − 1] ..< level[k], parent by parent.
                        var child = level[k - 1]
                        for p in level[k - 2]..<level[k - 1] {
                            let (value, first) = (monomial[p], Int(last[p]))
                            let run = gradient + child - first
                            var total: Float = 0
                            for i in first..<d {
                                total += run[i] * u[i]
                                du[i] += run[i] * value
                            }
                            gradient[p] += total
                            child += d - first
                        }
                    }
                    for i in 0..<d { du[i] += gradient[i] }
                }
            }
        }
        }
        FeatureGradientParts.unitDirection(input, rows: rows, width: d, unitGradient: unitGradient, into: inputGradient)
    }
}
