// Compiled twice like PackedGemm (baseline and AVX2/FMA builds).

/// The backward of `VectorProducts.unitRows` (û = x/‖x‖): the scalar double loops it replaces
/// summed ‖x‖² and û·g in one dependent chain each, and were the SLAY gradient's slowest part.
public enum UnitRowsGradient {
    /// dx = (g − û (û·g)) / ‖x‖ per row of `width` floats, in double; a zero row gets 0 (its û
    /// is 0). ‖x‖² and x·g are summed in 8 double lanes (two vectors of 4), then the lanes and
    /// the tail in a fixed order, so both builds give the same bits.
    public static func inputGradient(_ input: UnsafePointer<Float>, rows: Int, width: Int,
                                     unitGradient: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) {
        @inline(__always)
        func wide(_ p: UnsafePointer<Float>) -> SIMD4<Double> { SIMD4<Double>(VectorProducts.load4(p)) }
        for i in 0..<rows {
            let (x, g, dx) = (input + i * width, unitGradient + i * width, output + i * width)
            var (squaresLow, squaresHigh) = (SIMD4<Double>(), SIMD4<Double>())
            var (dotLow, dotHigh) = (SIMD4<Double>(), SIMD4<Double>())
            var j = 0
            while j + 8 <= width {
                let (a, b) = (wide(x + j), wide(x + j + 4))
                squaresLow += a * a
                squaresHigh += b * b
                dotLow += a * wide(g + j)
                dotHigh += b * wide(g + j + 4)
                j += 8
            }
            let (squares, dots) = (squaresLow + squaresHigh, dotLow + dotHigh)
            var sumSquares = (squares[0] + squares[1]) + (squares[2] + squares[3])
            var dot = (dots[0] + dots[1]) + (dots[2] + dots[3])
            while j < width {
                let v = Double(x[j])
                sumSquares += v * v
                dot += v * Double(g[j])
                j += 1
            }
            let norm = sumSquares.squareRoot()
            guard norm > 0 else {
                dx.update(repeating: 0, count: width)
                continue
            }
            let inverse = 1 / norm
            // û·g = (x·g)/‖x‖; dx = (g − x·(û·g)/‖x‖)/‖x‖.
            let radial = dot * inverse * inverse
            let (radials, inverses) = (SIMD4<Double>(repeating: radial), SIMD4<Double>(repeating: inverse))
            j = 0
            while j + 4 <= width {
                let value = (wide(g + j) - wide(x + j) * radials) * inverses
                VectorProducts.store4(SIMD4<Float>(value), dx + j)
                j += 4
            }
            while j < width {
                dx[j] = Float((Double(g[j]) - Double(x[j]) * radial) * inverse)
                j += 1
            }
        }
    }

}
