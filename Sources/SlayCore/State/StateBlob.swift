/// The serialized form of a RecurrentState, for saving, moving and restoring it.
///
/// Layout (native byte order, recorded so a foreign blob is refused rather than misread):
///   0  magic "SLAYSTAT"            8 bytes
///   8  format version             u32 (1)
///  12  byte-order mark            u32 0x01020304
///  16  feature-map identity       u64
///  24  num_seqs, num_heads, feature_dim, value_dim   4 × u64
///  56  payload bytes              u64
///  64  positions                  num_seqs × i64
///      state                      num_seqs × (H·m·dv + H·m) × f32
///      maxima                     num_seqs × H·m × f32, only for maps evaluated in a rescaled
///                                 frame (SLAY_KIND_HADAMARD_EXP: the running maxima μ; −inf = empty)
///      checksum                   u64, FNV-1a of every byte before it
/// The payload-bytes field counts the maxima, so a blob is self-describing; the map identity pins
/// the kind, and a blob with maxima for a map without them (or the reverse) is corrupt. Blobs of
/// every other kind are unchanged (same version, same bytes).
public enum StateBlob {
    public static let magic: [UInt8] = Array("SLAYSTAT".utf8)
    public static let formatVersion: UInt32 = 1
    public static let byteOrderMark: UInt32 = 0x0102_0304
    static let headerBytes = 64
    static let maximumPosition: Int64 = 1 << 62

