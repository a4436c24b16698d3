"""Bad input: the right exception / status code, a non-empty detail message, never a crash, and
outputs untouched (slay.h "Conventions": status codes, error details, no side effects on error,
bad input never aborts the process).

Part 1 drives every public Python function; part 2 calls every C entry point directly through
ctypes (the `_lib` functions), with NULL for each pointer argument and with bad values.
"""
import ctypes
import types

import numpy as np
import pytest

import slay
from slay._lib import lib, Error, Tensor, AttentionOptions, ExactAttentionOptions, FeatureMapParams, AttentionBackwardParams

OK, INVALID, SHAPE, LAYOUT, DTYPE, OVERFLOW = 0, -1, -2, -3, -4, -5
CORRUPT, VERSION, BUFFER = -7, -8, -10
NAN, INF = float("nan"), float("inf")
SENTINEL = 7.0


def arrays(B=1, T=5, Hq=2, Hk=2, d=4, dv=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, T, Hq, d)).astype(np.float32), rng.standard_normal((B, T, Hk, d)).astype(np.float32),
            rng.standard_normal((B, T, Hk, dv)).astype(np.float32))


def strided(array, shape, strides_in_elements):
    return np.lib.stride_tricks.as_strided(array, shape, tuple(4 * s for s in strides_in_elements))


def misaligned(shape):
    raw = np.zeros(int(np.prod(shape)) * 4 + 1, np.uint8)
    return raw[1:].view(np.float32).reshape(shape)


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=2, prf_dim=2)


# =================================================================================================
# Part 1: the Python API
# =================================================================================================

@pytest.mark.parametrize("kwargs,exc,code,match", [
    (dict(head_dim=0), ValueError, SHAPE, "head_dim"),
    (dict(head_dim=-3), ValueError, SHAPE, "head_dim"),
    (dict(head_dim=65537), ValueError, SHAPE, "head_dim"),
    (dict(head_dim=1 << 40), ValueError, SHAPE, "head_dim"),
    (dict(head_dim=None), ValueError, INVALID, "head_dim"),
    (dict(head_dim=4.0), ValueError, INVALID, "head_dim"),
    (dict(num_heads=0), ValueError, SHAPE, "num_heads"),
    (dict(num_heads=65537), ValueError, SHAPE, "num_heads"),
    (dict(nodes=0), ValueError, INVALID, "nodes|R "),
    (dict(nodes=65), ValueError, INVALID, "nodes|R "),
    (dict(nodes=-1), ValueError, INVALID, "nodes|R "),
    (dict(prf_dim=0), ValueError, SHAPE, "prf_dim"),
    (dict(poly_dim=0), ValueError, SHAPE, "poly_dim"),
    (dict(prf_dim=-5), ValueError, SHAPE, "prf_dim"),
    (dict(eps=0.0), ValueError, INVALID, "eps"),
    (dict(eps=-1.0), ValueError, INVALID, "eps"),
    (dict(eps=NAN), ValueError, INVALID, "eps"),
    (dict(eps=INF), ValueError, INVALID, "eps"),
    (dict(prf_clamp=0.0), ValueError, INVALID, "prf_clamp"),
    (dict(prf_clamp=-2.0), ValueError, INVALID, "prf_clamp"),
    (dict(prf_clamp=NAN), ValueError, INVALID, "prf_clamp"),
    (dict(prf_clamp=INF), ValueError, INVALID, "prf_clamp"),
    (dict(poly="cubic"), ValueError, INVALID, "poly"),
    (dict(poly=2), ValueError, INVALID, "poly"),
    (dict(kind="nope"), ValueError, INVALID, "kind"),
    (dict(seed=-1), ValueError, INVALID, "seed"),
    (dict(seed=2**64), ValueError, INVALID, "seed"),
    (dict(head_dim=4096, poly="exact_full", prf_dim=64), ValueError, OVERFLOW, "feature dimension|2\\^24"),
    (dict(head_dim=64, poly_dim=65536, prf_dim=65536), ValueError, OVERFLOW, "feature dimension|2\\^24"),
    (dict(prf_dim=1 << 40), ValueError, SHAPE, "prf_dim"),
])
def test_feature_map_create_rejects(kwargs, exc, code, match):
    """slay_feature_map_create: NULL/unknown kind or poly, ε or clamp not finite > 0, R outside 1..64 →
    INVALID_ARGUMENT; dims out of range → SHAPE; m > 2^24 → OVERFLOW."""
    args = dict(kind="slay", head_dim=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match) as info:
        slay.FeatureMap(**args)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code and str(info.value)


def feature_case(fm, case):
    x = np.random.default_rng(0).standard_normal((1, 5, 2, 4)).astype(np.float32)
    out = np.full((1, 5, 2, fm.dim), SENTINEL, np.float32)
    kw = {}
    if case == "x f64": x = x.astype(np.float64)
    elif case == "x int": x = np.ones((1, 5, 2, 4), np.int32)
    elif case == "x ndim 3": x = x[0]
    elif case == "x list": x = x.tolist()
    elif case == "x heads": x = np.concatenate([x, x], axis=2)
    elif case == "x d": x = x[..., :3]
    elif case == "x misaligned": x = misaligned(x.shape)
    elif case == "x stride 6 bytes": x = np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), x.shape, (0, 0, 0, 6))
    elif case == "role": kw["role"] = "value"
    elif case == "role int": kw["role"] = 1
    elif case == "out f64": out = out.astype(np.float64)
    elif case == "out shape": out = np.full((1, 5, 2, fm.dim + 1), SENTINEL, np.float32)
    elif case == "out readonly": out.flags.writeable = False
    elif case == "out negative stride": out = out[:, ::-1]
    elif case == "out overlaps itself": out = strided(out, out.shape, (0, 0, 0, 1))
    elif case == "out overlaps x":
        buffer = np.full((1, 5, 2, fm.dim), SENTINEL, np.float32)
        x = buffer[..., :4]
        out = buffer
    return x, out, kw


@pytest.mark.parametrize("case,exc,code", [
    ("x f64", TypeError, DTYPE), ("x int", TypeError, DTYPE), ("x ndim 3", ValueError, SHAPE),
    ("x list", ValueError, INVALID), ("x heads", ValueError, SHAPE), ("x d", ValueError, SHAPE),
    ("x misaligned", ValueError, LAYOUT), ("x stride 6 bytes", ValueError, LAYOUT), ("role", ValueError, INVALID),
    ("role int", ValueError, INVALID), ("out f64", TypeError, DTYPE), ("out shape", ValueError, SHAPE),
    ("out readonly", ValueError, INVALID), ("out negative stride", ValueError, LAYOUT),
    ("out overlaps itself", ValueError, LAYOUT), ("out overlaps x", ValueError, LAYOUT),
])
def test_feature_map_apply_rejects(fm, case, exc, code):
    """slay_feature_map_apply (fm(x)): dtype, rank, H and d, role, output shape/writeability/overlap."""
    x, out, kw = feature_case(fm, case)
    base = out.base if case == "out overlaps itself" else out
    before = np.array(base, copy=True)
    with pytest.raises(exc) as info:
        fm(x, out=out, **kw)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code and str(info.value)
    np.testing.assert_array_equal(base, before)


