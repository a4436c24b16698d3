// The C math library (exp, expf, log, …), imported once for every file of SlayCore: Swift's
// standard library has no transcendental functions, and the platform module differs by libc.
#if canImport(Glibc)
@_exported import Glibc
#elseif canImport(Musl)
@_exported import Musl
#elseif canImport(Darwin)
@_exported import Darwin
#endif
