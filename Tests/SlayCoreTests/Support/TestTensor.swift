@testable import SlayCore

/// Caller-owned float memory for tests: a heap block that outlives the TensorViews made from it
/// (a view holds a raw pointer, so the owner must stay alive while the view is used).
final class TestTensor {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, repeating value: Float = .nan) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        for (i, v) in values.enumerated() { pointer[i] = v }
    }

    deinit { pointer.deallocate() }

    var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Bit patterns, for bitwise comparisons (NaN == NaN here).
    var bits: [UInt32] { values.map(\.bitPattern) }

    func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    /// A contiguous row-major view over the whole block.
    func view(_ shape: [Int]) -> TensorView {
        precondition(shape.reduce(1, *) == count, "shape \(shape) does not cover \(count) floats")
        return TensorView(contiguous: pointer, shape: shape)
    }

    /// A view with explicit element strides (caller proves they stay inside the block).
    func view(_ shape: [Int], strides: [Int], offset: Int = 0) -> TensorView {
        TensorView(base: pointer + offset, shape: shape, strides: strides)
    }
}

/// Logical [B, T, H, D] data kept as a plain array, indexable in the tests' twins.
struct BTHD {
    let b: Int, t: Int, h: Int, d: Int
    var data: [Float]

    init(b: Int, t: Int, h: Int, d: Int, data: [Float]) {
        precondition(data.count == b * t * h * d)
        (self.b, self.t, self.h, self.d, self.data) = (b, t, h, d, data)
    }

    init(b: Int, t: Int, h: Int, d: Int, generator: inout SeededGenerator) {
        self.init(b: b, t: t, h: h, d: d, data: generator.floats(b * t * h * d))
    }

    subscript(_ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int) -> Float {
        data[((i0 * t + i1) * h + i2) * d + i3]
    }

    /// One row [D] at (batch, time, head).
    func row(_ batch: Int, _ time: Int, _ head: Int) -> [Float] {
        let start = ((batch * t + time) * h + head) * d
        return Array(data[start..<(start + d)])
    }

    var shape: [Int] { [b, t, h, d] }

    /// Contiguous [B, T, H, D] copy.
    func contiguous() -> TestTensor { TestTensor(data) }

    /// The same logical tensor stored head-first [B, H, T, D]; view it with `headFirstStrides`.
    func headFirst() -> TestTensor {
        let out = TestTensor(count: data.count)
        for i0 in 0..<b { for i1 in 0..<t { for i2 in 0..<h { for i3 in 0..<d {
            out.pointer[((i0 * h + i2) * t + i1) * d + i3] = self[i0, i1, i2, i3]
        } } } }
        return out
    }

    /// Strides of the logical [B, T, H, D] tensor stored as [B, H, T, D].
    var headFirstStrides: [Int] { [h * t * d, d, t * d, 1] }
}
