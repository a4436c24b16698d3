"""Classic feature maps (slay.h SLAY_KIND_ELU_PLUS_ONE … SLAY_KIND_COSFORMER): features against the
float64 twins in naive.py, the documented generator, kernel limits, attention in every mode, bad input."""
import numpy as np
import pytest

import slay
import naive

KINDS = ["elu+1", "relu", "favor+", "relu-random", "random-fourier", "cosformer"]
RANDOM = ["favor+", "relu-random", "random-fourier"]
MAX_LENGTH = 64


def make(kind, d=8, H=2, m=16, seed=3):
    return slay.FeatureMap(kind, head_dim=d, num_heads=H, prf_dim=m, max_length=MAX_LENGTH, seed=seed)


def inputs(B, T, Hq=4, Hk=2, d=8, dv=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return ((scale * rng.standard_normal((B, T, Hq, d))).astype(np.float32),
            (scale * rng.standard_normal((B, T, Hk, d))).astype(np.float32),
            rng.standard_normal((B, T, Hk, dv)).astype(np.float32))


def scale_for(kind):
    # Random Fourier features are signed: keep the Gaussian kernel well above 0 so the denominator
    # (a sum of kernel estimates) is far from 0 and the comparison is well conditioned.
    return 0.25 if kind == "random-fourier" else 1.0


def twin_attention(kind, fm_params, q, k, v, causal, H=2, d=8):
    phi_q = naive.classic_features_bthd(kind, q, fm_params, H, "query", MAX_LENGTH)
    phi_k = naive.classic_features_bthd(kind, k, fm_params, H, "key", MAX_LENGTH)
    return naive.linear_attention(phi_q, phi_k, v, causal)


# ---- features and parameters ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d,H,m", [(1, 1, 1), (8, 2, 16), (5, 3, 12)])
def test_features_match_twin(kind, d, H, m):
    """Each map's features (both roles) equal the float64 twin written from slay.h's definition."""
    fm = make(kind, d, H, m, seed=d + m)
    x = np.random.default_rng(d).standard_normal((2, 9, H, d)).astype(np.float32)
    params = naive.classic_params(kind, d + m, d, H, m)
    expected_dim = {"elu+1": d, "relu": d, "cosformer": 2 * d}.get(kind, m)
    assert fm.dim == expected_dim
    for role in ("query", "key"):
        got = fm(x, role=role)
        expected = naive.classic_features_bthd(kind, x, params, H, role, MAX_LENGTH)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, err_msg=role)


@pytest.mark.parametrize("kind", RANDOM)
def test_params_follow_documented_generator(kind):
    """slay.h 'Parameter generator': FAVOR+ stream 3 (block-orthogonal), ReLU random 4, Fourier 5 and 6."""
    d, H, m = 6, 2, 15
    fm = make(kind, d, H, m, seed=12)
    got = fm.get_params()
    expected = naive.classic_params(kind, 12, d, H, m)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    if kind == "favor+":
        block = got["omega"][0][:, :6].astype(np.float64)   # the first d features are orthogonal
        gram = block.T @ block
        off = gram - np.diag(np.diag(gram))
        assert np.abs(off).max() < 1e-4 * np.diag(gram).max()


@pytest.mark.parametrize("kind", KINDS)
def test_params_round_trip_and_identity(kind):
    """get/set round trip bitwise; new values change the identity; config round-trips."""
    fm = make(kind)
    identity = fm.identity
    assert identity == make(kind).identity
    assert fm.config["max_length"] == MAX_LENGTH and fm.config["prf_dim"] == 16 and fm.kind == kind
    params = fm.get_params()
    assert sorted(params) == {"favor+": ["omega"], "relu-random": ["omega"],
                              "random-fourier": ["bias", "omega"]}.get(kind, [])
    for name, value in params.items():
        fm.set_params(**{name: value * 0.5})
        assert fm.identity != identity
        fm.set_params(**{name: value})
        assert np.array_equal(fm.get_params()[name], value)
    assert fm.identity == identity
    if kind in RANDOM:
        assert make(kind, seed=4).identity != identity
    kinds = {make(k).identity for k in KINDS}
    assert len(kinds) == len(KINDS)


# ---- kernels the features estimate -------------------------------------------------------------------

def pairs(d, count, scale, seed):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((count, d))), (scale * rng.standard_normal((count, d)))


def estimate(fm, q, k):
    """φ(q)·φ(k) with KEY features on both sides (no query shift), through slay_feature_map_apply."""
    d = q.shape[-1]
    phi_q = fm(q.reshape(1, -1, 1, d).astype(np.float32), role="key")[0, :, 0].astype(np.float64)
    phi_k = fm(k.reshape(1, -1, 1, d).astype(np.float32), role="key")[0, :, 0].astype(np.float64)
    return (phi_q * phi_k).sum(-1)


