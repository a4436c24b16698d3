import CSlay
import SlayCore

/// What a `slay_state*` points to.
final class StateHandle {
    static let liveMagic: UInt64 = 0x534C_4159_5354_4154   // "SLAYSTAT"
    var magic = liveMagic
    let state: RecurrentState

    init(_ state: RecurrentState) { self.state = state }

    static func from(_ pointer: OpaquePointer?, _ name: String = "state") throws -> StateHandle {
        guard let pointer else { throw SlayError.invalid("\(name) is NULL") }
        let handle = Unmanaged<StateHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
        guard handle.magic == liveMagic else {
            throw SlayError.invalid("\(name) is not a live slay_state (freed or wrong handle type)")
        }
        return handle
    }

    func retainedPointer() -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(self).toOpaque()) }
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
