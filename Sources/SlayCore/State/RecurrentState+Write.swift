/// Writing and reading one slot as plain fp32 arrays: the inverse of reading `matrix(slot:head:)` and
/// `normaliser(slot:head:)`, so a state can be built from arrays another framework holds
/// (flash-linear-attention's `initial_state`, a checkpoint) without a blob.
extension RecurrentState {
    /// Replaces slot `slot`'s S [H, m, dv] (when `matrix` is non-nil), z [H, m] (when `normaliser`
    /// is non-nil) and its position. Everything is validated before anything is written, so a
    /// failed call leaves the slot unchanged.
    /// Rescaled maps (Hadamard Exp) are refused: their rows are relative to running maxima μ that
    /// plain arrays do not carry; their blobs (save / restore) do.
    public func writeSlot(_ slot: Int, matrix: UnsafePointer<Float>?, normaliser: UnsafePointer<Float>?,
                          position: Int64) throws {
        try checkSlot(slot)
        guard position >= 0 && position <= Int64(1) << 62 else {
            throw SlayError.invalid("position must be in 0...2^62, got \(position)")
        }
        guard maximaStorage == nil else {
            throw SlayError(.unsupported, "this map's states are kept in a rescaled frame with running maxima; "
                            + "write them with slay_state_restore, not from plain arrays")
        }
        let matrixFloats = numHeads * featureDim * valueDim
        let normaliserFloats = numHeads * featureDim
        if let matrix, let bad = (0..<matrixFloats).first(where: { !matrix[$0].isFinite }) {
            throw SlayError.invalid("matrix[\(bad)] is \(matrix[bad]); states must be finite")
        }
        if let normaliser, let bad = (0..<normaliserFloats).first(where: { !normaliser[$0].isFinite }) {
            throw SlayError.invalid("normaliser[\(bad)] is \(normaliser[bad]); states must be finite")
        }
        if storageType == .f16 {
            // fp16 holds magnitudes below 65520; larger values would be stored as infinities.
            if let matrix, let bad = (0..<matrixFloats).first(where: { abs(matrix[$0]) >= 65520 }) {
                throw SlayError.invalid("matrix[\(bad)] is \(matrix[bad]); this state stores fp16, whose largest value is 65504")
            }
            if let normaliser, let bad = (0..<normaliserFloats).first(where: { abs(normaliser[$0]) >= 65520 }) {
                throw SlayError.invalid("normaliser[\(bad)] is \(normaliser[bad]); this state stores fp16, whose largest value is 65504")
            }
        }
        if let matrix {
            DecodeKernels.store(storageType, matrix, count: matrixFloats, into: rawMatrix(slot: slot, head: 0), stride: 1)
        }
        if let normaliser {
            DecodeKernels.store(storageType, normaliser, count: normaliserFloats, into: rawNormaliser(slot: slot, head: 0),
                                stride: 1)
        }
        positions[slot] = position
    }

    /// Copies slot `slot`'s S [H, m, dv] and z [H, m] as fp32 into the arrays that are non-nil
    /// (converted from the storage dtype, exactly). The slot must exist.
    public func readSlot(_ slot: Int, matrix: UnsafeMutablePointer<Float>?, normaliser: UnsafeMutablePointer<Float>?) {
        if let matrix {
            DecodeKernels.load(storageType, rawMatrix(slot: slot, head: 0), stride: 1,
                               count: numHeads * featureDim * valueDim, into: matrix)
        }
        if let normaliser {
            DecodeKernels.load(storageType, rawNormaliser(slot: slot, head: 0), stride: 1, count: numHeads * featureDim,
                               into: normaliser)
        }
    }
}
