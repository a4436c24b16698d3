/// The spherical Yat kernel of SLAY, linearised deterministically by its Maclaurin series
/// (SLAY_EXPANSION_TAYLOR). With x = q̂·k̂ and C = 2 + ε,
///   x² / (C − 2x) = Σ_{n ≥ 0} 2ⁿ x^{n+2} / C^{n+1},
/// and the series truncated after degree N ("degree") is an exact inner product of symmetric tensor
/// powers of û:  Σ_{k=2..N} c_k (q̂·k̂)^k,  c_k = 2^{k−2} / C^{k−1}, with one feature per multiset
/// i₁ ≤ … ≤ i_k of coordinates, √(c_k · k!/Π(counts!)) · Π û_i. No random features: nothing to seed,
/// no variance, and the estimate is biased only by the truncation.
///
/// Why it exists: on the SLAY paper's accuracy protocol the error of the paper's default
/// (anchor ⊗ PRF, 128 features) is random-feature variance and anchor bias; the degree-2 series
/// (d(d+1)/2 = 136 features at d = 16) halves it, degree 3 divides it by ~6 (docs/choosing-a-feature-map.md, Accuracy).
/// Its cost grows as d^N/N!, so it suits small head dims. The truncation underestimates strongly
/// aligned pairs (x → 1), like few quadrature nodes do.
///
/// The truncated series is a partial sum of a geometric series in r = 2x/C ∈ (−1, 1) times x²/C, so
/// the kernel estimate is ≥ 0 for every pair although the features are signed: the normaliser
/// φ(q)·Σφ(k) is ≥ 0 up to fp32 rounding.
public struct YatTaylorConfiguration: Sendable, Equatable {
    public var headDim: Int
    public var numHeads: Int
    public var eps: Double
    public var degree: Int

    public init(headDim: Int, numHeads: Int = 1, eps: Double = 1e-6, degree: Int = 2) {
        self.headDim = headDim
        self.numHeads = numHeads
        self.eps = eps
        self.degree = degree
    }

    public static let maximumDegree = 8
    /// The map keeps a recipe of about 20 bytes per feature while it is built, so its width is
    /// capped lower than SLAY's.
    public static let maximumFeatureDim = 1 << 22

    /// Monomials of degree k in d variables: C(d + k − 1, k), checked.
    static func monomials(variables d: Int, degree k: Int) throws -> Int {
        var count = 1  // C(d − 1 + j, j) for j = 0, 1, …, k, built exactly (each step divides evenly)
        for j in stride(from: 1, through: k, by: 1) {
            let (product, overflow) = count.multipliedReportingOverflow(by: d - 1 + j)
            guard !overflow else { throw SlayError.overflow("the degree-\(k) Taylor features of head_dim \(d) overflow") }
            count = product / j
        }
        return count
    }

    /// Features per head: Σ_{k=2..N} C(d + k − 1, k).
    public func featureCount() throws -> Int {
        var total = 0
        for k in 2...max(degree, 2) {
            total = try CheckedSize.add(total, try Self.monomials(variables: headDim, degree: k), what: "Taylor feature dimension")
        }
        return total
    }

    public func validate() throws {
        for (name, value) in [("head_dim", headDim), ("num_heads", numHeads)] {
            guard value >= 1 && value <= SlayConfiguration.maximumDimension else {
                throw SlayError.shape("\(name) must be in 1...\(SlayConfiguration.maximumDimension), got \(value)")
            }
        }
        guard degree >= 2 && degree <= Self.maximumDegree else {
            throw SlayError.invalid("degree must be in 2...\(Self.maximumDegree) for SLAY_EXPANSION_TAYLOR, got \(degree)")
        }
        try SlayConfiguration.validatePositiveFloat(eps, "eps")
        let m = try featureCount()
        guard m <= Self.maximumFeatureDim else {
            throw SlayError.overflow("the degree-\(degree) Taylor expansion of head_dim \(headDim) has \(m) features; the maximum is 2^22")
        }
    }

    /// c_k = 2^{k−2} / C^{k−1}, the series coefficient of x^k.
    public func coefficient(_ k: Int) -> Double {
        let c = 2 + eps
        var value = 1 / c
        for _ in 2..<max(k, 2) { value *= 2 / c }
        return value
    }
}

public final class YatTaylorFeatureMap: FeatureMap, @unchecked Sendable {
    public let configuration: YatTaylorConfiguration
    public let featureDim: Int
    public let identity: UInt64
    /// Monomials of degree 1 ... N in order of degree (the first d are û itself). The children of
    /// monomial p are contiguous: p · û_i for i = last[p] ..< d, in the order of their parents, so
    /// each degree is built with contiguous (vectorisable) runs and no index gathers.
    let last: HeapArray<Int32>
    /// Feature j = scale[j] · monomial[d + j] (the degree ≥ 2 monomials).
    let scale: HeapArray<Float>
    private let coefficients: [Float]

