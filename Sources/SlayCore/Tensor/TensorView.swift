/// A float32 tensor in caller memory: base pointer, logical shape and element strides.
///
/// SlayCore trusts that `base` addresses every element the shape and strides describe: the
/// C-ABI layer proves that sizes and offsets do not overflow before it builds a view. Views of
/// inputs are never written through.
public struct TensorView: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let shape: [Int]
    public let strides: [Int]

    public init(base: UnsafeMutablePointer<Float>, shape: [Int], strides: [Int]) {
        precondition(shape.count == strides.count, "TensorView shape and strides differ in rank")
        self.base = base
        self.shape = shape
        self.strides = strides
    }

    /// A contiguous row-major view.
    public init(contiguous base: UnsafeMutablePointer<Float>, shape: [Int]) {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        self.init(base: base, shape: shape, strides: strides)
    }

    public var rank: Int { shape.count }
    public var elementCount: Int { shape.reduce(1, *) }

    /// Copies rows `t0 ..< t0 + rows` of a [B, T, H, D] view at (batch, head) into `destination`
    /// as a contiguous [rows, D] block.
    @inline(__always)
    public func gatherRows(batch: Int, head: Int, t0: Int, rows: Int, into destination: UnsafeMutablePointer<Float>) {
        let width = shape[3]
        let rowStride = strides[1]
        let columnStride = strides[3]
        var source = base + batch * strides[0] + head * strides[2] + t0 * rowStride
        var target = destination
        if columnStride == 1 {
            for _ in 0..<rows {
                target.update(from: source, count: width)
                source += rowStride
                target += width
            }
        } else {
            for _ in 0..<rows {
                for j in 0..<width { target[j] = source[j * columnStride] }
                source += rowStride
                target += width
            }
        }
    }

    /// Writes a contiguous [rows, D] block into rows `t0 ..< t0 + rows` at (batch, head).
    @inline(__always)
    public func scatterRows(batch: Int, head: Int, t0: Int, rows: Int, from source: UnsafePointer<Float>) {
        let width = shape[3]
        let rowStride = strides[1]
        let columnStride = strides[3]
        var target = base + batch * strides[0] + head * strides[2] + t0 * rowStride
        var from = source
        if columnStride == 1 {
            for _ in 0..<rows {
                target.update(from: from, count: width)
                target += rowStride
                from += width
            }
        } else {
            for _ in 0..<rows {
                for j in 0..<width { target[j * columnStride] = from[j] }
                target += rowStride
                from += width
            }
        }
    }
}
