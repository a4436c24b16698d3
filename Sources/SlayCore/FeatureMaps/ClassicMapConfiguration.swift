/// Dimensions, seed and settings of the classic feature maps (docs/math.md §4). One struct for all of
/// them because they share the C params fields; each map validates only the fields it reads.
public struct ClassicMapConfiguration: Sendable, Equatable {
    public var headDim: Int
    public var numHeads: Int
    /// m, the random features per head of FAVOR+, ReLU random and random Fourier features
    /// (params.prf_dim).
    public var featureCount: Int
    /// L, cosFormer's fixed maximum length (params.max_length).
    public var maxLength: Int
    public var seed: UInt64

    public init(headDim: Int, numHeads: Int = 1, featureCount: Int = 8, maxLength: Int = 0, seed: UInt64 = 0) {
        self.headDim = headDim
        self.numHeads = numHeads
        self.featureCount = featureCount
        self.maxLength = maxLength
        self.seed = seed
    }

    /// head_dim and num_heads, which every map reads.
    public func validateHeads() throws {
        for (name, value) in [("head_dim", headDim), ("num_heads", numHeads)] {
            guard value >= 1 && value <= SlayConfiguration.maximumDimension else {
                throw SlayError.shape("\(name) must be in 1...\(SlayConfiguration.maximumDimension), got \(value)")
            }
        }
    }

    /// Heads plus m, and the size of ω (H, d, m), for the random-feature maps.
    public func validateRandomFeatures() throws {
        try validateHeads()
        guard featureCount >= 1 && featureCount <= SlayConfiguration.maximumDimension else {
            throw SlayError.shape("prf_dim must be in 1...\(SlayConfiguration.maximumDimension), got \(featureCount)")
        }
        let omega = try CheckedSize.multiply(numHeads, headDim, featureCount, what: "omega size H·d·m")
        guard omega <= 1 << 31 else {
            throw SlayError.overflow("omega would hold \(omega) floats; the maximum is 2^31")
        }
    }

    /// Heads plus L ≥ 1, for cosFormer.
    public func validateMaxLength() throws {
        try validateHeads()
        guard maxLength >= 1 else {
            throw SlayError.invalid("max_length must be >= 1 for cosFormer (the longest sequence it maps), got \(maxLength)")
        }
    }
}
