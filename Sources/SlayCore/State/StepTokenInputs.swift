#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SlayKernels

/// The optional per-token inputs of a decode step, read in place: GLA log α [N, Hk, m] and SLA
/// gate logits [N, Hq] / [N, Hk]. A value type of views, so a step builds it without allocating.
struct StepTokenInputs {
    let logDecay: TensorView?
    let queryGates: TensorView?
    let keyGates: TensorView?

    init(_ options: LinearAttentionOptions) {
        logDecay = options.logDecay
        queryGates = options.queryGateLogits
        keyGates = options.keyGateLogits
    }

    /// φ(k) of (sequence, head) times its key gate; each query row of the group times its own.
    @inline(__always)
    func applyGates(sequence: Int, head: Int, group: Int, m: Int, phiQ: UnsafeMutablePointer<Float>,
                    phiK: UnsafeMutablePointer<Float>) {
        if let keyGates {
            let g = HeadGates.gate(keyGates.base + sequence * keyGates.steps[0], stride: keyGates.steps[1],
                                   heads: keyGates.extents[1], head: head)
            for f in 0..<m { phiK[f] *= g }
        }
        if let queryGates {
            let row = queryGates.base + sequence * queryGates.steps[0]
            for r in 0..<group {
                let g = HeadGates.gate(row, stride: queryGates.steps[1], heads: queryGates.extents[1], head: head * group + r)
                let target = phiQ + r * m
                for f in 0..<m { target[f] *= g }
            }
        }
    }

    /// log α of (sequence, head) as a base pointer and channel stride, nil without GLA decay.
    @inline(__always)
    func logDecayRow(sequence: Int, head: Int) -> (pointer: UnsafePointer<Float>, stride: Int)? {
        guard let logDecay else { return nil }
        return (UnsafePointer(logDecay.base + sequence * logDecay.steps[0] + head * logDecay.steps[1]), logDecay.steps[2])
    }

    /// α = e^(log α) for log α ≤ 0, 0 below the smallest normal float (the chunked form's bound).
    @inline(__always)
    static func alpha(_ logAlpha: Float) -> Float { logAlpha < SlayKernels.DecayKernels.underflow ? 0 : expf(logAlpha) }
}

extension RecurrentState {
    /// Shapes and values of a step's per-token inputs: log α [N, Hk, m], gate logits [N, Hq] and
    /// [N, Hk]. Runs on every step; allocates only to report an error.
    func checkStepTokenInputs(_ options: LinearAttentionOptions, sequences n: Int, queryHeads: Int) throws {
        if let logDecay = options.logDecay {
            try TokenTensors.checkLogDecay(logDecay, rank: 3, extents: SIMD4(n, numHeads, featureDim, 1),
                                           layout: "[N, Hk, m] (m = the feature map's dim)")
        }
        if let gates = options.queryGateLogits {
            try TokenTensors.checkGateLogits(gates, "query_gate_logits", rank: 2, extents: SIMD4(n, queryHeads, 1, 1),
                                             layout: "[N, Hq]")
        }
        if let gates = options.keyGateLogits {
            try TokenTensors.checkGateLogits(gates, "key_gate_logits", rank: 2, extents: SIMD4(n, numHeads, 1, 1),
                                             layout: "[N, Hk]")
        }
    }
}