@pytest.mark.parametrize("kw,code,match", [
    (dict(gamma=np.zeros(3, np.float32)), INVALID, "unknown parameter"),
    (dict(omega=np.zeros(3, np.float32)), SHAPE, "shape"),
    (dict(anchors=np.zeros((3, 4), np.float32)), SHAPE, "shape"),
    (dict(omega="nan"), INVALID, "finite"),
    (dict(omega="inf"), INVALID, "finite"),
    (dict(anchors="nan"), INVALID, "finite"),
])
def test_set_params_rejects(kw, code, match):
    """slay_feature_map_set_param: unknown name → INVALID_ARGUMENT, wrong count → SHAPE, non-finite →
    INVALID_ARGUMENT; on error the matrices and the identity are unchanged."""
    fm = slay.FeatureMap("slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=2, prf_dim=2, seed=3)
    params, identity = fm.get_params(), fm.identity
    for name, value in kw.items():
        if isinstance(value, str):
            bad = params[name].copy()
            bad.flat[1] = float(value)
            kw[name] = bad
    with pytest.raises(ValueError, match=match) as info:
        fm.set_params(**kw)
    assert info.value.code == code
    assert fm.identity == identity
    for name, value in fm.get_params().items():
        np.testing.assert_array_equal(value, params[name])


LINEAR_CASES = {
    "q f64": (TypeError, DTYPE), "v int16": (TypeError, DTYPE), "q ndim 3": (ValueError, SHAPE),
    "q list": (ValueError, INVALID), "q d": (ValueError, SHAPE), "k heads": (ValueError, SHAPE),
    "v T": (ValueError, SHAPE), "k B": (ValueError, SHAPE), "heads not multiple": (ValueError, SHAPE),
    "k misaligned": (ValueError, LAYOUT), "q stride 2 bytes": (ValueError, LAYOUT),
    "out shape": (ValueError, SHAPE), "out f64": (TypeError, DTYPE), "out readonly": (ValueError, INVALID),
    "out negative stride": (ValueError, LAYOUT), "out stride 0": (ValueError, LAYOUT),
    "out overlaps q": (ValueError, LAYOUT), "out overlaps v": (ValueError, LAYOUT),
    "out list": (ValueError, INVALID), "delta nan": (ValueError, INVALID), "delta inf": (ValueError, INVALID),
    "delta negative": (ValueError, INVALID), "chunk -1": (ValueError, INVALID),
    "chunk 4097": (ValueError, INVALID), "threads 0": (ValueError, INVALID), "threads -1": (ValueError, INVALID),
    "threads 257": (ValueError, INVALID), "threads 100000": (ValueError, INVALID),
    "fm None": (ValueError, INVALID), "fm closed": (ValueError, INVALID),
}


def linear_case(fm, case):
    q, k, v = arrays()
    out = np.full((1, 5, 2, 3), SENTINEL, np.float32)
    kw = dict(fm=fm)
    if case == "q f64": q = q.astype(np.float64)
    elif case == "v int16": v = v.astype(np.int16)
    elif case == "q ndim 3": q = q[0]
    elif case == "q list": q = q.tolist()
    elif case == "q d": q = q[..., :3]
    elif case == "k heads": k = np.concatenate([k, k], axis=2)
    elif case == "v T": v = v[:, :4]
    elif case == "k B": k = np.concatenate([k, k])
    elif case == "heads not multiple":
        q = np.concatenate([q, q[:, :, :1]], axis=2)
        out = np.full((1, 5, 3, 3), SENTINEL, np.float32)
    elif case == "k misaligned": k = misaligned(k.shape)
    elif case == "q stride 2 bytes": q = np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), q.shape, (0, 0, 0, 2))
    elif case == "out shape": out = np.full((1, 5, 2, 4), SENTINEL, np.float32)
    elif case == "out f64": out = out.astype(np.float64)
    elif case == "out readonly": out.flags.writeable = False
    elif case == "out negative stride": out = out[:, ::-1]
    elif case == "out stride 0": out = strided(out, out.shape, (0, 3, 0, 1))
    elif case == "out overlaps q":
        buffer = np.full((1, 5, 2, 7), SENTINEL, np.float32)
        buffer[..., :4] = q
        q, out = buffer[..., :4], buffer[..., 2:5]
    elif case == "out overlaps v": out = v
    elif case == "out list": out = out.tolist()
    elif case == "delta nan": kw["delta"] = NAN
    elif case == "delta inf": kw["delta"] = INF
    elif case == "delta negative": kw["delta"] = -1e-3
    elif case.startswith("chunk"): kw["chunk_size"] = int(case.split()[1])
    elif case.startswith("threads"): kw["n_threads"] = int(case.split()[1])
    elif case == "fm None": kw["fm"] = None
    elif case == "fm closed":
        closed = slay.FeatureMap("slay", head_dim=4, num_heads=2)
        closed.close()
        kw["fm"] = closed
    return q, k, v, out, kw


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_attention_rejects(fm, case):
    """slay_linear_attention (slay.linear_attention): every bad argument → the documented status, the
    message, and `out` unchanged."""
    exc, code = LINEAR_CASES[case]
    q, k, v, out, kw = linear_case(fm, case)
    owner = out.base if case == "out stride 0" else out
    before = None if isinstance(out, list) else np.array(owner, copy=True)
    with pytest.raises(exc) as info:
        slay.linear_attention(q, k, v, out=out, **kw)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code and str(info.value)
    if before is not None:
        np.testing.assert_array_equal(owner, before)


@pytest.mark.parametrize("kw,exc,code", [
    (dict(kernel="cosine"), ValueError, INVALID), (dict(kernel=2), ValueError, INVALID),
    (dict(eps=0.0), ValueError, INVALID), (dict(eps=-1.0), ValueError, INVALID), (dict(eps=NAN), ValueError, INVALID),
    (dict(eps=INF), ValueError, INVALID), (dict(delta=-1.0), ValueError, INVALID), (dict(delta=NAN), ValueError, INVALID),
    (dict(scale=INF), ValueError, INVALID), (dict(scale=NAN), ValueError, INVALID), (dict(scale=0.0), ValueError, INVALID),
    (dict(n_threads=0), ValueError, INVALID), (dict(n_threads=-1), ValueError, INVALID),
    (dict(n_threads=100000), ValueError, INVALID), (dict(q="f64"), TypeError, DTYPE), (dict(q="d3"), ValueError, SHAPE),
    (dict(k="heads3"), ValueError, SHAPE), (dict(v="T4"), ValueError, SHAPE), (dict(out="shape"), ValueError, SHAPE),
    (dict(out="readonly"), ValueError, INVALID), (dict(out="f64"), TypeError, DTYPE), (dict(out="is k"), ValueError, LAYOUT),
])
def test_exact_attention_rejects(kw, exc, code):
    """slay_exact_attention (slay.exact_attention): kernel, ε, δ, scale, n_threads, tensors."""
    q, k, v = arrays()
    out = np.full((1, 5, 2, 3), SENTINEL, np.float32)
    kw = dict(kw)
    transforms = {"f64": lambda a: a.astype(np.float64), "d3": lambda a: a[..., :3],
                  "heads3": lambda a: np.concatenate([a, a[:, :, :1]], axis=2), "T4": lambda a: a[:, :4]}
    for name in ("q", "k", "v"):
        if name in kw:
            value = transforms[kw.pop(name)](locals()[name])
            q, k, v = (value if n == name else a for n, a in zip("qkv", (q, k, v)))
    if "out" in kw:
        how = kw.pop("out")
        if how == "shape": out = np.full((1, 5, 2, 4), SENTINEL, np.float32)
        elif how == "readonly": out.flags.writeable = False
        elif how == "f64": out = out.astype(np.float64)
        elif how == "is k": k, out = np.ascontiguousarray(k[..., :3]), None
    if out is None:  # out aliases an input
        q, k, v = arrays(d=3)
        out = k
    before = out.copy()
    with pytest.raises(exc) as info:
        slay.exact_attention(q, k, v, out=out, **kw)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code and str(info.value)
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("R,exc,code", [(0, ValueError, INVALID), (-1, ValueError, INVALID), (65, ValueError, INVALID),
                                        (1000, ValueError, INVALID), (2**40, ValueError, INVALID),
                                        ("2", TypeError, DTYPE), (2.0, TypeError, DTYPE), (True, TypeError, DTYPE)])
