#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size array on the C heap whose allocation can fail with a status: the storage of every
/// array whose size a caller controls (feature-map parameters and what is derived from them).
/// Swift's own arrays abort the host process when an allocation fails; this one throws
/// `SlayError(.outOfMemory, ...)` instead.
///
/// It reads like an Array (count, subscript, `withUnsafeBufferPointer`, and every Collection
/// algorithm), so call sites change little. It is a class: copies share storage, so a map that
/// replaces a parameter swaps in a new HeapArray rather than writing into the old one.
/// Elements are zero after `init(count:)`; memory is 64-byte aligned for SIMD loads.
public final class HeapArray<Element: BitwiseCopyable>: RandomAccessCollection, @unchecked Sendable {
    public let count: Int
    public let baseAddress: UnsafeMutablePointer<Element>

    /// `count` zeroed elements; throws SlayError(.overflow) when the byte size does not fit in
    /// 64 bits and SlayError(.outOfMemory) when malloc refuses.
    public init(count: Int, what: @autoclosure () -> String = "array") throws {
        guard count >= 0 else { throw SlayError.invalid("\(what()) has a negative size \(count)") }
        let bytes = try CheckedSize.multiply(Swift.max(count, 1), MemoryLayout<Element>.stride, what: "\(what()) size")
        let memory = try FallibleMemory.allocate(bytes: bytes, what: what())
        memset(memory, 0, bytes)
        self.baseAddress = memory.bindMemory(to: Element.self, capacity: Swift.max(count, 1))
        self.count = count
    }

    /// `count` copies of `value`.
    public convenience init(repeating value: Element, count: Int, what: @autoclosure () -> String = "array") throws {
        try self.init(count: count, what: what())
        baseAddress.update(repeating: value, count: count)
    }

    /// A copy of `source`.
    public convenience init(copying source: UnsafeBufferPointer<Element>, what: @autoclosure () -> String = "array") throws {
        try self.init(count: source.count, what: what())
        if let start = source.baseAddress { baseAddress.update(from: start, count: source.count) }
    }

    /// A copy of a collection (small, library-sized inputs such as test fixtures).
    public convenience init<C: Collection>(_ elements: C, what: @autoclosure () -> String = "array") throws
    where C.Element == Element {
        try self.init(count: elements.count, what: what())
        for (index, element) in elements.enumerated() { baseAddress[index] = element }
    }

    deinit { free(baseAddress) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// Bounds-checked like Array's subscript (hot loops take `withUnsafeBufferPointer` instead).
    public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "HeapArray index out of range")
            return baseAddress[index]
        }
        set {
            precondition(index >= 0 && index < count, "HeapArray index out of range")
            baseAddress[index] = newValue
        }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: baseAddress, count: count))
    }

    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: baseAddress, count: count))
    }

    /// A new HeapArray holding `transform` of every element.
    public func mapped<T: BitwiseCopyable>(what: @autoclosure () -> String = "array",
                                           _ transform: (Element) throws -> T) throws -> HeapArray<T> {
        let result = try HeapArray<T>(count: count, what: what())
        for index in 0..<count { result.baseAddress[index] = try transform(baseAddress[index]) }
        return result
    }
}

extension HeapArray {
    /// `blocks` stacked row-major (rows, cols) matrices, each transposed to (cols, rows).
    public func transposedBlocks(_ blocks: Int = 1, rows: Int, cols: Int,
                                 what: @autoclosure () -> String = "transposed parameters") throws -> HeapArray<Element> {
        let result = try HeapArray<Element>(count: count, what: what())
        let block = rows * cols
        for b in 0..<blocks {
            let (source, target) = (baseAddress + b * block, result.baseAddress + b * block)
            for r in 0..<rows {
                for c in 0..<cols { target[c * rows + r] = source[r * cols + c] }
            }
        }
        return result
    }
}
