#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// φ(x) = elu(x) + 1: φ'(x) = 1 for x > 0 and e^x otherwise.
extension EluPlusOneFeatureMap: FeatureMapGradient {
    public func gradientScratchFloats(rows: Int) -> Int { 0 }

    public func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                                parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                                scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<(rows * headDim) {
            let x = input[i]
            inputGradient[i] = x > 0 ? outputGradient[i] : outputGradient[i] * expf(x)
        }
    }
}