def test_gauss_laguerre_rejects(R, exc, code):
    """slay_gauss_laguerre: 1 <= R <= 64."""
    with pytest.raises(exc, match="R must be") as info:
        slay.gauss_laguerre(R)
    assert info.value.code == code


def test_python_error_hierarchy():
    """SlayError carries .code and .status_name; value-like codes are ValueError, DTYPE is TypeError,
    OUT_OF_MEMORY is MemoryError, the rest RuntimeError."""
    from slay.errors import error_for
    expected = {-1: ValueError, -2: ValueError, -3: ValueError, -4: TypeError, -5: ValueError, -6: MemoryError,
                -7: ValueError, -8: ValueError, -9: RuntimeError, -10: ValueError, -11: RuntimeError,
                -12: ValueError}
    for code, base in expected.items():
        error = error_for(code, "detail")
        assert isinstance(error, slay.SlayError) and isinstance(error, base)
        assert error.code == code and error.status_name == lib.slay_status_string(code).decode()
        assert "detail" in str(error)


STATE_CASES = [
    ("create num_seqs 0", lambda s, fm, a: slay.State(fm, num_seqs=0), SHAPE),
    ("create num_seqs 2^20+1", lambda s, fm, a: slay.State(fm, num_seqs=2**20 + 1), SHAPE),
    ("create value_dim 0", lambda s, fm, a: slay.State(fm, num_seqs=1, value_dim=0), SHAPE),
    ("create max_threads 0", lambda s, fm, a: slay.State(fm, max_threads=0), INVALID),
    ("create max_threads 257", lambda s, fm, a: slay.State(fm, max_threads=257), INVALID),
    ("create fm None", lambda s, fm, a: slay.State(None), INVALID),
    ("position slot 2", lambda s, fm, a: s.position(2), INVALID),
    ("read slot -1", lambda s, fm, a: s.read(-1), INVALID),
    ("reset slot 2", lambda s, fm, a: s.reset(2), INVALID),
    ("copy_slot src 5", lambda s, fm, a: s.copy_slot(0, s, 5), INVALID),
    ("prefill k f64", lambda s, fm, a: s.prefill(a[0], a[1].astype(np.float64), a[2]), DTYPE),
    ("prefill v width", lambda s, fm, a: s.prefill(a[0], a[1], a[2][..., :2]), SHAPE),
    ("prefill slots duplicate", lambda s, fm, a: s.prefill(a[0], a[1], a[2], slots=[1, 1]), INVALID),
    ("prefill slots out of range", lambda s, fm, a: s.prefill(a[0], a[1], a[2], slots=[0, 2]), INVALID),
    ("prefill cu_seqlens not monotone", lambda s, fm, a: s.prefill(a[0][:1], a[1][:1], a[2][:1], cu_seqlens=[0, 3, 2]),
     SHAPE),
    ("prefill chunk -1", lambda s, fm, a: s.prefill(a[0], a[1], a[2], chunk_size=-1), INVALID),
    ("prefill delta nan", lambda s, fm, a: s.prefill(a[0], a[1], a[2], delta=NAN), INVALID),
    ("query q d", lambda s, fm, a: s.query(a[0][..., :3]), SHAPE),
    ("step q ndim 4", lambda s, fm, a: s.step(a[0], a[1][:, 0], a[2][:, 0]), SHAPE),
    ("step threads 0", lambda s, fm, a: s.step(a[0][:, 0], a[1][:, 0], a[2][:, 0], n_threads=0), INVALID),
    ("step out readonly", lambda s, fm, a: s.step(a[0][:, 0], a[1][:, 0], a[2][:, 0], out=readonly((2, 2, 3))),
     INVALID),
    ("load not bytes", lambda s, fm, a: slay.State.load(12, fm), INVALID),
    ("load truncated", lambda s, fm, a: slay.State.load(s.save()[:40], fm), CORRUPT),
    ("restore not bytes", lambda s, fm, a: s.restore(100), INVALID),
    ("restore corrupt", lambda s, fm, a: s.restore(b"SLAYSTAT" + bytes(200)), None),
]


def readonly(shape):
    array = np.full(shape, SENTINEL, np.float32)
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("name", [c[0] for c in STATE_CASES])
def test_state_rejects(fm, name):
    """slay_state_*: bad slots, dims, tensors, options and blobs are errors; the state is unchanged."""
    call, code = {c[0]: c[1:] for c in STATE_CASES}[name]
    state = slay.State(fm, num_seqs=2, value_dim=3)
    q, k, v = arrays(B=2)
    state.prefill(q, k, v)
    before = state.save()
    with pytest.raises(slay.SlayError) as info:
        call(state, fm, (q, k, v))
    assert str(info.value) and (code is None or info.value.code == code), (info.value.code, str(info.value))
    assert state.save() == before


def test_closed_handles_raise(fm):
    """Using a closed FeatureMap or State raises a clear error instead of passing a dangling pointer."""
    state = slay.State(fm, num_seqs=1, value_dim=3)
    state.close()
    assert state._handle is None
    for use in (state.save, lambda: state.position(0), lambda: state.step(*[a[:, 0] for a in arrays(B=1)])):
        with pytest.raises(slay.SlayValueError, match="closed"):
            use()
    state.close()


# =================================================================================================
# Part 2: every C entry point through ctypes
# =================================================================================================

def call(function, *args):
    """Calls lib.<function>(*args, &err) with err pre-filled with garbage; checks err is always written."""
    err = Error()
    err.code = 99
    err.message = b"garbage"
    status = getattr(lib, function)(*args, ctypes.byref(err))
    assert err.code == status, (function, status, err.code)
    message = err.message.decode()
    assert (message == "") == (status == OK), (function, status, message)
    return status, message


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


def ref(x):
    return ctypes.byref(x)


# Kinds whose attention and states run through an engine of their own: the World-based tests
# of those entry points run with each of them too (SLAY_KIND_HADAMARD_EXP: the rescaled-exp form).
ENGINE_KINDS = ["slay", "ela-hadamard-exp"]


