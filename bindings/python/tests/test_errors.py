"""Bad input: a clear exception with the library's message, never a crash, outputs untouched."""
import ctypes

import numpy as np
import pytest

import slay
from slay import _lib
from slay._lib import lib, Error, Tensor, AttentionOptions, FeatureMapParams
from slay._tensor import descriptor


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=2, prf_dim=2)


def arrays(B=1, T=5, H=2, d=4, dv=3):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, T, H, d)).astype(np.float32), rng.standard_normal((B, T, H, d)).astype(np.float32),
            rng.standard_normal((B, T, H, dv)).astype(np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(head_dim=0), "head_dim"), (dict(head_dim=-3), "head_dim"), (dict(num_heads=0), "num_heads"),
    (dict(nodes=0), "nodes"), (dict(nodes=65), "nodes"), (dict(prf_dim=0), "prf_dim"), (dict(poly_dim=0), "poly_dim"),
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(eps=float("nan")), "eps"), (dict(eps=float("inf")), "eps"),
    (dict(prf_clamp=0.0), "prf_clamp"), (dict(prf_clamp=float("nan")), "prf_clamp"),
    (dict(poly="cubic"), "poly"), (dict(kind="nope"), "kind"), (dict(head_dim=1 << 20), "head_dim"),
    (dict(head_dim=4096, poly="exact_full", prf_dim=64), "feature dimension"),
])
def test_feature_map_create_rejects(kwargs, match):
    args = dict(kind="slay", head_dim=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        slay.FeatureMap(**args)


def call_attention(fm, q, k, v, out, **kw):
    slay.linear_attention(q, k, v, fm, out=out, **kw)


@pytest.mark.parametrize("case", ["q_d", "k_heads", "v_T", "out_shape", "q_f64", "q_ndim", "out_readonly",
                                  "out_f64", "delta_nan", "delta_neg", "chunk0", "chunk_big", "threads0",
                                  "threads_big", "heads_not_multiple", "not_array"])
def test_linear_attention_rejects(fm, case):
    q, k, v = arrays()
    out = np.full((1, 5, 2, 3), 7.0, np.float32)
    kw = {}
    if case == "q_d": q = q[..., :3]
    elif case == "k_heads": k = np.concatenate([k, k], axis=2)
    elif case == "v_T": v = v[:, :4]
    elif case == "out_shape": out = np.full((1, 5, 2, 4), 7.0, np.float32)
    elif case == "q_f64": q = q.astype(np.float64)
    elif case == "q_ndim": q = q[0]
    elif case == "out_readonly": out.flags.writeable = False
    elif case == "out_f64": out = out.astype(np.float64)
    elif case == "delta_nan": kw["delta"] = float("nan")
    elif case == "delta_neg": kw["delta"] = -1.0
    elif case == "chunk0": kw["chunk_size"] = 0
    elif case == "chunk_big": kw["chunk_size"] = 5000
    elif case == "threads0": kw["n_threads"] = 0
    elif case == "threads_big": kw["n_threads"] = 100000
    elif case == "heads_not_multiple": q = np.concatenate([q, q[:, :, :1]], axis=2); out = np.full((1, 5, 3, 3), 7.0, np.float32)
    elif case == "not_array": q = q.tolist()
    before = out.copy()
    with pytest.raises((ValueError, TypeError)) as info:
        call_attention(fm, q, k, v, out, **kw)
    assert str(info.value)
    if out.dtype == np.float32:
        np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("kw", [dict(kernel="cosine"), dict(eps=0.0), dict(eps=float("nan")), dict(delta=-1.0),
                                dict(scale=float("inf")), dict(n_threads=0)])
def test_exact_attention_rejects(kw):
    q, k, v = arrays()
    with pytest.raises(ValueError):
        slay.exact_attention(q, k, v, **kw)


def test_params_rejects(fm):
    with pytest.raises(ValueError, match="unknown parameter"):
        fm.set_params(gamma=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="shape"):
        fm.set_params(omega=np.zeros(3, np.float32))
    bad = fm.get_params()["omega"].copy()
    bad[0, 0, 0, 0] = np.nan
    identity = fm.identity
    with pytest.raises(ValueError, match="finite"):
        fm.set_params(omega=bad)
    assert fm.identity == identity
    with pytest.raises(ValueError, match="role"):
        fm(np.zeros((1, 1, 2, 4), np.float32), role="value")


# ---- the C entry points directly, through ctypes -------------------------------------------------

def tensor(array, **override):
    t = Tensor()
    t.data = array.ctypes.data
    t.dtype = 0
    t.ndim = array.ndim
    for axis in range(array.ndim):
        t.shape[axis] = array.shape[axis]
        t.strides[axis] = array.strides[axis] // 4
    for key, value in override.items():
        if key in ("shape", "strides"):
            for axis, x in value.items():
                getattr(t, key)[axis] = x
        else:
            setattr(t, key, value)
    return t


C_CASES = {
    "q NULL": (lambda q, k, v, o: (None, k, v, o), -1),
    "k NULL": (lambda q, k, v, o: (q, None, v, o), -1),
    "v NULL": (lambda q, k, v, o: (q, k, None, o), -1),
    "out NULL": (lambda q, k, v, o: (q, k, v, None), -1),
    "data NULL": (lambda q, k, v, o: (q, k, v, (o[0], dict(data=None))), -1),
    "dtype f16": (lambda q, k, v, o: ((q[0], dict(dtype=2)), k, v, o), -4),
    "dtype unknown": (lambda q, k, v, o: ((q[0], dict(dtype=99)), k, v, o), -4),
    "ndim 3": (lambda q, k, v, o: ((q[0], dict(ndim=3)), k, v, o), -2),
    "zero dim": (lambda q, k, v, o: ((q[0], dict(shape={1: 0})), k, v, o), -2),
    "negative dim": (lambda q, k, v, o: ((q[0], dict(shape={0: -1})), k, v, o), -2),
    "negative stride": (lambda q, k, v, o: ((q[0], dict(strides={1: -8})), k, v, o), -3),
    "overflow": (lambda q, k, v, o: ((q[0], dict(shape={1: 1 << 40}, strides={1: 1 << 40})), k, v, o), -5),
    "out stride 0": (lambda q, k, v, o: (q, k, v, (o[0], dict(strides={1: 0}))), -3),
    "out overlaps itself": (lambda q, k, v, o: (q, k, v, (o[0], dict(strides={1: 1}))), -3),
    "out aliases q": (lambda q, k, v, o: (q, k, v, (q[0], dict(shape={3: 3}))), -3),
}


@pytest.mark.parametrize("name", sorted(C_CASES))
def test_c_linear_attention_contract(fm, name):
    q, k, v = arrays()
    out = np.full((1, 5, 2, 3), 7.0, np.float32)
    before = out.copy()
    build, code = C_CASES[name]
    args = build((q, {}), (k, {}), (v, {}), (out, {}))
    refs = [None if a is None else ctypes.byref(tensor(a[0], **a[1])) for a in args]
    err = Error()
    assert lib.slay_linear_attention(fm.handle, *refs, None, ctypes.byref(err)) == code
    assert err.code == code and err.message
    np.testing.assert_array_equal(out, before)


def test_c_null_handles_and_outs(fm):
    err = Error()
    q, k, v = arrays()
    out = np.zeros((1, 5, 2, 3), np.float32)
    assert lib.slay_linear_attention(None, descriptor(q), descriptor(k), descriptor(v), descriptor(out), None,
                                     ctypes.byref(err)) == -1 and b"fm is NULL" in err.message
    for fn, args in [("slay_feature_map_dim", [fm.handle, None]), ("slay_feature_map_identity", [fm.handle, None]),
                     ("slay_feature_map_param_count", [fm.handle, None]),
                     ("slay_feature_map_param_name", [fm.handle, 0, None]),
                     ("slay_feature_map_param_shape", [fm.handle, b"omega", None, None]),
                     ("slay_feature_map_get_param", [fm.handle, b"omega", None, 32]),
                     ("slay_feature_map_set_param", [fm.handle, b"omega", None, 32]),
                     ("slay_feature_map_get_param", [fm.handle, None, None, 32]),
                     ("slay_feature_map_config", [fm.handle, None]),
                     ("slay_feature_map_create", [None, None]), ("slay_gauss_laguerre", [2, None, None]),
                     ("slay_state_create", [None, 1, 1, 1, None]), ("slay_state_copy", [None, None]),
                     ("slay_state_reset", [None, -1]), ("slay_state_step", [None, None, None, None, None, None, 1, None]),
                     ("slay_state_save", [None, None, 0, None]), ("slay_state_load", [fm.handle, None, 0, 1, None])]:
        err = Error()
        assert getattr(lib, fn)(*args, ctypes.byref(err)) == -1, fn
        assert err.code == -1 and err.message, fn
    assert lib.slay_feature_map_params_init(None) == -1
    assert lib.slay_attention_options_init(None) == -1
    lib.slay_feature_map_free(None)
    lib.slay_state_free(None)


def test_c_struct_size_and_enums(fm):
    q, k, v = arrays()
    out = np.zeros((1, 5, 2, 3), np.float32)
    for size, code in [(4, -1), (ctypes.sizeof(AttentionOptions) + 64, -8)]:
        opts = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(opts))
        opts.struct_size = size
        err = Error()
        assert lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                         ctypes.byref(opts), ctypes.byref(err)) == code
    opts = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(opts))
    opts.causal = 2
    assert lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                     ctypes.byref(opts), None) == -1
    opts.causal, opts.ith, opts.nth = 1, 3, 2
    assert lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                     ctypes.byref(opts), None) == -1
    params = FeatureMapParams()
    lib.slay_feature_map_params_init(ctypes.byref(params))
    params.head_dim = 4
    handle = ctypes.c_void_p(12345)
    for field, value, code in [("kind", 7, -1), ("struct_size", 8, -1), ("struct_size", 500, -8)]:
        p = FeatureMapParams.from_buffer_copy(params)
        setattr(p, field, value)
        assert lib.slay_feature_map_create(ctypes.byref(p), ctypes.byref(handle), None) == code
        assert handle.value is None  # *out is NULL on failure
    assert lib.slay_feature_map_apply(fm.handle, 5, descriptor(q), descriptor(out), None) == -1
    name = ctypes.c_char_p()
    assert lib.slay_feature_map_param_name(fm.handle, 9, ctypes.byref(name), None) == -1
    assert lib.slay_feature_map_get_param(fm.handle, b"gamma", (ctypes.c_float * 4)(), 4, None) == -1


def test_partitioned_call_equals_whole(fm):
    q, k, v = arrays(B=3, T=20)
    whole = slay.linear_attention(q, k, v, fm)
    out = np.full_like(whole, np.nan)
    for ith in range(3):
        opts = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(opts))
        opts.ith, opts.nth = ith, 3
        assert lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                         ctypes.byref(opts), None) == 0
    np.testing.assert_array_equal(out, whole)
