"""slay.linear_attention_backward against central differences of the float64 token-loop twin
(naive_grad.py), for every map family and form, plus chaining, threads and validation."""
import numpy as np
import pytest

import slay
from naive_grad import directional64, forward64

RNG = np.random.default_rng(1234)


def tensors(fm, B=2, T=9, Hq=2, dv=3, scale=1.0):
    d, Hk = fm.head_dim, fm.num_heads
    q = (scale * RNG.standard_normal((B, T, Hq, d))).astype(np.float32)
    k = (scale * RNG.standard_normal((B, T, Hk, d))).astype(np.float32)
    v = RNG.standard_normal((B, T, Hk, dv)).astype(np.float32)
    dout = RNG.standard_normal((B, T, Hq, dv)).astype(np.float32)
    return q, k, v, dout


def check_directions(fm, inputs, grads, names, dout, d_final=None, rtol=2e-5, **settings):
    """⟨grad, u⟩ == (L(x + hu) − L(x − hu)) / 2h for two random u per input, relative to ‖grad‖‖u‖."""
    for name in names:
        if isinstance(name, tuple):
            group, key = name
            x = inputs[group][key]
            grad = grads[group][key]
        else:
            x, grad = inputs[name], grads[name]
        assert np.all(np.isfinite(grad)), name
        for _ in range(2):
            u = RNG.standard_normal(np.shape(x))
            expected = directional64(fm, inputs, name, u, dout, d_final, **settings)
            actual = float((np.asarray(grad, np.float64) * u).sum())
            scale = np.linalg.norm(grad) * np.linalg.norm(u) + abs(expected)
            assert abs(actual - expected) <= rtol * scale + 1e-9, (name, actual, expected)


def run(fm, settings, names, B=2, T=9, Hq=2, dv=3, scale=1.0, chunk_size=4, with_state=False, d_final=False,
        cu_seqlens=None, rtol=2e-5):
    q, k, v, dout = tensors(fm, B, T, Hq, dv, scale)
    inputs = {"q": q, "k": k, "v": v, "params": fm.get_params()}
    extra = {}
    per_head = settings.pop("per_head_decay", False)
    for name, shape in (("log_decay", (B, T, fm.num_heads) if per_head else (B, T, fm.num_heads, fm.dim)),
                        ("query_gate_logits", (B, T, Hq)), ("key_gate_logits", (B, T, fm.num_heads))):
        if settings.pop(name, False):
            value = RNG.standard_normal(shape).astype(np.float32)
            inputs[name] = -np.abs(value) * 0.3 if name == "log_decay" else value
            extra[name] = inputs[name]
    N = B if cu_seqlens is None else len(cu_seqlens) - 1
    if with_state:
        S0 = (0.3 * RNG.standard_normal((N, fm.num_heads, fm.dim, dv))).astype(np.float32)
        z0 = np.abs(RNG.standard_normal((N, fm.num_heads, fm.dim))).astype(np.float32)
        inputs["initial_state"] = (S0, z0)
        extra["initial_state"] = (S0, z0)
    final = None
    if d_final:
        final = (RNG.standard_normal((N, fm.num_heads, fm.dim, dv)).astype(np.float32),
                 RNG.standard_normal((N, fm.num_heads, fm.dim)).astype(np.float32))
    grads = slay.linear_attention_backward(q, k, v, fm, dout, d_final_state=final, chunk_size=chunk_size,
                                           cu_seqlens=cu_seqlens, **settings, **extra)
    if with_state:
        names = list(names) + [("initial_state", 0), ("initial_state", 1)]
    check_directions(fm, inputs, grads, names, dout, final, rtol=rtol, cu_seqlens=cu_seqlens, **settings)
    return grads


MAPS = [
    ("identity", {}, {"denominator": "clamp"}),
    ("elu+1", {}, {}),
    ("relu", {}, {}),
    ("favor+", {"prf_dim": 8}, {}),
    ("relu-random", {"prf_dim": 8}, {}),
    ("random-fourier", {"prf_dim": 8}, {"denominator": "clamp"}),
    ("cosformer", {"max_length": 32}, {}),
    ("ela-sum-sqeuclid", {}, {}),
    ("ela-sub-sqeuclid", {}, {}),
    ("ela-blueprint", {}, {}),
]