    public init(_ configuration: YatTaylorConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        let d = configuration.headDim
        featureDim = try configuration.featureCount()
        // Build the monomials degree by degree; each multiset extends a lower one by an index no
        // smaller than its last, so every multiset appears once. The multinomial k!/Π counts! is
        // tracked incrementally: appending index i to a multiset with c_i copies of i multiplies it
        // by k / (c_i + 1). Up to 2^22 + d entries each, so the storage is fallible.
        let total = featureDim + d
        let multinomial = try HeapArray<Double>(count: total, what: "Taylor recipes")
        let last = try HeapArray<Int32>(count: total, what: "Taylor recipes")
        let repeats = try HeapArray<Int32>(count: total, what: "Taylor recipes")
        let scale = try HeapArray<Float>(count: featureDim, what: "Taylor scales")
        for i in 0..<d {
            multinomial[i] = 1; last[i] = Int32(i); repeats[i] = 1
        }
        var previous = 0..<d
        var next = d
        for k in 2...configuration.degree {
            let start = next
            let ck = configuration.coefficient(k)
            for p in previous {
                for i in Int(last[p])..<d {
                    // Copies of i already in the parent: all trailing ones when i equals its last index.
                    let copies = Int(last[p]) == i ? Int(repeats[p]) : 0
                    let value = multinomial[p] * Double(k) / Double(copies + 1)
                    multinomial[next] = value; last[next] = Int32(i); repeats[next] = Int32(copies + 1)
                    scale[next - d] = Float((ck * value).squareRoot())
                    next += 1
                }
            }
            previous = start..<next
        }
        self.last = last
        self.scale = scale
        coefficients = (0...configuration.degree).map { Float($0 >= 2 ? configuration.coefficient($0) : 0) }
        var hasher = IdentityHasher()
        hasher.combine("slay-taylor")
        hasher.combine(configuration.headDim); hasher.combine(configuration.numHeads)
        hasher.combine(configuration.eps); hasher.combine(configuration.degree)
        identity = hasher.value
    }

    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }
    public var isPositive: Bool { false }

    public var parameterNames: [String] { [] }
    public func parameterShape(_ name: String) -> [Int]? { nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { nil }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        _ = try FeatureMapParameters.checked(name, of: self, values: values)
    }

    /// Unit rows (read back by `scores`), then one row's monomials.
    public func scratchFloats(rows: Int) -> Int {
        ScratchBuffer.footprint(rows * headDim) + ScratchBuffer.footprint(featureDim + headDim)
    }

    public func scoreScratchFloats(rows: Int) -> Int { Gemm.workspaceFloats }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let (d, m) = (headDim, featureDim)
        let units = scratch
        let monomial = scratch + ScratchBuffer.footprint(rows * d)
        UnitDirections.normalise(input, rows: rows, width: d, into: units)
        let degree = configuration.degree
        last.withUnsafeBufferPointer { last in
            scale.withUnsafeBufferPointer { scale in
                for r in 0..<rows {
                    let u = units + r * d
                    monomial.update(from: u, count: d)
                    var (previous, next) = (0..<d, d)
                    for _ in 2...degree {
                        let start = next
                        for p in previous {
                            let (value, first) = (monomial[p], Int(last[p]))
                            let run = monomial + next - first
                            for i in first..<d { run[i] = value * u[i] }
                            next += d - first
                        }
                        previous = start..<next
                    }
                    let out = output + r * m
                    for j in 0..<m { out[j] = scale[j] * monomial[d + j] }
                }
            }
        }
    }

    /// The intra-chunk block straight from the kernel: x = Û_Q Û_Kᵀ (a rows × rows × d product
    /// instead of rows × rows × m), then Σ_k c_k x^k by Horner.
    public func scores(head: Int, rows: Int, queryScratch: UnsafePointer<Float>, keyScratch: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool {
        let d = headDim
        Gemm.multiply(m: rows, n: rows, k: d, a: queryScratch, rowStrideA: d, columnStrideA: 1,
                      b: keyScratch, rowStrideB: 1, columnStrideB: d, c: output, ldc: rows,
                      accumulate: false, workspace: scratch)
        let n = configuration.degree
        coefficients.withUnsafeBufferPointer { c in
            for i in 0..<(rows * rows) {
                let x = output[i]
                var sum = c[n]
                for k in stride(from: n - 1, through: 2, by: -1) { sum = sum * x + c[k] }
                output[i] = sum * x * x
            }
        }
        return true
    }
}
