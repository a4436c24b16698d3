import CSlay
import SlayCore

private let versionText: StaticString = "0.1.0"

@_cdecl("slay_version_string")
public func slay_version_string() -> UnsafePointer<CChar> {
    UnsafeRawPointer(versionText.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("slay_version_number")
public func slay_version_number() -> Int32 { Int32(SlayVersion.number) }

@_cdecl("slay_abi_version")
public func slay_abi_version() -> Int32 { Int32(SlayVersion.abi) }

@_cdecl("slay_status_string")
public func slay_status_string(_ status: Int32) -> UnsafePointer<CChar> {
    let text: StaticString
    switch SlayStatus(rawValue: status) {
    case .ok?: text = "ok"
    case .invalidArgument?: text = "invalid argument"
    case .shape?: text = "shape mismatch"
    case .layout?: text = "unsupported layout or strides"
    case .dtype?: text = "unsupported dtype"
    case .overflow?: text = "size overflow"
    case .outOfMemory?: text = "out of memory"
    case .corruptData?: text = "corrupt data"
    case .versionMismatch?: text = "version mismatch"
    case .unsupported?: text = "unsupported operation"
    case .bufferTooSmall?: text = "buffer too small"
    case .internal?: text = "internal error"
    case .stateMismatch?: text = "state does not match"
    case .nonFinite?: text = "non-finite input"
    case nil: text = "unknown status"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

private let avx2Text: StaticString = "avx2-fma"
private let portableText: StaticString = "portable"

@_cdecl("slay_kernel_variant")
public func slay_kernel_variant() -> UnsafePointer<CChar> {
    let text = KernelVariant.active == .avx2 ? avx2Text : portableText
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}
