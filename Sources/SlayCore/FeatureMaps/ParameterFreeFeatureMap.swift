/// Maps with no random or learned parameters (ELU+1, ReLU, cosFormer, the ELA kernels): their
/// parameter API is empty, their features need no scratch, and their identity hashes only the kind
/// and the settings, so each such map file is just its formula.
public protocol ParameterFreeFeatureMap: FeatureMap {
    var configuration: ClassicMapConfiguration { get }
}

extension ParameterFreeFeatureMap {
    public var headDim: Int { configuration.headDim }
    public var numHeads: Int { configuration.numHeads }

    public var parameterNames: [String] { [] }
    public func parameterShape(_ name: String) -> [Int]? { nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { nil }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        _ = try FeatureMapParameters.checked(name, of: self, values: values)
    }

    public func scratchFloats(rows: Int) -> Int { 0 }
}

extension ClassicMapConfiguration {
    /// The identity of a parameter-free map: its kind name, head_dim, num_heads and any further
    /// settings that change its features (cosFormer's L).
    func parameterFreeIdentity(kind: String, settings: [Int] = []) -> UInt64 {
        var hasher = IdentityHasher()
        hasher.combine(kind)
        hasher.combine(headDim); hasher.combine(numHeads)
        for setting in settings { hasher.combine(setting) }
        return hasher.value
    }
}
