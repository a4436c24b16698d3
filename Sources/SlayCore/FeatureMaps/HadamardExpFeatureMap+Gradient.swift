#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// φ(x) = e^x: φ'(x) = e^x. This plain VJP overflows where the features do; attention never uses
/// it: the backward of attention with this map runs in the rescaled frame (RescaledExpBackward),
/// which never forms e^x.
extension HadamardExpFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<(rows * headDim) { inputGradient[i] = outputGradient[i] * expf(input[i]) }
    }
}
