/// Stable status codes; the C header's SLAY_ERR_* values. Never renumber.
public enum SlayStatus: Int32, Sendable {
    case ok = 0
    case invalidArgument = -1
    case shape = -2
    case layout = -3
    case dtype = -4
    case overflow = -5
    case outOfMemory = -6
    case corruptData = -7
    case versionMismatch = -8
    case unsupported = -9
    case bufferTooSmall = -10
    case `internal` = -11
    case stateMismatch = -12
    case nonFinite = -13

    /// The static English name `slay_status_string` returns.
    public var name: String {
        switch self {
        case .ok: return "ok"
        case .invalidArgument: return "invalid argument"
        case .shape: return "shape mismatch"
        case .layout: return "unsupported layout or strides"
        case .dtype: return "unsupported dtype"
        case .overflow: return "size overflow"
        case .outOfMemory: return "out of memory"
        case .corruptData: return "corrupt data"
        case .versionMismatch: return "version mismatch"
        case .unsupported: return "unsupported operation"
        case .bufferTooSmall: return "buffer too small"
        case .internal: return "internal error"
        case .stateMismatch: return "state does not match"
        case .nonFinite: return "non-finite input"
        }
    }
}

/// The one error type SlayCore throws: a status plus a message that names the offending argument.
public struct SlayError: Error, Sendable, CustomStringConvertible {
    public let status: SlayStatus
    public let message: String

    public init(_ status: SlayStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.name): \(message)" }

    public static func invalid(_ message: String) -> SlayError { SlayError(.invalidArgument, message) }
    public static func shape(_ message: String) -> SlayError { SlayError(.shape, message) }
    public static func layout(_ message: String) -> SlayError { SlayError(.layout, message) }
    public static func overflow(_ message: String) -> SlayError { SlayError(.overflow, message) }
}
