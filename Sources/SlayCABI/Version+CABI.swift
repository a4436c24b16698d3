import CSlay
import SlayCore

@_cdecl("slay_abi_version")
public func slay_abi_version() -> Int32 { Int32(SlayVersion.abi) }
