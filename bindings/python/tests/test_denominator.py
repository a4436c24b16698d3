"""Denominator modes (slay.h SLAY_DENOMINATOR_*): add divides by den + δ, clamp by max(den, δ),
checked against a float64 twin from the map's own features, for whole sequences and decode."""
import numpy as np
import pytest

import slay


def twin(phi_q, phi_k, v, causal, delta, mode):
    A = np.einsum("bthm,bshm->bhts", phi_q.astype(np.float64), phi_k.astype(np.float64))
    if causal:
        A = A * np.tril(np.ones(A.shape[-2:]))
    num = np.einsum("bhts,bshv->bthv", A, v.astype(np.float64))
    den = A.sum(-1).transpose(0, 2, 1)[..., None]
    return num / (den + delta) if mode == "add" else num / np.maximum(den, delta)


@pytest.fixture(scope="module")
def signed_map():
    return slay.FeatureMap("random-fourier", head_dim=8, num_heads=2, prf_dim=16, seed=4)


def inputs(T=50, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, T, 2, 8)).astype(np.float32) * 1.5, rng.standard_normal((1, T, 2, 8)).astype(np.float32) * 1.5,
            rng.standard_normal((1, T, 2, 4)).astype(np.float32))


@pytest.mark.parametrize("mode", ["add", "clamp"])
@pytest.mark.parametrize("causal", [True, False])
def test_modes_match_twin(signed_map, mode, causal):
    q, k, v = inputs()
    delta = 1e-2
    expected = twin(signed_map(q), signed_map(k, role="key"), v, causal, delta, mode)
    got = slay.linear_attention(q, k, v, signed_map, causal=causal, delta=delta, denominator=mode, chunk_size=16)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())


def test_clamp_bounds_signed_outputs(signed_map):
    """With a signed map some denominators fall to or below 0; clamp keeps |y| ≤ |num| / δ."""
    q, k, v = inputs(T=80, seed=3)
    phi_q, phi_k = signed_map(q).astype(np.float64), signed_map(k, role="key").astype(np.float64)
    den = np.einsum("bthm,bshm->bhts", phi_q, phi_k).sum(-1)
    assert (den <= 1e-3).any(), "the test needs a non-positive denominator"
    delta = 1e-1
    clamped = slay.linear_attention(q, k, v, signed_map, causal=False, delta=delta, denominator="clamp")
    num = np.einsum("bhts,bshv->bthv", np.einsum("bthm,bshm->bhts", phi_q, phi_k), v.astype(np.float64))
    assert np.all(np.abs(clamped) <= np.abs(num) / delta * (1 + 1e-3) + 1e-5)


def test_positive_maps_agree_across_modes():
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, poly="anchor", poly_dim=4, prf_dim=4)
    q, k, v = inputs()
    a = slay.linear_attention(q, k, v, fm, denominator="add", delta=1e-9)
    b = slay.linear_attention(q, k, v, fm, denominator="clamp", delta=1e-9)
    np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("mode", ["add", "clamp"])
def test_decode_uses_the_mode(signed_map, mode):
    q, k, v = inputs(T=20)
    whole = slay.linear_attention(q, k, v, signed_map, delta=1e-2, denominator=mode)
    state = slay.State(signed_map, num_seqs=1, value_dim=4)
    state.prefill(q[:, :10], k[:, :10], v[:, :10], delta=1e-2, denominator=mode)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t], delta=1e-2, denominator=mode) for t in range(10, 20)], 1)
    np.testing.assert_allclose(steps, whole[:, 10:], rtol=2e-3, atol=2e-3 * np.abs(whole).max())


def test_unknown_mode_is_rejected(signed_map):
    q, k, v = inputs(T=4)
    with pytest.raises(ValueError, match="denominator"):
        slay.linear_attention(q, k, v, signed_map, denominator="max")
    import ctypes
    from slay._lib import lib, AttentionOptions, Error
    from slay._tensor import descriptor
    opts = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(opts))
    assert opts.denominator == 0
    opts.denominator = 7
    out = np.zeros((1, 4, 2, 4), np.float32)
    err = Error()
    assert lib.slay_linear_attention(signed_map.handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                     ctypes.byref(opts), ctypes.byref(err)) == -1
    assert b"denominator" in err.message and not out.any()
