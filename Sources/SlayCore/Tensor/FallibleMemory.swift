#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The library's one fallible allocator. Every allocation whose size a caller controls goes
/// through it (HeapArray, ScratchBuffer, the handle table), so running out of memory is
/// SlayError(.outOfMemory), never an abort: Swift's own arrays, strings and objects abort the host
/// process when malloc fails. What may still use them is listed in docs/reliability.md ("Memory").
///
/// Tests can make one chosen allocation fail (AllocationFaults) to show that every allocation on a
/// path is fallible and that a failure leaves outputs and state untouched.
public enum FallibleMemory {
    /// `bytes` (≥ 1) bytes aligned to `alignment` (a power of two, ≥ the pointer size), uninitialised.
    public static func allocate(bytes: Int, alignment: Int = 64, what: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        try AllocationFaults.check(bytes: bytes, what: what())
        var raw: UnsafeMutableRawPointer?
        guard bytes >= 0, posix_memalign(&raw, alignment, Swift.max(bytes, 1)) == 0, let memory = raw else {
            throw SlayError(.outOfMemory, "could not allocate \(bytes) bytes for \(what())")
        }
        return memory
    }

    /// realloc(3) that throws instead of returning NULL; `memory` stays valid on failure.
    public static func reallocate(_ memory: UnsafeMutableRawPointer?, bytes: Int,
                                  what: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        try AllocationFaults.check(bytes: bytes, what: what())
        guard bytes >= 0, let grown = realloc(memory, Swift.max(bytes, 1)) else {
            throw SlayError(.outOfMemory, "could not allocate \(bytes) bytes for \(what())")
        }
        return grown
    }
}

/// Fault injection for tests (`@testable import SlayCore`; not reachable from C): arms a failure
/// of the n-th next fallible allocation, once. Process-wide, behind a mutex; unarmed it costs one
/// lock per allocation, and the library allocates only when a call starts, never per token.
enum AllocationFaults {
    private final class Counter: @unchecked Sendable {
        var lock = pthread_mutex_t()
        /// Allocations to let through before the one that fails; −1 = not armed.
        var remaining = -1
        /// Failures injected since the process started.
        var injected = 0
        init() { pthread_mutex_init(&lock, nil) }
    }
    private static let counter = Counter()

    private static func locked<R>(_ body: (Counter) -> R) -> R {
        pthread_mutex_lock(&counter.lock)
        defer { pthread_mutex_unlock(&counter.lock) }
        return body(counter)
    }

    static func check(bytes: Int, what: @autoclosure () -> String) throws {
        let fail = locked { c -> Bool in
            guard c.remaining >= 0 else { return false }
            if c.remaining > 0 { c.remaining -= 1; return false }
            c.remaining = -1
            c.injected += 1
            return true
        }
        if fail { throw SlayError(.outOfMemory, "could not allocate \(bytes) bytes for \(what()) (injected failure)") }
    }

    /// Lets `allocations` fallible allocations succeed, then fails the next one (once).
    static func arm(failingAfter allocations: Int) { locked { $0.remaining = allocations } }
    static func disarm() { locked { $0.remaining = -1 } }
    static var injected: Int { locked { $0.injected } }

    /// Runs `body` with the allocation after the first `allocations` failing; returns whether a
    /// failure was injected (false: `body` made fewer allocations) and what `body` threw, if anything.
    static func run(failingAfter allocations: Int, _ body: () throws -> Void) -> (injected: Bool, error: Error?) {
        let before = injected
        arm(failingAfter: allocations)
        defer { disarm() }
        do { try body() } catch { return (injected > before, error) }
        return (injected > before, nil)
    }
}
