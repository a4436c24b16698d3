"""The delta rule (slay.h SLAY_UPDATE_DELTA; Python update="delta"): DeltaNet and Gated DeltaNet
through the chunked WY / UT-transform prefill and the decode step, against naive_delta, a float64
token loop of the recurrence. Chunk sizes, prefill + steps, varlen, GQA, gates, qk_l2norm, long
sequences, threads, states, and bad input."""
import numpy as np
import pytest

import slay
import naive_delta
from naive_gla import FEATURES, softmax_gates

INVALID, SHAPE, UNSUPPORTED = -1, -2, -9


def setup(B=2, T=37, Hq=4, Hk=2, d=8, dv=6, seed=0, kind="identity"):
    rng = np.random.default_rng(seed)
    fm = slay.FeatureMap(kind, head_dim=d, num_heads=Hk)
    q = rng.standard_normal((B, T, Hq, d)).astype(np.float32)
    k = rng.standard_normal((B, T, Hk, d)).astype(np.float32)
    v = rng.standard_normal((B, T, Hk, dv)).astype(np.float32)
    beta = (2 * rng.random((B, T, Hk))).astype(np.float32)
    g = (-0.2 * rng.random((B, T, Hk))).astype(np.float32)
    return fm, q, k, v, beta, g


def twin(fm, q, k, v, beta, g=None, kind="identity", **kwargs):
    f = FEATURES[kind]
    return naive_delta.batched(f(q), f(k), v, beta, g, **kwargs)


def close(actual, expected, tol=2e-4):
    assert np.all(np.isfinite(actual))
    error = np.abs(np.asarray(actual, np.float64) - expected).max() / max(np.abs(expected).max(), 1e-30)
    assert error <= tol, "max relative error %.3g" % error


@pytest.mark.parametrize("gated", [True, False], ids=["gated-deltanet", "deltanet"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 0])
def test_chunked_equals_the_token_loop(gated, chunk):
    fm, q, k, v, beta, g = setup()
    g = g if gated else None
    expected = twin(fm, q, k, v, beta, g, qk_l2norm=True)
    got = slay.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta, log_decay=g, qk_l2norm=True,
                                chunk_size=chunk)
    close(got, expected)


@pytest.mark.parametrize("qk_l2norm", [True, False])
def test_other_maps_and_qk_l2norm(qk_l2norm):
    """elu+1 features: with qk_l2norm β ∈ [0, 2] is stable; without it β‖φ(k)‖² ≤ 2 is the caller's job
    (docs/attention-forms.md), so β is scaled down here."""
    fm, q, k, v, beta, g = setup(kind="elu+1", seed=2)
    if not qk_l2norm:
        norms = (FEATURES["elu+1"](k) ** 2).sum(-1)
        beta = (beta * np.minimum(1.0, 1.0 / norms)).astype(np.float32)
    expected = twin(fm, q, k, v, beta, g, kind="elu+1", qk_l2norm=qk_l2norm)
    for chunk in (5, 0):
        got = slay.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta, log_decay=g,
                                    qk_l2norm=qk_l2norm, chunk_size=chunk)
        close(got, expected)


def test_retnet_gamma_composes_with_g():
    fm, q, k, v, beta, g = setup(seed=4)
    gammas = np.array([0.95, 0.8], np.float32)
    expected = twin(fm, q, k, v, beta, g, qk_l2norm=True, gammas=gammas)
    got = slay.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta, log_decay=g, qk_l2norm=True,
                                decay=gammas, chunk_size=8)
    close(got, expected)


def test_beta_defaults_to_one():
    fm, q, k, v, _, g = setup(seed=5)
    expected = twin(fm, q, k, v, None, g, qk_l2norm=True)
    close(slay.linear_attention(q, k, v, fm, normalize=False, update="delta", log_decay=g, qk_l2norm=True), expected)


def test_prefill_then_steps_equals_the_whole_sequence():
    fm, q, k, v, beta, g = setup(T=23)
    expected = twin(fm, q, k, v, beta, g, qk_l2norm=True)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    kw = dict(normalize=False, update="delta", qk_l2norm=True)
    got = [state.prefill(q[:, :13], k[:, :13], v[:, :13], beta=beta[:, :13], log_decay=g[:, :13], chunk_size=4, **kw)]
    for t in range(13, 23):
        got.append(state.step(q[:, t], k[:, t], v[:, t], beta=beta[:, t], log_decay=g[:, t], **kw)[:, None])
    close(np.concatenate(got, 1), expected)
    # The final state is the recurrence's S; z is not used by the delta rule.
    S = naive_delta.recurrence(q[0], k[0], v[0], beta[0], g[0], qk_l2norm=True)[1]
    np.testing.assert_allclose(state.read(0)[0], S, rtol=2e-4, atol=2e-5)
    assert state.position(0) == 23


