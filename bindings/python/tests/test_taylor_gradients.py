"""SLAY_EXPANSION_TAYLOR's backward: slay.linear_attention_backward against central differences of
the float64 twin (the series' features in the library's order, naive_grad.taylor_features64)."""
import numpy as np
import pytest

import slay
from test_gradients import run


@pytest.mark.parametrize("degree", [2, 3, 4])
@pytest.mark.parametrize("settings", [{"denominator": "clamp", "delta": 0.05}, {"normalize": False, "log_decay": True},
                                      {"causal": False, "denominator": "clamp", "delta": 0.05}],
                         ids=["normalised", "gla-unnormalised", "bidirectional"])
def test_taylor_matches_the_twin(degree, settings):
    """The features are signed (a random initial z0 can bring a denominator near 0), so the
    normalised cases clamp at δ = 0.05, like SLAY's signed polynomials."""
    fm = slay.FeatureMap("slay", head_dim=3, num_heads=2, expansion="taylor", degree=degree)
    names = ["q", "k", "v"] + (["log_decay"] if settings.get("log_decay") else [])
    run(fm, dict(settings), names, Hq=4, T=7, with_state=settings.get("causal", True), d_final=True)


def test_taylor_zero_rows_pass_no_gradient():
    """û = x/‖x‖ is 0 at x = 0 in the forward, and so is its gradient."""
    fm = slay.FeatureMap("slay", head_dim=4, expansion="taylor", degree=2)
    rng = np.random.default_rng(3)
    q, k = (rng.standard_normal((1, 6, 1, 4)).astype(np.float32) for _ in range(2))
    v, dout = (rng.standard_normal((1, 6, 1, 2)).astype(np.float32) for _ in range(2))
    q[0, 3] = 0
    k[0, 2] = 0
    grads = slay.linear_attention_backward(q, k, v, fm, dout)
    assert not np.any(grads["q"][0, 3]) and not np.any(grads["k"][0, 2])
    assert np.any(grads["q"][0, 4]) and "params" not in grads
