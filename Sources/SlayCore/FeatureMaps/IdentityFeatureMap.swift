/// Identity: φ(x) = x, m = d, no parameters, SIGNED (both roles alike). The map RetNet and GLA
/// use: φ(q)·φ(k) = q·k, so with normalize = 0 the engine computes plain (decayed, gated) linear
/// attention; the normaliser q·Σk of normalize = 1 can be ≤ 0 (use SLAY_DENOMINATOR_CLAMP).
public final class IdentityFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateHeads()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "identity")
    }

    public var featureDim: Int { configuration.headDim }
    public var isPositive: Bool { false }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        output.update(from: input, count: rows * configuration.headDim)
    }
}
