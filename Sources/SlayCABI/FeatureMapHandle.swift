import CSlay
import SlayCore

/// What a `slay_feature_map*` stands for: the SlayCore map plus the params it was created with.
/// C holds a HandleRegistry token, never this object's address.
final class FeatureMapHandle {
    let map: FeatureMap
    let params: slay_feature_map_params

    init(map: FeatureMap, params: slay_feature_map_params) {
        self.map = map
        self.params = params
    }

    /// The handle of a live `slay_feature_map*`; a NULL, freed or foreign value is
    /// SLAY_ERR_INVALID_ARGUMENT, checked before any reference is formed.
    static func from(_ pointer: OpaquePointer?, _ name: String = "fm") throws -> FeatureMapHandle {
        guard let pointer else { throw SlayError.invalid("\(name) is NULL") }
        guard let handle = featureMapHandles.object(pointer) else {
            throw SlayError.invalid("\(name) is not a live slay_feature_map (freed, never created, or another handle type)")
        }
        return handle
    }

    /// Registers this handle and returns the token C sees.
    func register() throws -> OpaquePointer { try featureMapHandles.register(self) }
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
