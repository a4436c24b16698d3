"""slay_linear_attention: chunked causal == naive quadratic form, bidirectional, strides, GQA, threads."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

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


def reference(fm, q, k, v, causal, delta=1e-6):
    """The quadratic form of docs/math.md §5 from the float64 twin's features."""
    p = fm.get_params()
    poly = fm.config["poly"]
    return naive.linear_attention(naive.features_bthd(q, poly, p["omega"], p.get("anchors")),
                                  naive.features_bthd(k, poly, p["omega"], p.get("anchors")), v, causal, delta)


@pytest.mark.parametrize("T", [1, 5, 63, 64, 65, 200])
@pytest.mark.parametrize("chunk", [1, 7, 64, 128])
def test_chunked_causal_equals_naive(fm, T, chunk):
    """slay_linear_attention, causal: the chunked form equals the quadratic form (diagonal included)
    for any chunk_size ("does not change the result beyond fp32 rounding"); out is written in full."""
    q, k, v = inputs(2, T, 2, 2, 8, 8, seed=T)
    out = np.full((2, T, 2, 8), np.nan, np.float32)  # unwritten elements would fail
    slay.linear_attention(q, k, v, fm, causal=True, chunk_size=chunk, out=out)
    naive.rms_close(out, reference(fm, q, k, v, True))


@pytest.mark.parametrize("T", [1, 33, 130])
def test_bidirectional_equals_naive(fm, T):
    """slay_linear_attention, causal = 0: every query sees all keys."""
    q, k, v = inputs(2, T, 2, 2, 8, 5, seed=T)
    naive.rms_close(slay.linear_attention(q, k, v, fm, causal=False, chunk_size=16),
                    reference(fm, q, k, v, False))


def test_head_first_strides_equal_contiguous(fm):
    """slay.h: a head-first [B, H, T, D] buffer is the same logical tensor with permuted strides, no copy;
    the result is bitwise that of contiguous inputs, also for a head-first output."""
    q, k, v = inputs(2, 40, 2, 2, 8, 8)
    expected = slay.linear_attention(q, k, v, fm, chunk_size=16)
    qh, kh, vh = (np.ascontiguousarray(a.transpose(0, 2, 1, 3)) for a in (q, k, v))
    got = slay.linear_attention(qh.transpose(0, 2, 1, 3), kh.transpose(0, 2, 1, 3), vh.transpose(0, 2, 1, 3),
                                fm, chunk_size=16)
    np.testing.assert_array_equal(got, expected)
    out_h = np.full((2, 2, 40, 8), np.nan, np.float32)
    slay.linear_attention(q, k, v, fm, chunk_size=16, out=out_h.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(out_h.transpose(0, 2, 1, 3), expected)


@pytest.mark.parametrize("Hq,dv,causal", [(4, 8, True), (4, 8, False), (6, 3, True), (2, 17, True), (2, 1, False)])
def test_grouped_query_and_value_width(fm, Hq, dv, causal):
    """slay_linear_attention: Hq a multiple of Hk (query head h uses key head h / (Hq / Hk)); dv may differ from d."""
    q, k, v = inputs(2, 50, Hq, 2, 8, dv, seed=Hq + dv)
    out = np.full((2, 50, Hq, dv), np.nan, np.float32)
    slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=16, out=out)
    naive.rms_close(out, reference(fm, q, k, v, causal))


@pytest.mark.parametrize("poly", ["anchor", "exact_full"])
def test_other_polynomials_equal_naive(poly):
    """slay_linear_attention with anchor and exact_full maps (R = 3) equals the quadratic form."""
    fm = slay.FeatureMap("slay", head_dim=6, num_heads=2, nodes=3, poly=poly, poly_dim=5, prf_dim=3, seed=2)
    q, k, v = inputs(2, 37, 4, 2, 6, 5)
    for causal in (True, False):
        naive.rms_close(slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=8), reference(fm, q, k, v, causal))


@pytest.mark.parametrize("delta", [0.0, 1e-6, 0.5, 100.0])
def test_delta_is_added_to_the_denominator(fm, delta):
    """slay_attention_options.delta: y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ), δ >= 0."""
    q, k, v = inputs(1, 20, 2, 2, 8, 4)
    for causal in (True, False):
        naive.rms_close(slay.linear_attention(q, k, v, fm, causal=causal, delta=delta),
                        reference(fm, q, k, v, causal, delta))


def test_default_options_follow_header(fm):
    """slay_attention_options_init defaults: causal, δ = 1e-6, chunk 64, 1 thread (the Python defaults too)."""
    q, k, v = inputs(1, 70, 2, 2, 8, 8)
    np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm),
                                  slay.linear_attention(q, k, v, fm, causal=True, delta=1e-6, chunk_size=64,
                                                        n_threads=1))


