#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i]: dx = [x > 0]·(g_cos cos θ_i + g_sin sin θ_i),
/// with the forward's positions (clamped to L − 1).
extension CosFormerFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        let (d, length) = (headDim, configuration.maxLength)
        for i in 0..<rows {
            let position = min(max(firstPosition + i, 0), length - 1)
            let angle = Double.pi * Double(position) / (2 * Double(length))
            let (c, s) = (Float(cos(angle)), Float(sin(angle)))
            let x = input + i * d
            let g = outputGradient + i * 2 * d
            let dx = inputGradient + i * d
            for a in 0..<d { dx[a] = x[a] > 0 ? g[a] * c + g[d + a] * s : 0 }
        }
    }
}
