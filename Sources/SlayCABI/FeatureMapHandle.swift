import CSlay
import SlayCore

/// What a `slay_feature_map*` points to: the SlayCore map plus the params it was created with.
/// The magic word catches some misuse (a freed or foreign handle) before it corrupts memory.
final class FeatureMapHandle {
    static let liveMagic: UInt64 = 0x534C_4159_464D_4150   // "SLAYFMAP"
    var magic = liveMagic
    let map: FeatureMap
    let params: slay_feature_map_params

    init(map: FeatureMap, params: slay_feature_map_params) {
        self.map = map
        self.params = params
    }

    static func from(_ pointer: OpaquePointer?, _ name: String = "fm") throws -> FeatureMapHandle {
        guard let pointer else { throw SlayError.invalid("\(name) is NULL") }
        let handle = Unmanaged<FeatureMapHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
        guard handle.magic == liveMagic else {
            throw SlayError.invalid("\(name) is not a live slay_feature_map (freed or wrong handle type)")
        }
        return handle
    }
}

/// Static C strings for parameter names, so `slay_feature_map_param_name` can hand them out.
enum ParameterNameTable {
    static func cString(_ name: String) -> UnsafePointer<CChar>? {
        let text: StaticString
        switch name {
        case "anchors": text = "anchors"
        case "omega": text = "omega"
        case "bias": text = "bias"
        case "maclaurin": text = "maclaurin"
        case "sketch": text = "sketch"
        default: return nil
        }
        return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