class World:
    """Valid arguments for every C function, plus snapshots of everything a call could write."""

    def __init__(self, kind="slay"):
        if kind == "slay":
            self.fm = slay.FeatureMap("slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=2, prf_dim=2, seed=1)
        else:
            self.fm = slay.FeatureMap(kind, head_dim=4, num_heads=2)
        self.h = self.fm.handle
        self.m = self.fm.dim
        self.q, self.k, self.v = arrays(B=2)
        self.out = np.full((2, 5, 2, 3), SENTINEL, np.float32)
        self.x = self.q
        self.features = np.full((2, 5, 2, self.m), SENTINEL, np.float32)
        self.q1, self.k1, self.v1 = (np.ascontiguousarray(a[:, 0]) for a in (self.q, self.k, self.v))
        self.out1 = np.full((2, 2, 3), SENTINEL, np.float32)
        self.T = {name: tensor(getattr(self, name)) for name in
                  ("q", "k", "v", "out", "x", "features", "q1", "k1", "v1", "out1")}
        self.params = FeatureMapParams()
        assert lib.slay_feature_map_params_init(ref(self.params)) == OK
        self.params.head_dim = 4
        self.options = AttentionOptions()
        assert lib.slay_attention_options_init(ref(self.options)) == OK
        self.exact_options = ExactAttentionOptions()
        assert lib.slay_exact_attention_options_init(ref(self.exact_options)) == OK
        self.state = slay.State(self.fm, num_seqs=2, value_dim=3)
        self.s = self.state.handle
        self.state.prefill(self.q, self.k, self.v)
        self.blob = self.state.save()
        self.blob_buffer = ctypes.create_string_buffer(b"\x5a" * (len(self.blob) + 8), len(self.blob) + 8)
        self.omega = self.fm.get_params().get("omega", np.zeros(1, np.float32))
        self.param_out = np.full(self.omega.size, SENTINEL, np.float32)
        self.matrix = np.full(2 * self.m * 3, SENTINEL, np.float32)
        self.normaliser = np.full(2 * self.m, SENTINEL, np.float32)
        self.nodes = np.full(4, SENTINEL)
        self.weights = np.full(4, SENTINEL)
        self.cu = np.array([0, 2, 5], np.int64)
        self.slots = np.array([1, 0], np.int32)
        self.handle_out = ctypes.c_void_p(0x1234)
        self.i32, self.i64, self.u64, self.size = (ctypes.c_int32(-77), ctypes.c_int64(-77), ctypes.c_uint64(77),
                                                   ctypes.c_size_t(77))
        self.i64s = [ctypes.c_int64(-77) for _ in range(4)]
        self.shape_out = (ctypes.c_int64 * 4)(-77, -77, -77, -77)
        self.name_out = ctypes.c_char_p(b"sentinel")
        self.config_out = FeatureMapParams()
        assert lib.slay_feature_map_params_init(ref(self.config_out)) == OK
        self.dq = np.full(self.q.shape, SENTINEL, np.float32)
        self.T["dq"] = tensor(self.dq)
        self.backward = AttentionBackwardParams()
        assert lib.slay_attention_backward_params_init(ref(self.backward)) == OK
        self.backward.dq = ctypes.addressof(self.T["dq"])

    def ptr(self, array, ctype=ctypes.c_float):
        return array.ctypes.data_as(ctypes.POINTER(ctype))

    def snapshot(self):
        arrays_ = [a.copy() for a in (self.out, self.features, self.out1, self.param_out, self.matrix,
                                      self.normaliser, self.nodes, self.weights, self.q, self.k, self.v, self.dq)]
        scalars = (self.i32.value, self.i64.value, self.u64.value, self.size.value, [x.value for x in self.i64s],
                   list(self.shape_out), self.name_out.value, bytes(self.config_out), self.blob_buffer.raw)
        return arrays_, scalars, self.state.save(), self.fm.identity

    def assert_unchanged(self, snapshot):
        arrays_, scalars, blob, identity = self.snapshot()
        for a, b in zip(arrays_, snapshot[0]):
            np.testing.assert_array_equal(a, b)
        assert scalars == snapshot[1]
        assert blob == snapshot[2], "the state changed"
        assert identity == snapshot[3], "the feature map changed"


# function: (arguments before err, indices of pointer arguments that must not be NULL)
C_FUNCTIONS = {
    "slay_feature_map_create": (lambda w: [ref(w.params), ref(w.handle_out)], [0, 1]),
    "slay_feature_map_dim": (lambda w: [w.h, ref(w.i64)], [0, 1]),
    "slay_feature_map_config": (lambda w: [w.h, ref(w.config_out)], [0, 1]),
    "slay_feature_map_identity": (lambda w: [w.h, ref(w.u64)], [0, 1]),
    "slay_feature_map_apply": (lambda w: [w.h, 0, ref(w.T["x"]), ref(w.T["features"])], [0, 2, 3]),
    "slay_feature_map_param_count": (lambda w: [w.h, ref(w.i32)], [0, 1]),
    "slay_feature_map_param_name": (lambda w: [w.h, 0, ref(w.name_out)], [0, 2]),
    "slay_feature_map_param_shape": (lambda w: [w.h, b"omega", ref(w.i32), w.shape_out], [0, 1, 2, 3]),
    "slay_feature_map_get_param": (lambda w: [w.h, b"omega", w.ptr(w.param_out), w.param_out.size], [0, 1, 2]),
    "slay_feature_map_set_param": (lambda w: [w.h, b"omega", w.ptr(w.omega), w.omega.size], [0, 1, 2]),
    "slay_linear_attention": (lambda w: [w.h, ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]),
                                         ref(w.options)], [0, 1, 2, 3, 4]),
    "slay_exact_attention": (lambda w: [ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]),
                                        ref(w.exact_options)], [0, 1, 2, 3]),
    "slay_state_create": (lambda w: [w.h, 2, 3, 1, ref(w.handle_out)], [0, 4]),
    "slay_state_create_v2": (lambda w: [w.h, 2, 3, 1, 3, ref(w.handle_out)], [0, 5]),
    "slay_state_storage_dtype": (lambda w: [w.s, ref(w.i32)], [0, 1]),
    "slay_state_copy": (lambda w: [w.s, ref(w.handle_out)], [0, 1]),
    "slay_state_copy_slot": (lambda w: [w.s, 0, w.s, 0], [0, 2]),
    "slay_state_reset": (lambda w: [w.s, -1], [0]),
    "slay_state_dims": (lambda w: [w.s] + [ref(x) for x in w.i64s], [0]),
    "slay_state_position": (lambda w: [w.s, 1, ref(w.i64)], [0, 2]),
    "slay_state_read": (lambda w: [w.s, 1, w.ptr(w.matrix), w.matrix.size, w.ptr(w.normaliser), w.normaliser.size],
                        [0]),
    "slay_state_write": (lambda w: [w.s, 1, w.ptr(w.matrix), w.matrix.size, w.ptr(w.normaliser), w.normaliser.size,
                                    3], [0]),
    "slay_state_prefill": (lambda w: [w.s, ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]), None,
                                      w.ptr(w.slots, ctypes.c_int32), 2, ref(w.options)], [0, 2, 3]),
    "slay_state_query": (lambda w: [w.s, ref(w.T["q"]), ref(w.T["out"]), None, None, 2, ref(w.options)], [0, 1, 2]),
    "slay_state_step": (lambda w: [w.s, ref(w.T["q1"]), ref(w.T["k1"]), ref(w.T["v1"]), ref(w.T["out1"]), None, 2,
                                   ref(w.options)], [0, 1, 2, 3, 4]),
    "slay_state_serialized_size": (lambda w: [w.s, ref(w.size)], [0, 1]),
    "slay_state_save": (lambda w: [w.s, w.blob_buffer, len(w.blob_buffer), ref(w.size)], [0, 1]),
    "slay_state_load": (lambda w: [w.h, w.blob, len(w.blob), 1, ref(w.handle_out)], [0, 1, 4]),
    "slay_state_restore": (lambda w: [w.s, w.blob, len(w.blob)], [0, 1]),
    "slay_gauss_laguerre": (lambda w: [4, w.ptr(w.nodes, ctypes.c_double), w.ptr(w.weights, ctypes.c_double)], [1, 2]),
    "slay_linear_attention_backward": (lambda w: [w.h, ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]),
                                                  ref(w.options), ref(w.backward)], [0, 1, 2, 3, 4, 6]),
}
CREATORS = {"slay_feature_map_create", "slay_state_create", "slay_state_create_v2", "slay_state_copy", "slay_state_load"}


