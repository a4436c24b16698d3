#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SlayCore

/// The live C handles of one type. A handle given to C is not an address but a token
///   bits 0–3 the type tag, bits 4–31 a slot index, bits 32–63 the slot's generation,
/// so a lookup never forms a Swift reference from caller memory: it decodes the token, checks it
/// against the table under a lock and only then takes the object the table itself retains.
///
/// Guarantees (slay.h, "Handles"): a freed handle, a second free, a handle of the other type or
/// a value that was never a handle is refused (SLAY_ERR_INVALID_ARGUMENT; free is a no-op) and
/// never acts on another object: a slot's generation grows at every free and a slot whose
/// generation would wrap is retired, so a token is never issued twice. A call that found its
/// object keeps it alive until it returns, even if another thread frees the handle meanwhile.
final class HandleRegistry<Object: AnyObject>: @unchecked Sendable {
    private struct Slot {
        var generation: UInt32
        var object: Unmanaged<Object>?
        /// The next free slot when this one is free (-1: none).
        var nextFree: Int
    }

    /// 2^28 live handles per type.
    static var maximumSlots: Int { 1 << 28 }

    private let tag: UInt
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var slots: UnsafeMutablePointer<Slot>?
    private var capacity = 0
    private var used = 0
    private var firstFree = -1

    init(tag: UInt) {
        precondition(tag != 0 && tag < 16)
        self.tag = tag
        lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    /// The library's two registries live as long as the process; others (tests) release what
    /// they still hold (found by the Swift tests under LeakSanitizer).
    deinit {
        for index in 0..<used { slots![index].object?.release() }
        free(slots)
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body()
    }

    /// A new handle that owns a strong reference to `object`; throws SlayError(.outOfMemory) when
    /// the table cannot grow.
    func register(_ object: Object) throws -> OpaquePointer {
        try locked {
            let index: Int
            if firstFree >= 0 {
                index = firstFree
                firstFree = slots![index].nextFree
            } else {
                if used == capacity { try grow() }
                index = used
                used += 1
                slots![index] = Slot(generation: 1, object: nil, nextFree: -1)
            }
            slots![index].object = Unmanaged.passRetained(object)
            let token = UInt(slots![index].generation) << 32 | UInt(index) << 4 | tag
            return OpaquePointer(bitPattern: token)!
        }
    }

    private func grow() throws {
        guard capacity < Self.maximumSlots else {
            throw SlayError(.outOfMemory, "too many live handles (\(Self.maximumSlots)); free some first")
        }
        let newCapacity = min(max(16, capacity * 2), Self.maximumSlots)
        let memory = try FallibleMemory.reallocate(slots, bytes: newCapacity * MemoryLayout<Slot>.stride,
                                                  what: "the handle table (\(newCapacity) entries)")
        slots = memory.bindMemory(to: Slot.self, capacity: newCapacity)
        capacity = newCapacity
    }

    /// The slot index of a live token, or nil.
    private func liveIndex(_ pointer: OpaquePointer) -> Int? {
        let token = UInt(bitPattern: pointer)
        guard token & 0xF == tag else { return nil }
        let index = Int((token >> 4) & 0x0FFF_FFFF)
        guard index < used, UInt32(truncatingIfNeeded: token >> 32) == slots![index].generation,
              slots![index].object != nil else { return nil }
        return index
    }

    /// The object of a live handle (a strong reference taken under the lock), or nil.
    func object(_ pointer: OpaquePointer) -> Object? {
        locked { liveIndex(pointer).flatMap { slots![$0].object?.takeUnretainedValue() } }
    }

    /// Ends a live handle and drops the table's reference; false (and nothing happens) for a
    /// value that is not a live handle of this type.
    @discardableResult
    func remove(_ pointer: OpaquePointer) -> Bool {
        let released: Unmanaged<Object>? = locked {
            guard let index = liveIndex(pointer) else { return nil }
            let object = slots![index].object
            slots![index].object = nil
            if slots![index].generation == UInt32.max {
                // Retired: its tokens are never issued again.
                return object
            }
            slots![index].generation += 1
            slots![index].nextFree = firstFree
            firstFree = index
            return object
        }
        // Outside the lock: the object's deinit may free a lot of memory.
        released?.release()
        return released != nil
    }
}

/// The tags of the two handle types (any non-zero nibble; heap addresses end in 0).
let featureMapHandles = HandleRegistry<FeatureMapHandle>(tag: 0x5)
let stateHandles = HandleRegistry<StateHandle>(tag: 0x9)
