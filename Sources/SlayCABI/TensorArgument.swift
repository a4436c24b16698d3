import CSlay
import SlayCore

/// A validated slay_tensor: its SlayCore view plus the byte range it covers, for overlap checks.
struct TensorArgument {
    let name: String
    let view: TensorView
    let firstByte: UInt
    let endByte: UInt

    /// Validates pointer, dtype, rank, extents, strides and the size of the addressed span.
    /// Outputs must also be free of self-overlap. `halfPrecision`: the call also takes
    /// SLAY_DTYPE_F16 and SLAY_DTYPE_BF16 (converted in its loads and stores); otherwise only
    /// SLAY_DTYPE_F32.
    init(_ pointer: UnsafePointer<slay_tensor>?, name: String, rank: Int, isOutput: Bool,
         halfPrecision: Bool = false) throws {
        // No arrays on the success path: this runs on every decode step.
        guard let tensorPointer = pointer else { throw SlayError.invalid("\(name) is NULL") }
        let tensor = tensorPointer.pointee
        self.name = name
        guard let data = tensor.data else { throw SlayError.invalid("\(name).data is NULL") }
        let element: ElementType
        switch tensor.dtype {
        case SLAY_DTYPE_F32: element = .f32
        case SLAY_DTYPE_F16 where halfPrecision: element = .f16
        case SLAY_DTYPE_BF16 where halfPrecision: element = .bf16
        case SLAY_DTYPE_F64:
            let accepted = halfPrecision ? "SLAY_DTYPE_F32 (0), SLAY_DTYPE_F16 (2) or SLAY_DTYPE_BF16 (3)" : "SLAY_DTYPE_F32 (0)"
            throw SlayError(.dtype, "\(name).dtype is SLAY_DTYPE_F64 (1); libslay computes in fp32: convert \(name) to \(accepted) first")
        case SLAY_DTYPE_F16, SLAY_DTYPE_BF16:
            throw SlayError(.dtype, "\(name).dtype is \(tensor.dtype); this function supports only SLAY_DTYPE_F32 (0) for \(name)")
        default:
            let accepted = halfPrecision ? "SLAY_DTYPE_F32 (0), SLAY_DTYPE_F16 (2) and SLAY_DTYPE_BF16 (3)" : "only SLAY_DTYPE_F32 (0)"
            throw SlayError(.dtype, "\(name).dtype is \(tensor.dtype); this function supports \(accepted)")
        }
        guard UInt(bitPattern: data) % UInt(element.bytes) == 0 else {
            throw SlayError.layout("\(name).data is not aligned to \(element.bytes) bytes (\(element.name) elements must be aligned)")
        }
        guard Int(tensor.ndim) == rank else {
            throw SlayError.shape("\(name).ndim is \(tensor.ndim), expected \(rank)")
        }
        let shape = SIMD4<Int64>(tensor.shape.0, tensor.shape.1, tensor.shape.2, tensor.shape.3)
        let strides = SIMD4<Int64>(tensor.strides.0, tensor.strides.1, tensor.strides.2, tensor.strides.3)
        func describe() -> String {
            "shape \((0..<rank).map { shape[$0] }), strides \((0..<rank).map { strides[$0] })"
        }
        for axis in 0..<rank {
            guard shape[axis] >= 1 else {
                throw SlayError.shape("\(name).shape[\(axis)] is \(shape[axis]); extents must be >= 1")
            }
            guard strides[axis] >= 0 else {
                throw SlayError.layout("\(name).strides[\(axis)] is \(strides[axis]); negative strides are not supported")
            }
        }
        // Largest element offset, then bytes: both must fit, and so must the end address.
        var span: Int64 = 0
        var count: Int64 = 1
        for axis in 0..<rank {
            let (term, o1) = (shape[axis] - 1).multipliedReportingOverflow(by: strides[axis])
            let (sum, o2) = span.addingReportingOverflow(term)
            let (product, o3) = count.multipliedReportingOverflow(by: shape[axis])
            if o1 || o2 || o3 { throw SlayError.overflow("\(name) addresses more than 2^63 elements (\(describe()))") }
            span = sum
            count = product
        }
        let (elements, o4) = span.addingReportingOverflow(1)
        let (bytes, o5) = elements.multipliedReportingOverflow(by: Int64(element.bytes))
        let start = UInt(bitPattern: data)
        if o4 || o5 || UInt(bytes) > UInt.max - start {
            throw SlayError.overflow("\(name) spans more bytes than the address space (\(describe()))")
        }
        if isOutput {
            // Sufficient for no self-overlap: visiting dimensions of extent > 1 by increasing stride,
            // each stride clears the whole extent of the dimensions before it.
            var visited = SIMD4<Int64>(repeating: 0)
            var reach: Int64 = 1
            for _ in 0..<rank {
                var next = -1
                for axis in 0..<rank where visited[axis] == 0 && shape[axis] > 1 {
                    if next < 0 || strides[axis] < strides[next] { next = axis }
                }
                guard next >= 0 else { break }
                visited[next] = 1
                guard strides[next] >= reach else {
                    throw SlayError.layout("\(name) overlaps itself: strides[\(next)] = \(strides[next]) (\(describe()))")
                }
                reach = strides[next] * shape[next]
            }
        }
        var extents = SIMD4<Int>(repeating: 1)
        var steps = SIMD4<Int>(repeating: 0)
        for axis in 0..<rank {
            extents[axis] = Int(shape[axis])
            steps[axis] = Int(strides[axis])
        }
        self.view = TensorView(raw: data, element: element, extents: extents, steps: steps, rank: rank)
        self.firstByte = start
        self.endByte = start + UInt(bytes)
    }

    func overlaps(_ other: TensorArgument) -> Bool {
        firstByte < other.endByte && other.firstByte < endByte
    }

    static func checkNoOverlap(output: TensorArgument, input: TensorArgument) throws {
        if output.overlaps(input) {
            throw SlayError.layout("\(output.name) overlaps input \(input.name); outputs must not alias inputs")
        }
    }

    /// Plain input arrays read in place during the call (options.decay, the slots of a step) must
    /// not share memory with an output either: a write through it would change them mid-call.
    static func checkNoOverlap(output: TensorArgument, array: UnsafeRawPointer?, bytes: Int, name: String) throws {
        guard let array, bytes > 0 else { return }
        let first = UInt(bitPattern: array)
        let (end, overflow) = first.addingReportingOverflow(UInt(bytes))
        if first < output.endByte && output.firstByte < (overflow ? UInt.max : end) {
            throw SlayError.layout("\(output.name) overlaps input \(name); outputs must not alias inputs")
        }
    }

    /// Outputs must not share memory with any input of the same call.
    static func checkNoOverlap(output: TensorArgument, inputs: [TensorArgument]) throws {
        for input in inputs where output.overlaps(input) {
            throw SlayError.layout("\(output.name) overlaps input \(input.name); outputs must not alias inputs")
        }
    }
}
