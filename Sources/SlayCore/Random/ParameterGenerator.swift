#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The documented, counter-based generator of random parameters (slay.h, "Parameter generator").
///
/// Every element is a pure function of (seed, stream, index), so any binding can reproduce a
/// map's matrices exactly and a matrix can be filled in any order or in parallel.
public struct ParameterGenerator: Sendable {
    public static let anchorStream: UInt64 = 1
    public static let omegaStream: UInt64 = 2
    /// FAVOR+ block-orthogonal directions and their chi norms.
    public static let favorStream: UInt64 = 3
    /// ReLU random-feature directions.
    public static let reluRandomStream: UInt64 = 4
    /// Random Fourier features: directions, then phases.
    public static let fourierOmegaStream: UInt64 = 5
    public static let fourierBiasStream: UInt64 = 6
    /// SLAY's block-orthogonal ω (prf_orthogonal = 1), built like FAVOR+'s with R·H "heads".
    public static let slayOrthogonalStream: UInt64 = 7
    /// SLAY random Maclaurin directions (2, P, d).
    public static let maclaurinStream: UInt64 = 8
    /// SLAY TensorSketch hashes and signs (2, 2, d), from uniform(i).
    public static let tensorSketchStream: UInt64 = 9

    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    @inline(__always)
    public static func splitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public func key(stream: UInt64) -> UInt64 {
        Self.splitmix64(seed ^ Self.splitmix64(stream))
    }

    /// Standard normal number `index` of `stream` (Box–Muller on two 53-bit uniforms).
    public func normal(stream: UInt64, index: UInt64) -> Double {
        Self.normal(key: key(stream: stream), index: index)
    }

    /// Uniform number `index` of `stream` in [0, 1): (splitmix64(key + index) >> 11) · 2^−53.
    public func uniform(stream: UInt64, index: UInt64) -> Double {
        Double(Self.splitmix64(key(stream: stream) &+ index) >> 11) * 0x1p-53
    }

    /// The documented transform from a stream key and an index to one standard normal.
    @inline(__always)
    static func normal(key: UInt64, index: UInt64) -> Double {
        let a = splitmix64(key &+ 2 &* index)
        let b = splitmix64(key &+ 2 &* index &+ 1)
        let u1 = Double((a >> 11) + 1) * 0x1p-53
        let u2 = Double(b >> 11) * 0x1p-53
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// `count` standard normals of `stream`, rounded to Float, in index order (the key is
    /// derived once).
    public func normals(stream: UInt64, count: Int) -> [Float] {
        let key = key(stream: stream)
        return (0..<count).map { Float(Self.normal(key: key, index: UInt64($0))) }
    }

    /// The same values as `normals(stream:count:)` in fallibly allocated storage, for parameter
    /// arrays whose size a caller chose.
    public func makeNormals(stream: UInt64, count: Int, what: @autoclosure () -> String = "parameters") throws -> HeapArray<Float> {
        let values = try HeapArray<Float>(count: count, what: what())
        let key = key(stream: stream)
        for index in 0..<count { values.baseAddress[index] = Float(Self.normal(key: key, index: UInt64(index))) }
        return values
    }

    /// `rows` unit vectors of length `cols` (stream values normalised per row in double).
    public func unitRows(stream: UInt64, rows: Int, cols: Int) -> [Float] {
        var values = normals(stream: stream, count: rows * cols)
        values.withUnsafeMutableBufferPointer { Self.normaliseRows($0, rows: rows, cols: cols) }
        return values
    }

    /// The same values as `unitRows(stream:rows:cols:)` in fallibly allocated storage.
    public func makeUnitRows(stream: UInt64, rows: Int, cols: Int, what: @autoclosure () -> String = "parameters") throws -> HeapArray<Float> {
        let values = try makeNormals(stream: stream, count: try CheckedSize.multiply(rows, cols, what: what()), what: what())
        values.withUnsafeMutableBufferPointer { Self.normaliseRows($0, rows: rows, cols: cols) }
        return values
    }

    static func normaliseRows(_ values: UnsafeMutableBufferPointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            var sumSquares = 0.0
            for c in 0..<cols { let x = Double(values[r * cols + c]); sumSquares += x * x }
            let norm = sumSquares.squareRoot()
            guard norm > 0 else { continue }
            for c in 0..<cols { values[r * cols + c] = Float(Double(values[r * cols + c]) / norm) }
        }
    }
}
