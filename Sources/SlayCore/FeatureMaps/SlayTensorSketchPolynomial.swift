/// SLAY's TensorSketch polynomial (SLAY_POLY_TENSORSKETCH, docs/math.md §1): two independent
/// CountSketches h_k: [d] → [P] with signs s_k: [d] → {±1}, and TS(û)_b = Σ_{i,j: (h1(i) + h2(j))
/// mod P = b} s1(i) s2(j) û_i û_j, the circular convolution of the count sketches C1û and C2û.
/// E⟨TS(q̂), TS(k̂)⟩ = (q̂·k̂)² over the hashes and signs (the cross terms carry a sign of mean
/// zero), so the estimator is unbiased; the features are SIGNED.
///
/// The parameter "sketch" is float32 (2, 2, d): sketch[k][0][i] = h_k(i) as a float, sketch[k][1][i] = s_k(i).
public struct SlayTensorSketchPolynomial: SlayPolynomialEstimator {
    public let headDim: Int
    public let polyDim: Int
    /// The (2, 2, d) parameter as the caller sees it.
    public let sketch: HeapArray<Float>
    /// h1 then h2 (2·d), and s1 then s2 (2·d): d is caller-sized, so fallibly allocated.
    let buckets: HeapArray<Int>
    let signs: HeapArray<Float>
    /// The distinct buckets each hash uses (ascending): the convolution only visits those, so a
    /// row costs O(min(d, P)²), not O(P²). usedBuckets[k] for hash k = 0, 1.
    let usedBuckets: UsedBuckets

    /// The distinct buckets of both hashes, in one fallibly allocated array.
    struct UsedBuckets {
        let storage: HeapArray<Int>
        let firstCount: Int

        /// The ascending distinct buckets of hash `k` (valid while this value lives).
        subscript(k: Int) -> UnsafeBufferPointer<Int> {
            k == 0 ? UnsafeBufferPointer(start: storage.baseAddress, count: firstCount)
                   : UnsafeBufferPointer(start: storage.baseAddress + firstCount, count: storage.count - firstCount)
        }

        /// Marks the buckets of both hashes in a P-entry table and lists each hash's in order.
        init(buckets: HeapArray<Int>, headDim d: Int, polyDim p: Int) throws {
            let seen = try HeapArray<UInt8>(count: p, what: "the TensorSketch bucket table")
            var counts = (0, 0)
            for k in 0..<2 {
                for i in 0..<d where seen[buckets[k * d + i]] & UInt8(1 << k) == 0 {
                    seen[buckets[k * d + i]] |= UInt8(1 << k)
                    if k == 0 { counts.0 += 1 } else { counts.1 += 1 }
                }
            }
            let storage = try HeapArray<Int>(count: counts.0 + counts.1, what: "the TensorSketch used buckets")
            var (first, second) = (0, counts.0)
            for b in 0..<p {
                if seen[b] & 1 != 0 { storage[first] = b; first += 1 }
                if seen[b] & 2 != 0 { storage[second] = b; second += 1 }
            }
            self.storage = storage
            self.firstCount = counts.0
        }
    }

    /// Element i of the (2, 2, d) parameter from uniform(i) of `stream` (slay.h, "Parameter
    /// generator"): a bucket entry is min(⌊P·uniform(i)⌋, P − 1), a sign entry +1 if uniform(i) < 1/2, else −1.
    public static func generate(_ generator: ParameterGenerator, stream: UInt64, headDim d: Int, polyDim p: Int) throws -> HeapArray<Float> {
        let values = try HeapArray<Float>(count: try CheckedSize.multiply(4, d, what: "sketch size"), what: "sketch")
        for index in 0..<values.count {
            let u = generator.uniform(stream: stream, index: UInt64(index))
            let isSign = (index / d) % 2 == 1
            values[index] = isSign ? (u < 0.5 ? 1 : -1) : Float(min((Double(p) * u).rounded(.down), Double(p - 1)))
        }
        return values
    }

    init(generator: ParameterGenerator, polyDim: Int, headDim: Int) throws {
        try self.init(parameter: try Self.generate(generator, stream: ParameterGenerator.tensorSketchStream, headDim: headDim,
                                                   polyDim: polyDim),
                      headDim: headDim, polyDim: polyDim)
    }

    /// Checks and decodes a (2, 2, d) parameter: bucket entries integral in 0..P−1, signs exactly ±1.
    public init(parameter: HeapArray<Float>, headDim d: Int, polyDim p: Int) throws {
        guard parameter.count == 4 * d else {
            throw SlayError.shape("parameter 'sketch' has shape [2, 2, \(d)] (\(4 * d) floats), got \(parameter.count) floats")
        }
        let buckets = try HeapArray<Int>(count: 2 * d, what: "TensorSketch buckets")
        let signs = try HeapArray<Float>(count: 2 * d, what: "TensorSketch signs")
        for k in 0..<2 {
            for i in 0..<d {
                let bucket = parameter[(2 * k) * d + i]
                guard bucket.isFinite, bucket == bucket.rounded(.towardZero), bucket >= 0, bucket < Float(p) else {
                    throw SlayError.invalid("parameter 'sketch' bucket [\(k)][0][\(i)] is \(bucket); buckets must be integers in 0...\(p - 1)")
                }
                let sign = parameter[(2 * k + 1) * d + i]
                guard sign == 1 || sign == -1 else {
                    throw SlayError.invalid("parameter 'sketch' sign [\(k)][1][\(i)] is \(sign); signs must be +1 or -1")
                }
                buckets[k * d + i] = Int(bucket)
                signs[k * d + i] = sign
            }
        }
        self.headDim = d
        self.polyDim = p
        self.sketch = parameter
        self.buckets = buckets
        self.signs = signs
        self.usedBuckets = try UsedBuckets(buckets: buckets, headDim: d, polyDim: p)
    }

    public var width: Int { polyDim }
    public var isPositive: Bool { false }
    /// The two count sketches of the row being mapped.
    public var spareWidth: Int { 2 * polyDim }
    public var parameterNames: [String] { ["sketch"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "sketch" ? [2, 2, headDim] : nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { name == "sketch" ? sketch : nil }

    public func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator {
        guard name == "sketch" else { throw SlayError.invalid("unknown parameter '\(name)'") }
        return try SlayTensorSketchPolynomial(parameter: values, headDim: headDim, polyDim: polyDim)
    }

    /// TS(û) of `rows` unit rows into poly (rows × P); `spare` holds 2·P floats.
    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, polyDim)
        let (c1, c2) = (spare, spare + p)
        for row in 0..<rows {
            let u = units + row * d
            let out = poly + row * p
            c1.update(repeating: 0, count: 2 * p)
            out.update(repeating: 0, count: p)
            for i in 0..<d {
                c1[buckets[i]] += signs[i] * u[i]
                c2[buckets[d + i]] += signs[d + i] * u[i]
            }
            for a in usedBuckets[0] {
                let x = c1[a]
                if x == 0 { continue }
                for b in usedBuckets[1] {
                    let target = a + b < p ? a + b : a + b - p
                    out[target] += x * c2[b]
                }
            }
        }
    }

    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        multiplyByPolyGram(rows: rows, query: query, key: key, output: output, gram: gram, gemmSpace: gemmSpace)
    }
}
