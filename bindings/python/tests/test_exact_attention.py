"""slay_exact_attention: softmax, spherical Yat and Yat kernels against float64 numpy."""
import numpy as np
import pytest

import slay
import naive


def inputs(B, T, Hq, Hk, d, dv, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return tuple((rng.standard_normal(shape) * s).astype(np.float32)
                 for shape, s in (((B, T, Hq, d), scale), ((B, T, Hk, d), scale), ((B, T, Hk, dv), 1.0)))


@pytest.mark.parametrize("kernel", ["softmax", "yat-spherical", "yat"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("Hq,Hk,dv", [(4, 2, 6), (2, 2, 8), (3, 1, 1)])
def test_matches_twin(kernel, causal, Hq, Hk, dv):
    """slay_exact_attention (accumulated in double): softmax(scale·q·k) with scale 1/√d by default,
    x²/(2 + ε − 2x) on directions, (q·k)²/(‖q − k‖² + ε); kernel-normalised with δ; GQA; dv ≠ d."""
    q, k, v = inputs(2, 30, Hq, Hk, 8, dv, seed=Hq * 10 + dv)
    out = np.full((2, 30, Hq, dv), np.nan, np.float32)
    got = slay.exact_attention(q, k, v, kernel=kernel, causal=causal, eps=1e-3, out=out)
    assert got is out
    naive.rms_close(got, naive.exact_attention(q, k, v, kernel, causal, eps=1e-3), rtol=1e-6)


@pytest.mark.parametrize("scale", [0.3, -0.5, 2.0])
@pytest.mark.parametrize("causal", [True, False])
def test_softmax_custom_scale(scale, causal):
    """slay_exact_attention_options.scale: the softmax logit scale (0 in C / None in Python = 1/√d)."""
    q, k, v = inputs(2, 25, 2, 2, 8, 4, scale=2.0)
    naive.rms_close(slay.exact_attention(q, k, v, kernel="softmax", causal=causal, scale=scale),
                    naive.exact_attention(q, k, v, "softmax", causal, scale=scale), rtol=1e-6)


def test_softmax_large_logits_are_stable():
    """Softmax with logits in the hundreds stays finite (max-subtracted) and matches the twin."""
    q, k, v = inputs(1, 40, 2, 2, 16, 4, scale=8.0)
    naive.rms_close(slay.exact_attention(q, k, v, kernel="softmax", scale=1.0),
                    naive.exact_attention(q, k, v, "softmax", True, scale=1.0), rtol=1e-6)


@pytest.mark.parametrize("kernel", ["yat-spherical", "yat"])
@pytest.mark.parametrize("eps,delta", [(1e-6, 1e-6), (0.5, 0.0), (1e-2, 3.0)])
def test_yat_eps_and_delta(kernel, eps, delta):
    """Yat kernels: ε in the kernel, δ in the denominator y = Σ K v / (Σ K + δ)."""
    q, k, v = inputs(1, 24, 2, 1, 6, 3)
    naive.rms_close(slay.exact_attention(q, k, v, kernel=kernel, eps=eps, delta=delta),
                    naive.exact_attention(q, k, v, kernel, True, eps=eps, delta=delta), rtol=1e-6)


@pytest.mark.parametrize("kernel", ["softmax", "yat-spherical", "yat"])
def test_strides_and_threads_do_not_change_result(kernel):
    """Head-first strided views and n_threads (1 vs 2) give bitwise the same output as contiguous, 1 thread."""
    q, k, v = inputs(2, 33, 4, 2, 8, 5)
    expected = slay.exact_attention(q, k, v, kernel=kernel)
    heads_first = [np.ascontiguousarray(a.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3) for a in (q, k, v)]
    np.testing.assert_array_equal(slay.exact_attention(*heads_first, kernel=kernel), expected)
    np.testing.assert_array_equal(slay.exact_attention(q, k, v, kernel=kernel, n_threads=2), expected)


def test_default_kernel_is_causal_softmax():
    """slay_exact_attention_options_init: softmax, causal, scale 1/√d (Python defaults follow)."""
    q, k, v = inputs(1, 12, 2, 2, 4, 4)
    naive.rms_close(slay.exact_attention(q, k, v), naive.exact_attention(q, k, v, "softmax", True), rtol=1e-6)