def free_handle(function, handle):
    if handle.value:
        (lib.slay_feature_map_free if function == "slay_feature_map_create" else lib.slay_state_free)(handle)


def test_every_fallible_c_function_is_covered():
    """Every int32_t-returning function of slay.h that takes slay_error* is in the NULL table below."""
    fallible = {name for name, (_, args) in slay._lib.SIGNATURES.items() if args and args[-1] is slay._lib.E}
    assert fallible == set(C_FUNCTIONS)


@pytest.mark.parametrize("function", sorted(C_FUNCTIONS))
def test_c_valid_call_succeeds_and_clears_error(function):
    """The baseline of the NULL table: with valid arguments each call returns SLAY_OK and writes
    err->code = 0, err->message = "" (error details are always written)."""
    w = World()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == OK, message
    if function in CREATORS:
        assert w.handle_out.value not in (None, 0x1234)
        free_handle(function, w.handle_out)


@pytest.mark.parametrize("kind,function,index", [
    (kind, f, i) for kind in ENGINE_KINDS for f in sorted(C_FUNCTIONS) for i in C_FUNCTIONS[f][1]
    if kind == "slay" or "param" not in f])
def test_c_null_pointer_argument(kind, function, index):
    """NULL for each required pointer argument → SLAY_ERR_INVALID_ARGUMENT with a message, no crash,
    outputs and state untouched, *out handles set to NULL."""
    w = World(kind)
    args = C_FUNCTIONS[function][0](w)
    args[index] = None
    before = w.snapshot()
    status, message = call(function, *args)
    assert status == INVALID and message
    if function in CREATORS and args[-1] is not None:
        assert w.handle_out.value is None, "*out must be NULL on failure"
        w.handle_out.value = 0x1234
    w.assert_unchanged(before)


def test_c_null_tensor_data_pointer():
    """A slay_tensor whose data is NULL is refused like a NULL tensor."""
    w = World()
    for name in ("q", "k", "v", "out"):
        w.T[name].data = None
        before = w.snapshot()
        status, message = call("slay_linear_attention", w.h, ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]),
                               ref(w.T["out"]), None)
        assert status == INVALID and message
        w.assert_unchanged(before)
        w.T[name].data = getattr(w, name).ctypes.data


def test_c_optional_pointers_may_be_null():
    """slay.h: err, options, slay_state_dims outputs, state_read buffers, prefill q+out, cu_seqlens, slots
    and *written may be NULL; free(NULL) is a no-op."""
    w = World()
    assert lib.slay_linear_attention(w.h, ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]), None,
                                     None) == OK
    assert lib.slay_exact_attention(ref(w.T["q"]), ref(w.T["k"]), ref(w.T["v"]), ref(w.T["out"]), None, None) == OK
    assert call("slay_state_dims", w.s, None, None, None, None)[0] == OK
    assert call("slay_state_read", w.s, 0, None, 0, None, 0)[0] == OK
    assert call("slay_state_prefill", w.s, None, ref(w.T["k"]), ref(w.T["v"]), None, None, None, 2, None)[0] == OK
    assert call("slay_state_save", w.s, w.blob_buffer, len(w.blob_buffer), None)[0] == OK
    lib.slay_feature_map_free(None)
    lib.slay_state_free(None)


@pytest.mark.parametrize("which", [1, 4])
def test_c_prefill_q_and_out_null_together_only(which):
    """slay_state_prefill: "q and out may both be NULL"; only one of them NULL is an error."""
    w = World()
    args = C_FUNCTIONS["slay_state_prefill"][0](w)
    args[which] = None
    before = w.snapshot()
    status, message = call("slay_state_prefill", *args)
    assert status == INVALID and message
    w.assert_unchanged(before)


def test_c_init_functions_reject_null():
    """*_init(NULL) → SLAY_ERR_INVALID_ARGUMENT (these take no slay_error)."""
    assert lib.slay_feature_map_params_init(None) == INVALID
    assert lib.slay_attention_options_init(None) == INVALID
    assert lib.slay_exact_attention_options_init(None) == INVALID


# ---- bad values, C level ------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,code", [
    ("struct_size", 0, INVALID), ("struct_size", 8, INVALID), ("struct_size", ctypes.sizeof(FeatureMapParams) - 8, INVALID),
    ("struct_size", ctypes.sizeof(FeatureMapParams) + 8, VERSION), ("struct_size", 100000, VERSION),
    ("kind", 0, INVALID), ("kind", 13, INVALID), ("kind", -1, INVALID), ("poly", 0, INVALID), ("poly", 8, INVALID),
    ("head_dim", 0, SHAPE), ("head_dim", -1, SHAPE), ("head_dim", 65537, SHAPE), ("head_dim", -2**63, SHAPE),
    ("num_heads", 0, SHAPE), ("num_heads", 65537, SHAPE), ("nodes", 0, INVALID), ("nodes", 65, INVALID),
    ("nodes", -2**31, INVALID), ("poly_dim", 0, SHAPE), ("prf_dim", 0, SHAPE), ("prf_dim", 2**62, SHAPE),
    ("poly_dim", 2**62, SHAPE), (("poly_dim", "prf_dim"), 65536, OVERFLOW), ("eps", 0.0, INVALID), ("eps", -1e-6, INVALID), ("eps", NAN, INVALID),
    ("eps", INF, INVALID), ("prf_clamp", 0.0, INVALID), ("prf_clamp", NAN, INVALID), ("prf_clamp", -INF, INVALID),
])
def test_c_feature_map_create_values(field, value, code):
    """slay_feature_map_create: struct_size too small → INVALID_ARGUMENT, too large → VERSION_MISMATCH;
    enums, dims, ε, clamp, m <= 2^24; *out is NULL on failure."""
    params = FeatureMapParams()
    assert lib.slay_feature_map_params_init(ref(params)) == OK
    params.head_dim = 4
    for name in (field if isinstance(field, tuple) else (field,)):
        setattr(params, name, value)
    handle = ctypes.c_void_p(0x1234)
    status, message = call("slay_feature_map_create", ref(params), ref(handle))
    assert status == code, message
    assert handle.value is None


