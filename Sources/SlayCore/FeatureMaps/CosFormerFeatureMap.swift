#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// cosFormer (docs/math.md §4): φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i], θ_i = π i / (2L), for
/// the token at position i of its sequence, so φ(q_i)·φ(k_j) = relu(q_i)·relu(k_j) cos(θ_i − θ_j).
/// L is a FIXED maximum length given by the caller (the reference code uses the current length,
/// which changes every decode step and so cannot stream). m = 2d, no parameters, features ≥ 0.
/// Positions ≥ L are clamped to L − 1 (the angle stays in [0, π/2), so features stay ≥ 0); they
/// cannot be rejected cheaply here, so slay.h asks callers to keep T ≤ L.
public final class CosFormerFeatureMap: ParameterFreeFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    public let identity: UInt64

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateMaxLength()
        self.configuration = configuration
        identity = configuration.parameterFreeIdentity(kind: "cosformer", settings: [configuration.maxLength])
    }

    public var featureDim: Int { 2 * configuration.headDim }
    public var isPositive: Bool { true }
    public var needsPositions: Bool { true }

    /// Without positions, rows are taken to start at position 0.
    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        features(role: role, head: head, input: input, rows: rows, firstPosition: 0, output: output, scratch: scratch)
    }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let (d, length) = (headDim, configuration.maxLength)
        for i in 0..<rows {
            let position = min(max(firstPosition + i, 0), length - 1)
            let angle = Double.pi * Double(position) / (2 * Double(length))
            let (c, s) = (Float(cos(angle)), Float(sin(angle)))
            let x = input + i * d
            let target = output + i * 2 * d
            for a in 0..<d {
                let r = x[a] < 0 ? 0 : x[a]
                target[a] = r * c
                target[d + a] = r * s
            }
        }
    }
}