@pytest.mark.parametrize("kind,config,settings", MAPS, ids=[m[0] for m in MAPS])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_every_map_matches_the_twin(kind, config, settings, causal):
    fm = slay.FeatureMap(kind=kind, head_dim=4, num_heads=1, **config)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run(fm, dict(settings, causal=causal), names)


FORMS = {
    "unnormalised": {"normalize": False},
    "normalised-add": {"denominator": "add", "delta": 1e-3},
    "normalised-clamp": {"denominator": "clamp", "delta": 0.5},
    "retnet-gamma": {"normalize": False, "decay": [0.8, 0.95]},
    "retnet-gamma-normalised": {"decay": [0.7, 1.0]},
    "gla": {"normalize": False, "log_decay": True},
    "gla-gamma-normalised": {"log_decay": True, "decay": [0.9, 0.6]},
    "gla-per-head": {"normalize": False, "log_decay": True, "per_head_decay": True},
    "gla-per-head-normalised-gates": {"log_decay": True, "per_head_decay": True, "key_gate_logits": True},
    "sla-gates": {"normalize": False, "query_gate_logits": True, "key_gate_logits": True},
    "sla-gla": {"normalize": False, "log_decay": True, "query_gate_logits": True, "key_gate_logits": True},
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_matches_the_twin_with_gqa_and_states(form):
    fm = slay.FeatureMap(kind="elu+1", head_dim=3, num_heads=2)
    settings = dict(FORMS[form])
    names = ["q", "k", "v"] + [name for name in ("log_decay", "query_gate_logits", "key_gate_logits")
                               if settings.get(name)]
    run(fm, settings, names, Hq=4, T=7, with_state=True, d_final=True)


def test_packed_sequences_match_the_twin():
    fm = slay.FeatureMap(kind="identity", head_dim=3, num_heads=1)
    run(fm, {"normalize": False, "log_decay": True}, ["q", "k", "v", "log_decay"], B=1, T=10,
        cu_seqlens=[0, 3, 3, 10], with_state=True, d_final=True)


def test_exact_attention_backward_matches_central_differences():
    q, k, v, dout = (RNG.standard_normal(s) for s in ((2, 6, 4, 5), (2, 6, 2, 5), (2, 6, 2, 3), (2, 6, 4, 3)))
    for kernel in ("softmax", "yat-spherical", "yat"):
        for causal in (True, False):
            grads = slay.exact_attention_backward(q, k, v, dout, kernel=kernel, eps=1e-2, causal=causal)
            for name, x in (("q", q), ("k", k), ("v", v)):
                assert grads[name].dtype == np.float64 and grads[name].shape == x.shape
                u = RNG.standard_normal(x.shape)
                h = 1e-6

                def loss(delta):
                    args = {"q": q, "k": k, "v": v}
                    args[name] = x + delta * u
                    from naive import exact_attention
                    return (exact_attention(args["q"], args["k"], args["v"], kernel, causal, eps=1e-2) * dout).sum()
                expected = (loss(h) - loss(-h)) / (2 * h)
                actual = (grads[name] * u).sum()
                assert abs(actual - expected) <= 1e-6 * (abs(expected) + np.linalg.norm(grads[name]) * np.linalg.norm(u))


def test_chained_calls_equal_one_call():
    """The backward of two calls (the second from the first's final state, dS flowing back) equals
    the backward of one call over the whole sequence."""
    fm = slay.FeatureMap(kind="elu+1", head_dim=4, num_heads=1)
    q, k, v, dout = tensors(fm, B=1, T=12, Hq=2)
    log_decay = (-0.2 * np.abs(RNG.standard_normal((1, 12, 1, fm.dim)))).astype(np.float32)
    whole = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, chunk_size=5)
    cut = 7
    first = slay.linear_attention(q[:, :cut], k[:, :cut], v[:, :cut], fm, log_decay=log_decay[:, :cut],
                                  output_final_state=True)[1]
    second = slay.linear_attention_backward(q[:, cut:], k[:, cut:], v[:, cut:], fm, dout[:, cut:],
                                            log_decay=log_decay[:, cut:], initial_state=first, chunk_size=5)
    dS, dz = second["initial_state"]
    head = slay.linear_attention_backward(q[:, :cut], k[:, :cut], v[:, :cut], fm, dout[:, :cut],
                                          log_decay=log_decay[:, :cut], d_final_state=(dS, dz), chunk_size=5)
    for name in ("q", "k", "v", "log_decay"):
        joined = np.concatenate([head[name], second[name]], axis=1)
        np.testing.assert_allclose(joined, whole[name], rtol=2e-4, atol=2e-5)