def test_favor_plus_converges_to_softmax_kernel():
    """FAVOR+: φ(q)·φ(k) → exp(q·k/√d) as m grows (orthogonal blocks, averaged over seeds)."""
    d = 4
    q, k = pairs(d, 6, 0.6, 1)
    exact = np.exp((q * k).sum(-1) / np.sqrt(d))
    est = np.mean([estimate(slay.FeatureMap("favor+", head_dim=d, prf_dim=8192, seed=s), q, k) for s in range(4)], axis=0)
    np.testing.assert_allclose(est, exact, rtol=0.03)


def test_random_fourier_converges_to_gaussian_kernel():
    """Random Fourier: φ(q)·φ(k) → exp(−‖q − k‖²/2)."""
    d = 3
    q, k = pairs(d, 6, 0.5, 2)
    exact = np.exp(-((q - k) ** 2).sum(-1) / 2)
    est = np.mean([estimate(slay.FeatureMap("random-fourier", head_dim=d, prf_dim=65536, seed=s), q, k)
                   for s in range(2)], axis=0)
    np.testing.assert_allclose(est, exact, atol=0.02)


def test_relu_random_is_unbiased():
    """ReLU random: E[φ(q)·φ(k)] = E_ω[max(ω·q, 0) max(ω·k, 0)], here against a numpy Monte-Carlo twin."""
    d = 4
    q, k = pairs(d, 5, 1.0, 3)
    w = np.random.default_rng(99).standard_normal((2_000_000, d))
    monte_carlo = (np.maximum(q @ w.T, 0) * np.maximum(k @ w.T, 0)).mean(-1)
    est = np.mean([estimate(slay.FeatureMap("relu-random", head_dim=d, prf_dim=65536, seed=s), q, k)
                   for s in range(3)], axis=0)
    np.testing.assert_allclose(est, monte_carlo, rtol=0.03, atol=0.01)


