import CSlay
import SlayCore

private let paramsSize = MemoryLayout<slay_feature_map_params>.size

@_cdecl("slay_feature_map_params_init")
public func slay_feature_map_params_init(_ params: UnsafeMutablePointer<slay_feature_map_params>?) -> Int32 {
    guard let params else { return SlayStatus.invalidArgument.rawValue }
    var p = slay_feature_map_params()
    p.struct_size = UInt32(paramsSize)
    p.kind = SLAY_KIND_SLAY
    p.head_dim = 0
    p.num_heads = 1
    p.nodes = 2
    p.poly = SLAY_POLY_ANCHOR
    p.poly_dim = 8
    p.prf_dim = 8
    p.eps = 1e-6
    p.prf_clamp = 20
    p.seed = 0
    p.max_length = 0
    p.prf_orthogonal = 0
    p.prf_shared = 0
    p.expansion = SLAY_EXPANSION_QUADRATURE
    p.degree = 2
    params.pointee = p
    return SlayStatus.ok.rawValue
}

/// The map params describe, by kind; SlayCore configurations validate ranges and sizes.
func makeFeatureMap(_ p: slay_feature_map_params) throws -> FeatureMap {
    try checkStructSize(p.struct_size, of: "params", current: paramsSize)
    switch p.kind {
    case SLAY_KIND_SLAY:
        switch p.expansion {
        case SLAY_EXPANSION_QUADRATURE: return try SlayFeatureMap(try slayConfiguration(p))
        case SLAY_EXPANSION_TAYLOR: return try YatTaylorFeatureMap(try taylorConfiguration(p))
        default:
            throw SlayError.invalid("params.expansion is \(p.expansion); expected SLAY_EXPANSION_QUADRATURE (0) or SLAY_EXPANSION_TAYLOR (1)")
        }
    case SLAY_KIND_ELU_PLUS_ONE: return try EluPlusOneFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_RELU: return try ReluFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_FAVOR_PLUS: return try FavorPlusFeatureMap(try classicConfiguration(p, randomFeatures: true))
    case SLAY_KIND_RELU_RANDOM: return try ReluRandomFeatureMap(try classicConfiguration(p, randomFeatures: true))
    case SLAY_KIND_RANDOM_FOURIER: return try RandomFourierFeatureMap(try classicConfiguration(p, randomFeatures: true))
    case SLAY_KIND_COSFORMER: return try CosFormerFeatureMap(try classicConfiguration(p, maxLength: true))
    case SLAY_KIND_SUM_SQ_EUCLIDEAN: return try SummationSquaredEuclideanFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_SUB_SQ_EUCLIDEAN: return try SubtractionSquaredEuclideanFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_BLUEPRINT: return try BlueprintFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_HADAMARD_EXP: return try HadamardExpFeatureMap(try classicConfiguration(p))
    case SLAY_KIND_IDENTITY: return try IdentityFeatureMap(try classicConfiguration(p))
    default:
        throw SlayError.invalid("params.kind is \(p.kind); known kinds: SLAY_KIND_SLAY (1), SLAY_KIND_ELU_PLUS_ONE (2), "
                                + "SLAY_KIND_RELU (3), SLAY_KIND_FAVOR_PLUS (4), SLAY_KIND_RELU_RANDOM (5), "
                                + "SLAY_KIND_RANDOM_FOURIER (6), SLAY_KIND_COSFORMER (7), SLAY_KIND_SUM_SQ_EUCLIDEAN (8), "
                                + "SLAY_KIND_SUB_SQ_EUCLIDEAN (9), SLAY_KIND_BLUEPRINT (10), SLAY_KIND_HADAMARD_EXP (11), "
                                + "SLAY_KIND_IDENTITY (12)")
    }
}

private func dimension(_ value: Int64, _ name: String) throws -> Int {
    guard value >= 1 && value <= Int64(SlayConfiguration.maximumDimension) else {
        throw SlayError.shape("params.\(name) must be in 1...\(SlayConfiguration.maximumDimension), got \(value)")
    }
    return Int(value)
}

