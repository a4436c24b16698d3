"""Linear attention: chunked causal == naive quadratic form, bidirectional, strides, GQA, threads."""
import numpy as np
import pytest

import slay
import naive


def inputs(B, T, Hq, Hk, d, dv, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, T, Hq, d)).astype(np.float32),
            rng.standard_normal((B, T, Hk, d)).astype(np.float32),
            rng.standard_normal((B, T, Hk, dv)).astype(np.float32))


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="exact", prf_dim=4, seed=5)


def reference(fm, q, k, v, causal):
    p = fm.get_params()
    return naive.linear_attention(naive.features_bthd(q, "exact", p["omega"]),
                                  naive.features_bthd(k, "exact", p["omega"]), v, causal)


@pytest.mark.parametrize("T", [1, 5, 63, 64, 65, 200])
@pytest.mark.parametrize("chunk", [1, 7, 64, 128])
def test_chunked_causal_equals_naive(fm, T, chunk):
    q, k, v = inputs(2, T, 2, 2, 8, 8, seed=T)
    out = np.full((2, T, 2, 8), np.nan, np.float32)  # unwritten elements would fail
    slay.linear_attention(q, k, v, fm, causal=True, chunk_size=chunk, out=out)
    naive.rms_close(out, reference(fm, q, k, v, True))


@pytest.mark.parametrize("T", [1, 33, 130])
def test_bidirectional_equals_naive(fm, T):
    q, k, v = inputs(2, T, 2, 2, 8, 5, seed=T)
    naive.rms_close(slay.linear_attention(q, k, v, fm, causal=False, chunk_size=16),
                    reference(fm, q, k, v, False))


def test_head_first_strides_equal_contiguous(fm):
    q, k, v = inputs(2, 40, 2, 2, 8, 8)
    expected = slay.linear_attention(q, k, v, fm, chunk_size=16)
    qh, kh, vh = (np.ascontiguousarray(a.transpose(0, 2, 1, 3)) for a in (q, k, v))
    got = slay.linear_attention(qh.transpose(0, 2, 1, 3), kh.transpose(0, 2, 1, 3), vh.transpose(0, 2, 1, 3),
                                fm, chunk_size=16)
    np.testing.assert_array_equal(got, expected)
    out_h = np.full((2, 2, 40, 8), np.nan, np.float32)
    slay.linear_attention(q, k, v, fm, chunk_size=16, out=out_h.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(out_h.transpose(0, 2, 1, 3), expected)


def test_grouped_query_and_value_width(fm):
    q, k, v = inputs(1, 50, 6, 2, 8, 3)
    naive.rms_close(slay.linear_attention(q, k, v, fm, chunk_size=16), reference(fm, q, k, v, True))


def test_thread_count_does_not_change_result(fm):
    q, k, v = inputs(3, 70, 2, 2, 8, 8)
    one = slay.linear_attention(q, k, v, fm, n_threads=1)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, n_threads=threads), one)


@pytest.mark.parametrize("kernel", ["softmax", "yat-spherical", "yat"])
@pytest.mark.parametrize("causal", [True, False])
def test_exact_attention_matches_twin(kernel, causal):
    q, k, v = inputs(2, 30, 4, 2, 8, 6)
    got = slay.exact_attention(q, k, v, kernel=kernel, causal=causal, eps=1e-3)
    naive.rms_close(got, naive.exact_attention(q, k, v, kernel, causal, eps=1e-3), rtol=1e-6)
    if kernel == "softmax":
        naive.rms_close(slay.exact_attention(q, k, v, kernel=kernel, causal=causal, scale=0.3),
                        naive.exact_attention(q, k, v, kernel, causal, scale=0.3), rtol=1e-6)


def test_inputs_scaled_by_50_stay_finite(fm):
    q, k, v = inputs(1, 40, 2, 2, 8, 8)
    out = slay.linear_attention(q * 50, k * 50, v, fm)
    assert np.all(np.isfinite(out))
    naive.rms_close(out, reference(fm, q, k, v, True))  # SLAY sees only directions