@pytest.mark.parametrize("field,value,code", [
    ("head_dim", 0, SHAPE), ("head_dim", 65537, SHAPE), ("num_heads", 0, SHAPE), ("num_heads", -1, SHAPE),
    ("prf_dim", 0, OK), ("poly_dim", 0, OK), ("nodes", 0, OK), ("max_length", -1, OK), ("eps", NAN, OK),
])
def test_c_hadamard_exp_create_values(field, value, code):
    """SLAY_KIND_HADAMARD_EXP (11) reads head_dim and num_heads only; the other fields are ignored."""
    params = FeatureMapParams()
    assert lib.slay_feature_map_params_init(ref(params)) == OK
    params.kind, params.head_dim = 11, 4
    setattr(params, field, value)
    handle = ctypes.c_void_p(0x1234)
    status, message = call("slay_feature_map_create", ref(params), ref(handle))
    assert status == code, message
    assert (handle.value is None) == (code != OK)
    if handle.value:
        lib.slay_feature_map_free(handle)


@pytest.mark.parametrize("function", ["slay_linear_attention", "slay_state_prefill", "slay_state_step",
                                      "slay_state_query"])
@pytest.mark.parametrize("field", ["normalize", "decay"])
def test_c_hadamard_exp_accepts_unnormalised_and_decay(function, field):
    """Flipped from a refusal: normalize = 0 and decay compose with SLAY_KIND_HADAMARD_EXP in every entry
    point (its rescaled frame is multiplied by the decay like any other state); every output element is
    written and finite, and the result equals the same call through the Python binding."""
    w = World("ela-hadamard-exp")
    gammas = np.full(2, 0.9, np.float32)
    if field == "normalize":
        w.options.normalize = 0
    else:
        w.options.decay = gammas.ctypes.data
    twin = w.state.copy()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == OK, message
    out = w.out1 if function == "slay_state_step" else w.out
    assert np.all(np.isfinite(out)) and not np.any(out == SENTINEL)
    kwargs = dict(normalize=False) if field == "normalize" else dict(decay=gammas)
    if function == "slay_linear_attention":
        expected = slay.linear_attention(w.q, w.k, w.v, w.fm, **kwargs)
    elif function == "slay_state_prefill":
        expected = twin.prefill(w.q, w.k, w.v, slots=w.slots, **kwargs)
    elif function == "slay_state_step":
        expected = twin.step(w.q1, w.k1, w.v1, **kwargs)
    else:
        expected = twin.query(w.q, normalize=kwargs.get("normalize", True))
    np.testing.assert_array_equal(out, expected)


def test_c_feature_map_anchor_dim_ignored_for_exact():
    """poly_dim is "SLAY_POLY_ANCHOR only, ignored otherwise": 0 is accepted for exact maps."""
    params = FeatureMapParams()
    lib.slay_feature_map_params_init(ref(params))
    params.head_dim, params.poly, params.poly_dim = 4, 2, 0
    handle = ctypes.c_void_p()
    assert call("slay_feature_map_create", ref(params), ref(handle))[0] == OK
    lib.slay_feature_map_free(handle)


TENSOR_CASES = {
    # name: (tensor to alter, overrides, status)
    "dtype f64": ("q", dict(dtype=1), DTYPE), "dtype 4": ("q", dict(dtype=4), DTYPE),
    "dtype bf16 out overlaps itself": ("out", dict(dtype=3, strides={1: 1}), LAYOUT),
    "dtype unknown": ("v", dict(dtype=99), DTYPE),
    "dtype negative": ("out", dict(dtype=-1), DTYPE),
    "ndim 3": ("q", dict(ndim=3), SHAPE), "ndim 5": ("k", dict(ndim=5), SHAPE), "ndim 0": ("v", dict(ndim=0), SHAPE),
    "zero dim": ("q", dict(shape={1: 0}), SHAPE), "negative dim": ("k", dict(shape={0: -1}), SHAPE),
    "zero out dim": ("out", dict(shape={3: 0}), SHAPE),
    "negative stride": ("q", dict(strides={1: -8}), LAYOUT), "negative out stride": ("out", dict(strides={3: -1}), LAYOUT),
    "overflow": ("q", dict(shape={1: 1 << 40}, strides={1: 1 << 40}), OVERFLOW),
    "overflow extents": ("k", dict(shape={0: 1 << 62, 1: 1 << 62}), OVERFLOW),
    "overflow stride": ("v", dict(strides={0: 1 << 62}), OVERFLOW),
    "out stride 0": ("out", dict(strides={1: 0}), LAYOUT),
    "out overlaps itself": ("out", dict(strides={1: 1}), LAYOUT),
}


def apply_tensor_case(w, name, mapping):
    which, override, code = TENSOR_CASES[name]
    which = mapping.get(which, which)
    array = getattr(w, which)
    w.T[which] = tensor(array, **override)
    return code


@pytest.mark.parametrize("kind", ENGINE_KINDS)
@pytest.mark.parametrize("name", sorted(TENSOR_CASES))
def test_c_linear_attention_tensors(name, kind):
    """slay_linear_attention: dtype → DTYPE, ndim/extents → SHAPE, strides/overlap → LAYOUT, sizes that do
    not fit 64 bits → OVERFLOW; out untouched."""
    w = World(kind)
    code = apply_tensor_case(w, name, {})
    before = w.snapshot()
    status, message = call("slay_linear_attention", *C_FUNCTIONS["slay_linear_attention"][0](w))
    assert status == code, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("name", sorted(TENSOR_CASES))
def test_c_exact_attention_tensors(name):
    """slay_exact_attention: the same tensor validation as slay_linear_attention ("Returns as ...")."""
    w = World()
    code = apply_tensor_case(w, name, {})
    before = w.snapshot()
    status, message = call("slay_exact_attention", *C_FUNCTIONS["slay_exact_attention"][0](w))
    assert status == code, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("name", sorted(n for n in TENSOR_CASES if TENSOR_CASES[n][0] in ("q", "out")))
def test_c_feature_map_apply_tensors(name):
    """slay_feature_map_apply: x and out validated like attention tensors."""
    w = World()
    code = apply_tensor_case(w, name, {"q": "x", "out": "features"})
    before = w.snapshot()
    status, message = call("slay_feature_map_apply", *C_FUNCTIONS["slay_feature_map_apply"][0](w))
    assert status == code, message
    w.assert_unchanged(before)


SHAPE_MISMATCHES = {
    "q d": ("q", (2, 5, 2, 3)), "k d": ("k", (2, 5, 2, 3)), "k heads": ("k", (2, 5, 1, 4)),
    "v heads": ("v", (2, 5, 1, 3)), "q heads not multiple": ("q", (2, 5, 3, 4)), "k T": ("k", (2, 4, 2, 4)),
    "v T": ("v", (2, 4, 2, 3)), "v B": ("v", (1, 5, 2, 3)), "out dv": ("out", (2, 5, 2, 2)),
    "out heads": ("out", (2, 5, 1, 3)), "out T": ("out", (2, 4, 2, 3)),
}


