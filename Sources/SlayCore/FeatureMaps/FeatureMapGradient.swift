/// The reverse-mode derivative of a feature map: for a block of rows, the gradient of the input
/// rows (and of the map's parameters) from the gradient of their features, a vector–Jacobian
/// product. It differentiates exactly what `features` computes, including its numerical guards:
/// - an exponent that `features` clamps (PRF and FAVOR+ exponents) is constant there, so it
///   passes no gradient;
/// - x̂ = x/‖x‖ is 0 at x = 0 in the forward, and its gradient there is 0 too;
/// - a per-row shift that `features` subtracts (FAVOR+ query rows) is differentiated as the
///   function of the row it is (through the row's largest exponent).
/// A map that conforms gets gradients through `slay_linear_attention_backward`.
public protocol FeatureMapGradient: FeatureMap {
    /// Scratch floats `featureGradient` needs for up to `rows` rows.
    func gradientScratchFloats(rows: Int) -> Int

    /// inputGradient[rows, headDim] = (∂φ/∂x)ᵀ outputGradient[rows, featureDim] for `rows`
    /// contiguous input rows of head `head` at token positions firstPosition, … (overwritten).
    /// `parameters` is the flat copy of the map's parameters (`FeatureMapParameterLayout`), read
    /// once per call so that the derivative never depends on how a map stores them; when
    /// `parameterGradient` is not nil, ∂/∂parameters is ADDED to it in the same flat layout.
    func featureGradient(role: FeatureRole, head: Int, input: UnsafePointer<Float>, rows: Int, firstPosition: Int,
                         parameters: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>, parameterGradient: UnsafeMutablePointer<Double>?,
                         scratch: UnsafeMutablePointer<Float>)

    /// Why ∂/∂parameters is not available for this map (nil when it is): the backward refuses a
    /// request for it with SLAY_ERR_UNSUPPORTED and this message.
    var parameterGradientUnavailable: String? { get }

    /// Doubles of accumulation space per head that `featureGradient` needs right after the flat
    /// parameter layout (0 for most maps): a parameter gradient that is a linear function of a
    /// sum over all rows is accumulated there and finished once per call.
    var parameterGradientExtraFloats: Int { get }

    /// A function that turns the accumulation space into parameter gradients, run once per head
    /// after every row with the head's flat parameter gradient followed by its extra space. It is
    /// prepared before the pass (allocations may fail then, with the outputs untouched) and
    /// cannot fail; nil when there is no extra space.
    func parameterGradientFinisher() throws -> ((UnsafeMutablePointer<Double>) -> Void)?
}

extension FeatureMapGradient {
    public var parameterGradientUnavailable: String? { nil }
    public var parameterGradientExtraFloats: Int { 0 }
    public func parameterGradientFinisher() throws -> ((UnsafeMutablePointer<Double>) -> Void)? { nil }
}

/// The flat layout of a map's parameters: the arrays of `parameterNames`, in that order, each
/// row-major in its `parameterShape`, as `get_params` returns them.
public struct FeatureMapParameterLayout: Sendable {
    public let names: [String]
    public let shapes: [[Int]]
    public let offsets: [Int]
    public let total: Int

    public init(_ map: FeatureMap) {
        var shapes: [[Int]] = []
        var offsets: [Int] = []
        var total = 0
        for name in map.parameterNames {
            let shape = map.parameterShape(name) ?? [0]
            offsets.append(total)
            shapes.append(shape)
            total += shape.reduce(1, *)
        }
        self.names = map.parameterNames
        self.shapes = shapes
        self.offsets = offsets
        self.total = total
    }

    /// Offset of parameter `name` in the flat layout (0 when the map has no such parameter, which
    /// the maps never ask for).
    public func offset(_ name: String) -> Int {
        names.firstIndex(of: name).map { offsets[$0] } ?? 0
    }

    /// The current parameter values, flat, in a throwing allocation.
    public func values(of map: FeatureMap) throws -> ScratchBuffer {
        let buffer = try ScratchBuffer(floats: total)
        for (index, name) in names.enumerated() {
            if let values = map.parameter(name) {
                (buffer.pointer + offsets[index]).update(from: values.baseAddress, count: min(values.count, shapes[index].reduce(1, *)))
            }
        }
        return buffer
    }
}

/// Derivative pieces several maps share.
enum FeatureGradientParts {
    /// dx = (dû − û (û·dû)) / ‖x‖ for û = x/‖x‖, row by row in double; 0 for a zero row (whose û
    /// the forward defines as 0).
    static func unitDirection(_ input: UnsafePointer<Float>, rows: Int, width d: Int, unitGradient: UnsafePointer<Float>,
                              into inputGradient: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let x = input + i * d
            let g = unitGradient + i * d
            let dx = inputGradient + i * d
            var sumSquares = 0.0
            for j in 0..<d { let v = Double(x[j]); sumSquares += v * v }
            let norm = sumSquares.squareRoot()
            guard norm > 0 else {
                for j in 0..<d { dx[j] = 0 }
                continue
            }
            let inverse = 1 / norm
            var radial = 0.0
            for j in 0..<d { radial += Double(x[j]) * inverse * Double(g[j]) }
            for j in 0..<d { dx[j] = Float((Double(g[j]) - Double(x[j]) * inverse * radial) * inverse) }
        }
    }

    /// Backward of products[i, j] = x_i · ω[:, j] (ω a (d, m) row-major block): inputGradient =
    /// G ωᵀ (overwritten) and, when `omegaGradient` is not nil, omegaGradient += Xᵀ G (in double).
    /// `spare` holds d·m + Gemm.workspaceFloats floats.
    static func projection(input: UnsafePointer<Float>, rows: Int, headDim d: Int, features m: Int,
                           omega: UnsafePointer<Float>, productGradient: UnsafePointer<Float>,
                           inputGradient: UnsafeMutablePointer<Float>, omegaGradient: UnsafeMutablePointer<Double>?,
                           spare: UnsafeMutablePointer<Float>) {
        let gemmSpace = spare + ScratchBuffer.footprint(d * m)
        Gemm.multiply(m: rows, n: d, k: m, a: productGradient, rowStrideA: m, columnStrideA: 1,
                      b: omega, rowStrideB: 1, columnStrideB: m, c: inputGradient, ldc: d,
                      accumulate: false, workspace: gemmSpace)
        guard let omegaGradient else { return }
        Gemm.multiply(m: d, n: m, k: rows, a: input, rowStrideA: 1, columnStrideA: d,
                      b: productGradient, rowStrideB: m, columnStrideB: 1, c: spare, ldc: m,
                      accumulate: false, workspace: gemmSpace)
        for i in 0..<(d * m) { omegaGradient[i] += Double(spare[i]) }
    }

    /// Scratch of `projection`'s spare region.
    static func projectionSpare(headDim d: Int, features m: Int) -> Int {
        ScratchBuffer.footprint(d * m) + Gemm.workspaceFloats
    }
}
