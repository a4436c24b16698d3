import CSlay
import XCTest
@testable import SlayCABI

/// Caller-owned float memory for C-ABI tests, filled with a sentinel so that any write shows.
final class CBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, repeating value: Float) {
        self.count = count
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: value, count: count)
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count, repeating: 0)
        for (i, v) in values.enumerated() { pointer[i] = v }
    }

    deinit { pointer.deallocate() }

    var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    var bits: [UInt32] { values.map(\.bitPattern) }
}

/// A contiguous float32 slay_tensor over `data` (any rank ≤ 4; entries beyond `shape` are 0).
func cTensor(_ data: UnsafeMutableRawPointer?, _ shape: [Int64], strides explicit: [Int64]? = nil) -> slay_tensor {
    var strides = [Int64](repeating: 1, count: shape.count)
    var running: Int64 = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= max(shape[axis], 1)
    }
    let s = explicit ?? strides
    func at(_ array: [Int64], _ i: Int) -> Int64 { i < array.count ? array[i] : 0 }
    var t = slay_tensor()
    t.data = data
    t.dtype = SLAY_DTYPE_F32
    t.ndim = Int32(shape.count)
    t.shape = (at(shape, 0), at(shape, 1), at(shape, 2), at(shape, 3))
    t.strides = (at(s, 0), at(s, 1), at(s, 2), at(s, 3))
    return t
}

func cTensor(_ buffer: CBuffer, _ shape: [Int64], strides: [Int64]? = nil) -> slay_tensor {
    cTensor(UnsafeMutableRawPointer(buffer.pointer), shape, strides: strides)
}

extension slay_tensor {
    mutating func setShape(_ axis: Int, _ value: Int64) {
        withUnsafeMutableBytes(of: &shape) { $0.bindMemory(to: Int64.self)[axis] = value }
    }
    mutating func setStride(_ axis: Int, _ value: Int64) {
        withUnsafeMutableBytes(of: &strides) { $0.bindMemory(to: Int64.self)[axis] = value }
    }
}

extension slay_error {
    /// A slay_error full of garbage, so that a call that forgets to write it shows.
    static var garbage: slay_error {
        var err = slay_error()
        err.code = 12345
        withUnsafeMutableBytes(of: &err.message) { bytes in
            for i in 0..<bytes.count { bytes[i] = 0x41 }   // 'A', no terminator
        }
        return err
    }

    /// The NUL-terminated message (nil if there is no terminator within the array).
    var text: String? {
        withUnsafeBytes(of: message) { bytes in
            guard let end = bytes.firstIndex(of: 0) else { return nil }
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }
}

/// Calls `body` with a garbage-filled slay_error and again with NULL, and checks the contract of
/// "Error details": the same status both times, err->code = status, and a message that is
/// non-empty on failure and "" on success. Returns the message.
@discardableResult
func XCTAssertStatus(_ expected: Int32, _ label: @autoclosure () -> String = "",
                     file: StaticString = #filePath, line: UInt = #line,
                     _ body: (UnsafeMutablePointer<slay_error>?) -> Int32) -> String {
    var err = slay_error.garbage
    let status = body(&err)
    XCTAssertEqual(status, expected, "status \(status) (\(err.text ?? "unterminated")). \(label())", file: file, line: line)
    XCTAssertEqual(err.code, status, "err.code differs from the status. \(label())", file: file, line: line)
    let text = err.text
    XCTAssertNotNil(text, "err.message is not NUL-terminated. \(label())", file: file, line: line)
    if expected == SLAY_OK {
        XCTAssertEqual(text, "", "success leaves a message. \(label())", file: file, line: line)
    } else {
        XCTAssertFalse((text ?? "").isEmpty, "empty error message. \(label())", file: file, line: line)
        XCTAssertEqual(body(nil), expected, "different status with err = NULL. \(label())", file: file, line: line)
    }
    return text ?? ""
}

/// A SLAY feature map through the C API (default params with the given edits); fails the test
/// and returns nil when creation fails.
func makeCFeatureMap(headDim: Int64 = 4, numHeads: Int64 = 1, edit: (inout slay_feature_map_params) -> Void = { _ in },
                     file: StaticString = #filePath, line: UInt = #line) -> OpaquePointer? {
    var params = slay_feature_map_params()
    XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&params), SLAY_OK, file: file, line: line)
    params.head_dim = headDim
    params.num_heads = numHeads
    params.poly_dim = 3
    params.prf_dim = 4
    edit(&params)
    var handle: OpaquePointer?
    var err = slay_error()
    XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &handle, &err), SLAY_OK, err.text ?? "", file: file, line: line)
    return handle
}
