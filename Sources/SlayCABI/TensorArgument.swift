import CSlay
import SlayCore

/// A validated slay_tensor: its SlayCore view plus the byte range it covers, for overlap checks.
struct TensorArgument {
    let name: String
    let view: TensorView
    let firstByte: UInt
    let endByte: UInt

    /// Validates pointer, dtype, rank, extents, strides and the size of the addressed span.
    /// Outputs must also be free of self-overlap.
    init(_ pointer: UnsafePointer<slay_tensor>?, name: String, rank: Int, isOutput: Bool) throws {
        let tensor = try require(pointer, name).pointee
        self.name = name
        guard let data = tensor.data else { throw SlayError.invalid("\(name).data is NULL") }
        guard tensor.dtype == SLAY_DTYPE_F32 else {
            throw SlayError(.dtype, "\(name).dtype is \(tensor.dtype); this function supports only SLAY_DTYPE_F32 (0)")
        }
        guard Int(tensor.ndim) == rank else {
            throw SlayError.shape("\(name).ndim is \(tensor.ndim), expected \(rank)")
        }
        let shape = withUnsafeBytes(of: tensor.shape) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
        let strides = withUnsafeBytes(of: tensor.strides) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
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
        for axis in 0..<rank {
            let (term, o1) = (shape[axis] - 1).multipliedReportingOverflow(by: strides[axis])
            let (sum, o2) = span.addingReportingOverflow(term)
            if o1 || o2 { throw SlayError.overflow("\(name) addresses more than 2^63 elements (shape \(shape), strides \(strides))") }
            span = sum
        }
        let (elements, o3) = span.addingReportingOverflow(1)
        let (bytes, o4) = elements.multipliedReportingOverflow(by: Int64(MemoryLayout<Float>.stride))
        let start = UInt(bitPattern: data)
        if o3 || o4 || UInt(bytes) > UInt.max - start {
            throw SlayError.overflow("\(name) spans more bytes than the address space (shape \(shape), strides \(strides))")
        }
        var count: Int64 = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            if overflow { throw SlayError.overflow("\(name) has more than 2^63 elements (shape \(shape))") }
            count = product
        }
        if isOutput {
            // Sufficient for no self-overlap: sorted by stride, each stride clears the previous
            // dimension's whole extent.
            let axes = (0..<rank).filter { shape[$0] > 1 }.sorted { strides[$0] < strides[$1] }
            var reach: Int64 = 1
            for axis in axes {
                guard strides[axis] >= reach else {
                    throw SlayError.layout("\(name) overlaps itself: strides[\(axis)] = \(strides[axis]) with shape \(shape), strides \(strides)")
                }
                reach = strides[axis] * shape[axis]
            }
        }
        self.view = TensorView(base: data.assumingMemoryBound(to: Float.self),
                               shape: shape.map { Int($0) }, strides: strides.map { Int($0) })
        self.firstByte = start
        self.endByte = start + UInt(bytes)
    }

    func overlaps(_ other: TensorArgument) -> Bool {
        firstByte < other.endByte && other.firstByte < endByte
    }

    /// Outputs must not share memory with any input of the same call.
    static func checkNoOverlap(output: TensorArgument, inputs: [TensorArgument]) throws {
        for input in inputs where output.overlaps(input) {
            throw SlayError.layout("\(output.name) overlaps input \(input.name); outputs must not alias inputs")
        }
    }
}
