/// Nyström (SLAY_POLY_NYSTROM): W [(a_p·û)²]_p with the anchor polynomial's unit anchors
/// (parameter "anchors", stream 1) and W = (K_AA + λI)^{−1/2} (NystromWhitening): P features,
/// SIGNED, close to x² once the anchors span the d(d+1)/2 quadratic forms.
public struct SlayNystromPolynomial: SlayPolynomialEstimator {
    public let projection: SlayAnchorProjection
    /// W (P, P), symmetric, of the current anchors.
    public let whitening: HeapArray<Float>

    init(generator: ParameterGenerator, polyDim: Int, headDim: Int) throws {
        try self.init(projection: try SlayAnchorProjection(generator: generator, count: polyDim, headDim: headDim))
    }

    init(projection: SlayAnchorProjection) throws {
        whitening = try NystromWhitening.matrix(anchors: projection.anchors, count: projection.count, headDim: projection.headDim)
        self.projection = projection
    }

    public var width: Int { projection.count }
    public var isPositive: Bool { false }
    public var spareWidth: Int { projection.count }
    public var parameterNames: [String] { ["anchors"] }
    public func parameterShape(_ name: String) -> [Int]? { name == "anchors" ? projection.shape : nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { name == "anchors" ? projection.anchors : nil }

    /// New anchors get a new whitening, computed before anything changes.
    public func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator {
        guard name == "anchors" else { throw SlayError.invalid("unknown parameter '\(name)'") }
        return try SlayNystromPolynomial(projection: try SlayAnchorProjection(anchors: values, count: width, headDim: projection.headDim))
    }

    /// `spare` holds the unwhitened squared projections.
    public func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                         spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let p = width
        projection.squaredProjections(units, rows: rows, scale: 1, into: spare, gemmSpace: gemmSpace)
        Gemm.multiply(m: rows, n: p, k: p, a: spare, rowStrideA: p, columnStrideA: 1,
                      b: whitening.baseAddress, rowStrideB: p, columnStrideB: 1,
                      c: poly, ldc: p, accumulate: false, workspace: gemmSpace)
    }

    public func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                               gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        multiplyByPolyGram(rows: rows, query: query, key: key, output: output, gram: gram, gemmSpace: gemmSpace)
    }
}