def test_thread_counts_are_bitwise_identical():
    fm = slay.FeatureMap(kind="favor+", head_dim=4, num_heads=2, prf_dim=8)
    q, k, v, dout = tensors(fm, B=3, T=20, Hq=4)
    gates = RNG.standard_normal((3, 20, 4)).astype(np.float32)
    one = slay.linear_attention_backward(q, k, v, fm, dout, query_gate_logits=gates, n_threads=1)
    two = slay.linear_attention_backward(q, k, v, fm, dout, query_gate_logits=gates, n_threads=2)
    for name in ("q", "k", "v", "query_gate_logits"):
        assert np.array_equal(one[name], two[name]), name
    assert np.array_equal(one["params"]["omega"], two["params"]["omega"])
    dq_only = slay.linear_attention_backward(q, k, v, fm, dout, query_gate_logits=gates, wrt=["q"], n_threads=2)
    assert set(dq_only) == {"q"} and np.array_equal(dq_only["q"], one["q"])


def test_default_returns_every_gradient_and_wrt_restricts():
    fm = slay.FeatureMap(kind="random-fourier", head_dim=4, num_heads=1, prf_dim=4)
    q, k, v, dout = tensors(fm, B=1, T=5, Hq=1)
    log_decay = np.full((1, 5, 1, fm.dim), -0.1, np.float32)
    gates = np.zeros((1, 5, 1), np.float32)
    state = slay.State(fm, num_seqs=1, value_dim=3)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, query_gate_logits=gates,
                                           key_gate_logits=gates, initial_state=state)
    assert set(grads) == {"q", "k", "v", "log_decay", "query_gate_logits", "key_gate_logits", "initial_state", "params"}
    assert set(grads["params"]) == set(fm.get_params())
    for name, array in fm.get_params().items():
        assert grads["params"][name].shape == array.shape
    assert grads["initial_state"][0].shape == (1, 1, fm.dim, 3) and grads["initial_state"][1].shape == (1, 1, fm.dim)
    with pytest.raises(slay.SlayValueError, match="wrt"):
        slay.linear_attention_backward(q, k, v, fm, dout, wrt=["nope"])


def test_out_writes_into_the_callers_arrays():
    fm = slay.FeatureMap(kind="favor+", head_dim=4, num_heads=1, prf_dim=8)
    q, k, v, dout = tensors(fm, B=2, T=11, Hq=2)
    log_decay = np.full((2, 11, 1), -0.05, np.float32)
    gates = RNG.standard_normal((2, 11, 2)).astype(np.float32)
    keywords = dict(log_decay=log_decay, query_gate_logits=gates, chunk_size=4)
    fresh = slay.linear_attention_backward(q, k, v, fm, dout, **keywords)
    # Garbage in the buffers: every element is written (a training loop reuses them unzeroed).
    out = {name: np.full(fresh[name].shape, np.nan, np.float32) for name in ("q", "k", "v", "log_decay")}
    out["query_gate_logits"] = np.full(gates.shape, np.nan, np.float32)
    given = dict(out)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, out=out, **keywords)
    for name, array in given.items():
        assert grads[name] is array, name
        assert np.array_equal(array, fresh[name]), name
    assert np.array_equal(grads["params"]["omega"], fresh["params"]["omega"])
    # Strided (a view into a larger buffer) and only some names: the rest are allocated.
    wide = np.zeros((2, 11, 2, 8), np.float32)
    partial = slay.linear_attention_backward(q, k, v, fm, dout, out={"q": wide[..., ::2]}, **keywords)
    assert np.array_equal(wide[..., ::2], fresh["q"]) and np.all(wide[..., 1::2] == 0)
    assert np.array_equal(partial["k"], fresh["k"])
    bad = [({"q": np.zeros((2, 11, 2, 5), np.float32)}, "shape"),
           ({"q": np.zeros(q.shape, np.float64)}, "float32"),
           ({"k": np.zeros(k.shape, np.float32)[::-1]}, "negative strides"),
           ({"v": np.zeros(v.shape, np.float32)}, None),
           ({"nope": np.zeros(3, np.float32)}, "unknown names"),
           ({"beta": np.zeros((2, 11, 1), np.float32)}, "does not compute"),
           ([np.zeros(q.shape, np.float32)], "dict")]
    readonly = np.zeros(q.shape, np.float32)
    readonly.flags.writeable = False
    bad.append(({"q": readonly}, "not writeable"))
    for given_out, message in bad[:3] + bad[4:]:
        with pytest.raises(slay.SlayError, match=message):
            slay.linear_attention_backward(q, k, v, fm, dout, out=given_out, **keywords)
    with pytest.raises(slay.SlayError, match="does not compute"):
        slay.linear_attention_backward(q, k, v, fm, dout, out={"v": bad[3][0]["v"]}, wrt=["q"], **keywords)
    # Sharing memory with an input or another output is refused by libslay, outputs untouched.
    shared = np.full(k.shape, 7.0, np.float32)
    with pytest.raises(slay.SlayValueError, match="overlap|share"):
        slay.linear_attention_backward(q, k, v, fm, dout, out={"k": shared, "v": shared[..., :3]}, **keywords)
    assert np.all(shared == 7.0)
    with pytest.raises(slay.SlayValueError, match="overlap|share"):
        slay.linear_attention_backward(q, k, v, fm, dout, out={"q": q}, **keywords)