@pytest.mark.parametrize("function,kind", [("slay_linear_attention", kind) for kind in ENGINE_KINDS]
                         + [("slay_exact_attention", "slay")])
@pytest.mark.parametrize("name", sorted(SHAPE_MISMATCHES))
def test_c_attention_shape_mismatch(function, kind, name):
    """Dimensions that disagree (d with the map, Hq not a multiple of Hk, B/T/dv between tensors) → SHAPE."""
    w = World(kind)
    which, shape = SHAPE_MISMATCHES[name]
    if function == "slay_exact_attention" and name in ("q d", "k d"):
        shape = shape[:3] + (4,)  # exact attention has no map: make q and k disagree instead
        which = "q"
        shape = (2, 5, 2, 6)
    w.T[which] = tensor(np.full(shape, 0.5, np.float32) if which != "out" else np.full(shape, SENTINEL, np.float32))
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == SHAPE, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("alias", ["q", "k", "v"])
@pytest.mark.parametrize("function", ["slay_linear_attention", "slay_exact_attention"])
def test_c_output_overlapping_input(function, alias):
    """An output overlapping any input of the same call → SLAY_ERR_LAYOUT."""
    w = World()
    w.T["out"] = tensor(getattr(w, alias), shape={3: 3})
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == LAYOUT, message
    w.assert_unchanged(before)


def test_c_step_output_overlapping_slots():
    """slay_state_step reads slots in place: an out overlapping the slots array → SLAY_ERR_LAYOUT
    (it used to overwrite the slot indices mid-call and trap on the position update)."""
    w = World()
    buffer = np.full(64, SENTINEL, np.float32)
    slots = buffer[:2].view(np.int32)
    slots[:] = [1, 0]
    w.out1 = buffer[:12].reshape(2, 2, 3)
    w.T["out1"] = tensor(w.out1)
    args = C_FUNCTIONS["slay_state_step"][0](w)
    args[5] = slots.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    before = w.snapshot()
    status, message = call("slay_state_step", *args)
    assert status == LAYOUT and "slots" in message, message
    w.assert_unchanged(before)
    assert list(slots) == [1, 0]


@pytest.mark.parametrize("function", ["slay_linear_attention", "slay_state_prefill", "slay_state_query",
                                      "slay_state_step"])
def test_c_output_overlapping_decay(function):
    """options.decay is read in place during the call: an out overlapping it → SLAY_ERR_LAYOUT."""
    w = World()
    step = function == "slay_state_step"
    output = w.out1 if step else w.out
    output.reshape(-1)[:2] = 0.5
    w.options.decay = output.ctypes.data
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == LAYOUT and "decay" in message, message
    w.assert_unchanged(before)


def test_c_feature_output_overlapping_input():
    """slay_feature_map_apply: out overlapping x → SLAY_ERR_LAYOUT."""
    w = World()
    w.T["features"] = tensor(w.x)
    w.T["features"].shape[3] = w.m
    before = w.snapshot()
    status, message = call("slay_feature_map_apply", *C_FUNCTIONS["slay_feature_map_apply"][0](w))
    assert status == LAYOUT, message
    w.assert_unchanged(before)


def test_c_broadcast_input_strides_are_allowed():
    """slay.h: input strides may be any value >= 0 (0 broadcasts)."""
    w = World()
    w.T["v"] = tensor(w.v, strides={0: 0, 1: 0})
    assert call("slay_linear_attention", *C_FUNCTIONS["slay_linear_attention"][0](w))[0] == OK
    expected = slay.linear_attention(w.q, w.k, np.broadcast_to(w.v[:1, :1], w.v.shape).copy(), w.fm)
    np.testing.assert_array_equal(w.out, expected)


OPTION_CASES = [
    ("struct_size", 0, INVALID), ("struct_size", 4, INVALID), ("struct_size", ctypes.sizeof(AttentionOptions) + 8, VERSION),
    ("causal", 2, INVALID), ("causal", -1, INVALID), ("delta", NAN, INVALID), ("delta", -1.0, INVALID),
    ("delta", INF, INVALID), ("chunk_size", -1, INVALID), ("chunk_size", 4097, INVALID),
    ("chunk_size", 2**62, INVALID), ("n_threads", 0, INVALID), ("n_threads", -1, INVALID), ("n_threads", 257, INVALID),
    ("n_threads", 100000, INVALID), ("nth", 0, INVALID), ("nth", 65537, INVALID), ("ith", -1, INVALID), ("ith", 1, INVALID),
]


# A decode step has no chunks and a read-only query no causal flag: those fields are not validated there.
@pytest.mark.parametrize("function,field,value,code", [
    (function, *case) for function in ("slay_linear_attention", "slay_state_prefill", "slay_state_step",
                                       "slay_state_query") for case in OPTION_CASES
    if not (function == "slay_state_step" and case[0] == "chunk_size")
    and not (function == "slay_state_query" and case[0] == "causal")])