/// The fields the classic and ELA maps read; the others (nodes, poly, eps, ...) are ignored, and so are
/// prf_dim and seed unless the map has random features and max_length unless it is cosFormer.
func classicConfiguration(_ p: slay_feature_map_params, randomFeatures: Bool = false,
                          maxLength: Bool = false) throws -> ClassicMapConfiguration {
    let featureCount = randomFeatures ? try dimension(p.prf_dim, "prf_dim") : 0
    var length = 0
    if maxLength {
        guard p.max_length >= 1 && p.max_length <= Int64(Int.max / 2) else {
            throw SlayError.invalid("params.max_length must be >= 1 for SLAY_KIND_COSFORMER, got \(p.max_length)")
        }
        length = Int(p.max_length)
    }
    return ClassicMapConfiguration(headDim: try dimension(p.head_dim, "head_dim"), numHeads: try dimension(p.num_heads, "num_heads"),
                                   featureCount: featureCount, maxLength: length, seed: randomFeatures ? p.seed : 0)
}

/// The fields SLAY_EXPANSION_TAYLOR reads.
func taylorConfiguration(_ p: slay_feature_map_params) throws -> YatTaylorConfiguration {
    YatTaylorConfiguration(headDim: try dimension(p.head_dim, "head_dim"), numHeads: try dimension(p.num_heads, "num_heads"),
                           eps: p.eps, degree: Int(p.degree))
}

/// Converts and checks SLAY params (struct size already checked).
func slayConfiguration(_ p: slay_feature_map_params) throws -> SlayConfiguration {
    guard let poly = SlayPolynomial(rawValue: p.poly) else {
        throw SlayError.invalid("params.poly is \(p.poly); expected SLAY_POLY_ANCHOR (1), SLAY_POLY_EXACT (2), SLAY_POLY_EXACT_FULL (3), SLAY_POLY_LAPLACE (4), SLAY_POLY_RANDOM_MACLAURIN (5), SLAY_POLY_TENSORSKETCH (6) or SLAY_POLY_NYSTROM (7)")
    }
    let polyDim = poly.usesPolyDim ? try dimension(p.poly_dim, "poly_dim") : 0
    let configuration = SlayConfiguration(
        headDim: try dimension(p.head_dim, "head_dim"), numHeads: try dimension(p.num_heads, "num_heads"),
        nodes: Int(p.nodes), polynomial: poly, polyDim: polyDim, prfDim: try dimension(p.prf_dim, "prf_dim"),
        eps: p.eps, prfClamp: p.prf_clamp, seed: p.seed, orthogonal: try flag(p.prf_orthogonal, "params.prf_orthogonal"),
        sharedOmega: try flag(p.prf_shared, "params.prf_shared"))
    try configuration.validate()
    return configuration
}

@_cdecl("slay_feature_map_create")
public func slay_feature_map_create(_ params: UnsafePointer<slay_feature_map_params>?,
                                    _ out: UnsafeMutablePointer<OpaquePointer?>?,
                                    _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    out?.pointee = nil
    return withStatus(err) {
        let params = try readVersioned(try require(params, "params"), name: "params")
        let result = try require(out, "out")
        let map = try makeFeatureMap(params)
        result.pointee = try FeatureMapHandle(map: map, params: params).register()
    }
}

@_cdecl("slay_feature_map_free")
public func slay_feature_map_free(_ fm: OpaquePointer?) {
    guard let fm else { return }
    featureMapHandles.remove(fm)
}

@_cdecl("slay_feature_map_dim")
public func slay_feature_map_dim(_ fm: OpaquePointer?, _ outDim: UnsafeMutablePointer<Int64>?,
                                 _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        try require(outDim, "out_dim").pointee = Int64(handle.map.featureDim)
    }
}

@_cdecl("slay_feature_map_config")
public func slay_feature_map_config(_ fm: OpaquePointer?, _ out: UnsafeMutablePointer<slay_feature_map_params>?,
                                    _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let target = try require(out, "out")
        try checkStructSize(UnsafeRawPointer(target).load(as: UInt32.self), of: "out", current: paramsSize)
        target.pointee = handle.params
    }
}

@_cdecl("slay_feature_map_identity")
public func slay_feature_map_identity(_ fm: OpaquePointer?, _ outIdentity: UnsafeMutablePointer<UInt64>?,
                                      _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        try require(outIdentity, "out_identity").pointee = handle.map.identity
    }
}

