import CSlay
import SlayCore

@_cdecl("slay_state_write")
public func slay_state_write(_ state: OpaquePointer?, _ slot: Int64, _ matrix: UnsafePointer<Float>?,
                             _ matrixCount: Int64, _ normaliser: UnsafePointer<Float>?, _ normaliserCount: Int64,
                             _ position: Int64, _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let s = try StateHandle.from(state).state
        try checkSlotArrays(s, slot: slot, matrix: matrix != nil, matrixCount: matrixCount,
                            normaliser: normaliser != nil, normaliserCount: normaliserCount)
        try s.writeSlot(Int(slot), matrix: matrix, normaliser: normaliser, position: position)
    }
}
