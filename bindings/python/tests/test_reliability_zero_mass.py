"""A query with no attention mass (relu with no positive entry) and δ = 0 gives output 0, as
slay.h says, not 0/0 = NaN: in whole-sequence attention (causal, bidirectional, both
denominators), prefill, query and decode steps."""
import numpy as np
import pytest

import slay


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((2, 9, 2, 4)).astype(np.float32)
    k = np.abs(rng.standard_normal((2, 9, 2, 4))).astype(np.float32)
    v = rng.standard_normal((2, 9, 2, 3)).astype(np.float32)
    q[:, 3] = -np.abs(q[:, 3])          # token 3: no positive entry in any head
    q[1, :, 1] = -1.0                   # sequence 1, head 1: never any mass
    return q, k, v


def _expected_zero(out):
    assert np.isfinite(out).all()
    assert (out[:, 3] == 0).all()
    assert (out[1, :, 1] == 0).all()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("denominator", ["add", "clamp"])
@pytest.mark.parametrize("chunk_size", [0, 1, 4])
def test_relu_without_mass_gives_zero_with_delta_zero(causal, denominator, chunk_size):
    fm = slay.FeatureMap("relu", head_dim=4, num_heads=2)
    q, k, v = _inputs()
    out = slay.linear_attention(q, k, v, fm, causal=causal, delta=0.0, denominator=denominator,
                                chunk_size=chunk_size)
    _expected_zero(out)
    # Rows with mass are unchanged by the rule: they equal the δ = 0 formula.
    fq, fk = fm(q), fm(k, role="key")
    for b, t, h in ((0, 5, 0), (0, 8, 1), (1, 2, 0)):
        keys = range(t + 1) if causal else range(9)
        num = sum(float(fq[b, t, h] @ fk[b, j, h]) * v[b, j, h].astype(np.float64) for j in keys)
        den = sum(float(fq[b, t, h] @ fk[b, j, h]) for j in keys)
        if den > 0:
            np.testing.assert_allclose(out[b, t, h], num / den, rtol=1e-4, atol=1e-6)


def test_relu_without_mass_gives_zero_in_states():
    fm = slay.FeatureMap("relu", head_dim=4, num_heads=2)
    q, k, v = _inputs(1)
    state = slay.State(fm, num_seqs=2, value_dim=3)
    out = state.prefill(q, k, v, delta=0.0)
    _expected_zero(out)
    _expected_zero(state.query(q, delta=0.0))
    fresh = slay.State(fm, num_seqs=2, value_dim=3)
    steps = np.stack([fresh.step(q[:, t], k[:, t], v[:, t], delta=0.0) for t in range(9)], axis=1)
    _expected_zero(steps)
    # An empty state has no mass either.
    empty = slay.State(fm, num_seqs=2, value_dim=3)
    assert (empty.query(np.abs(q), delta=0.0) == 0).all()
