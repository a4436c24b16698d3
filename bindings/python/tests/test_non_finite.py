"""Non-finite inputs (issue: reliability): a NaN or ±inf in q, k or v at token t never changes the
outputs of earlier tokens of the same call, in any form and for any map (0·NaN in the masked
intra-chunk products); check_finite=True refuses them with slay.NonFiniteError and leaves outputs
and states untouched; a non-finite key poisons its slot until reset. Floating options are validated
in the precision they are used in."""
import numpy as np
import pytest

import slay

NON_FINITE, INVALID = -13, -1
MAPS = ["identity", "elu+1", "relu", "favor+", "slay", "cosformer", "ela-hadamard-exp", "ela-sum-sqeuclid"]
B, T, HQ, HK, D, DV = 2, 21, 4, 2, 4, 3


def make(kind):
    extra = dict(max_length=64) if kind == "cosformer" else {}
    return slay.FeatureMap(kind, head_dim=D, num_heads=HK, **extra)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, T, HQ, D)).astype(np.float32), rng.standard_normal((B, T, HK, D)).astype(np.float32),
            rng.standard_normal((B, T, HK, DV)).astype(np.float32))


def forms(fm):
    """Options selecting each recurrence form (and the options that change its chunk math)."""
    rng = np.random.default_rng(1)
    channel = (-0.3 * rng.random((B, T, HK, fm.dim))).astype(np.float32)
    head = (-0.3 * rng.random((B, T, HK))).astype(np.float32)
    gates = dict(query_gate_logits=rng.standard_normal((B, T, HQ)).astype(np.float32),
                 key_gate_logits=rng.standard_normal((B, T, HK)).astype(np.float32))
    cases = {"plain": {}, "retnet": dict(decay=[0.9, 0.8]), "gla per channel": dict(log_decay=channel),
             "gla per head": dict(log_decay=head), "sla gates": dict(normalize=False, **gates)}
    if fm.config["kind"] in ("identity", "elu+1"):
        cases["delta rule"] = dict(normalize=False, update="delta", qk_l2norm=True,
                                   beta=(2 * rng.random((B, T, HK))).astype(np.float32), log_decay=head)
    return cases


