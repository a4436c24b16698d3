#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A float scratch arena from malloc, so that running out of memory is a status, not a trap
/// (Swift's own allocators abort the process on failure).
public final class ScratchBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private var cursor = 0

    public init(floats count: Int) throws {
        let bytes = try CheckedSize.multiply(max(count, 1), MemoryLayout<Float>.stride, what: "workspace size")
        // 64-byte alignment keeps SIMD loads within cache lines.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let memory = raw else {
            throw SlayError(.outOfMemory, "could not allocate \(bytes) bytes of workspace")
        }
        self.pointer = memory.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { free(pointer) }

    /// Carves the next `count` floats (rounded up to 16 for alignment) out of the arena.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let rounded = (count + 15) & ~15
        precondition(cursor + rounded <= self.count, "scratch arena sized too small")
        let result = pointer + cursor
        cursor += rounded
        return result
    }

    /// Floats that `take` will consume for a request of `count`.
    public static func footprint(_ count: Int) -> Int { (count + 15) & ~15 }
}
