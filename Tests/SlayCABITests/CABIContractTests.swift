import CSlay
import XCTest
@testable import SlayCABI

/// The exported C functions called directly: NULLs, struct versions and status strings.
final class CABIContractTests: XCTestCase {
    func testStatusStringsAreDistinct() {
        let codes: [Int32] = [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12]
        let names = codes.map { String(cString: SlayCABI.slay_status_string($0)) }
        XCTAssertEqual(Set(names).count, codes.count)
        XCTAssertEqual(String(cString: SlayCABI.slay_status_string(12345)), "unknown status")
        XCTAssertEqual(SlayCABI.slay_abi_version(), SLAY_ABI_VERSION)
        XCTAssertEqual(SlayCABI.slay_version_number(), SLAY_VERSION_MAJOR * 10000 + SLAY_VERSION_MINOR * 100 + SLAY_VERSION_PATCH)
    }

    func testCreateRejectsNullAndBadStructSize() {
        var err = slay_error()
        var handle: OpaquePointer? = OpaquePointer(bitPattern: 1)
        XCTAssertEqual(SlayCABI.slay_feature_map_create(nil, &handle, &err), SLAY_ERR_INVALID_ARGUMENT)
        XCTAssertNil(handle)
        var params = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&params), SLAY_OK)
        params.head_dim = 4
        params.struct_size = 4
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &handle, &err), SLAY_ERR_INVALID_ARGUMENT)
        params.struct_size = UInt32(MemoryLayout<slay_feature_map_params>.size + 8)
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &handle, &err), SLAY_ERR_VERSION_MISMATCH)
        XCTAssertEqual(err.code, SLAY_ERR_VERSION_MISMATCH)
        params.struct_size = UInt32(MemoryLayout<slay_feature_map_params>.size)
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &handle, &err), SLAY_OK)
        var dim: Int64 = 0
        XCTAssertEqual(SlayCABI.slay_feature_map_dim(handle, &dim, nil), SLAY_OK)
        XCTAssertEqual(dim, 2 * 8 * 8)
        XCTAssertEqual(SlayCABI.slay_feature_map_dim(handle, nil, &err), SLAY_ERR_INVALID_ARGUMENT)
        SlayCABI.slay_feature_map_free(handle)
        SlayCABI.slay_feature_map_free(nil)
    }

    func testAttentionRejectsNullTensors() {
        var params = slay_feature_map_params()
        _ = SlayCABI.slay_feature_map_params_init(&params)
        params.head_dim = 4
        var handle: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &handle, nil), SLAY_OK)
        defer { SlayCABI.slay_feature_map_free(handle) }
        var err = slay_error()
        XCTAssertEqual(SlayCABI.slay_linear_attention(handle, nil, nil, nil, nil, nil, &err), SLAY_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(withUnsafeBytes(of: err.message) { $0.first != 0 })
    }
}