def test_bad_arguments_are_refused_and_outputs_untouched():
    import ctypes
    from slay._lib import lib, Error, AttentionBackwardParams, AttentionOptions
    from slay._tensor import tensor_struct
    fm = slay.FeatureMap(kind="elu+1", head_dim=4, num_heads=1)
    q, k, v, dout = tensors(fm, B=1, T=6, Hq=1)
    with pytest.raises(slay.SlayValueError, match="dout"):
        slay.linear_attention_backward(q, k, v, fm, dout[:, :5])
    with pytest.raises(slay.SlayValueError, match="d_final_state"):
        slay.linear_attention_backward(q, k, v, fm, dout, d_final_state=(np.zeros((1, 1, 4, 2), np.float32), None))
    with pytest.raises(slay.SlayValueError, match="causal"):
        slay.linear_attention_backward(q, k, v, fm, dout, causal=False, decay=[0.5])

    def call(**fields):
        params = AttentionBackwardParams()
        lib.slay_attention_backward_params_init(ctypes.byref(params))
        keep = []
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                t = tensor_struct(value)
                keep.append((value, t))
                value = ctypes.addressof(t)
            setattr(params, name, value)
        options = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(options))
        err = Error()
        status = lib.slay_linear_attention_backward(fm.handle, ctypes.byref(tensor_struct(q)),
                                                    ctypes.byref(tensor_struct(k)), ctypes.byref(tensor_struct(v)),
                                                    ctypes.byref(tensor_struct(dout)), ctypes.byref(options),
                                                    ctypes.byref(params), ctypes.byref(err))
        return status, err.message.decode()

    dq = np.full(q.shape, 7.0, np.float32)
    assert call(dq=dq)[0] == 0 and not np.all(dq == 7)
    dq[...] = 7
    big = np.full((1, 6, 1, 8), 7.0, np.float32)
    status, message = call(dq=dq, dk=big[..., :4], dv=big[..., 4:7])
    assert status == -3 and "overlaps" in message and np.all(dq == 7)  # dk and dv share memory
    status, message = call(dq=q)
    assert status == -3 and "overlaps input q" in message
    status, message = call(dq=dout)
    assert status == -3 and "overlaps input dout" in message
    status, message = call(dq=np.zeros((1, 6, 1, 5), np.float32))
    assert status == -2 and "dq" in message
    status, message = call(d_log_decay=np.zeros((1, 6, 1, 4), np.float32))
    assert status == -1 and "log_decay" in message
    status, message = call(d_params=dq.ctypes.data, d_params_count=3)
    assert status == -2 and "d_params" in message
    params = AttentionBackwardParams()
    lib.slay_attention_backward_params_init(ctypes.byref(params))
    assert params.struct_size == ctypes.sizeof(AttentionBackwardParams)
    params.struct_size = 8
    err = Error()
    options = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(options))
    assert lib.slay_linear_attention_backward(fm.handle, ctypes.byref(tensor_struct(q)), ctypes.byref(tensor_struct(k)),
                                              ctypes.byref(tensor_struct(v)), ctypes.byref(tensor_struct(dout)),
                                              ctypes.byref(options), ctypes.byref(params), ctypes.byref(err)) == -1
    # Hadamard Exp, once refused here, is differentiated: test_hadamard_gradients.py.
    # The delta rule and qk_l2norm, once refused here, are differentiated: test_delta_gradients.py.