@pytest.mark.parametrize("kind", MAPS)
@pytest.mark.parametrize("which", ["q", "k", "v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_bad_token_leaves_earlier_outputs_exactly_unchanged(kind, which, bad):
    fm = make(kind)
    q, k, v = inputs()
    t = 13   # row 5 of the second chunk of 8
    for name, kwargs in forms(fm).items():
        clean = slay.linear_attention(q, k, v, fm, chunk_size=8, **kwargs)
        poisoned = dict(q=q.copy(), k=k.copy(), v=v.copy())
        poisoned[which][1, t, 0, 1] = bad
        with np.errstate(all="ignore"):
            got = slay.linear_attention(poisoned["q"], poisoned["k"], poisoned["v"], fm, chunk_size=8, **kwargs)
        np.testing.assert_array_equal(got[:, :t], clean[:, :t], err_msg="%s, %s" % (kind, name))
        np.testing.assert_array_equal(got[0], clean[0], err_msg="another sequence changed: %s, %s" % (kind, name))


@pytest.mark.parametrize("kind", MAPS)
def test_a_nan_in_one_value_column_leaves_the_other_columns_right(kind):
    """Columns of v are independent: a NaN in column 1 of token t must not change columns 0 and 2
    of any output (the masked intra-chunk product once added the finite part of later rows twice)."""
    fm = make(kind)
    q, k, v = inputs()
    t = 13
    for name, kwargs in forms(fm).items():
        clean = slay.linear_attention(q, k, v, fm, chunk_size=8, **kwargs)
        poisoned = v.copy()
        poisoned[1, t, 0, 1] = np.nan
        with np.errstate(all="ignore"):
            got = slay.linear_attention(q, k, poisoned, fm, chunk_size=8, **kwargs)
        np.testing.assert_array_equal(got[:, :t], clean[:, :t], err_msg="%s, %s" % (kind, name))
        np.testing.assert_allclose(got[1, t:, :, [0, 2]], clean[1, t:, :, [0, 2]], rtol=1e-5, atol=1e-6,
                                   err_msg="%s, %s" % (kind, name))


@pytest.mark.parametrize("kind", ["identity", "elu+1"])
@pytest.mark.parametrize("which, value", [("k", 1e20), ("k", 3e19), ("k", -3e19), ("v", 3e38), ("q", 1e20)])
@pytest.mark.parametrize("qk_l2norm", [False, True])
def test_huge_finite_inputs_never_reach_earlier_tokens_of_the_delta_rule(kind, which, value, qk_l2norm):
    """Finite inputs so large that the delta rule's chunk terms (T, W, U') overflow from token t on
    must leave the outputs before t exactly as they are without token t."""
    fm = make(kind)
    q, k, v = inputs()
    beta = np.ones((B, T, HK), np.float32)
    t = 13
    kwargs = dict(normalize=False, update="delta", beta=beta, qk_l2norm=qk_l2norm, chunk_size=8)
    clean = slay.linear_attention(q, k, v, fm, **kwargs)
    poisoned = dict(q=q.copy(), k=k.copy(), v=v.copy())
    poisoned[which][1, t, 0, 1] = value
    with np.errstate(all="ignore"):
        got = slay.linear_attention(poisoned["q"], poisoned["k"], poisoned["v"], fm, **kwargs)
    np.testing.assert_array_equal(got[:, :t], clean[:, :t])
    np.testing.assert_array_equal(got[0], clean[0])


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_check_finite_refuses_and_leaves_everything_untouched(which):
    fm = make("elu+1")
    q, k, v = inputs(2)
    bad = dict(q=q.copy(), k=k.copy(), v=v.copy())
    bad[which][1, 7, 0, 2] = np.nan
    out = np.full((B, T, HQ, DV), 5.0, np.float32)
    with pytest.raises(slay.NonFiniteError) as info:
        slay.linear_attention(bad["q"], bad["k"], bad["v"], fm, out=out, check_finite=True)
    assert info.value.code == NON_FINITE and "%s[1, 7, 0, 2]" % which in str(info.value)
    assert isinstance(info.value, slay.SlayError) and np.all(out == 5.0)
    state = slay.State(fm, num_seqs=B, value_dim=DV)
    state.prefill(q[:, :4], k[:, :4], v[:, :4])
    blob = state.save()
    with pytest.raises(slay.NonFiniteError):
        state.prefill(bad["q"], bad["k"], bad["v"], check_finite=True)
    with pytest.raises(slay.NonFiniteError):
        state.step(bad["q"][:, 7], bad["k"][:, 7], bad["v"][:, 7], check_finite=True)
    assert state.save() == blob and state.position(1) == 4
    # Finite inputs: the check changes nothing.
    np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, check_finite=True), slay.linear_attention(q, k, v, fm))
    state.step(q[:, 7], k[:, 7], v[:, 7], check_finite=True)
    assert state.position(1) == 5


def test_a_nan_key_poisons_its_slot_until_reset():
    fm = make("elu+1")
    q, k, v = inputs(3)
    state = slay.State(fm, num_seqs=B, value_dim=DV)
    bad = k[:, 0].copy()
    bad[1, 0, 0] = np.nan
    with np.errstate(all="ignore"):
        state.step(q[:, 0], bad, v[:, 0])
        later = state.step(q[:, 1], k[:, 1], v[:, 1])
    assert np.all(np.isfinite(later[0])) and np.all(np.isnan(later[1, :HQ // HK]))
    state.reset(1)
    fresh = slay.State(fm, num_seqs=B, value_dim=DV)
    np.testing.assert_array_equal(state.step(q[:, 2], k[:, 2], v[:, 2])[1], fresh.step(q[:, 2], k[:, 2], v[:, 2])[1])


@pytest.mark.parametrize("delta", [1e39, -1e39, 3.5e38])
def test_delta_is_validated_in_float32(delta):
    """δ is applied in fp32: a δ finite in double but not in float is refused by every entry point."""
    fm = make("elu+1")
    q, k, v = inputs(4)
    state = slay.State(fm, num_seqs=B, value_dim=DV)
    for call in (lambda: slay.linear_attention(q, k, v, fm, delta=delta), lambda: state.prefill(q, k, v, delta=delta),
                 lambda: state.step(q[:, 0], k[:, 0], v[:, 0], delta=delta), lambda: state.query(q, delta=delta)):
        with pytest.raises(slay.SlayError, match="delta") as info:
            call()
        assert info.value.code == INVALID
    assert state.position(0) == 0
    slay.linear_attention(q, k, v, fm, delta=3.4e38)   # the largest float32 is fine
