#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The quadratic kernels linear attention is compared against.
public enum ExactKernel: Int32, Sendable {
    /// softmax(scale · q·k)
    case softmax = 1
    /// x²/(2 + ε − 2x), x = q̂·k̂, kernel-normalised
    case yatSpherical = 2
    /// (q·k)²/(‖q − k‖² + ε), kernel-normalised
    case yat = 3
}

public struct ExactAttentionOptions: Sendable, Equatable {
    public var kernel: ExactKernel
    public var causal: Bool
    /// Softmax logit scale; nil means 1/√d.
    public var scale: Double?
    public var eps: Double
    public var delta: Double
    public var nThreads: Int

    public init(kernel: ExactKernel = .softmax, causal: Bool = true, scale: Double? = nil, eps: Double = 1e-6,
                delta: Double = 1e-6, nThreads: Int = 1) {
        self.kernel = kernel
        self.causal = causal
        self.scale = scale
        self.eps = eps
        self.delta = delta
        self.nThreads = nThreads
    }

    public func validate() throws {
        if let scale, !scale.isFinite { throw SlayError.invalid("scale must be finite, got \(scale)") }
        guard eps.isFinite && eps > 0 else { throw SlayError.invalid("eps must be finite and > 0, got \(eps)") }
        guard delta.isFinite && delta >= 0 else { throw SlayError.invalid("delta must be finite and >= 0, got \(delta)") }
        guard nThreads >= 1 && nThreads <= LinearAttentionOptions.maximumThreads else {
            throw SlayError.invalid("n_threads must be in 1...\(LinearAttentionOptions.maximumThreads), got \(nThreads)")
        }
    }
}

/// Exact (quadratic) attention, accumulated in double: the reference for accuracy measurements.
/// O(T²·(d + dv)) time per head and O(T + d + dv) scratch.
public enum ExactAttention {
    public static func run(q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           options: ExactAttentionOptions) throws {
        try options.validate()
        let shapes = try AttentionShapes(q: q, k: k, v: v, out: out)
        let tasks = shapes.batch * shapes.queryHeads
        let workers = min(options.nThreads, tasks)
        let t = shapes.length
        let (d, dv) = (shapes.headDim, shapes.valueDim)
        let scratchFloats = try CheckedSize.add(
            try CheckedSize.multiply(2, t, what: "exact attention scratch"), d + dv, what: "exact attention scratch")
        var buffers: [ScratchBuffer] = []
        for _ in 0..<workers { buffers.append(try ScratchBuffer(floats: try CheckedSize.multiply(2, scratchFloats, what: "exact attention scratch"))) }
        let scratch = buffers
        let scale = options.scale ?? 1 / Double(d).squareRoot()
        ParallelFor.run(workers: workers) { worker in
            // Doubles live in the float arena: 2 floats per double.
            let raw = UnsafeMutableRawPointer(scratch[worker].pointer)
            let weights = raw.bindMemory(to: Double.self, capacity: 2 * t + d + dv)
            let keyInverseNorms = weights + t
            let accumulator = keyInverseNorms + t
            for task in ParallelFor.share(of: tasks, worker: worker, workers: workers) {
                let batch = task / shapes.queryHeads
                let queryHead = task % shapes.queryHeads
                let keyHead = queryHead / shapes.group
                func element(_ view: TensorView, _ time: Int, _ head: Int, _ j: Int) -> Double {
                    Double(view.load(batch * view.steps[0] + time * view.steps[1] + head * view.steps[2] + j * view.steps[3]))
                }
                for j in 0..<t {
                    var sumSquares = 0.0
                    for c in 0..<d { let x = element(k, j, keyHead, c); sumSquares += x * x }
                    let norm = sumSquares.squareRoot()
                    keyInverseNorms[j] = norm > 0 ? 1 / norm : 0
                }
                for i in 0..<t {
                    let visible = options.causal ? i + 1 : t
                    var queryNormSquared = 0.0
                    for c in 0..<d { let x = element(q, i, queryHead, c); queryNormSquared += x * x }
                    let queryInverseNorm = queryNormSquared > 0 ? 1 / queryNormSquared.squareRoot() : 0
                    var largest = -Double.infinity
                    for j in 0..<visible {
                        var dot = 0.0
                        var distanceSquared = 0.0
                        for c in 0..<d {
                            let a = element(q, i, queryHead, c)
                            let b = element(k, j, keyHead, c)
                            dot += a * b
                            distanceSquared += (a - b) * (a - b)
                        }
                        switch options.kernel {
                        case .softmax:
                            weights[j] = scale * dot
                            largest = max(largest, weights[j])
                        case .yatSpherical:
                            let x = dot * queryInverseNorm * keyInverseNorms[j]
                            weights[j] = x * x / (2 + options.eps - 2 * x)
                        case .yat:
                            weights[j] = dot * dot / (distanceSquared + options.eps)
                        }
                    }
                    var total = 0.0
                    if options.kernel == .softmax {
                        for j in 0..<visible { weights[j] = exp(weights[j] - largest); total += weights[j] }
                    } else {
                        for j in 0..<visible { total += weights[j] }
                        total += options.delta
                    }
                    for c in 0..<dv { accumulator[c] = 0 }
                    for j in 0..<visible {
                        let weight = weights[j]
                        for c in 0..<dv { accumulator[c] += weight * element(v, j, keyHead, c) }
                    }
                    let target = batch * out.steps[0] + i * out.steps[1] + queryHead * out.steps[2]
                    for c in 0..<dv { out.store(Float(accumulator[c] / total), at: target + c * out.steps[3]) }
                }
            }
        }
        withExtendedLifetime(buffers) {}
    }
}