def test_forward_twin_agrees_with_the_library():
    """The twin the gradients are checked against is the library's forward."""
    fm = slay.FeatureMap(kind="favor+", head_dim=4, num_heads=2, prf_dim=8)
    q, k, v, _ = tensors(fm, B=1, T=9, Hq=4)
    log_decay = (-0.3 * np.abs(RNG.standard_normal((1, 9, 2, fm.dim)))).astype(np.float32)
    y = slay.linear_attention(q, k, v, fm, log_decay=log_decay, normalize=False)
    expected = forward64(fm, q, k, v, log_decay=log_decay, normalize=False)[0]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


SLAY_POLYS = ["anchor", "exact", "exact_full", "laplace", "random_maclaurin", "tensorsketch", "nystrom"]


@pytest.mark.parametrize("poly", SLAY_POLYS)
@pytest.mark.parametrize("shared", [False, True], ids=["omega-per-node", "shared-omega"])
def test_slay_matches_the_twin(poly, shared):
    """Every SLAY estimator: q, k, v and ω (and anchors / Maclaurin directions) against the twin;
    signed estimators with the clamp denominator and δ = 0.05 (well conditioned)."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly=poly, poly_dim=4, prf_dim=4, shared_omega=shared,
                         eps=1e-2)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params() if name != "sketch"]
    settings = {} if poly in ("anchor", "laplace") else {"denominator": "clamp", "delta": 0.05}
    # Nyström's anchor gradient runs through (K_AA + λI)^(−1/2): entries ~10³ whose directional
    # sums cancel, so its float32 result is checked at 1e-4 (elementwise it agrees to ~1e-7 relative).
    grads = run(fm, settings, names, Hq=4, rtol=1e-4 if poly == "nystrom" else 2e-5)
    if poly == "tensorsketch":
        assert not np.any(grads["params"]["sketch"]), "the discrete sketch has no gradient"


def test_nystrom_anchor_gradient_flows_through_the_whitening():
    """The anchors enter twice: in the squared projections and in W = (K_AA + λI)^(−1/2) (once
    refused). Central differences of the twin recompute W in float64 (numpy's eigh), so they see
    both; P = 6 anchors in d = 3 make K_AA rank-deficient (rank ≤ 6) and its spectrum spread."""
    for P in (4, 6):
        fm = slay.FeatureMap(kind="slay", head_dim=3, num_heads=2, poly="nystrom", poly_dim=P, prf_dim=3, eps=1e-2)
        grads = run(fm, {"denominator": "clamp", "delta": 0.05}, [("params", "anchors"), ("params", "omega")], Hq=2,
                    rtol=1e-4)
        assert np.any(grads["params"]["anchors"])


def test_clamped_prf_exponents_pass_no_gradient():
    """slay.h: an exponent the forward clamps is constant there. With prf_clamp tiny every PRF
    exponent is clamped, the PRF factor is a constant and ω gets exactly zero gradient."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, poly="anchor", poly_dim=4, prf_dim=4, prf_clamp=1e-4)
    q, k, v, dout = tensors(fm, B=1, T=6, Hq=1, scale=3.0)
    grads = slay.linear_attention_backward(q, k, v, fm, dout)
    assert not np.any(grads["params"]["omega"])
    assert np.any(grads["params"]["anchors"]) and np.all(np.isfinite(grads["q"]))


def test_zero_rows_have_zero_gradient():
    """x̂ = x/‖x‖ is 0 at x = 0 in the forward; its gradient there is 0 (finite, no NaN)."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v, dout = tensors(fm, B=1, T=6, Hq=1)
    q[0, 2] = 0
    k[0, 3] = 0
    grads = slay.linear_attention_backward(q, k, v, fm, dout)
    assert np.all(grads["q"][0, 2] == 0) and np.all(grads["k"][0, 3] == 0)
    assert all(np.all(np.isfinite(grads[name])) for name in ("q", "k", "v"))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 0])
def test_scalar_decay_chunks_equal_the_per_channel_chunks(normalize, chunk_size):
    """Without log_decay the causal backward runs the scalar-decay chunks; with an all-zero per-channel
    log_decay (α = 1) it runs the per-channel chunks (pairwise decay): the two agree, for several chunk
    sizes, with γ, states and GQA."""
    fm = slay.FeatureMap(kind="elu+1", head_dim=3, num_heads=2)
    q, k, v, dout = tensors(fm, B=2, T=19, Hq=4)
    S0 = RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)
    z0 = np.abs(RNG.standard_normal((2, 2, 3))).astype(np.float32)
    final = (RNG.standard_normal((2, 2, 3, 3)).astype(np.float32), RNG.standard_normal((2, 2, 3)).astype(np.float32))
    common = dict(d_final_state=final, initial_state=(S0, z0), normalize=normalize, decay=[0.8, 0.95],
                  chunk_size=chunk_size)
    chunked = slay.linear_attention_backward(q, k, v, fm, dout, **common)
    tokens = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=np.zeros((2, 19, 2, 3), np.float32), **common)
    for name in ("q", "k", "v"):
        np.testing.assert_allclose(chunked[name], tokens[name], rtol=1e-4, atol=1e-5)
    for a, b in zip(chunked["initial_state"], tokens["initial_state"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fit_feature_map_returns_a_new_fitted_map_and_leaves_fm_alone():
    from slay.fit import structured_sequences
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, poly_dim=4, prf_dim=4)
    before = fm.get_params()
    q, k, v = structured_sequences(6, 32, 2, 8, seed=3)
    fitted = slay.fit_feature_map(fm, q, k, v, steps=20, lr=2e-2)
    assert fitted is not fm and fitted.kind == fm.kind and fitted.dim == fm.dim
    for name, array in fm.get_params().items():
        assert np.array_equal(array, before[name]), "fm itself must not change"
    report = fitted.fit_report
    assert report["train_after"] <= report["train_before"]
    assert report["held_out_after"] < report["held_out_before"]
    assert any(not np.array_equal(fitted.get_params()[n], before[n]) for n in before)


def test_fit_command_line_runs():
    from slay.fit import main
    report = main(["--steps", "10", "--length", "16", "--train", "3", "--held-out", "1", "--heads", "1",
                   "--head-dim", "4", "--quiet"])
    assert report["train_after"] <= report["train_before"]


def test_the_training_docs_example_runs():
    """docs/training.md's example is executed as written."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "training.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/training.md", "exec"), {})


GLA_CHUNK_FORMS = {
    "per-head-normalised": {"log_decay": True, "per_head_decay": True, "decay": [0.9, 1.0]},
    "per-head-unnormalised": {"normalize": False, "log_decay": True, "per_head_decay": True},
    "per-channel-normalised": {"log_decay": True, "decay": [1.0, 0.8]},
}


@pytest.mark.parametrize("chunk_size", [1, 5, 0], ids=["chunk-1", "chunk-odd", "chunk-auto"])
@pytest.mark.parametrize("form", sorted(GLA_CHUNK_FORMS))
@pytest.mark.parametrize("kind", ["elu+1", "slay"])
def test_gla_backward_matches_the_twin_for_every_chunk_size(kind, form, chunk_size):
    """GLA log decay (per head: the scalar-decay chunks; per channel: the pairwise-decay chunks) with γ, states,
    d_final_state and GQA, for chunks of 1 row, an odd size and the automatic size, against the
    float64 twin; SLAY runs the factorised intra-chunk terms (poly ⊗ prf), including ω and the anchors."""
    if kind == "slay":
        fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4, eps=1e-2)
    else:
        fm = slay.FeatureMap(kind="elu+1", head_dim=3, num_heads=2)
    settings = dict(GLA_CHUNK_FORMS[form])
    names = ["q", "k", "v", "log_decay"] + [("params", name) for name in fm.get_params()]
    run(fm, settings, names, Hq=4, T=11, chunk_size=chunk_size, with_state=True, d_final=True)