@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_c_attention_options(function, field, value, code, kind):
    """slay_attention_options: struct_size, causal ∈ {0, 1}, δ >= 0 finite, chunk 1..4096, n_threads 1..256,
    0 <= ith < nth <= 65536; outputs and state unchanged."""
    w = World(kind)
    setattr(w.options, field, value)
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == code, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("field,value,code", [
    ("struct_size", 0, INVALID), ("struct_size", 4, INVALID),
    ("struct_size", ctypes.sizeof(ExactAttentionOptions) + 8, VERSION), ("kernel", 0, INVALID), ("kernel", 4, INVALID),
    ("causal", 2, INVALID), ("scale", NAN, INVALID), ("scale", INF, INVALID), ("eps", 0.0, INVALID),
    ("eps", -1.0, INVALID), ("eps", NAN, INVALID), ("delta", -1.0, INVALID), ("delta", NAN, INVALID),
    ("n_threads", 0, INVALID), ("n_threads", 257, INVALID),
])
def test_c_exact_attention_options(field, value, code):
    """slay_exact_attention_options: struct_size, kernel, causal, scale finite, ε > 0, δ >= 0, n_threads."""
    w = World()
    setattr(w.exact_options, field, value)
    before = w.snapshot()
    status, message = call("slay_exact_attention", *C_FUNCTIONS["slay_exact_attention"][0](w))
    assert status == code, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("function,change,code", [
    ("slay_feature_map_apply", {1: 2}, INVALID), ("slay_feature_map_apply", {1: -1}, INVALID),
    ("slay_feature_map_param_name", {1: -1}, INVALID), ("slay_feature_map_param_name", {1: 2}, INVALID),
    ("slay_feature_map_param_shape", {1: b"gamma"}, INVALID), ("slay_feature_map_param_shape", {1: b""}, INVALID),
    ("slay_feature_map_get_param", {1: b"gamma"}, INVALID), ("slay_feature_map_get_param", {3: 31}, SHAPE),
    ("slay_feature_map_get_param", {3: 33}, SHAPE), ("slay_feature_map_get_param", {3: -1}, SHAPE),
    ("slay_feature_map_set_param", {1: b"gamma"}, INVALID), ("slay_feature_map_set_param", {3: 31}, SHAPE),
    ("slay_feature_map_set_param", {3: 0}, SHAPE), ("slay_gauss_laguerre", {0: 0}, INVALID),
    ("slay_gauss_laguerre", {0: 65}, INVALID), ("slay_gauss_laguerre", {0: -1}, INVALID),
    ("slay_gauss_laguerre", {0: 2**31 - 1}, INVALID),
    ("slay_state_create", {1: 0}, SHAPE), ("slay_state_create", {1: 2**20 + 1}, SHAPE), ("slay_state_create", {2: 0}, SHAPE),
    ("slay_state_create", {2: 65537}, SHAPE), ("slay_state_create", {3: 0}, INVALID), ("slay_state_create", {3: 257}, INVALID),
    ("slay_state_create_v2", {1: 0}, SHAPE), ("slay_state_create_v2", {3: 0}, INVALID),
    ("slay_state_create_v2", {4: 1}, DTYPE), ("slay_state_create_v2", {4: -1}, DTYPE),
    ("slay_state_copy_slot", {1: 2}, INVALID), ("slay_state_copy_slot", {3: -1}, INVALID),
    ("slay_state_reset", {1: 2}, INVALID), ("slay_state_reset", {1: -2}, INVALID),
    ("slay_state_position", {1: 2}, INVALID), ("slay_state_position", {1: -1}, INVALID),
    ("slay_state_read", {1: 2}, INVALID), ("slay_state_read", {3: 5}, SHAPE), ("slay_state_read", {5: 3}, SHAPE),
    ("slay_state_write", {1: 2}, INVALID), ("slay_state_write", {3: 5}, SHAPE), ("slay_state_write", {5: 3}, SHAPE),
    ("slay_state_write", {6: -1}, INVALID),
    ("slay_state_prefill", {7: 3}, SHAPE), ("slay_state_prefill", {7: 0}, SHAPE), ("slay_state_prefill", {7: -1}, SHAPE),
    ("slay_state_step", {6: 1}, SHAPE), ("slay_state_step", {6: 0}, SHAPE),
    ("slay_state_save", {2: 10}, BUFFER), ("slay_state_save", {2: 0}, BUFFER),
    ("slay_state_load", {2: 10}, CORRUPT), ("slay_state_load", {3: 0}, INVALID), ("slay_state_load", {3: 257}, INVALID),
    ("slay_state_restore", {2: 71}, CORRUPT),
])
@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_c_bad_values(function, change, code, kind):
    """Indices, names, counts, R, state dims, slots, capacities and blob sizes out of range: the documented
    status, a message, nothing written (handles NULL)."""
    if kind != "slay" and "param" in function:
        pytest.skip("the Hadamard Exp map has no parameters")
    w = World(kind)
    args = C_FUNCTIONS[function][0](w)
    for index, value in change.items():
        args[index] = value
    before = w.snapshot()
    status, message = call(function, *args)
    assert status == code, message
    if function in CREATORS:
        assert w.handle_out.value is None
        w.handle_out.value = 0x1234
    w.assert_unchanged(before)


@pytest.mark.parametrize("slots,code", [([1, 1], INVALID), ([0, 2], INVALID), ([-1, 0], INVALID)])
@pytest.mark.parametrize("function", ["slay_state_prefill", "slay_state_step", "slay_state_query"])
@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_c_bad_slots(function, slots, code, kind):
    """slots: num_seqs distinct indices of existing slots."""
    w = World(kind)
    w.slots[:] = slots
    args = C_FUNCTIONS[function][0](w)
    slot_index = {"slay_state_prefill": 6, "slay_state_step": 5, "slay_state_query": 4}[function]
    args[slot_index] = w.ptr(w.slots, ctypes.c_int32)
    before = w.snapshot()
    status, message = call(function, *args)
    assert status == code, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("cu", [[0, 3, 2], [1, 2, 5], [0, 2, 4], [0, 2, 6], [0, -1, 5]])
@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_c_bad_cu_seqlens(cu, kind):
    """cu_seqlens: monotone, cu[0] = 0, cu[num_seqs] = T (the header names no code; the library says SHAPE)."""
    w = World(kind)
    w.cu[:] = cu
    q, k, v = (np.ascontiguousarray(a[:1]) for a in (w.q, w.k, w.v))
    out = np.full((1, 5, 2, 3), SENTINEL, np.float32)
    before = w.snapshot()
    status, message = call("slay_state_prefill", w.s, ref(tensor(q)), ref(tensor(k)), ref(tensor(v)), ref(tensor(out)),
                           w.ptr(w.cu, ctypes.c_int64), None, 2, None)
    assert status == SHAPE, message
    assert np.all(out == SENTINEL)
    w.assert_unchanged(before)


def test_c_set_param_non_finite_keeps_map():
    """slay_feature_map_set_param: any non-finite value → INVALID_ARGUMENT; parameters and identity unchanged."""
    for bad in (NAN, INF, -INF):
        w = World()
        values = w.omega.copy()
        values[-1] = bad
        before = w.snapshot()
        status, message = call("slay_feature_map_set_param", w.h, b"omega", w.ptr(values), values.size)
        assert status == INVALID and "finite" in message
        w.assert_unchanged(before)


def test_c_struct_size_of_outputs():
    """slay_feature_map_config reads out->struct_size: too small → INVALID_ARGUMENT, too large → VERSION_MISMATCH."""
    w = World()
    for size, code in [(0, INVALID), (8, INVALID), (ctypes.sizeof(FeatureMapParams) + 8, VERSION)]:
        w.config_out.struct_size = size
        before = w.snapshot()
        assert call("slay_feature_map_config", w.h, ref(w.config_out))[0] == code
        w.assert_unchanged(before)


def test_interleaved_output_is_refused_conservatively(fm):
    """slay.h: the overlap checks are conservative: an output whose address range intersects an input's
    is refused (SLAY_ERR_LAYOUT) even if no element is shared (q and out interleaved in one buffer)."""
    buffer = np.random.default_rng(0).standard_normal((1, 5, 2, 8)).astype(np.float32)
    before = buffer.copy()
    q = buffer[..., :4]
    k, v = q.copy(), np.ones((1, 5, 2, 3), np.float32)
    with pytest.raises(slay.SlayValueError, match="overlap") as info:
        slay.linear_attention(q, k, v, fm, out=buffer[..., 4:7])
    assert info.value.code == LAYOUT
    np.testing.assert_array_equal(buffer, before)


def test_out_of_memory_is_memory_error():
    """SLAY_ERR_OUT_OF_MEMORY: a state of 2^20 slots × dv 65536 (≈ 1.4e17 bytes, beyond any address space)
    is refused with OUT_OF_MEMORY (or OVERFLOW), never a crash; OUT_OF_MEMORY maps to MemoryError."""
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=64, poly="anchor", poly_dim=64, prf_dim=64)
    with pytest.raises(slay.SlayError) as info:
        slay.State(fm, num_seqs=2**20, value_dim=65536)
    assert info.value.code in (-6, OVERFLOW) and str(info.value)
    if info.value.code == -6:
        assert isinstance(info.value, MemoryError) and isinstance(info.value, slay.SlayMemoryError)
