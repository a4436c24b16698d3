"""Hadamard Exp's backward (the rescaled-exp form): slay.linear_attention_backward against central
differences of the float64 token-loop twin (features e^x in float64, naive_grad.py), for every
option the forward composes with it, and overflow safety where e^x overflows fp32."""
import numpy as np
import pytest

import slay
from naive_grad import forward64
from test_gradients import run, check_directions

RNG = np.random.default_rng(777)

FORMS = {
    "normalised-add": {},
    "normalised-clamp": {"denominator": "clamp", "delta": 0.3},
    "unnormalised": {"normalize": False},
    "retnet-gamma": {"decay": [0.8, 0.95]},
    "gla": {"log_decay": True},
    "gla-per-head-unnormalised": {"normalize": False, "log_decay": True, "per_head_decay": True},
    "sla-gates": {"normalize": False, "query_gate_logits": True, "key_gate_logits": True},
    "sla-gla-normalised": {"log_decay": True, "query_gate_logits": True, "key_gate_logits": True, "delta": 1e-2},
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_hadamard_exp_matches_the_twin_with_gqa_and_states(form):
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=3, num_heads=2)
    settings = dict(FORMS[form])
    names = ["q", "k", "v"] + [n for n in ("log_decay", "query_gate_logits", "key_gate_logits") if settings.get(n)]
    run(fm, settings, names, Hq=4, T=7, with_state=True, d_final=True, scale=0.7)


@pytest.mark.parametrize("settings", [{}, {"normalize": False}, {"denominator": "clamp", "delta": 0.2}],
                         ids=["add", "unnormalised", "clamp"])
def test_hadamard_exp_bidirectional_matches_the_twin(settings):
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=4, num_heads=1)
    run(fm, dict(settings, causal=False), ["q", "k", "v"], Hq=2, T=9, with_state=True, d_final=True, scale=0.7)


def test_hadamard_exp_packed_sequences_match_the_twin():
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=3, num_heads=1)
    run(fm, {"log_decay": True}, ["q", "k", "v", "log_decay"], B=1, T=10, cu_seqlens=[0, 4, 4, 10], with_state=True,
        d_final=True, scale=0.7)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_hadamard_exp_gradients_are_finite_where_the_features_overflow(causal):
    """Entries near ±60 put e^{q + k} far beyond fp32 (e^120): the forward is finite in its
    rescaled frame and so is the backward, and both agree with the float64 twin (which holds
    e^120). μ and r are stop-gradient constants, exact because the normalised output does not
    depend on them."""
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=4, num_heads=1)
    B, T, d, dv = 1, 12, 4, 3
    q = (60 * RNG.uniform(-1, 1, (B, T, 1, d))).astype(np.float32)
    k = (60 * RNG.uniform(-1, 1, (B, T, 1, d))).astype(np.float32)
    v = RNG.standard_normal((B, T, 1, dv)).astype(np.float32)
    dout = RNG.standard_normal((B, T, 1, dv)).astype(np.float32)
    log_decay = (-np.abs(RNG.standard_normal((B, T, 1, d)))).astype(np.float32) if causal else None
    extra = {} if log_decay is None else {"log_decay": log_decay}
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.exp(q) * np.exp(k).max()))   # e^q e^k overflows fp32
    y = slay.linear_attention(q, k, v, fm, causal=causal, **extra)
    np.testing.assert_allclose(y, forward64(fm, q, k, v, causal=causal, **extra)[0], rtol=1e-3, atol=1e-4)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, causal=causal, **extra)
    names = ["q", "k", "v"] + (["log_decay"] if causal else [])
    for name in names:
        assert np.all(np.isfinite(grads[name])), name
    inputs = {"q": q, "k": k, "v": v, "params": {}, **extra}
    check_directions(fm, inputs, grads, names, dout, None, rtol=1e-4, causal=causal)


def test_hadamard_exp_thread_counts_are_bitwise_identical():
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=4, num_heads=2)
    q = RNG.standard_normal((2, 20, 4, 4)).astype(np.float32)
    k = RNG.standard_normal((2, 20, 2, 4)).astype(np.float32)
    v = RNG.standard_normal((2, 20, 2, 3)).astype(np.float32)
    dout = RNG.standard_normal((2, 20, 4, 3)).astype(np.float32)
    log_decay = (-0.2 * np.abs(RNG.standard_normal((2, 20, 2, 4)))).astype(np.float32)
    one = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, n_threads=1)
    two = slay.linear_attention_backward(q, k, v, fm, dout, log_decay=log_decay, n_threads=2)
    for name in ("q", "k", "v", "log_decay"):
        assert np.array_equal(one[name], two[name]), name


def test_hadamard_exp_refusals_follow_the_forward():
    fm = slay.FeatureMap(kind="ela-hadamard-exp", head_dim=4)
    q, k, v, dout = (RNG.standard_normal((1, 5, 1, 4)).astype(np.float32) for _ in range(4))
    with pytest.raises(slay.SlayRuntimeError, match="qk_l2norm"):
        slay.linear_attention_backward(q, k, v, fm, dout, qk_l2norm=True)
    with pytest.raises(slay.SlayError, match="delta"):
        slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, update="delta")