@pytest.mark.parametrize("settings", [{"decay": [0.7, 0.95]}, {"normalize": False}, {"denominator": "clamp", "delta": 0.05}],
                         ids=["retnet-gamma", "unnormalised", "clamp"])
@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_slay_factorised_chunks_match_the_twin(settings, chunk_size):
    """The factorised SLAY path (scores and their gradients through poly and prf) for several
    chunk sizes, with RetNet γ, unnormalised and clamp denominators, states and d_final_state."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4, eps=1e-2)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run(fm, dict(settings), names, Hq=2, T=10, chunk_size=chunk_size, with_state=True, d_final=True)


@pytest.mark.parametrize("settings", [{}, {"decay": [0.7, 0.95]}, {"log_decay": True, "per_head_decay": True}],
                         ids=["plain", "retnet-gamma", "per-head-gla"])
def test_slay_factorised_long_chunks_match_the_twin(settings):
    """Chunks longer than one 16-row triangle block (the intra-chunk products run block by block on
    the unpacked kernel), a partial last chunk, and m, dv multiples of 16 (the transposed states'
    unpacked products), with states and d_final_state."""
    fm = slay.FeatureMap(kind="slay", head_dim=8, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4, eps=1e-2)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    if settings.get("log_decay"):
        names.append("log_decay")
    run(fm, dict(settings), names, B=1, T=70, Hq=2, dv=16, chunk_size=64, with_state=True, d_final=True)


@pytest.mark.parametrize("prf_dim, nodes, shared, head_dim", [(8, 1, False, 8), (16, 2, False, 8), (16, 2, True, 8),
                                                                (16, 2, False, 16)],
                         ids=["prf8", "prf16-two-nodes", "prf16-two-nodes-shared-omega", "prf16-two-nodes-d16"])
@pytest.mark.parametrize("settings", [{}, {"decay": [0.7, 0.95]}, {"normalize": False}],
                         ids=["plain", "retnet-gamma", "unnormalised"])
def test_slay_key_columns_path_matches_the_twin(settings, prf_dim, nodes, shared, head_dim):
    """prf_dim a multiple of 8 takes the key side through transposed dφ(k) (dΦ_Kᵀ = Ŝ Vᵀ and the map
    gradient with the chunk's rows as lanes; M = 16 sums in fused halves): q, k, v and every
    parameter against the twin, over a full and a partial chunk, with states and d_final_state.
    Every node's ∂e goes through one product (a shared ω receives each node's block); at d = 16
    the map's products take the unpacked kernel."""
    fm = slay.FeatureMap(kind="slay", head_dim=head_dim, num_heads=2, poly="anchor", poly_dim=4, prf_dim=prf_dim, nodes=nodes,
                         shared_omega=shared, eps=1e-2)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run(fm, dict(settings), names, B=1, T=70, Hq=2, dv=16, chunk_size=64, with_state=True, d_final=True)


