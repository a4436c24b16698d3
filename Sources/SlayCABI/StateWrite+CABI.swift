import CSlay
import SlayCore

@_cdecl("slay_state_write")
public func slay_state_write(_ state: OpaquePointer?, _ slot: Int64, _ matrix: UnsafePointer<Float>?,
                             _ matrixCount: Int64, _ normaliser: UnsafePointer<Float>?, _ normaliserCount: Int64,
                             _ position: Int64, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        try s.checkSlot(Int(clamping: slot))
        let matrixFloats = s.numHeads * s.featureDim * s.valueDim
        let normaliserFloats = s.numHeads * s.featureDim
        if matrix != nil && matrixCount != Int64(matrixFloats) {
            throw SlayError.shape("matrix_count is \(matrixCount); the slot's matrix [H, m, dv] has \(matrixFloats) floats")
        }
        if normaliser != nil && normaliserCount != Int64(normaliserFloats) {
            throw SlayError.shape("normaliser_count is \(normaliserCount); the slot's normaliser [H, m] has \(normaliserFloats) floats")
        }
        try s.writeSlot(Int(slot), matrix: matrix, normaliser: normaliser, position: position)
    }
}