@pytest.mark.parametrize("causal", [True, False])
def test_thread_count_does_not_change_result(fm, causal):
    """slay_attention_options.n_threads: 1 and 2 (and more threads than work) give bitwise equal results."""
    q, k, v = inputs(3, 70, 4, 2, 8, 8)
    one = slay.linear_attention(q, k, v, fm, causal=causal, n_threads=1)
    for threads in (2, 3, 8, 256):
        np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, causal=causal, n_threads=threads), one)


def test_inputs_scaled_by_50_stay_finite(fm):
    """SLAY normalises rows (û = u/‖u‖): scaling q and k changes nothing and cannot overflow."""
    q, k, v = inputs(1, 40, 2, 2, 8, 8)
    out = slay.linear_attention(q * 50, k * 50, v, fm)
    assert np.all(np.isfinite(out))
    naive.rms_close(out, reference(fm, q, k, v, True))  # SLAY sees only directions


def test_strided_inputs_are_not_copied(fm):
    """slay.h "no copy is made": the binding passes positive-stride views to C as they are."""
    from slay._tensor import as_input
    q = np.zeros((2, 8, 3, 5), np.float32).transpose(0, 2, 1, 3)
    assert as_input(q, "q", 4) is q
    reversed_view = q[:, ::-1]
    copied = as_input(reversed_view, "q", 4)  # negative strides: inputs only, copied to contiguous
    assert copied is not reversed_view and copied.flags.c_contiguous


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(4)), steps=st.tuples(*[st.integers(1, 2)] * 4), T=st.integers(1, 40),
       chunk=st.sampled_from([1, 3, 16, 64]), causal=st.booleans())
def test_any_layout_equals_contiguous(order, steps, T, chunk, causal):
    """Any element strides >= 0 (a permuted, sliced buffer) give bitwise the result of contiguous inputs."""
    fm = _MAP
    q, k, v = inputs(2, T, 4, 2, 8, 3, seed=T)

    def layout(a):
        shape = [s * st_ for s, st_ in zip(a.shape, steps)]
        buffer = np.full([shape[i] for i in order], np.nan, np.float32)
        view = buffer.transpose(np.argsort(order))[tuple(slice(None, None, s) for s in steps)]
        view[...] = a
        return view

    expected = slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=chunk)
    out = layout(np.full(expected.shape, np.nan, np.float32))
    slay.linear_attention(layout(q), layout(k), layout(v), fm, causal=causal, chunk_size=chunk, out=out)
    np.testing.assert_array_equal(out, expected)


_MAP = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=9)


def test_inputs_may_alias_each_other(fm):
    """slay.h forbids only outputs overlapping inputs: q, k and v may be the same memory."""
    x = inputs(1, 30, 2, 2, 8, 8)[0]
    naive.rms_close(slay.linear_attention(x, x, x, fm), reference(fm, x, x, x, True))
    naive.rms_close(slay.exact_attention(x, x, x, kernel="yat"), naive.exact_attention(x, x, x, "yat", True), rtol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
def test_single_long_sequence_splits_over_threads_bitwise(causal):
    """Fewer (sequence, head) pairs than threads: value columns are split over threads; the
    result must not change in a single bit (threads over chunks of one long sequence)."""
    fm1 = slay.FeatureMap("slay", head_dim=16, num_heads=1, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=2)
    rng = np.random.default_rng(9)
    q, k = (rng.standard_normal((1, 300, 1, 16)).astype(np.float32) for _ in range(2))
    v = rng.standard_normal((1, 300, 1, 64)).astype(np.float32)
    one = slay.linear_attention(q, k, v, fm1, causal=causal, n_threads=1)
    for threads in (2, 3, 4, 8):
        np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm1, causal=causal, n_threads=threads), one)
    state_one = slay.State(fm1, num_seqs=1, value_dim=64)
    state_four = slay.State(fm1, num_seqs=1, value_dim=64)
    a = state_one.prefill(q, k, v, causal=causal, n_threads=1)
    b = state_four.prefill(q, k, v, causal=causal, n_threads=4)
    np.testing.assert_array_equal(a, b)
    for x, y in zip(state_one.read(0), state_four.read(0)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind,extra,chunk", [("slay", {}, 64), ("elu+1", {}, 64), ("identity", {"gla": True}, 8),
                                              ("ela-hadamard-exp", {}, 8)])
def test_automatic_chunk_size(kind, extra, chunk):
    """chunk_size 0 (the default) is the documented choice: bitwise equal to passing that chunk."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 100, 2, 8)).astype(np.float32) for _ in range(3))
    fm = slay.FeatureMap(kind, head_dim=8, num_heads=2)
    options = {}
    if extra.get("gla"):
        options = dict(normalize=False, log_decay=(-0.1 * rng.random((1, 100, 2, fm.dim))).astype(np.float32))
    automatic = slay.linear_attention(q, k, v, fm, **options)
    assert np.array_equal(automatic, slay.linear_attention(q, k, v, fm, chunk_size=0, **options))
    assert np.array_equal(automatic, slay.linear_attention(q, k, v, fm, chunk_size=chunk, **options))
