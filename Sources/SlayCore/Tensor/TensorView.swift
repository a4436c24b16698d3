import CSlayCPU
import SlayKernels

/// A tensor in caller memory: base pointer, element type, logical shape and element strides.
/// Elements are fp32, fp16 or bf16 (`element`); arithmetic is fp32 whatever they are: half
/// elements are widened in the loads below (gatherRows, load) and rounded to nearest-even in the
/// stores (scatterRows, store, storeScaled), never copied as a whole tensor.
///
/// SlayCore trusts that `raw` addresses every element the shape and strides describe: the
/// C-ABI layer proves that sizes and offsets do not overflow before it builds a view. Views of
/// inputs are never written through.
public struct TensorView: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    /// The element type; `base` (a Float pointer) may only be indexed when it is `.f32`.
    public let element: ElementType
    /// Extents and element strides in fixed storage (rank ≤ 4, unused entries 1 and 0), so that
    /// building and reading a view never allocates (decode steps are allocation-free).
    public let extents: SIMD4<Int>
    public let steps: SIMD4<Int>
    public let rank: Int

    /// The first element as fp32 storage (meaningful for `.f32` views only).
    @inline(__always)
    public var base: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }

    public init(base: UnsafeMutablePointer<Float>, extents: SIMD4<Int>, steps: SIMD4<Int>, rank: Int) {
        self.init(raw: UnsafeMutableRawPointer(base), element: .f32, extents: extents, steps: steps, rank: rank)
    }

    public init(raw: UnsafeMutableRawPointer, element: ElementType, extents: SIMD4<Int>, steps: SIMD4<Int>, rank: Int) {
        self.raw = raw
        self.element = element
        self.extents = extents
        self.steps = steps
        self.rank = rank
    }

    /// The same memory with other extents and strides (same element type).
    public func reshaped(extents: SIMD4<Int>, steps: SIMD4<Int>, rank: Int) -> TensorView {
        TensorView(raw: raw, element: element, extents: extents, steps: steps, rank: rank)
    }

    /// The element at `offset` (in elements from the first) as fp32 (exact for every type).
    @inline(__always)
    public func load(_ offset: Int) -> Float {
        switch element {
        case .f32: return base[offset]
        case .f16: return Float(Float16(bitPattern: (raw + 2 * offset).loadUnaligned(as: UInt16.self)))
        case .bf16: return Float(bitPattern: UInt32((raw + 2 * offset).loadUnaligned(as: UInt16.self)) << 16)
        }
    }

    /// Writes `value` at `offset`, rounded to nearest-even for half types.
    @inline(__always)
    public func store(_ value: Float, at offset: Int) {
        switch element {
        case .f32: base[offset] = value
        case .f16: (raw + 2 * offset).storeBytes(of: Float16(value).bitPattern, as: UInt16.self)
        case .bf16: (raw + 2 * offset).storeBytes(of: SlayKernels.HalfPrecision.bfloat16Bits(value), as: UInt16.self)
        }
    }

    /// target[j·stride] = source[j]·scale for j < count, from `offset` on: the normalised output
    /// stores. fp32 multiplies and stores; half types round each product once (nearest-even), so
    /// a half output is exactly the fp32 output rounded.
    @inline(__always)
    public func storeScaled(_ source: UnsafePointer<Float>, scale: Float, count: Int, at offset: Int, stride: Int) {
        if element == .f32 {
            let target = base + offset
            if stride == 1 {
                for j in 0..<count { target[j] = source[j] * scale }
            } else {
                for j in 0..<count { target[j * stride] = source[j] * scale }
            }
        } else {
            DecodeKernels.storeScaled(element, source, scale: scale, count: count,
                                      into: raw + offset * element.bytes, stride: stride)
        }
    }

    /// target[j] = element (offset + j·stride) as fp32, for j < count.
    @inline(__always)
    public func loadRow(at offset: Int, stride: Int, count: Int, into target: UnsafeMutablePointer<Float>) {
        if element == .f32 {
            let source = base + offset
            if stride == 1 {
                target.update(from: source, count: count)
            } else {
                for j in 0..<count { target[j] = source[j * stride] }
            }
        } else {
            DecodeKernels.load(element, raw + offset * element.bytes, stride: stride, count: count, into: target)
        }
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
        guard element == .f32 else {
            let first = batch * steps[0] + head * steps[2] + t0 * steps[1]
            DecodeKernels.loadRows(element, raw + first * element.bytes, rowStride: steps[1], columnStride: steps[3],
                                   rows: rows, width: extents[3], into: destination)
            // Half rows are short (a row of 64 is two cache lines) and strided, which leaves the
            // hardware prefetchers little to go on: ask for the next block of rows now, so they
            // arrive while this block is computed on.
            let next = min(rows, extents[1] - t0 - rows)
            let rowBytes = ((extents[3] - 1) * steps[3] + 1) * element.bytes
            for i in 0..<max(next, 0) {
                let row = raw + (first + (rows + i) * steps[1]) * element.bytes
                var offset = 0
                while offset < rowBytes {
                    slaycpu_prefetch(row + offset)
                    offset += 64
                }
                slaycpu_prefetch(row + rowBytes - 1)
            }
            return
        }
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
        guard element == .f32 else {
            let first = batch * steps[0] + head * steps[2] + t0 * steps[1]
            DecodeKernels.storeRows(element, source, rows: rows, width: extents[3], into: raw + first * element.bytes,
                                    rowStride: steps[1], columnStride: steps[3])
            return
        }
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
