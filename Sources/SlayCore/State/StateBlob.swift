/// The serialized form of a RecurrentState, for saving, moving and restoring it.
///
/// Layout of format version 2 (native byte order, recorded so a foreign blob is refused rather
/// than misread):
///   0  magic "SLAYSTAT"            8 bytes
///   8  format version             u32 (2)
///  12  byte-order mark            u32 0x01020304
///  16  feature-map identity       u64
///  24  num_seqs, num_heads, feature_dim, value_dim   4 × u64
///  56  layout flags               u32: which optional sections follow the state (LayoutFlags)
///  60  storage dtype              u32: SLAY_DTYPE_* of S and z (F32 today)
///  64  payload bytes              u64: positions + state + optional sections
///  72  positions                  num_seqs × i64
///      state                      num_seqs × (H·m·dv + H·m) elements of the storage dtype
///      maxima                     num_seqs × H·m × f32 when LayoutFlags.runningMaxima is set
///                                 (SLAY_KIND_HADAMARD_EXP: the running maxima μ; −inf = empty)
///      checksum                   u64, FNV-1a of every byte before it
/// A blob is exactly that long, its values are finite (μ may also be −inf) and its layout and
/// dtype must be the state's. Version 1 blobs (64-byte header without the layout and dtype
/// fields; maxima inferred from the payload size; f32) are still read.
public enum StateBlob {
    public static let magic: [UInt8] = Array("SLAYSTAT".utf8)
    public static let formatVersion: UInt32 = 2
    public static let byteOrderMark: UInt32 = 0x0102_0304
    static let headerBytes = 72
    static let versionOneHeaderBytes = 64
    static let maximumPosition: Int64 = 1 << 62

