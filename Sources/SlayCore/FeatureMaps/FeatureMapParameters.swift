/// The checks every `setParameter` makes before replacing a named array.
enum FeatureMapParameters {
    /// The new values of parameter `name` in fallibly allocated storage, after checking that the map knows the name,
    /// the count matches the shape and every value is finite.
    static func checked(_ name: String, of map: FeatureMap, values: UnsafeBufferPointer<Float>) throws -> HeapArray<Float> {
        guard let shape = map.parameterShape(name) else {
            let known = map.parameterNames.isEmpty ? "no parameters" : map.parameterNames.joined(separator: ", ")
            throw SlayError.invalid("unknown parameter '\(name)'; this map has \(known)")
        }
        let expected = shape.reduce(1, *)
        guard values.count == expected else {
            throw SlayError.shape("parameter '\(name)' has shape \(shape) (\(expected) floats), got \(values.count) floats")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw SlayError.invalid("parameter '\(name)' element \(bad) is \(values[bad]); all values must be finite")
        }
        return try HeapArray(copying: values, what: "parameter '\(name)'")
    }
}
