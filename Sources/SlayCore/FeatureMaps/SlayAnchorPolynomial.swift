/// SLAY's default polynomial (SLAY_POLY_ANCHOR): [(a_p·û)²]_p / √P with P unit anchors (parameter
/// "anchors", (P, d), stream 1). Converges to (1 + 2x²)/(d(d+2)), not x², so orthogonal keys keep
/// weight. Features ≥ 0.
public struct SlayAnchorPolynomial: SlayPolynomialEstimator {
    public let projection: SlayAnchorProjection

    init(generator: ParameterGenerator, polyDim: Int, headDim: Int) throws {
        projection = try SlayAnchorProjection(generator: generator, count: polyDim, headDim: headDim)
    }

    init(projection: SlayAnchorProjection) { self.projection = projection }

    public var width: Int { projection.count }
    public var isPositive: Bool { true }
    public var parameterNames: [String] { ["anchors"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "anchors" ? projection.shape : nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { name == "anchors" ? projection.anchors : nil }

    public func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator {
        guard name == "anchors" else { throw SlayError.invalid("unknown parameter '\(name)'") }
        return SlayAnchorPolynomial(projection: try SlayAnchorProjection(anchors: values, count: width, headDim: projection.headDim))
    }

    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        projection.squaredProjections(units, rows: rows, scale: 1 / Float(width).squareRoot(), into: poly, gemmSpace: gemmSpace)
    }

    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        multiplyByPolyGram(rows: rows, query: query, key: key, output: output, gram: gram, gemmSpace: gemmSpace)
    }
}

/// P anchors (P, d) and the squared projections (a_p·û)² the anchor and Nyström polynomials
/// start from.
public struct SlayAnchorProjection: Sendable {
    public let count: Int
    public let headDim: Int
    /// (P, d) row-major, as the caller sees them.
    public let anchors: HeapArray<Float>
    /// (d, P): the right-hand operand of the projection.
    let transposed: HeapArray<Float>

    var shape: [Int] { [count, headDim] }

    /// Unit rows of stream 1 (slay.h, "Parameter generator").
    init(generator: ParameterGenerator, count: Int, headDim: Int) throws {
        try self.init(anchors: try generator.makeUnitRows(stream: ParameterGenerator.anchorStream, rows: count, cols: headDim,
                                                          what: "anchors"),
                      count: count, headDim: headDim)
    }

    /// Anchors used as given (set_param does not renormalise them).
    init(anchors: HeapArray<Float>, count: Int, headDim: Int) throws {
        self.count = count
        self.headDim = headDim
        self.anchors = anchors
        transposed = try anchors.transposedBlocks(rows: count, cols: headDim, what: "transposed anchors")
    }

    /// (a_p·û)² · scale for every anchor p of `rows` unit rows into poly (rows × P).
    func squaredProjections(_ units: UnsafePointer<Float>, rows: Int, scale: Float, into poly: UnsafeMutablePointer<Float>,
                            gemmSpace: UnsafeMutablePointer<Float>) {
        let (d, p) = (headDim, count)
        Gemm.multiply(m: rows, n: p, k: d, a: units, rowStrideA: d, columnStrideA: 1,
                      b: transposed.baseAddress, rowStrideB: p, columnStrideB: 1,
                      c: poly, ldc: p, accumulate: false, workspace: gemmSpace)
        for i in 0..<(rows * p) { poly[i] = poly[i] * poly[i] * scale }
    }
}
