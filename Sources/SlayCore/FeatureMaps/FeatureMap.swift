/// Which side of the kernel k(q, k) = φ(q)·ψ(k) rows are mapped for.
public enum FeatureRole: Int32, Sendable {
    case query = 0
    case key = 1
}

/// A finite feature map for one or more heads: the only thing the attention engine needs to know
/// about a kernel. Maps may be asymmetric (query and key features differ), which the ELA kernels
/// need. A new kernel is one conforming file.
///
/// Maps are immutable while in use, so one map serves many threads; `setParameter` is the only
/// mutation and callers must not run it concurrently with anything else on the same map.
public protocol FeatureMap: AnyObject, Sendable {
    /// Input width d of every head.
    var headDim: Int { get }
    /// Heads with their own parameters (key heads under grouped-query attention).
    var numHeads: Int { get }
    /// Features per head, m.
    var featureDim: Int { get }
    /// True when every feature is ≥ 0, so the normaliser φ(q)·Σφ(k) cannot be negative.
    var isPositive: Bool { get }
    /// A hash of everything that determines the features (kind, dims, settings, matrices).
    var identity: UInt64 { get }

    /// Names of the caller-visible parameter arrays ("anchors", "omega", ...).
    var parameterNames: [String] { get }
    func parameterShape(_ name: String) -> [Int]?
    /// The values of parameter `name` (nil for an unknown name), in the layout of its shape.
    func parameter(_ name: String) -> HeapArray<Float>?
    func setParameter(_ name: String, values: UnsafeBufferPointer<Float>) throws

    /// Scratch floats `features` needs for up to `rows` rows.
    func scratchFloats(rows: Int) -> Int

    /// Scratch floats `scores` needs for a block of `rows` rows (0 when it is not implemented).
    func scoreScratchFloats(rows: Int) -> Int

    /// Optional shortcut for the intra-chunk block: output[i, j] = φ(q_i)·ψ(k_j) for `rows` query
    /// and key rows, from a factorised kernel, reusing what `features` left in its scratch:
    /// `queryScratch` and `keyScratch` are the scratch regions of the `features` calls that just
    /// mapped these query and key rows. Returns false when the map has no such shortcut (the
    /// engine then multiplies the features).
    func scores(head: Int, rows: Int, queryScratch: UnsafePointer<Float>, keyScratch: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool

    /// Features of `rows` contiguous input rows [rows, headDim] of head `head`, written to the
    /// contiguous block `output` [rows, featureDim]. `scratch` holds `scratchFloats(rows:)` floats.
    func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int,
                  output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>)

    /// True when query and key rows get the same features (the role is ignored), so a decode
    /// step can map its key and query rows in one call.
    var rolesShareFeatures: Bool { get }

    /// True when features depend on the token position (cosFormer). Such maps cannot be used by
    /// partitioned state calls, whose shares could not agree on the slots' positions.
    var needsPositions: Bool { get }

    /// Features of rows at token positions firstPosition, firstPosition + 1, … (0-based within
    /// their sequence). Position-free maps ignore the positions (the default forwards to
    /// `features(role:head:input:rows:output:scratch:)`); the engine always calls this one.
    func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                  output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>)
}

extension FeatureMap {
    /// A Swift array copy of parameter `name`, for Swift callers and tests; code reachable from
    /// C reads `parameter(_:)` instead (a Swift array's allocation cannot fail with a status).
    public func parameterValues(_ name: String) -> [Float]? { parameter(name).map { Array($0) } }

    public var needsPositions: Bool { false }
    public var rolesShareFeatures: Bool { false }
    public func features(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                         output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        features(role: role, head: head, input: input, rows: rows, output: output, scratch: scratch)
    }
    public func scoreScratchFloats(rows: Int) -> Int { 0 }
    public func scores(head: Int, rows: Int, queryScratch: UnsafePointer<Float>, keyScratch: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool { false }
}

/// FNV-1a, the hash behind feature-map identities: stable across runs, platforms and bindings.
public struct IdentityHasher {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public mutating func combine(_ word: UInt64) {
        var w = word
        for _ in 0..<8 {
            value ^= w & 0xFF
            value = value &* 0x0000_0100_0000_01B3
            w >>= 8
        }
    }

    public mutating func combine(_ value: Int) { combine(UInt64(bitPattern: Int64(value))) }
    public mutating func combine(_ value: Double) { combine(value.bitPattern) }
    public mutating func combine(_ values: [Float]) {
        combine(values.count)
        for v in values { combine(UInt64(v.bitPattern)) }
    }
    /// The same words as an array of these values; nil hashes like an empty array.
    public mutating func combine(_ values: HeapArray<Float>?) {
        guard let values else { combine(0); return }
        combine(values.count)
        values.withUnsafeBufferPointer { for v in $0 { combine(UInt64(v.bitPattern)) } }
    }
    public mutating func combine(_ text: String) {
        for byte in text.utf8 { combine(UInt64(byte)) }
    }
}
