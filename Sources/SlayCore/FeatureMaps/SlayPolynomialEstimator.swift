/// One estimator of SLAY's polynomial factor (q̂·k̂)² (docs/math.md §1): its features of unit rows,
/// its own parameter arrays and its factor of the intra-chunk scores. One file per estimator;
/// `SlayPolynomial.makeEstimator` is where they are registered, so SlayFeatureMap never asks which
/// one it has.
public protocol SlayPolynomialEstimator: Sendable {
    /// Features per unit row, P'.
    var width: Int { get }
    /// Whether every feature is ≥ 0 (then so are the map's, the PRF factor being > 0).
    var isPositive: Bool { get }
    /// Floats per row `features` borrows as spare space (from the map's PRF region, before the PRF
    /// features are written there).
    var spareWidth: Int { get }

    /// Its parameter arrays, listed before the map's "omega".
    var parameterNames: [String] { get }
    func parameterShape(_ name: String) -> [Int]?
    func parameter(_ name: String) -> HeapArray<Float>?
    /// A copy with parameter `name` (one of `parameterNames`) replaced by `values`, which have the
    /// parameter's shape and are finite. Throws, and this estimator stays as it was, when the
    /// values are out of the estimator's domain or a derived matrix cannot be built.
    func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator

    /// poly[i, 0..<width] of `rows` contiguous unit rows; `spare` holds rows · spareWidth floats,
    /// `gemmSpace` Gemm.workspaceFloats.
    func features(_ units: UnsafePointer<Float>, rows: Int, into poly: UnsafeMutablePointer<Float>,
                  spare: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>)

    /// Multiplies output[i, j] (rows × rows) by the polynomial kernel of query row i and key row j,
    /// from the unit rows and poly features `features` left in the scratch of each side; `gram`
    /// holds rows² floats.
    func multiplyScores(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                        gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>)
}

/// Where the unit rows and the poly features of a block live in a `features` scratch region.
public struct SlayScratchRows {
    public let units: UnsafePointer<Float>
    public let poly: UnsafePointer<Float>
}

extension SlayPolynomialEstimator {
    public var spareWidth: Int { 0 }
    public var parameterNames: [String] { [] }
    public func parameterShape(_ name: String) -> [Int]? { nil }
    public func parameter(_ name: String) -> HeapArray<Float>? { nil }
    public func replacing(_ name: String, with values: HeapArray<Float>) throws -> any SlayPolynomialEstimator {
        throw SlayError.invalid("unknown parameter '\(name)'")
    }

    /// The factor of the estimators with P features per row: the Gram poly_q · poly_kᵀ.
    func multiplyByPolyGram(rows: Int, query: SlayScratchRows, key: SlayScratchRows, output: UnsafeMutablePointer<Float>,
                            gram: UnsafeMutablePointer<Float>, gemmSpace: UnsafeMutablePointer<Float>) {
        let p = width
        Gemm.multiply(m: rows, n: rows, k: p, a: query.poly, rowStrideA: p, columnStrideA: 1,
                      b: key.poly, rowStrideB: 1, columnStrideB: p, c: gram, ldc: rows,
                      accumulate: false, workspace: gemmSpace)
        for i in 0..<(rows * rows) { output[i] *= gram[i] }
    }
}

extension SlayPolynomial {
    /// The estimator of a validated configuration, its parameters drawn from `generator`
    /// (slay.h, "Parameter generator").
    func makeEstimator(_ c: SlayConfiguration, _ generator: ParameterGenerator) throws -> any SlayPolynomialEstimator {
        switch self {
        case .anchor: return try SlayAnchorPolynomial(generator: generator, polyDim: c.polyDim, headDim: c.headDim)
        case .exact: return SlayExactPolynomial(headDim: c.headDim, packed: true)
        case .exactFull: return SlayExactPolynomial(headDim: c.headDim, packed: false)
        case .laplace: return SlayLaplacePolynomial()
        case .randomMaclaurin: return try SlayMaclaurinPolynomial(generator: generator, polyDim: c.polyDim, headDim: c.headDim)
        case .tensorSketch: return try SlayTensorSketchPolynomial(generator: generator, polyDim: c.polyDim, headDim: c.headDim)
        case .nystrom: return try SlayNystromPolynomial(generator: generator, polyDim: c.polyDim, headDim: c.headDim)
        }
    }
}
