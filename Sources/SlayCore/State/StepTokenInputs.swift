#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SlayKernels

/// The optional per-token inputs of a decode step, read in place: log decay [N, Hk, m] (a per-head
/// [N, Hk] arrives broadcast over m), SLA gate logits [N, Hq] / [N, Hk] and the delta rule's β
/// [N, Hk]. A value type of views, so a step builds it without allocating.
struct StepTokenInputs {
    let logDecay: TensorView?
    let queryGates: TensorView?
    let keyGates: TensorView?
    let beta: TensorView?

    init(_ options: LinearAttentionOptions) {
        logDecay = options.logDecay
        queryGates = options.queryGateLogits
        keyGates = options.keyGateLogits
        beta = options.beta
    }

    /// The key gate of (sequence, head), 1 without gates.
    @inline(__always)
    func keyGate(sequence: Int, head: Int) -> Float {
        guard let keyGates else { return 1 }
        return HeadGates.gate(keyGates, row: sequence * keyGates.steps[0], stride: keyGates.steps[1],
                              heads: keyGates.extents[1], head: head)
    }

    /// The query gate of (sequence, query head), 1 without gates.
    @inline(__always)
    func queryGate(sequence: Int, queryHead: Int) -> Float {
        guard let queryGates else { return 1 }
        return HeadGates.gate(queryGates, row: sequence * queryGates.steps[0], stride: queryGates.steps[1],
                              heads: queryGates.extents[1], head: queryHead)
    }

    /// φ(k) of (sequence, head) times its key gate; each query row of the group times its own.
    @inline(__always)
    func applyGates(sequence: Int, head: Int, group: Int, m: Int, phiQ: UnsafeMutablePointer<Float>,
                    phiK: UnsafeMutablePointer<Float>) {
        if keyGates != nil {
            let g = keyGate(sequence: sequence, head: head)
            for f in 0..<m { phiK[f] *= g }
        }
        if queryGates != nil {
            for r in 0..<group {
                let g = queryGate(sequence: sequence, queryHead: head * group + r)
                let target = phiQ + r * m
                for f in 0..<m { target[f] *= g }
            }
        }
    }

    /// log α of (sequence, head): its channels read as fp32 through `row[f]` (the same value for
    /// every f with a per-head decay), nil without log decay.
    @inline(__always)
    func logDecayRow(sequence: Int, head: Int) -> ChannelRow? {
        guard let logDecay else { return nil }
        return ChannelRow(view: logDecay, offset: sequence * logDecay.steps[0] + head * logDecay.steps[1],
                          stride: logDecay.steps[2])
    }

    /// One (token, head) row of a per-channel tensor in caller memory, any element type.
    struct ChannelRow {
        let view: TensorView
        let offset: Int
        let stride: Int

        @inline(__always)
        subscript(channel: Int) -> Float { view.load(offset + channel * stride) }
    }

    /// β of (sequence, head); 1 when no β was given.
    @inline(__always)
    func betaValue(sequence: Int, head: Int) -> Float {
        guard let beta else { return 1 }
        return beta.load(sequence * beta.steps[0] + head * beta.steps[1])
    }

    /// α = e^(log α) for log α ≤ 0, 0 below the smallest normal float (the chunked form's bound).
    @inline(__always)
    static func alpha(_ logAlpha: Float) -> Float { logAlpha < SlayKernels.DecayKernels.underflow ? 0 : expf(logAlpha) }
}

extension RecurrentState {
    /// Shapes and values of a step's per-token inputs: log α [N, Hk, m] or [N, Hk], gate logits
    /// [N, Hq] and [N, Hk], β [N, Hk]. Runs on every step; allocates only to report an error.
    /// Returns log decay in its canonical [N, Hk, m] view.
    func checkStepTokenInputs(_ options: LinearAttentionOptions, sequences n: Int, queryHeads: Int) throws -> TensorView? {
        if options.beta != nil && options.update != .delta {
            throw SlayError.invalid("beta is the delta rule's step size; it needs update = SLAY_UPDATE_DELTA")
        }
        let checked = try TokenTensors.check(options, map: map, keys: SIMD2(n, 1), queries: SIMD2(n, 1),
                                             queryHeads: queryHeads, leading: 1)
        return checked.logDecay
    }
}
