import CSlay
import XCTest
@testable import SlayCABI

/// The handle promises of slay.h ("Handles"): freed, double-freed, reused and foreign handles are
/// SLAY_ERR_INVALID_ARGUMENT (free: a no-op) and never reach another live object.
final class HandleRegistryTests: XCTestCase {
    private func makeMap(seed: UInt64 = 0) -> OpaquePointer? {
        var params = slay_feature_map_params()
        XCTAssertEqual(SlayCABI.slay_feature_map_params_init(&params), SLAY_OK)
        params.head_dim = 4
        params.seed = seed
        var fm: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_feature_map_create(&params, &fm, nil), SLAY_OK)
        return fm
    }

    private func identity(_ fm: OpaquePointer?) -> (Int32, UInt64) {
        var value: UInt64 = 0
        let status = SlayCABI.slay_feature_map_identity(fm, &value, nil)
        return (status, value)
    }

    func testUseAfterFreeAndDoubleFreeAreRefused() {
        let fm = makeMap()
        SlayCABI.slay_feature_map_free(fm)
        XCTAssertEqual(identity(fm).0, SLAY_ERR_INVALID_ARGUMENT)
        SlayCABI.slay_feature_map_free(fm)
        var state: OpaquePointer? = OpaquePointer(bitPattern: 0x40)
        XCTAssertEqual(SlayCABI.slay_state_create(fm, 1, 4, 1, &state, nil), SLAY_ERR_INVALID_ARGUMENT)
        XCTAssertNil(state)
    }

    /// The slot of a freed handle is reused by the next object, under a new generation: the stale
    /// handle neither reads nor frees the new one.
    func testAReusedSlotDoesNotAnswerToTheStaleHandle() {
        let stale = makeMap(seed: 1)
        SlayCABI.slay_feature_map_free(stale)
        for seed in UInt64(2)..<UInt64(50) {
            let fresh = makeMap(seed: seed)
            XCTAssertNotEqual(fresh, stale)
            let (status, id) = identity(fresh)
            XCTAssertEqual(status, SLAY_OK)
            XCTAssertEqual(identity(stale).0, SLAY_ERR_INVALID_ARGUMENT)
            SlayCABI.slay_feature_map_free(stale)
            XCTAssertEqual(identity(fresh).1, id, "the live map survived a stale free")
            SlayCABI.slay_feature_map_free(fresh)
        }
    }

    func testHandlesOfTheOtherTypeAndNonHandlesAreRefused() throws {
        let fm = makeMap()
        defer { SlayCABI.slay_feature_map_free(fm) }
        var state: OpaquePointer?
        XCTAssertEqual(SlayCABI.slay_state_create(fm, 2, 4, 1, &state, nil), SLAY_OK)
        defer { SlayCABI.slay_state_free(state) }
        XCTAssertEqual(identity(state).0, SLAY_ERR_INVALID_ARGUMENT)
        SlayCABI.slay_feature_map_free(state)
        SlayCABI.slay_state_free(fm)
        var bytes: UInt = 0
        XCTAssertEqual(SlayCABI.slay_state_serialized_size(state, &bytes, nil), SLAY_OK)
        XCTAssertEqual(identity(fm).0, SLAY_OK)
        var local = 0
        for bits in [UInt(1), 0x10, UInt.max, UInt(bitPattern: withUnsafeMutablePointer(to: &local) { Int(bitPattern: $0) })] {
            let fake = OpaquePointer(bitPattern: bits)
            XCTAssertEqual(identity(fake).0, SLAY_ERR_INVALID_ARGUMENT, "\(bits)")
            XCTAssertEqual(SlayCABI.slay_state_serialized_size(fake, &bytes, nil), SLAY_ERR_INVALID_ARGUMENT)
            SlayCABI.slay_feature_map_free(fake)
            SlayCABI.slay_state_free(fake)
        }
    }

    /// A registry retires a slot whose generation would wrap, so a token is never issued twice.
    func testRegistryTokensAreNeverReissued() throws {
        final class Box {}
        let registry = HandleRegistry<Box>(tag: 0x3)
        var seen = Set<UInt>()
        for _ in 0..<1000 {
            let token = try registry.register(Box())
            XCTAssertTrue(seen.insert(UInt(bitPattern: token)).inserted)
            XCTAssertNotNil(registry.object(token))
            XCTAssertTrue(registry.remove(token))
            XCTAssertFalse(registry.remove(token))
            XCTAssertNil(registry.object(token))
        }
    }

    /// The registry's reference is the only strong one once C holds the handle: free releases the
    /// object (no leak), and a lookup keeps it alive for the caller even across a concurrent free.
    func testFreeReleasesTheObjectAndALookupKeepsItAlive() throws {
        final class Box {}
        let registry = HandleRegistry<Box>(tag: 0x3)
        weak var weakBox: Box?
        let token: OpaquePointer = try {
            let box = Box()
            weakBox = box
            return try registry.register(box)
        }()
        XCTAssertNotNil(weakBox)
        var held = registry.object(token)
        registry.remove(token)
        XCTAssertNotNil(weakBox, "a caller's reference outlives the free")
        held = nil
        _ = held
        XCTAssertNil(weakBox, "freed once nobody holds it")
    }
}
