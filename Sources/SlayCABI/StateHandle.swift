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

/// A caller array of `count` elements (cu_seqlens has num_seqs + 1 int64 offsets, slots num_seqs
/// int32 indices), read in place for the duration of the call: nothing is copied, so a caller-sized
/// array never needs an allocation.
func callerArray<Element>(_ pointer: UnsafePointer<Element>?, count: Int) -> UnsafeBufferPointer<Element>? {
    pointer.map { UnsafeBufferPointer(start: $0, count: count) }
}

func sequenceCount(_ value: Int64) throws -> Int {
    guard value >= 1 && value <= Int64(RecurrentState.maximumSequences) else {
        throw SlayError.shape("num_seqs must be in 1...\(RecurrentState.maximumSequences), got \(value)")
    }
    return Int(value)
}
