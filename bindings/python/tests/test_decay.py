"""Unnormalised attention and RetNet decay (slay_attention_options.normalize / .decay), against a
float64 twin built from the map's own features: y_i = Σ_{j≤i} γ^(i−j) (φ_i·φ_j) v_j [/ (Σ … + δ)].
Chunked causal, prefill + decode steps, absorb-then-query, partitions of threads."""
import numpy as np
import pytest

import slay


def twin(phi_q, phi_k, v, gammas, normalize, delta=1e-6):
    B, T, Hq, _ = phi_q.shape
    Hk = phi_k.shape[2]
    group = Hq // Hk
    A = np.einsum("bthm,bshm->bhts", phi_q.astype(np.float64),
                  np.repeat(phi_k.astype(np.float64), group, axis=2))
    i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    g = np.repeat(np.asarray(gammas, np.float64), group)
    D = np.where(j <= i, g[:, None, None] ** np.maximum(i - j, 0)[None], 0.0)   # (Hq, T, T)
    A = A * D[None]
    num = np.einsum("bhts,bshv->bthv", A, np.repeat(v.astype(np.float64), group, axis=2))
    if not normalize:
        return num
    return num / (A.sum(-1).transpose(0, 2, 1)[..., None] + delta)


def query_features(fm, q, group=2):
    """φ of grouped-query heads: query head h uses key head h // group (no GQA in fm() itself)."""
    parts = [fm(np.ascontiguousarray(q[:, :, g::group])) for g in range(group)]
    out = np.empty(q.shape[:3] + (parts[0].shape[-1],), np.float32)
    for g in range(group):
        out[:, :, g::group] = parts[g]
    return out


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=8)


def inputs(T, Hq=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, T, Hq, 8)).astype(np.float32), rng.standard_normal((2, T, 2, 8)).astype(np.float32),
            rng.standard_normal((2, T, 2, 16)).astype(np.float32))


GAMMAS = [0.9, 0.5]


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("gammas", [None, GAMMAS, [1.0, 0.97]])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_matches_twin(fm, normalize, gammas, chunk):
    q, k, v = inputs(70)
    got = slay.linear_attention(q, k, v, fm, chunk_size=chunk, normalize=normalize, decay=gammas)
    expected = twin(query_features(fm, q), fm(k, role="key"), v, gammas or [1.0, 1.0], normalize)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("normalize", [True, False])
def test_prefill_then_steps_equal_whole(fm, normalize):
    q, k, v = inputs(40, seed=1)
    whole = slay.linear_attention(q, k, v, fm, normalize=normalize, decay=GAMMAS, chunk_size=16)
    state = slay.State(fm, num_seqs=2, value_dim=16)
    first = state.prefill(q[:, :23], k[:, :23], v[:, :23], normalize=normalize, decay=GAMMAS, chunk_size=16)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t], normalize=normalize, decay=GAMMAS)
                      for t in range(23, 40)], axis=1)
    scale = np.abs(whole).max()
    np.testing.assert_allclose(first, whole[:, :23], rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(steps, whole[:, 23:], rtol=1e-4, atol=1e-5 * scale)


def test_absorbed_state_decays_like_the_recurrence(fm):
    """Absorbing keys with decay leaves S = Σ_j γ^(T−1−j) φ(k_j) v_jᵀ, which a query reads."""
    q, k, v = inputs(30, seed=2)
    state = slay.State(fm, num_seqs=2, value_dim=16)
    state.prefill(None, k, v, decay=GAMMAS)
    phi_k = fm(k, role="key").astype(np.float64)
    for h, gamma in enumerate(GAMMAS):
        weights = gamma ** (29 - np.arange(30))
        expected = np.einsum("t,tm,tv->mv", weights, phi_k[0, :, h], v[0, :, h].astype(np.float64))
        np.testing.assert_allclose(state.read(0)[0][h], expected, rtol=1e-4, atol=1e-6)


def test_threads_and_bitwise_equality(fm):
    q, k, v = inputs(90, seed=3)
    one = slay.linear_attention(q, k, v, fm, decay=GAMMAS, normalize=False, n_threads=1)
    for threads in (2, 5):
        np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, decay=GAMMAS, normalize=False,
                                                            n_threads=threads), one)


@pytest.mark.parametrize("gammas,match", [([0.0, 0.5], "decay"), ([1.5, 0.5], "decay"), ([float("nan"), 0.5], "decay")])
def test_bad_decay_is_rejected(fm, gammas, match):
    q, k, v = inputs(5)
    out = np.full((2, 5, 4, 16), 3.0, np.float32)
    with pytest.raises(ValueError, match=match):
        slay.linear_attention(q, k, v, fm, decay=gammas, out=out)
    assert np.all(out == 3.0)


def test_decay_needs_causal(fm):
    q, k, v = inputs(5)
    with pytest.raises(ValueError, match="causal"):
        slay.linear_attention(q, k, v, fm, causal=False, decay=GAMMAS)


def test_normalize_flag_is_validated(fm):
    import ctypes
    from slay._lib import lib, AttentionOptions, Error
    from slay._tensor import descriptor
    q, k, v = inputs(5)
    opts = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(opts))
    assert opts.normalize == 1 and not opts.decay
    opts.normalize = 2
    out = np.zeros((2, 5, 4, 16), np.float32)
    err = Error()
    assert lib.slay_linear_attention(fm.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                     ctypes.byref(opts), ctypes.byref(err)) == -1
    assert b"normalize" in err.message