# ---- attention ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_causal_chunked_equals_quadratic_form(kind, chunk):
    """Causal linear attention, any chunk size == the quadratic form from the map's own features
    (grouped-query: 4 query heads on 2 key heads)."""
    fm = make(kind)
    q, k, v = inputs(2, 40, seed=chunk, scale=scale_for(kind))
    got = slay.linear_attention(q, k, v, fm, causal=True, chunk_size=chunk)
    naive.rms_close(got, twin_attention(kind, fm.get_params(), q, k, v, True), rtol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_equals_quadratic_form(kind):
    fm = make(kind)
    q, k, v = inputs(2, 33, seed=5, scale=scale_for(kind))
    got = slay.linear_attention(q, k, v, fm, causal=False, chunk_size=16)
    naive.rms_close(got, twin_attention(kind, fm.get_params(), q, k, v, False), rtol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T0", [0, 1, 13, 30])
def test_prefill_then_steps_equals_whole_sequence(kind, T0):
    """slay.State: prefill(T0) + steps == whole-sequence attention; positions line up for cosFormer."""
    fm = make(kind)
    T = T0 + 6
    q, k, v = inputs(2, T, seed=T0, scale=scale_for(kind))
    whole = slay.linear_attention(q, k, v, fm, chunk_size=8)
    naive.rms_close(whole, twin_attention(kind, fm.get_params(), q, k, v, True), rtol=2e-4)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    if T0:
        naive.rms_close(state.prefill(q[:, :T0], k[:, :T0], v[:, :T0], chunk_size=8), whole[:, :T0], rtol=1e-4)
    for t in range(T0, T):
        naive.rms_close(state.step(q[:, t], k[:, t], v[:, t]), whole[:, t], rtol=1e-4)
    assert state.position(0) == T


@pytest.mark.parametrize("kind", ["cosformer", "favor+"])
def test_split_prefill_and_initial_state_resume(kind):
    """Two prefills (the second starting at the slot's position) == one; so does initial_state."""
    fm = make(kind)
    q, k, v = inputs(1, 50, seed=9)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=16)
    state = slay.State(fm, num_seqs=1, value_dim=5)
    first = state.prefill(q[:, :21], k[:, :21], v[:, :21], chunk_size=16)
    second = state.prefill(q[:, 21:], k[:, 21:], v[:, 21:], chunk_size=16)
    naive.rms_close(np.concatenate([first, second], axis=1), whole, rtol=1e-4)
    head, resumed_state = slay.linear_attention(q[:, :21], k[:, :21], v[:, :21], fm, output_final_state=True)
    tail = slay.linear_attention(q[:, 21:], k[:, 21:], v[:, 21:], fm, initial_state=resumed_state)
    naive.rms_close(np.concatenate([head, tail], axis=1), whole, rtol=1e-4)


def test_cosformer_packed_prefill_continues_each_slot_position():
    """Packed varlen prefill with slots: each sequence continues from its own slot's position."""
    fm = slay.FeatureMap("cosformer", head_dim=4, num_heads=1, max_length=100)
    q, k, v = inputs(1, 45, Hq=2, Hk=1, d=4, dv=3, seed=4)
    state = slay.State(fm, num_seqs=5, value_dim=3)
    state.prefill(q[:, :5], k[:, :5], v[:, :5], slots=[2])          # slot 2 is now at position 5
    out = state.prefill(q, k, v, cu_seqlens=[0, 10, 10, 45], slots=[4, 0, 2])
    naive.rms_close(out[:, :10], slay.linear_attention(q[:, :10], k[:, :10], v[:, :10], fm), rtol=1e-5)
    joined = [np.concatenate([a[:, :5], a[:, 10:]], axis=1) for a in (q, k, v)]
    naive.rms_close(out[:, 10:], slay.linear_attention(*joined, fm)[:, 5:], rtol=1e-5)
    assert [state.position(s) for s in range(5)] == [0, 0, 40, 0, 10]


def test_cosformer_positions_clamp_beyond_max_length():
    """slay.h: positions >= max_length are clamped to max_length − 1 (documented, not an error)."""
    fm = slay.FeatureMap("cosformer", head_dim=3, max_length=4)
    x = np.random.default_rng(1).standard_normal((1, 7, 1, 3)).astype(np.float32)
    got = fm(x)
    np.testing.assert_allclose(got[0, :, 0], naive.classic_features("cosformer", x[0, :, 0], 0, {}, max_length=4),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[0, 4:, 0, 3:] / np.maximum(got[0, 4:, 0, :3], 1e-30),
                               np.where(got[0, 4:, 0, :3] > 0, np.tan(np.pi * 3 / 8), 0), rtol=1e-5)


def test_random_fourier_is_signed():
    fm = make("random-fourier")
    x = np.random.default_rng(2).standard_normal((1, 20, 2, 8)).astype(np.float32)
    assert (fm(x) < 0).any()


# ---- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,code,match", [
    (dict(kind="favor"), slay.errors.INVALID_ARGUMENT, "kind"),
    (dict(kind="elu"), slay.errors.INVALID_ARGUMENT, "kind"),
    (dict(kind="favor+", prf_dim=0), slay.errors.SHAPE, "prf_dim"),
    (dict(kind="relu-random", prf_dim=0), slay.errors.SHAPE, "prf_dim"),
    (dict(kind="random-fourier", prf_dim=-3), slay.errors.SHAPE, "prf_dim"),
    (dict(kind="favor+", prf_dim=65537), slay.errors.SHAPE, "prf_dim"),
    (dict(kind="cosformer", max_length=0), slay.errors.INVALID_ARGUMENT, "max_length"),
    (dict(kind="cosformer", max_length=-4), slay.errors.INVALID_ARGUMENT, "max_length"),
    (dict(kind="cosformer", max_length=1.5), slay.errors.INVALID_ARGUMENT, "max_length"),
    (dict(kind="relu", head_dim=0), slay.errors.SHAPE, "head_dim"),
    (dict(kind="elu+1", num_heads=0), slay.errors.SHAPE, "num_heads"),
])
def test_create_rejects(kwargs, code, match):
    args = dict(head_dim=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        slay.FeatureMap(**args)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code


def test_unused_fields_are_ignored():
    """Fields a kind does not read (prf_dim for ELU+1, max_length for FAVOR+) are not validated."""
    assert slay.FeatureMap("elu+1", head_dim=4, prf_dim=0).dim == 4
    assert slay.FeatureMap("favor+", head_dim=4, prf_dim=5, max_length=-1).dim == 5


def test_elu_plus_one_special_values():
    """elu(x) + 1 through the branch-free vectorised path: exact at 0 and ±1, x + 1 for large x,
    inf for +inf, a tiny positive value (not 0, not negative) for −inf and −100, NaN for NaN."""
    x = np.array([np.nan, -np.inf, np.inf, -100, 100, 0, 1, -1], np.float32).reshape(1, 1, 1, 8)
    y = slay.FeatureMap("elu+1", head_dim=8)(x)[0, 0, 0]
    assert np.isnan(y[0]) and y[2] == np.inf and y[4] == 101 and y[5] == 1 and y[6] == 2
    assert 0 < y[1] < 1e-37 and 0 < y[3] < 1e-37
    assert abs(y[7] - np.exp(-1.0)) < 1e-7


def test_favor_plus_key_exponents_saturate_finite():
    """slay.h: FAVOR+ exponents are clamped to [−88, 88], so a key whose exponent exceeds 88 gives
    a large finite feature, never inf; NaN inputs give NaN features."""
    fm = slay.FeatureMap("favor+", head_dim=4, prf_dim=8, seed=1)
    omega = fm.get_params()["omega"]
    omega[0, :, 0] = [20, 0, 0, 0]   # exponent ωᵀx' − ‖x'‖²/2 peaks at ‖ω‖²/2 = 200 for x' = ω
    fm.set_params(omega=omega)
    x = np.array([20 * 4 ** 0.25, 0, 0, 0], np.float32).reshape(1, 1, 1, 4)
    features = fm(x, role="key")
    assert np.all(np.isfinite(features)) and features.max() > 1e30
    assert np.all(np.isnan(fm(np.full((1, 1, 1, 4), np.nan, np.float32), role="key")))
