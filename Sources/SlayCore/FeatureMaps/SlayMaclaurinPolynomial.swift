/// Random Maclaurin (SLAY_POLY_RANDOM_MACLAURIN): [(r1_p·û)(r2_p·û)]_p / √P with r1, r2 i.i.d.
/// N(0, I) (parameter "maclaurin", (2, P, d), stream 8): unbiased for x², but SIGNED, so the
/// normaliser can be ≤ 0 (use the clamp denominator).
public struct SlayMaclaurinPolynomial: SlayPolynomialEstimator {
    public let polyDim: Int
    public let headDim: Int
    /// (2, P, d) row-major, as the caller sees it.
    public let directions: HeapArray<Float>
    /// Both halves transposed to (d, P).
    let transposed: HeapArray<Float>

    init(generator: ParameterGenerator, polyDim: Int, headDim: Int) throws {
        let count = try CheckedSize.multiply(2, polyDim, headDim, what: "maclaurin size")
        try self.init(directions: try generator.makeNormals(stream: ParameterGenerator.maclaurinStream, count: count, what: "maclaurin"),
                      polyDim: polyDim, headDim: headDim)
    }

    init(directions: HeapArray<Float>, polyDim: Int, headDim: Int) throws {
        self.polyDim = polyDim
        self.headDim = headDim
        self.directions = directions
        transposed = try directions.transposedBlocks(2, rows: polyDim, cols: headDim, what: "transposed maclaurin")
    }

    public var width: Int { polyDim }
    public var isPositive: Bool { false }
    public var spareWidth: Int { polyDim }
    public var parameterNames: [String] { ["maclaurin"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "maclaurin" ? [2, polyDim, headDim] : nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { name == "maclaurin" ? directions : nil }

    public func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator {
        guard name == "maclaurin" else { throw SlayError.invalid("unknown parameter '\(name)'") }
        return try SlayMaclaurinPolynomial(directions: values, polyDim: polyDim, headDim: headDim)
    }

    /// `spare` holds the second projection.
    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, polyDim)
        func project(half: Int, into target: UnsafeMutablePointer<Float>) {
            Gemm.multiply(m: rows, n: p, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                          b: transposed.baseAddress + half * p * d, rowStrideB: p, columnStrideB: 1,
                          c: target, ldc: p, accumulate: false, workspace: gemmSpace)
        }
        project(half: 0, into: poly)
        project(half: 1, into: spare)
        let scale = 1 / Float(p).squareRoot()
        for i in 0..<(rows * p) { poly[i] = poly[i] * spare[i] * scale }
    }

    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        multiplyByPolyGram(rows: rows, query: query, key: key, output: output, gram: gram, gemmSpace: gemmSpace)
    }
}