def test_initial_and_final_state():
    fm, q, k, v, beta, g = setup(T=19, seed=6)
    kw = dict(normalize=False, update="delta", beta=beta, log_decay=g, qk_l2norm=True)
    whole = slay.linear_attention(q, k, v, fm, **kw)
    first, state = slay.linear_attention(q[:, :9], k[:, :9], v[:, :9], fm, normalize=False, update="delta",
                                         beta=beta[:, :9], log_decay=g[:, :9], qk_l2norm=True, output_final_state=True)
    second = slay.linear_attention(q[:, 9:], k[:, 9:], v[:, 9:], fm, normalize=False, update="delta",
                                   beta=beta[:, 9:], log_decay=g[:, 9:], qk_l2norm=True, initial_state=state)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=1e-4, atol=1e-5)


def test_varlen_equals_separate_calls():
    fm, q, k, v, beta, g = setup(B=1, T=40, seed=7)
    cu = [0, 11, 11 + 17, 40]
    kw = dict(normalize=False, update="delta", qk_l2norm=True, chunk_size=8)
    packed = slay.linear_attention(q, k, v, fm, beta=beta, log_decay=g, cu_seqlens=cu, **kw)
    for a, b in zip(cu[:-1], cu[1:]):
        alone = slay.linear_attention(q[:, a:b], k[:, a:b], v[:, a:b], fm, beta=beta[:, a:b], log_decay=g[:, a:b], **kw)
        np.testing.assert_array_equal(packed[:, a:b], alone)


def test_gqa_equals_repeated_heads():
    fm, q, k, v, beta, g = setup(Hq=4, Hk=2, seed=8)
    wide = slay.FeatureMap("identity", head_dim=8, num_heads=4)
    kw = dict(normalize=False, update="delta", qk_l2norm=True, chunk_size=8)
    grouped = slay.linear_attention(q, k, v, fm, beta=beta, log_decay=g, **kw)
    repeat = lambda a: np.ascontiguousarray(np.repeat(a, 2, axis=2))
    repeated = slay.linear_attention(q, repeat(k), repeat(v), wide, beta=repeat(beta), log_decay=repeat(g), **kw)
    np.testing.assert_allclose(grouped, repeated, rtol=1e-6, atol=1e-7)


def test_sla_gates_on_and_off():
    fm, q, k, v, beta, g = setup(seed=9)
    rng = np.random.default_rng(1)
    ql = rng.standard_normal(q.shape[:3]).astype(np.float32)
    kl = rng.standard_normal(k.shape[:3]).astype(np.float32)
    expected = twin(fm, q, k, v, beta, g, qk_l2norm=True, query_gates=softmax_gates(ql), key_gates=softmax_gates(kl))
    kw = dict(normalize=False, update="delta", beta=beta, log_decay=g, qk_l2norm=True)
    close(slay.linear_attention(q, k, v, fm, query_gate_logits=ql, key_gate_logits=kl, chunk_size=8, **kw), expected)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    steps = [state.step(q[:, t], k[:, t], v[:, t], normalize=False, update="delta", beta=beta[:, t], log_decay=g[:, t],
                        qk_l2norm=True, query_gate_logits=ql[:, t], key_gate_logits=kl[:, t])[:, None]
             for t in range(q.shape[1])]
    close(np.concatenate(steps, 1), expected)
    ungated = slay.linear_attention(q, k, v, fm, chunk_size=8, **kw)
    assert np.abs(ungated - expected).max() > 1e-2, "the gates changed nothing"


def test_threads_do_not_change_the_result():
    fm, q, k, v, beta, g = setup(B=1, Hq=2, Hk=1, dv=32, seed=10)
    kw = dict(normalize=False, update="delta", beta=beta, log_decay=g, qk_l2norm=True, chunk_size=8)
    one = slay.linear_attention(q, k, v, fm, **kw)
    np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, n_threads=2, **kw), one)


def test_long_sequence_stays_finite_with_beta_two():
    """T = 100k, β = 2 everywhere (each step a reflection of the state's key component), no decay."""
    rng = np.random.default_rng(11)
    T = 100_000
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=1)
    q = rng.standard_normal((1, T, 1, 16)).astype(np.float32)
    k = rng.standard_normal((1, T, 1, 16)).astype(np.float32)
    v = rng.standard_normal((1, T, 1, 16)).astype(np.float32)
    beta = np.full((1, T, 1), 2.0, np.float32)
    out, state = slay.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta, qk_l2norm=True,
                                       output_final_state=True)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(state.read(0)[0]))
    assert np.abs(out).max() < 1e3


def test_state_layout_is_shared_with_the_additive_update():
    """A state prefilled with the additive rule continues with the delta rule (and back): S is the same
    matrix for both; State.read keeps returning (S, z)."""
    fm, q, k, v, beta, g = setup(B=1, T=12, seed=12)
    state = slay.State(fm, num_seqs=1, value_dim=6)
    state.prefill(q[:, :5], k[:, :5], v[:, :5], normalize=False)
    S0, z0 = state.read(0)
    got = state.prefill(q[:, 5:], k[:, 5:], v[:, 5:], normalize=False, update="delta", beta=beta[:, 5:],
                        log_decay=g[:, 5:], qk_l2norm=True)
    expected = naive_delta.recurrence(q[0, 5:], k[0, 5:], v[0, 5:], beta[0, 5:], g[0, 5:], qk_l2norm=True,
                                      state=S0)[0]
    close(got[0], expected)
    S, z = state.read(0)
    np.testing.assert_array_equal(z, z0)   # the delta rule leaves z alone
    state.step(q[:, 0], k[:, 0], v[:, 0])  # and the additive step reads the same S
    assert state.position(0) == 13