@pytest.mark.parametrize("shared", [False, True], ids=["omega-per-node", "shared-omega"])
def test_slay_gradient_follows_omega_set_after_creation(shared):
    """The map keeps ωᵀ stacked per head for its gradient, built when ω changes: after set_params
    the backward (row and key-column paths, two nodes) matches the twin on the new ω."""
    fm = slay.FeatureMap(kind="slay", head_dim=8, num_heads=2, poly="anchor", poly_dim=4, prf_dim=8, nodes=2,
                         shared_omega=shared, eps=1e-2)
    omega = fm.get_params()["omega"]
    fm.set_params(omega=(0.5 * RNG.standard_normal(omega.shape)).astype(np.float32))
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run(fm, {}, names, B=1, T=70, Hq=2, dv=16, chunk_size=64)


def test_clamped_prf_exponents_pass_no_gradient_on_the_key_columns_path():
    """The clamp edges on the transposed key-side path (prf_dim 8): ω gets exactly zero gradient."""
    fm = slay.FeatureMap(kind="slay", head_dim=8, poly="anchor", poly_dim=4, prf_dim=8, prf_clamp=1e-4)
    q, k, v, dout = tensors(fm, B=1, T=70, Hq=1, scale=3.0)
    grads = slay.linear_attention_backward(q, k, v, fm, dout)
    assert not np.any(grads["params"]["omega"])
    assert np.any(grads["params"]["anchors"]) and np.all(np.isfinite(grads["k"]))


