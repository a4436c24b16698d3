/// The library version; the C header's SLAY_VERSION_* macros must agree (checked by the tests).
public enum SlayVersion {
    public static let major = 0
    public static let minor = 1
    public static let patch = 0
    public static let abi = 1
    public static var number: Int { major * 10000 + minor * 100 + patch }
    public static var string: String { "\(major).\(minor).\(patch)" }
}
