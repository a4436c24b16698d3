import CSlay
import SlayCore

/// What a `slay_state*` stands for. C holds a HandleRegistry token, never this object's address.
final class StateHandle {
    let state: RecurrentState

    init(_ state: RecurrentState) { self.state = state }

    /// The handle of a live `slay_state*`; a NULL, freed or foreign value is
    /// SLAY_ERR_INVALID_ARGUMENT, checked before any reference is formed.
    static func from(_ pointer: OpaquePointer?, _ name: String = "state") throws -> StateHandle {
        guard let pointer else { throw SlayError.invalid("\(name) is NULL") }
        guard let handle = stateHandles.object(pointer) else {
            throw SlayError.invalid("\(name) is not a live slay_state (freed, never created, or another handle type)")
        }
        return handle
    }

    /// Registers this handle and returns the token C sees.
    func register() throws -> OpaquePointer { try stateHandles.register(self) }
}

/// Reads a caller array of `count` int64 offsets (cu_seqlens has num_seqs + 1).
func offsetsArray(_ pointer: UnsafePointer<Int64>?, count: Int) -> [Int]? {
    guard let pointer else { return nil }
    return (0..<count).map { Int(pointer[$0]) }
}

func slotsArray(_ pointer: UnsafePointer<Int32>?, count: Int) -> [Int]? {
    guard let pointer else { return nil }
    return (0..<count).map { Int(pointer[$0]) }
}

func sequenceCount(_ value: Int64) throws -> Int {
    guard value >= 1 && value <= Int64(RecurrentState.maximumSequences) else {
        throw SlayError.shape("num_seqs must be in 1...\(RecurrentState.maximumSequences), got \(value)")
    }
    return Int(value)
}