# ---- bad input --------------------------------------------------------------------------------------

def refuses(code, match, function, *args, **kwargs):
    with pytest.raises(slay.SlayError) as info:
        function(*args, **kwargs)
    assert info.value.code == code, str(info.value)
    assert match in str(info.value), str(info.value)


@pytest.mark.parametrize("value", [-0.5, 2.5, np.nan, np.inf])
def test_beta_outside_zero_two_is_refused(value):
    fm, q, k, v, beta, g = setup()
    beta[1, 3, 0] = value
    out = np.full((2, 37, 4, 6), 7.0, np.float32)
    refuses(INVALID, "beta[1, 3, 0]", slay.linear_attention, q, k, v, fm, normalize=False, update="delta", beta=beta,
            out=out)
    assert np.all(out == 7.0)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    blob = state.save()
    refuses(INVALID, "beta", state.prefill, q, k, v, normalize=False, update="delta", beta=beta)
    refuses(INVALID, "beta[1, 0]", state.step, q[:, 3], k[:, 3], v[:, 3], normalize=False, update="delta",
            beta=np.ascontiguousarray(beta[:, 3]))
    assert state.save() == blob


@pytest.mark.parametrize("value", [0.5, np.nan, -np.inf])
def test_bad_g_is_refused(value):
    fm, q, k, v, beta, g = setup()
    g[0, 5, 1] = value
    refuses(INVALID, "log_decay[0, 5, 1]", slay.linear_attention, q, k, v, fm, normalize=False, update="delta",
            beta=beta, log_decay=g)


def test_shapes_causal_normalize_and_per_channel_g_are_refused():
    fm, q, k, v, beta, g = setup()
    kw = dict(normalize=False, update="delta")
    refuses(SHAPE, "beta", slay.linear_attention, q, k, v, fm, beta=beta[:, :5], **kw)
    refuses(SHAPE, "beta", slay.linear_attention, q, k, v, fm, beta=np.zeros((2, 37, 3), np.float32), **kw)
    refuses(SHAPE, "log_decay", slay.linear_attention, q, k, v, fm, beta=beta, log_decay=g[:, :5], **kw)
    refuses(UNSUPPORTED, "causal", slay.linear_attention, q, k, v, fm, beta=beta, causal=False, **kw)
    refuses(UNSUPPORTED, "unnormalised", slay.linear_attention, q, k, v, fm, update="delta", beta=beta)
    refuses(UNSUPPORTED, "per channel", slay.linear_attention, q, k, v, fm, beta=beta,
            log_decay=np.zeros((2, 37, 2, 8), np.float32), **kw)
    refuses(INVALID, "SLAY_UPDATE_DELTA", slay.linear_attention, q, k, v, fm, beta=beta)
    refuses(INVALID, "update", slay.linear_attention, q, k, v, fm, update="multiply")
    refuses(UNSUPPORTED, "SLAY_UPDATE_DELTA", slay.linear_attention, q, k, v,
            slay.FeatureMap("ela-hadamard-exp", head_dim=8, num_heads=2), beta=beta, **kw)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    refuses(UNSUPPORTED, "causal", state.prefill, q, k, v, beta=beta, causal=False, **kw)
    refuses(UNSUPPORTED, "unnormalised", state.step, q[:, 0], k[:, 0], v[:, 0], update="delta")
    assert state.position(0) == 0


def test_c_options_of_the_first_published_size_get_the_new_defaults():
    """struct_size versioning: a caller built against the header before update / qk_l2norm / beta /
    check_finite passes the smaller struct_size (the offset of `update`); the library reads only that
    prefix, so whatever follows it in memory is ignored and the new fields take their defaults. A size
    between the two published ones is refused."""
    import ctypes
    from slay import _lib
    from slay._tensor import descriptor
    fm, q, k, v, _, _ = setup(seed=13)
    expected = slay.linear_attention(q, k, v, fm)
    old_size = _lib.AttentionOptions.update.offset
    assert old_size == 80 and ctypes.sizeof(_lib.AttentionOptions) > old_size
    options = _lib.AttentionOptions()
    assert _lib.lib.slay_attention_options_init(ctypes.byref(options)) == 0
    options.struct_size = old_size
    options.update, options.qk_l2norm, options.check_finite = 7, 9, 3   # garbage beyond the old struct
    out = np.full_like(expected, np.nan)
    err = _lib.Error()
    status = _lib.lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                            ctypes.byref(options), ctypes.byref(err))
    assert status == 0, err.message
    np.testing.assert_array_equal(out, expected)
    options.struct_size = old_size + 4
    status = _lib.lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                            ctypes.byref(options), ctypes.byref(err))
    assert status == INVALID and b"struct_size" in err.message
