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

    public init(floats count: Int) throws {
        let bytes = try CheckedSize.multiply(max(count, 1), MemoryLayout<Float>.stride, what: "workspace size")
        // 64-byte alignment keeps SIMD loads within cache lines.
        let memory = try FallibleMemory.allocate(bytes: bytes, what: "workspace")
        self.pointer = memory.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { free(pointer) }

    /// Floats a block of `count` occupies when carved (ScratchCarver): rounded up to 16, so every
    /// block starts 64-byte aligned.
    public static func footprint(_ count: Int) -> Int { (count + 15) & ~15 }
}

/// Consecutive blocks carved from a scratch region in order, each `ScratchBuffer.footprint` floats
/// long. The caller sized the region as the sum of those footprints (each workspace layout does),
/// so carving never checks; a value type, so every worker carves its own region independently.
public struct ScratchCarver {
    private var cursor: UnsafeMutablePointer<Float>

    public init(_ start: UnsafeMutablePointer<Float>) { cursor = start }

    public mutating func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let result = cursor
        cursor += ScratchBuffer.footprint(count)
        return result
    }
}