    public static func size(of state: RecurrentState) throws -> Int {
        let positions = try CheckedSize.multiply(state.numSequences, 8, what: "blob size")
        let floats = try CheckedSize.multiply(try CheckedSize.add(state.totalFloats, state.maximaFloats, what: "blob size"), 4,
                                              what: "blob size")
        return try CheckedSize.add(try CheckedSize.add(headerBytes + 8, positions, what: "blob size"), floats, what: "blob size")
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Writes the blob into `destination`, which must hold `size(of:)` bytes; returns bytes written.
    public static func write(_ state: RecurrentState, to destination: UnsafeMutableRawBufferPointer) throws -> Int {
        let total = try size(of: state)
        guard destination.count >= total else {
            throw SlayError(.bufferTooSmall, "the state needs \(total) bytes, the buffer has \(destination.count)")
        }
        let base = destination.baseAddress!
        for (i, byte) in magic.enumerated() { base.storeBytes(of: byte, toByteOffset: i, as: UInt8.self) }
        base.storeBytes(of: formatVersion, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: byteOrderMark, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: state.mapIdentity, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt64(state.numSequences), toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: UInt64(state.numHeads), toByteOffset: 32, as: UInt64.self)
        base.storeBytes(of: UInt64(state.featureDim), toByteOffset: 40, as: UInt64.self)
        base.storeBytes(of: UInt64(state.valueDim), toByteOffset: 48, as: UInt64.self)
        base.storeBytes(of: UInt64(total - headerBytes - 8), toByteOffset: 56, as: UInt64.self)
        var offset = headerBytes
        for position in state.positions {
            base.storeBytes(of: position, toByteOffset: offset, as: Int64.self)
            offset += 8
        }
        (base + offset).copyMemory(from: state.data, byteCount: state.totalFloats * 4)
        offset += state.totalFloats * 4
        if let maxima = state.maximaStorage {
            (base + offset).copyMemory(from: maxima.pointer, byteCount: state.maximaFloats * 4)
            offset += state.maximaFloats * 4
        }
        let sum = checksum(UnsafeRawBufferPointer(start: base, count: offset))
        base.storeBytes(of: sum, toByteOffset: offset, as: UInt64.self)
        return total
    }

    /// Checks a blob against `state`'s map and dimensions (all checks before any write), then
    /// replaces the state's contents. On error the state is unchanged.
    public static func restore(_ state: RecurrentState, from blob: UnsafeRawBufferPointer) throws {
        let header = try parseHeader(blob)
        guard header.identity == state.mapIdentity else {
            throw SlayError(.stateMismatch, "the blob was saved with a different feature map (identity \(String(header.identity, radix: 16)), this map \(String(state.mapIdentity, radix: 16)))")
        }
        guard header.sequences == state.numSequences && header.heads == state.numHeads
                && header.featureDim == state.featureDim && header.valueDim == state.valueDim else {
            throw SlayError(.stateMismatch, "the blob holds \(header.sequences) sequences × \(header.heads) heads × m \(header.featureDim) × dv \(header.valueDim); the state has \(state.numSequences) × \(state.numHeads) × \(state.featureDim) × \(state.valueDim)")
        }
        guard header.hasMaxima == (state.maximaStorage != nil) else {
            throw SlayError(.corruptData, header.hasMaxima
                            ? "the blob carries running maxima, but its feature map keeps none"
                            : "the blob lacks the running maxima its feature map (SLAY_KIND_HADAMARD_EXP) needs")
        }
        let base = blob.baseAddress!
        var offset = headerBytes
        for i in 0..<state.numSequences {
            state.positions[i] = base.loadUnaligned(fromByteOffset: offset, as: Int64.self)
            offset += 8
        }
        UnsafeMutableRawPointer(state.data).copyMemory(from: base + offset, byteCount: state.totalFloats * 4)
        offset += state.totalFloats * 4
        if let maxima = state.maximaStorage {
            UnsafeMutableRawPointer(maxima.pointer).copyMemory(from: base + offset, byteCount: state.maximaFloats * 4)
        }
    }

    /// Creates a state for `map` from a blob.
    public static func load(map: FeatureMap, from blob: UnsafeRawBufferPointer, maxThreads: Int = 1) throws -> RecurrentState {
        let header = try parseHeader(blob)
        guard header.identity == map.identity else {
            throw SlayError(.stateMismatch, "the blob was saved with a different feature map (identity \(String(header.identity, radix: 16)), this map \(String(map.identity, radix: 16)))")
        }
        guard header.heads == map.numHeads && header.featureDim == map.featureDim else {
            throw SlayError(.stateMismatch, "the blob has \(header.heads) heads × m \(header.featureDim); the map has \(map.numHeads) × \(map.featureDim)")
        }
        let state = try RecurrentState(map: map, numSequences: header.sequences, valueDim: header.valueDim, maxThreads: maxThreads)
        try restore(state, from: blob)
        return state
    }

    struct Header {
        let identity: UInt64
        let sequences, heads, featureDim, valueDim: Int
        /// The payload ends with N·H·m running maxima (see the layout above).
        let hasMaxima: Bool
    }

    /// Validates magic, version, byte order, sizes and checksum.
    static func parseHeader(_ blob: UnsafeRawBufferPointer) throws -> Header {
        guard let base = blob.baseAddress, blob.count >= headerBytes + 8 else {
            throw SlayError(.corruptData, "the blob has \(blob.count) bytes, less than the \(headerBytes + 8)-byte minimum")
        }
        for (i, byte) in magic.enumerated() where base.load(fromByteOffset: i, as: UInt8.self) != byte {
            throw SlayError(.corruptData, "the blob does not start with the libslay state magic \"SLAYSTAT\"")
        }
        let mark = base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        guard mark == byteOrderMark else {
            throw SlayError(.unsupported, "the blob was written with a different byte order (mark \(String(mark, radix: 16)))")
        }
        let version = base.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == formatVersion else {
            throw SlayError(.versionMismatch, "the blob has state format version \(version); this libslay reads version \(formatVersion)")
        }
        func field(_ offset: Int) -> UInt64 { base.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
        let limits: [(String, UInt64, UInt64)] = [
            ("num_seqs", field(24), UInt64(RecurrentState.maximumSequences)),
            ("num_heads", field(32), UInt64(SlayConfiguration.maximumDimension)),
            ("feature_dim", field(40), UInt64(SlayConfiguration.maximumFeatureDim)),
            ("value_dim", field(48), UInt64(SlayConfiguration.maximumDimension)),
        ]
        for (name, value, limit) in limits where value < 1 || value > limit {
            throw SlayError(.corruptData, "the blob's \(name) is \(value), outside 1...\(limit)")
        }
        let (n, h, m, dv) = (Int(field(24)), Int(field(32)), Int(field(40)), Int(field(48)))
        let floats = try CheckedSize.multiply(n, h, try CheckedSize.add(m * dv, m, what: "blob size"), what: "blob size")
        let payload = try CheckedSize.add(try CheckedSize.multiply(n, 8, what: "blob size"),
                                          try CheckedSize.multiply(floats, 4, what: "blob size"), what: "blob size")
        // With maxima the payload is longer by N·H·m floats; which one it is the restore checks
        // against the map.
        let withMaxima = try CheckedSize.add(payload, try CheckedSize.multiply(n, h, m * 4, what: "blob size"), what: "blob size")
        guard field(56) == UInt64(payload) || field(56) == UInt64(withMaxima) else {
            throw SlayError(.corruptData, "the blob's payload size \(field(56)) does not match its dimensions (\(payload) bytes, or \(withMaxima) with running maxima)")
        }
        let hasMaxima = field(56) == UInt64(withMaxima)
        let total = try CheckedSize.add(try CheckedSize.add(headerBytes, hasMaxima ? withMaxima : payload, what: "blob size"), 8,
                                        what: "blob size")
        guard blob.count >= total else {
            throw SlayError(.corruptData, "the blob is truncated: \(blob.count) bytes of \(total)")
        }
        let stored = base.loadUnaligned(fromByteOffset: total - 8, as: UInt64.self)
        guard checksum(UnsafeRawBufferPointer(start: base, count: total - 8)) == stored else {
            throw SlayError(.corruptData, "the blob's checksum does not match its contents")
        }
        // Positions are token counts: a negative or absurd one would make the next step overflow.
        for i in 0..<n {
            let position = base.loadUnaligned(fromByteOffset: headerBytes + 8 * i, as: Int64.self)
            guard position >= 0 && position <= maximumPosition else {
                throw SlayError(.corruptData, "the blob's position of slot \(i) is \(position), outside 0...2^62")
            }
        }
        // Running maxima are −inf, finite or +inf: the engine never stores a NaN μ (its maximum
        // skips NaN keys), and one would turn every later output of the slot into NaN.
        if hasMaxima {
            let first = headerBytes + payload
            for i in 0..<(n * h * m) {
                let mu = base.loadUnaligned(fromByteOffset: first + 4 * i, as: Float.self)
                guard !mu.isNaN else {
                    throw SlayError(.corruptData, "the blob's running maximum \(i) (slot \(i / (h * m)), head \(i / m % h), dimension \(i % m)) is NaN")
                }
            }
        }
        return Header(identity: field(16), sequences: n, heads: h, featureDim: m, valueDim: dv, hasMaxima: hasMaxima)
    }
}