@_cdecl("slay_feature_map_apply")
public func slay_feature_map_apply(_ fm: OpaquePointer?, _ role: Int32, _ x: UnsafePointer<slay_tensor>?,
                                   _ out: UnsafePointer<slay_tensor>?,
                                   _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        guard let featureRole = FeatureRole(rawValue: role) else {
            throw SlayError.invalid("role is \(role); expected SLAY_ROLE_QUERY (0) or SLAY_ROLE_KEY (1)")
        }
        let input = try TensorArgument(x, name: "x", rank: 4, isOutput: false, halfPrecision: true)
        let output = try TensorArgument(out, name: "out", rank: 4, isOutput: true, halfPrecision: true)
        try TensorArgument.checkNoOverlap(output: output, inputs: [input])
        try FeatureMapApplication.apply(map: handle.map, role: featureRole, x: input.view, out: output.view)
    }
}

@_cdecl("slay_feature_map_param_count")
public func slay_feature_map_param_count(_ fm: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int32>?,
                                         _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        try require(outCount, "out_count").pointee = Int32(handle.map.parameterNames.count)
    }
}

@_cdecl("slay_feature_map_param_name")
public func slay_feature_map_param_name(_ fm: OpaquePointer?, _ index: Int32,
                                        _ outName: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                        _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let target = try require(outName, "out_name")
        let names = handle.map.parameterNames
        guard index >= 0 && Int(index) < names.count else {
            throw SlayError.invalid("index is \(index); the map has \(names.count) parameters")
        }
        guard let name = ParameterNameTable.cString(names[Int(index)]) else {
            throw SlayError(.internal, "parameter '\(names[Int(index)])' has no static name")
        }
        target.pointee = name
    }
}

private func parameterName(_ name: UnsafePointer<CChar>?) throws -> String {
    String(cString: try require(name, "name"))
}

private func knownShape(_ handle: FeatureMapHandle, _ name: String) throws -> [Int] {
    guard let shape = handle.map.parameterShape(name) else {
        throw SlayError.invalid("unknown parameter '\(name)'; this map has \(handle.map.parameterNames.joined(separator: ", "))")
    }
    return shape
}

@_cdecl("slay_feature_map_param_shape")
public func slay_feature_map_param_shape(_ fm: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                         _ outNdim: UnsafeMutablePointer<Int32>?,
                                         _ outShape: UnsafeMutablePointer<Int64>?,
                                         _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let shape = try knownShape(handle, try parameterName(name))
        let ndim = try require(outNdim, "out_ndim")
        let dims = try require(outShape, "out_shape")
        ndim.pointee = Int32(shape.count)
        for (axis, extent) in shape.enumerated() { dims[axis] = Int64(extent) }
    }
}

@_cdecl("slay_feature_map_get_param")
public func slay_feature_map_get_param(_ fm: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                       _ dst: UnsafeMutablePointer<Float>?, _ count: Int64,
                                       _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let key = try parameterName(name)
        let shape = try knownShape(handle, key)
        let target = try require(dst, "dst")
        let expected = shape.reduce(1, *)
        guard count == Int64(expected) else {
            throw SlayError.shape("parameter '\(key)' has shape \(shape) (\(expected) floats), count is \(count)")
        }
        guard let values = handle.map.parameter(key), values.count == expected else {
            throw SlayError(.internal, "parameter '\(key)' holds no values of shape \(shape)")
        }
        target.update(from: values.baseAddress, count: expected)
    }
}

@_cdecl("slay_feature_map_set_param")
public func slay_feature_map_set_param(_ fm: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                       _ src: UnsafePointer<Float>?, _ count: Int64,
                                       _ err: UnsafeMutablePointer<slay_error>?) -> Int32 {
    withStatus(err) {
        let handle = try FeatureMapHandle.from(fm)
        let key = try parameterName(name)
        let shape = try knownShape(handle, key)
        let source = try require(src, "src")
        let expected = shape.reduce(1, *)
        guard count == Int64(expected) else {
            throw SlayError.shape("parameter '\(key)' has shape \(shape) (\(expected) floats), count is \(count)")
        }
        try handle.map.setParameter(key, values: UnsafeBufferPointer(start: source, count: expected))
    }
}
