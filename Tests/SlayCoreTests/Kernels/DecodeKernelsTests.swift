import CSlayCPU
import SlayKernels
import SlayKernelsAVX2
import XCTest
@testable import SlayCore

/// The decode row streams against float64 twins of the recurrences, for the dispatching
/// DecodeKernels and each kernel build directly, over groups (1…9 query heads: specialised sets,
/// leftover sets and read-only passes), widths (multiples of 64 and 16, odd tails, < 8), decay
/// modes (none, one γ, per row) and state storage (fp32, fp16, bf16).
final class DecodeKernelsTests: XCTestCase {
    typealias Additive = (UnsafeMutableRawPointer, ElementType, Int, Int, Int, UnsafePointer<Float>?, Int,
                          UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int,
                          UnsafeMutablePointer<Float>) -> Void
    typealias Delta = (UnsafeMutableRawPointer, ElementType, Int, Int, Int, UnsafePointer<Float>, Float, Float,
                       UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void
    typealias Normaliser = (UnsafeMutableRawPointer, Int, UnsafePointer<Float>?, Int, UnsafePointer<Float>,
                            UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void

    struct Variant {
        let name: String
        let additive: Additive
        let delta: Delta
        let normaliser: Normaliser
    }

    private var variants: [Variant] {
        var result = [
            Variant(name: "dispatch (\(KernelVariant.active.rawValue))",
                    additive: { DecodeKernels.additive(state: $0, storage: $1, rows: $2, columns: $3, rowStride: $4,
                                                       stateScales: $5, stateScaleStride: $6, keyScales: $7, value: $8,
                                                       queries: $9, queryStride: $10, group: $11, outputs: $12) },
                    delta: { DecodeKernels.delta(state: $0, storage: $1, rows: $2, columns: $3, rowStride: $4, keys: $5,
                                                 alpha: $6, beta: $7, value: $8, queries: $9, queryStride: $10,
                                                 group: $11, outputs: $12) },
                    normaliser: { DecodeKernels.normaliser($0, storage: .f32, rows: $1, stateScales: $2, stateScaleStride: $3,
                                                           keyScales: $4, queries: $5, queryStride: $6, group: $7,
                                                           denominators: $8) }),
            Variant(name: "portable",
                    additive: { SlayKernels.DecodeRows.additive(
                        state: $0, storage: SlayKernels.ElementFormat(rawValue: $1.rawValue)!, rows: $2, columns: $3,
                        rowStride: $4, stateScales: $5, stateScaleStride: $6, keyScales: $7, value: $8, queries: $9,
                        queryStride: $10, group: $11, outputs: $12) },
                    delta: { SlayKernels.DeltaRows.step(
                        state: $0, storage: SlayKernels.ElementFormat(rawValue: $1.rawValue)!, rows: $2, columns: $3,
                        rowStride: $4, keys: $5, alpha: $6, beta: $7, value: $8, queries: $9, queryStride: $10,
                        group: $11, outputs: $12) },
                    normaliser: { SlayKernels.DecodeRows.normaliser($0, storage: .f32, rows: $1, stateScales: $2, stateScaleStride: $3,
                                                                    keyScales: $4, queries: $5, queryStride: $6,
                                                                    group: $7, denominators: $8) }),
        ]
        if slaycpu_has_avx2_fma() != 0 {
            result.append(Variant(
                name: "avx2-fma",
                additive: { SlayKernelsAVX2.DecodeRows.additive(
                    state: $0, storage: SlayKernelsAVX2.ElementFormat(rawValue: $1.rawValue)!, rows: $2, columns: $3,
                    rowStride: $4, stateScales: $5, stateScaleStride: $6, keyScales: $7, value: $8, queries: $9,
                    queryStride: $10, group: $11, outputs: $12) },
                delta: { SlayKernelsAVX2.DeltaRows.step(
                    state: $0, storage: SlayKernelsAVX2.ElementFormat(rawValue: $1.rawValue)!, rows: $2, columns: $3,
                    rowStride: $4, keys: $5, alpha: $6, beta: $7, value: $8, queries: $9, queryStride: $10,
                    group: $11, outputs: $12) },
                normaliser: { SlayKernelsAVX2.DecodeRows.normaliser($0, storage: .f32, rows: $1, stateScales: $2, stateScaleStride: $3,
                                                                    keyScales: $4, queries: $5, queryStride: $6,
                                                                    group: $7, denominators: $8) }))
        }
        return result
    }

    enum Decay { case none, gamma, perRow }

    /// A state of `storage` elements in a byte buffer, with its exact fp64 values.
    struct StoredState {
        var bytes: [UInt8]
        let storage: ElementType
        let count: Int

        init(_ values: [Float], storage: ElementType) {
            self.storage = storage
            self.count = values.count
            bytes = [UInt8](repeating: 0xA5, count: values.count * storage.bytes)
            bytes.withUnsafeMutableBytes { raw in
                values.withUnsafeBufferPointer { v in
                    DecodeKernels.store(storage, v.baseAddress!, count: count, into: raw.baseAddress!, stride: 1)
                }
            }
        }

        var values: [Double] {
            var floats = [Float](repeating: .nan, count: count)
            bytes.withUnsafeBytes { raw in
                floats.withUnsafeMutableBufferPointer { f in
                    DecodeKernels.load(storage, raw.baseAddress!, stride: 1, count: count, into: f.baseAddress!)
                }
            }
            return floats.map(Double.init)
        }
    }

    /// Half a unit in the last place of `storage` at x: the largest rounding a store may add.
    static func halfUlp(_ x: Double, _ storage: ElementType) -> Double {
        let bits = storage == .f32 ? 24 : storage == .f16 ? 11 : 8
        let smallest = storage == .f16 ? 6.103515625e-05 : 1.1754943508222875e-38
        return max(abs(x), smallest) * pow(2, Double(-bits))
    }

    private func checkAdditive(rows: Int, columns: Int, group: Int, decay: Decay, storage: ElementType,
                               seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var generator = SeededGenerator(seed: seed)
        let rowStride = columns + 3
        let initial = generator.floats(rows * rowStride)
        let keys = generator.floats(rows, in: 0...1)
        let value = generator.floats(columns)
        let queries = generator.floats(group * (rows + 1), in: 0...1)
        var scales = generator.floats(rows, in: 0.5...1)
        if decay == .gamma { scales[0] = 0.9 }
        let (scalePointerWanted, scaleStride) = (decay != .none, decay == .perRow ? 1 : 0)
        for variant in variants {
            var state = StoredState(initial, storage: storage)
            let before = state.values
            var outputs = [Float](repeating: .nan, count: group * columns)
            state.bytes.withUnsafeMutableBytes { raw in
                scales.withUnsafeBufferPointer { sp in
                    variant.additive(raw.baseAddress!, storage, rows, columns, rowStride,
                                     scalePointerWanted ? sp.baseAddress! : nil, scaleStride, keys, value, queries,
                                     rows + 1, group, &outputs)
                }
            }
            let after = state.values
            var expectedOutputs = [Double](repeating: 0, count: group * columns)
            var magnitudes = [Double](repeating: 0, count: group * columns)
            for f in 0..<rows {
                let a = decay == .none ? 1 : Double(scales[f * scaleStride])
                for j in 0..<rowStride {
                    let old = before[f * rowStride + j]
                    guard j < columns else {
                        XCTAssertEqual(after[f * rowStride + j].bitPattern, old.bitPattern,
                                       "padding [\(f), \(j)] written [\(variant.name)]", file: file, line: line)
                        continue
                    }
                    let updated = a * old + Double(keys[f]) * Double(value[j])
                    let tolerance = 4e-7 * (abs(a * old) + abs(Double(keys[f]) * Double(value[j]))) + Self.halfUlp(updated, storage)
                    XCTAssertLessThanOrEqual(abs(after[f * rowStride + j] - updated), tolerance,
                                             "S[\(f), \(j)] rows \(rows) columns \(columns) group \(group) \(decay) \(storage) [\(variant.name)]",
                                             file: file, line: line)
                    // The heads read S as stored (rounded to half precision when it is stored so).
                    let stored = after[f * rowStride + j]
                    for g in 0..<group {
                        let w = Double(queries[g * (rows + 1) + f])
                        expectedOutputs[g * columns + j] += w * stored
                        magnitudes[g * columns + j] += abs(w * stored)
                    }
                }
            }
            for i in 0..<(group * columns) {
                let error = abs(Double(outputs[i]) - expectedOutputs[i])
                XCTAssertLessThanOrEqual(error, 1e-6 * Double(rows) * magnitudes[i] + 1e-30,
                                         "output \(i) rows \(rows) columns \(columns) group \(group) \(decay) \(storage) [\(variant.name)]",
                                         file: file, line: line)
            }
        }
    }

    func testAdditiveAgainstTwin() {
        var seed: UInt64 = 1
        for (rows, columns) in [(512, 64), (37, 64), (16, 16), (9, 128), (13, 20), (11, 7), (5, 40), (3, 72)] {
            for group in [1, 2, 3, 4, 5, 8, 9] {
                for decay in [Decay.none, .gamma, .perRow] {
                    checkAdditive(rows: rows, columns: columns, group: group, decay: decay, storage: .f32, seed: seed)
                    seed += 1
                }
            }
        }
    }

    func testAdditiveWithHalfPrecisionStorage() {
        var seed: UInt64 = 1000
        for storage in [ElementType.f16, .bf16] {
            for (rows, columns) in [(64, 64), (13, 20), (7, 5)] {
                for group in [1, 2, 5] {
                    for decay in [Decay.none, .perRow] {
                        checkAdditive(rows: rows, columns: columns, group: group, decay: decay, storage: storage, seed: seed)
                        seed += 1
                    }
                }
            }
        }
    }

    func testNormaliserAgainstTwin() {
        var seed: UInt64 = 2000
        for rows in [1, 7, 8, 33, 512] {
            for group in [1, 3, 8] {
                for decay in [Decay.none, .gamma, .perRow] {
                    var generator = SeededGenerator(seed: seed)
                    seed += 1
                    let initial = generator.floats(rows, in: 0...5)
                    let keys = generator.floats(rows, in: 0...1)
                    let queries = generator.floats(group * rows, in: 0...1)
                    var scales = generator.floats(rows, in: 0.5...1)
                    if decay == .gamma { scales[0] = 0.75 }
                    let stride = decay == .perRow ? 1 : 0
                    for variant in variants {
                        var z = initial
                        var denominators = [Float](repeating: .nan, count: group)
                        scales.withUnsafeBufferPointer { sp in
                            z.withUnsafeMutableBytes { zp in
                            variant.normaliser(zp.baseAddress!, rows, decay == .none ? nil : sp.baseAddress!, stride, keys, queries,
                                               rows, group, &denominators)
                            }
                        }
                        var expected = [Double](repeating: 0, count: group)
                        for f in 0..<rows {
                            let a = decay == .none ? 1 : Double(scales[f * stride])
                            let updated = a * Double(initial[f]) + Double(keys[f])
                            XCTAssertEqual(Double(z[f]), updated, accuracy: 1e-6 * abs(updated), "\(variant.name)")
                            for g in 0..<group { expected[g] += Double(queries[g * rows + f]) * updated }
                        }
                        for g in 0..<group {
                            XCTAssertEqual(Double(denominators[g]), expected[g], accuracy: 1e-6 * Double(rows) * expected[g],
                                           "rows \(rows) group \(group) \(decay) [\(variant.name)]")
                        }
                    }
                }
            }
        }
    }

    private func checkDelta(rows: Int, columns: Int, group: Int, alpha: Float, beta: Float, storage: ElementType,
                            seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var generator = SeededGenerator(seed: seed)
        let rowStride = columns + 2
        let initial = generator.floats(rows * rowStride)
        // Unit-norm key, as after qk_l2norm: then ‖I − β k kᵀ‖ ≤ 1 for β ∈ [0, 2].
        var keys = generator.floats(rows)
        let norm = keys.reduce(0) { $0 + $1 * $1 }.squareRoot()
        keys = keys.map { $0 / norm }
        let value = generator.floats(columns)
        let queries = generator.floats(group * rows)
        for variant in variants {
            var state = StoredState(initial, storage: storage)
            let before = state.values
            var outputs = [Float](repeating: .nan, count: group * columns)
            state.bytes.withUnsafeMutableBytes { raw in
                variant.delta(raw.baseAddress!, storage, rows, columns, rowStride, keys, alpha, beta, value, queries,
                              rows, group, &outputs)
            }
            let after = state.values
            // Twin: S' = α(I − β k kᵀ) S + β k vᵀ, o_g = S'ᵀ q_g, column by column in float64.
            for j in 0..<columns {
                var kS = 0.0
                for f in 0..<rows { kS += Double(keys[f]) * before[f * rowStride + j] }
                var updatedColumn = [Double](repeating: 0, count: rows)
                var scale = 0.0
                for f in 0..<rows {
                    let old = before[f * rowStride + j]
                    updatedColumn[f] = Double(alpha) * (old - Double(beta) * Double(keys[f]) * kS)
                        + Double(beta) * Double(keys[f]) * Double(value[j])
                    scale = max(scale, abs(old) + abs(Double(value[j])))
                }
                for f in 0..<rows {
                    let tolerance = 2e-6 * Double(rows).squareRoot() * scale + Self.halfUlp(updatedColumn[f], storage)
                    XCTAssertLessThanOrEqual(abs(after[f * rowStride + j] - updatedColumn[f]), tolerance,
                                             "S[\(f), \(j)] rows \(rows) columns \(columns) group \(group) α \(alpha) β \(beta) \(storage) [\(variant.name)]",
                                             file: file, line: line)
                }
                for f in 0..<rows {
                    for j2 in columns..<rowStride {
                        XCTAssertEqual(after[f * rowStride + j2].bitPattern, before[f * rowStride + j2].bitPattern,
                                       "padding written [\(variant.name)]", file: file, line: line)
                    }
                }
                for g in 0..<group {
                    var expected = 0.0, magnitude = 0.0
                    for f in 0..<rows {
                        expected += Double(queries[g * rows + f]) * updatedColumn[f]
                        magnitude += abs(Double(queries[g * rows + f])) * (abs(updatedColumn[f]) + scale)
                    }
                    XCTAssertLessThanOrEqual(abs(Double(outputs[g * columns + j]) - expected), 4e-6 * magnitude + 1e-30,
                                             "o[\(g), \(j)] rows \(rows) columns \(columns) group \(group) α \(alpha) β \(beta) \(storage) [\(variant.name)]",
                                             file: file, line: line)
                }
            }
        }
    }

    func testDeltaAgainstTwin() {
        var seed: UInt64 = 3000
        for (rows, columns) in [(64, 64), (37, 64), (16, 16), (9, 128), (13, 20), (11, 7), (5, 40)] {
            for group in [1, 2, 3, 4, 5, 8] {
                for (alpha, beta) in [(Float(1), Float(1)), (0.9, 0.5), (0.5, 2), (1, 0)] {
                    checkDelta(rows: rows, columns: columns, group: group, alpha: alpha, beta: beta, storage: .f32, seed: seed)
                    seed += 1
                }
            }
        }
    }

    func testDeltaWithHalfPrecisionStorage() {
        var seed: UInt64 = 4000
        for storage in [ElementType.f16, .bf16] {
            for (rows, columns) in [(32, 64), (13, 20)] {
                for group in [1, 4] {
                    checkDelta(rows: rows, columns: columns, group: group, alpha: 0.9, beta: 0.7, storage: storage, seed: seed)
                    seed += 1
                }
            }
        }
    }

    /// β = 1 with a unit key erases the key's direction before writing v: Sᵀk after the step is v.
    func testDeltaOverwritesTheKeysSlot() {
        var generator = SeededGenerator(seed: 5)
        let (rows, columns) = (24, 16)
        let state = generator.floats(rows * columns)
        var keys = [Float](repeating: 0, count: rows)
        keys[3] = 0.6
        keys[10] = 0.8
        let value = generator.floats(columns)
        let queries = keys
        for variant in variants {
            var copy = state
            var outputs = [Float](repeating: .nan, count: columns)
            copy.withUnsafeMutableBytes { raw in
                variant.delta(raw.baseAddress!, .f32, rows, columns, columns, keys, 1, 1, value, queries, rows, 1, &outputs)
            }
            for j in 0..<columns {
                XCTAssertEqual(outputs[j], value[j], accuracy: 1e-5, "\(variant.name)")
                XCTAssertEqual(0.6 * copy[3 * columns + j] + 0.8 * copy[10 * columns + j], value[j], accuracy: 1e-5)
            }
        }
    }
}
