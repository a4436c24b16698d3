import CSlay
import SlayCore

/// Writes a status and message into the caller's optional slay_error.
func report(_ status: SlayStatus, _ message: String, into err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    guard let err else { return status.rawValue }
    err.pointee.code = status.rawValue
    let capacity = Int(SLAY_ERROR_MESSAGE_SIZE)
    let offset = MemoryLayout<slay_error>.offset(of: \slay_error.message)!
    let target = (UnsafeMutableRawPointer(err) + offset).bindMemory(to: UInt8.self, capacity: capacity)
    var bytes = Array(message.utf8.prefix(capacity - 1))
    // Never cut a UTF-8 sequence in half.
    if bytes.count == capacity - 1 {
        while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
        if let last = bytes.last, last >= 0xC0 { bytes.removeLast() }
    }
    for (i, byte) in bytes.enumerated() { target[i] = byte }
    target[bytes.count] = 0
    return status.rawValue
}

/// Runs one C entry point's body: any SlayError becomes its status and message; anything else
/// is reported as an internal error. Success clears the message.
func withStatus(_ err: UnsafeMutablePointer<slay_error>?, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return report(.ok, "", into: err)
    } catch let error as SlayError {
        return report(error.status, error.message, into: err)
    } catch {
        return report(.internal, "unexpected error: \(error)", into: err)
    }
}

/// Checks `struct_size` of a versioned parameter struct: smaller than the first published
/// layout is a bad argument, larger than this build knows is a newer caller.
func checkStructSize(_ size: UInt32, of name: String, current: Int) throws {
    if Int(size) < current {
        throw SlayError.invalid("\(name).struct_size is \(size); expected \(current) (call the matching _init function)")
    }
    if Int(size) > current {
        throw SlayError(.versionMismatch, "\(name).struct_size is \(size) but this libslay knows \(current) bytes; the caller was built against a newer slay.h")
    }
}

func require<T>(_ pointer: T?, _ name: String) throws -> T {
    guard let pointer else { throw SlayError.invalid("\(name) is NULL") }
    return pointer
}

/// Converts a C flag that must be 0 or 1.
func flag(_ value: Int32, _ name: String) throws -> Bool {
    guard value == 0 || value == 1 else { throw SlayError.invalid("\(name) must be 0 or 1, got \(value)") }
    return value == 1
}

/// Reads a versioned parameter struct: its first field, struct_size, is checked before anything
/// else is read, so an older (smaller) caller struct is never read past its end.
func readVersioned<T>(_ pointer: UnsafePointer<T>, name: String) throws -> T {
    let size = UnsafeRawPointer(pointer).load(as: UInt32.self)
    try checkStructSize(size, of: name, current: MemoryLayout<T>.size)
    return pointer.pointee
}
