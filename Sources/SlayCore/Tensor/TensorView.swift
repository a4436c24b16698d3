/// A float32 tensor in caller memory: base pointer, logical shape and element strides.
///
/// SlayCore trusts that `base` addresses every element the shape and strides describe: the
/// C-ABI layer proves that sizes and offsets do not overflow before it builds a view. Views of
/// inputs are never written through.
public struct TensorView: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    /// Extents and element strides in fixed storage (rank ≤ 4, unused entries 1 and 0), so that
    /// building and reading a view never allocates (decode steps are allocation-free).
    public let extents: SIMD4<Int>
    public let steps: SIMD4<Int>
    public let rank: Int

    public init(base: UnsafeMutablePointer<Float>, extents: SIMD4<Int>, steps: SIMD4<Int>, rank: Int) {
        self.base = base
        self.extents = extents
        self.steps = steps
        self.rank = rank
    }

    public init(base: UnsafeMutablePointer<Float>, shape: [Int], strides: [Int]) {
        precondition(shape.count == strides.count && shape.count <= 4, "TensorView needs rank ≤ 4 and matching strides")
        var extents = SIMD4<Int>(repeating: 1)
        var steps = SIMD4<Int>(repeating: 0)
        for axis in 0..<shape.count {
            extents[axis] = shape[axis]
            steps[axis] = strides[axis]
        }
        self.init(base: base, extents: extents, steps: steps, rank: shape.count)
    }

    /// Shape and strides as arrays, for validation messages and comparisons off the hot path.
    public var shape: [Int] { (0..<rank).map { extents[$0] } }
    public var strides: [Int] { (0..<rank).map { steps[$0] } }

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

    public var elementCount: Int { (0..<rank).reduce(1) { $0 * extents[$1] } }

    /// Copies rows `t0 ..< t0 + rows` of a [B, T, H, D] view at (batch, head) into `destination`
    /// as a contiguous [rows, D] block.
    @inline(__always)
    public func gatherRows(batch: Int, head: Int, t0: Int, rows: Int, into destination: UnsafeMutablePointer<Float>) {
        let width = extents[3]
        let rowStride = steps[1]
        let columnStride = steps[3]
        var source = base + batch * steps[0] + head * steps[2] + t0 * rowStride
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
        let width = extents[3]
        let rowStride = steps[1]
        let columnStride = steps[3]
        var target = base + batch * steps[0] + head * steps[2] + t0 * rowStride
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