def test_slay_long_chunks_thread_counts_are_bitwise_identical():
    """The default chunk over full and partial chunks: 1 and 2 threads give the same bits."""
    fm = slay.FeatureMap(kind="slay", head_dim=8, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v, dout = tensors(fm, B=2, T=150, Hq=2, dv=16)
    one = slay.linear_attention_backward(q, k, v, fm, dout, n_threads=1)
    two = slay.linear_attention_backward(q, k, v, fm, dout, n_threads=2)
    for name in ("q", "k", "v"):
        assert np.array_equal(one[name], two[name]), name
    for key in one["params"]:
        assert np.array_equal(one["params"][key], two["params"][key]), key


@pytest.mark.parametrize("kind", ["elu+1", "slay"])
def test_bidirectional_backward_matches_the_twin_with_states(kind):
    """The bidirectional backward (three GEMM passes) with an initial state, d_final_state, GQA and an
    odd chunk size."""
    if kind == "slay":
        fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4, eps=1e-2)
    else:
        fm = slay.FeatureMap(kind="elu+1", head_dim=3, num_heads=2)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run(fm, {"causal": False}, names, Hq=4, T=10, chunk_size=3, with_state=True, d_final=True)


@pytest.mark.parametrize("chunk_size", [1, 7, 0])
def test_per_head_decay_chunks_equal_the_per_channel_chunks(chunk_size):
    """A per-head log decay runs the scalar-decay chunks (factorised SLAY terms); the same decay
    broadcast over the channels runs the per-channel chunks: the gradients agree (d log α summed over
    the channels)."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v, dout = tensors(fm, B=2, T=19, Hq=4)
    log_decay = (-0.2 * np.abs(RNG.standard_normal((2, 19, 2)))).astype(np.float32)
    common = dict(decay=[0.9, 1.0], chunk_size=chunk_size)
    chunked = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, **common)
    channels = np.repeat(log_decay[..., None], fm.dim, axis=-1)
    tokens = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=channels, **common)
    for name in ("q", "k", "v"):
        np.testing.assert_allclose(chunked[name], tokens[name], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(chunked["log_decay"], tokens["log_decay"].sum(-1), rtol=2e-4, atol=1e-4)
    for name in chunked["params"]:
        np.testing.assert_allclose(chunked["params"][name], tokens["params"][name], rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("options", [{}, {"log_decay": "head", "decay": [0.9, 0.8]}, {"causal": False}],
                         ids=["causal", "per-head-gla", "bidirectional"])
def test_slay_thread_counts_are_bitwise_identical(options):
    """The factorised SLAY path, per-head GLA chunks and the bidirectional passes: 1 and 2 threads
    give the same bits (with and without the parameters' gradient, which changes the work units)."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v, dout = tensors(fm, B=3, T=21, Hq=4)
    options = dict(options)
    if options.get("log_decay") == "head":
        options["log_decay"] = (-0.1 * np.abs(RNG.standard_normal((3, 21, 2)))).astype(np.float32)
    for wrt in (None, ["q", "k", "v"]):
        one = slay.linear_attention_backward(q, k, v, fm, dout, chunk_size=8, wrt=wrt, n_threads=1, **options)
        two = slay.linear_attention_backward(q, k, v, fm, dout, chunk_size=8, wrt=wrt, n_threads=2, **options)
        assert set(one) == set(two)
        for name in one:
            if name == "params":
                for key in one[name]:
                    assert np.array_equal(one[name][key], two[name][key]), key
            else:
                assert np.array_equal(one[name], two[name]), name


def test_packed_sequences_with_per_head_decay_match_the_twin():
    """cu_seqlens through the chunked per-head GLA path and the factorised
    SLAY intra-chunk terms, normalised, with states and d_final_state."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=4, prf_dim=4, eps=1e-2)
    names = ["q", "k", "v", "log_decay"] + [("params", name) for name in fm.get_params()]
    run(fm, {"log_decay": True, "per_head_decay": True, "decay": [0.9]}, names, B=1, T=10, Hq=2, chunk_size=3,
        cu_seqlens=[0, 4, 10], with_state=True, d_final=True)


@pytest.mark.parametrize("per_head", [False, True], ids=["per-channel", "per-head"])
def test_extreme_log_decay_gives_finite_gradients(per_head):
    """Every exponent in the chunked decay terms is <= 0, so log α of -1e4 (mixed with 0) gives finite
    gradients."""
    fm = slay.FeatureMap(kind="slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v, dout = tensors(fm, B=1, T=12, Hq=1)
    shape = (1, 12, 1) if per_head else (1, 12, 1, fm.dim)
    log_decay = np.where(RNG.random(shape) < 0.5, -1e4, 0.0).astype(np.float32)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, chunk_size=5)
    for name in ("q", "k", "v", "log_decay"):
        assert np.all(np.isfinite(grads[name])), name
    for name in grads["params"]:
        assert np.all(np.isfinite(grads["params"][name])), name
