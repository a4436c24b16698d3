/// Writing one slot from plain arrays: the inverse of reading `matrix(slot:head:)` and
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
        if let matrix { self.matrix(slot: slot, head: 0).update(from: matrix, count: matrixFloats) }
        if let normaliser { self.normaliser(slot: slot, head: 0).update(from: normaliser, count: normaliserFloats) }
        positions[slot] = position
    }
}
