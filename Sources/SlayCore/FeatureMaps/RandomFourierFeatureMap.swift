#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Random Fourier features (docs/math.md §4, Rahimi–Recht): φ(x) = √(2/m) cos(ωᵀx + b) with
/// ω ~ N(0, I/σ²), σ = 1 (stream 5) and b ~ U(0, 2π) (stream 6), so E[φ(q)·φ(k)] is the Gaussian
/// kernel exp(−‖q − k‖²/2). SIGNED: features and the normaliser φ(q)·Σφ(k) can be ≤ 0, so
/// normalised outputs can be large (slay.h).
public final class RandomFourierFeatureMap: RandomProjectionFeatureMap, @unchecked Sendable {
    public let configuration: ClassicMapConfiguration
    var projection: RandomProjection
    /// (H, m) phases.
    public private(set) var bias: HeapArray<Float>
    public internal(set) var identity: UInt64 = 0
    var kindName: String { "random-fourier" }

    public init(_ configuration: ClassicMapConfiguration) throws {
        try configuration.validateRandomFeatures()
        self.configuration = configuration
        let c = configuration
        let generator = ParameterGenerator(seed: c.seed)
        let omega = try generator.makeNormals(stream: ParameterGenerator.fourierOmegaStream,
                                              count: c.numHeads * c.headDim * c.featureCount, what: "omega")
        projection = RandomProjection(headDim: c.headDim, numHeads: c.numHeads, featureCount: c.featureCount, omega: omega)
        bias = try HeapArray<Float>(count: c.numHeads * c.featureCount, what: "bias")
        for index in 0..<bias.count {
            bias[index] = Float(2 * Double.pi * generator.uniform(stream: ParameterGenerator.fourierBiasStream, index: UInt64(index)))
        }
        rebuildIdentity(extra: bias)
    }

    public var isPositive: Bool { false }

    public var parameterNames: [String] { ["omega", "bias"] }
    public func parameterShape(_ name: String) -> [Int]? {
        switch name {
        case "omega": return projection.shape
        case "bias": return [numHeads, featureDim]
        default: return nil
        }
    }
    public func parameter(_ name: String) -> HeapArray<Float>? {
        switch name {
        case "omega": return projection.omega
        case "bias": return bias
        default: return nil
        }
    }
    public func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws {
        let checked = try FeatureMapParameters.checked(name, of: self, values: values)
        if name == "omega" { projection.omega = checked } else { bias = checked }
        rebuildIdentity(extra: bias)
    }

    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let m = featureDim
        let products = projection.project(head: head, input: input, rows: rows, scratch: scratch)
        let scale = Float((2 / Double(m)).squareRoot())
        bias.withUnsafeBufferPointer { phases in
            let b = phases.baseAddress! + head * m
            for i in 0..<rows {
                for j in 0..<m { output[i * m + j] = scale * cosf(products[i * m + j] + b[j]) }
            }
        }
    }
}