    /// The optional sections after the state (the layout flags field).
    public struct LayoutFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// N·H·m f32 running maxima μ (SLAY_KIND_HADAMARD_EXP).
        public static let runningMaxima = LayoutFlags(rawValue: 1)
        public static let known: LayoutFlags = [.runningMaxima]
    }

    /// Element types of S and z in a blob: the values of slay.h's SLAY_DTYPE_*.
    public enum StorageDType: UInt32, Sendable {
        case f32 = 0
        case f16 = 2
        case bf16 = 3

        var bytes: Int { self == .f32 ? 4 : 2 }
        var name: String {
            switch self {
            case .f32: return "SLAY_DTYPE_F32"
            case .f16: return "SLAY_DTYPE_F16"
            case .bf16: return "SLAY_DTYPE_BF16"
            }
        }
    }

    static func layout(of state: RecurrentState) -> LayoutFlags {
        state.maximaStorage == nil ? [] : .runningMaxima
    }

    /// The storage dtype of a state's S and z.
    static func storageDType(of state: RecurrentState) -> StorageDType {
        StorageDType(rawValue: UInt32(state.storageType.rawValue))!
    }

    public static func size(of state: RecurrentState) throws -> Int {
        let positions = try CheckedSize.multiply(state.numSequences, 8, what: "blob size")
        let floats = try CheckedSize.add(try CheckedSize.multiply(state.totalFloats, state.storageType.bytes, what: "blob size"),
                                         try CheckedSize.multiply(state.maximaFloats, 4, what: "blob size"), what: "blob size")
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
        base.storeBytes(of: layout(of: state).rawValue, toByteOffset: 56, as: UInt32.self)
        base.storeBytes(of: storageDType(of: state).rawValue, toByteOffset: 60, as: UInt32.self)
        base.storeBytes(of: UInt64(total - headerBytes - 8), toByteOffset: 64, as: UInt64.self)
        var offset = headerBytes
        for position in state.positions {
            base.storeBytes(of: position, toByteOffset: offset, as: Int64.self)
            offset += 8
        }
        (base + offset).copyMemory(from: state.rawData, byteCount: state.totalBytes)
        offset += state.totalBytes
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
        guard header.layout == layout(of: state) else {
            throw SlayError(.corruptData, header.layout.contains(.runningMaxima)
                            ? "the blob carries running maxima, but its feature map keeps none"
                            : "the blob lacks the running maxima its feature map (SLAY_KIND_HADAMARD_EXP) needs")
        }
        guard header.dtype == storageDType(of: state) else {
            throw SlayError(.dtype, "the blob stores S and z as \(header.dtype.name); this state stores \(storageDType(of: state).name) (convert by loading into a state of the blob's dtype)")
        }
        let base = blob.baseAddress!
        var offset = header.headerBytes
        for i in 0..<state.numSequences {
            state.positions[i] = base.loadUnaligned(fromByteOffset: offset, as: Int64.self)
            offset += 8
        }
        state.rawData.copyMemory(from: base + offset, byteCount: state.totalBytes)
        offset += state.totalBytes
        if let maxima = state.maximaStorage {
            UnsafeMutableRawPointer(maxima.pointer).copyMemory(from: base + offset, byteCount: state.maximaFloats * 4)
        }
    }

    /// Creates a state for `map` from a blob, stored in the blob's storage dtype.
    public static func load(map: FeatureMap, from blob: UnsafeRawBufferPointer, maxThreads: Int = 1) throws -> RecurrentState {
        let header = try parseHeader(blob)
        guard header.identity == map.identity else {
            throw SlayError(.stateMismatch, "the blob was saved with a different feature map (identity \(String(header.identity, radix: 16)), this map \(String(map.identity, radix: 16)))")
        }
        guard header.heads == map.numHeads && header.featureDim == map.featureDim else {
            throw SlayError(.stateMismatch, "the blob has \(header.heads) heads × m \(header.featureDim); the map has \(map.numHeads) × \(map.featureDim)")
        }
        let state = try RecurrentState(map: map, numSequences: header.sequences, valueDim: header.valueDim, maxThreads: maxThreads,
                                       storageType: ElementType(rawValue: Int32(header.dtype.rawValue))!)
        try restore(state, from: blob)
        return state
    }

    /// Whether the element at `offset` is finite: f32, or the exponent bits of f16 (0x7C00) and
    /// bf16 (0x7F80) not all ones.
    static func isFinite(_ base: UnsafeRawPointer, at offset: Int, _ dtype: StorageDType) -> Bool {
        switch dtype {
        case .f32: return base.loadUnaligned(fromByteOffset: offset, as: Float.self).isFinite
        case .f16: return base.loadUnaligned(fromByteOffset: offset, as: UInt16.self) & 0x7C00 != 0x7C00
        case .bf16: return base.loadUnaligned(fromByteOffset: offset, as: UInt16.self) & 0x7F80 != 0x7F80
        }
    }

    struct Header {
        let identity: UInt64
        let sequences, heads, featureDim, valueDim: Int
        let layout: LayoutFlags
        let dtype: StorageDType
        /// Where the positions start (72 for version 2, 64 for version 1).
        let headerBytes: Int
    }

    /// Validates magic, version, byte order, layout, dtype, the exact size, the checksum and the
    /// values (positions in range, S and z finite, μ finite or −inf), so nothing that passes can
    /// poison a state.
    static func parseHeader(_ blob: UnsafeRawBufferPointer) throws -> Header {
        guard let base = blob.baseAddress, blob.count >= versionOneHeaderBytes + 8 else {
            throw SlayError(.corruptData, "the blob has \(blob.count) bytes, less than the \(versionOneHeaderBytes + 8)-byte minimum")
        }
        for (i, byte) in magic.enumerated() where base.load(fromByteOffset: i, as: UInt8.self) != byte {
            throw SlayError(.corruptData, "the blob does not start with the libslay state magic \"SLAYSTAT\"")
        }
        let mark = base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        guard mark == byteOrderMark else {
            throw SlayError(.unsupported, "the blob was written with a different byte order (mark \(String(mark, radix: 16)))")
        }
        let version = base.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == formatVersion || version == 1 else {
            throw SlayError(.versionMismatch, "the blob has state format version \(version); this libslay reads versions 1 and \(formatVersion)")
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
        let maximaBytes = try CheckedSize.multiply(n, h, m * 4, what: "blob size")
        let layout: LayoutFlags, dtype: StorageDType, header: Int, payloadField: UInt64
        if version == 1 {
            // No layout field: the payload size tells whether maxima follow.
            (dtype, header, payloadField) = (.f32, versionOneHeaderBytes, field(56))
            let plain = try CheckedSize.add(try CheckedSize.multiply(n, 8, what: "blob size"),
                                            try CheckedSize.multiply(floats, 4, what: "blob size"), what: "blob size")
            layout = payloadField == UInt64(try CheckedSize.add(plain, maximaBytes, what: "blob size")) ? .runningMaxima : []
        } else {
            let flags = base.loadUnaligned(fromByteOffset: 56, as: UInt32.self)
            layout = LayoutFlags(rawValue: flags)
            guard LayoutFlags.known.isSuperset(of: layout) else {
                throw SlayError(.corruptData, "the blob's layout flags are \(String(flags, radix: 16)); this libslay knows only bit 0 (running maxima)")
            }
            let dtypeField = base.loadUnaligned(fromByteOffset: 60, as: UInt32.self)
            guard let stored = StorageDType(rawValue: dtypeField) else {
                throw SlayError(.corruptData, "the blob's storage dtype is \(dtypeField); expected SLAY_DTYPE_F32 (0), SLAY_DTYPE_F16 (2) or SLAY_DTYPE_BF16 (3)")
            }
            (dtype, header, payloadField) = (stored, headerBytes, field(64))
        }
        var payload = try CheckedSize.add(try CheckedSize.multiply(n, 8, what: "blob size"),
                                          try CheckedSize.multiply(floats, dtype.bytes, what: "blob size"), what: "blob size")
        if layout.contains(.runningMaxima) { payload = try CheckedSize.add(payload, maximaBytes, what: "blob size") }
        guard payloadField == UInt64(payload) else {
            throw SlayError(.corruptData, "the blob's payload size \(payloadField) does not match its dimensions and layout (\(payload) bytes)")
        }
        let total = try CheckedSize.add(try CheckedSize.add(header, payload, what: "blob size"), 8, what: "blob size")
        guard blob.count == total else {
            throw SlayError(.corruptData, blob.count < total
                            ? "the blob is truncated: \(blob.count) bytes of \(total)"
                            : "the blob has \(blob.count - total) trailing bytes after its \(total)-byte contents")
        }
        let stored = base.loadUnaligned(fromByteOffset: total - 8, as: UInt64.self)
        guard checksum(UnsafeRawBufferPointer(start: base, count: total - 8)) == stored else {
            throw SlayError(.corruptData, "the blob's checksum does not match its contents")
        }
        // Positions are token counts: a negative or absurd one would make the next step overflow.
        for i in 0..<n {
            let position = base.loadUnaligned(fromByteOffset: header + 8 * i, as: Int64.self)
            guard position >= 0 && position <= maximumPosition else {
                throw SlayError(.corruptData, "the blob's position of slot \(i) is \(position), outside 0...2^62")
            }
        }
        // S and z must be finite: a NaN or ±inf would silently turn every later output of its slot
        // into NaN or 0. (A checksum only proves the bytes are what was saved.)
        let stateStart = header + 8 * n
        for i in 0..<floats where !isFinite(base, at: stateStart + dtype.bytes * i, dtype) {
            let slot = i / (floats / n), within = i % (floats / n)
            let part = within < h * m * dv ? "S" : "z"
            throw SlayError(.corruptData, "the blob's state value \(i) (slot \(slot), \(part)) is not finite; states must be finite")
        }
        // Running maxima are −inf (no key yet) or finite: the engine never stores NaN or +inf.
        if layout.contains(.runningMaxima) {
            let first = stateStart + floats * dtype.bytes
            for i in 0..<(n * h * m) {
                let mu = base.loadUnaligned(fromByteOffset: first + 4 * i, as: Float.self)
                guard mu.isFinite || mu == -.infinity else {
                    throw SlayError(.corruptData, "the blob's running maximum \(i) (slot \(i / (h * m)), head \(i / m % h), dimension \(i % m)) is \(mu.isNaN ? "NaN" : "\(mu)"); maxima must be finite or -inf (no key yet)")
                }
            }
        }
        return Header(identity: field(16), sequences: n, heads: h, featureDim: m, valueDim: dv, layout: layout, dtype: dtype,
                      headerBytes: header)
    }
}
