"""SLAY_POLY_TENSORSKETCH and SLAY_POLY_NYSTROM (slay.h, docs/math.md §1): documented parameters, features
against float64 twins built from the parameters read back, what the polynomial estimators converge to,
attention (causal, bidirectional, decode) with the clamp denominator, and bad input.
Run with -s to see the measured estimator numbers."""
import numpy as np
import pytest

import slay
import naive
from test_estimators import kernel_values, pairs

POLYS = ["tensorsketch", "nystrom"]


def param_of(fm, poly):
    """The poly's own array, as naive.poly_features takes it."""
    return fm.get_params()["sketch" if poly == "tensorsketch" else "anchors"]


@pytest.mark.parametrize("seed", [0, 7, 2**64 - 1])
def test_tensorsketch_parameter_follows_documented_generator(seed):
    """"sketch" (2, 2, d): element i = (2k + c)·d + j from uniform(i) of stream 9 (buckets ⌊P·u⌋, signs u < 1/2)."""
    d, P = 9, 5
    fm = slay.FeatureMap("slay", head_dim=d, nodes=2, poly="tensorsketch", poly_dim=P, prf_dim=3, seed=seed)
    params = fm.get_params()
    assert set(params) == {"sketch", "omega"}
    np.testing.assert_array_equal(params["sketch"], naive.sketch_params(seed, d, P))
    np.testing.assert_array_equal(params["omega"], naive.params(seed, d, 1, 2, 3)[1])
    buckets, signs = params["sketch"][:, 0], params["sketch"][:, 1]
    assert np.all((buckets >= 0) & (buckets < P) & (buckets == np.round(buckets)))
    assert set(np.unique(signs)) <= {-1.0, 1.0}


def test_nystrom_anchors_follow_documented_generator():
    fm = slay.FeatureMap("slay", head_dim=6, num_heads=2, nodes=2, poly="nystrom", poly_dim=10, prf_dim=3, seed=21)
    params = fm.get_params()
    assert set(params) == {"anchors", "omega"}
    anchors, omega = naive.params(21, 6, 2, 2, 3, P=10)
    np.testing.assert_array_equal(params["anchors"], anchors)
    np.testing.assert_array_equal(params["omega"], omega)


@pytest.mark.parametrize("poly", POLYS)
@pytest.mark.parametrize("d,P,R,H", [(1, 1, 1, 1), (4, 3, 2, 2), (8, 8, 2, 1), (5, 32, 3, 2), (16, 16, 1, 1)])
def test_features_match_twin(poly, d, P, R, H):
    """slay_feature_map_apply vs the float64 twin from get_params: TensorSketch summed pair by pair,
    Nyström whitened with numpy's own (K_AA + λI)^{−1/2}."""
    M = 3
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=R, poly=poly, poly_dim=P, prf_dim=M, seed=5)
    assert fm.dim == R * P * M == R * naive.poly_dim(poly, d, P) * M
    x = np.random.default_rng(d + P).standard_normal((2, 5, H, d)).astype(np.float32)
    x[0, 0] = 0   # zero rows map to zero features
    expected = naive.features_bthd(x, poly, fm.get_params()["omega"], param_of(fm, poly), P=P)
    got = fm(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5 * np.abs(expected).max())
    assert np.all(got[0, 0] == 0)
    np.testing.assert_array_equal(fm(x, role="key"), got)
    assert d == 1 or (got < 0).any(), "signed features"


def test_set_params_are_used():
    """New sketch / anchors change the features exactly as the twins say (Nyström re-whitens)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 1, 4)).astype(np.float32)
    ts = slay.FeatureMap("slay", head_dim=4, nodes=1, poly="tensorsketch", poly_dim=3, prf_dim=2, seed=1)
    before = ts.identity
    sketch = np.array([[[0, 2, 2, 1], [1, -1, 1, 1]], [[1, 1, 0, 2], [-1, -1, 1, -1]]], np.float32)
    ts.set_params(sketch=sketch)
    assert ts.identity != before
    np.testing.assert_array_equal(ts.get_params()["sketch"], sketch)
    np.testing.assert_allclose(ts(x), naive.features_bthd(x, "tensorsketch", ts.get_params()["omega"], sketch, P=3),
                               rtol=1e-4, atol=1e-6)
    ny = slay.FeatureMap("slay", head_dim=4, nodes=1, poly="nystrom", poly_dim=5, prf_dim=2, seed=1)
    anchors = rng.standard_normal((5, 4)).astype(np.float32) * 2   # not unit rows: used as given
    ny.set_params(anchors=anchors)
    expected = naive.features_bthd(x, "nystrom", ny.get_params()["omega"], anchors)
    np.testing.assert_allclose(ny(x), expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


# ---- what the polynomial estimators converge to ----------------------------------------------------

def poly_kernel(fm, x, y, R):
    """φ_poly(x)·φ_poly(y) of a SLAY map with ω = 0 (every PRF is e^{−s_r}/√M, no randomness):
    φ(x)·φ(y) = Σ_r w_r e^{−2 s_r} · φ_poly(x)·φ_poly(y)."""
    d = x.shape[-1]
    fm.set_params(omega=np.zeros((R, 1, d, 1), np.float32))
    s, w = naive.quadrature(R, 1e-6)
    return kernel_values(fm, x, y) / float((w * np.exp(-2 * s)).sum())


def estimates(poly, P, seeds, x, y):
    return np.array([poly_kernel(slay.FeatureMap("slay", head_dim=x.shape[-1], nodes=1, poly=poly, poly_dim=P,
                                                 prf_dim=1, seed=seed), x, y, 1) for seed in seeds])


def test_tensorsketch_is_unbiased_for_x_squared():
    """Mean over 600 seeds of the TensorSketch poly kernel equals x² (within 4 standard errors) at
    P = 8 and 64, while single draws at P = 8 spread widely; the spread shrinks with P."""
    d, cosines = 8, [-0.8, -0.3, 0.0, 0.5, 0.9, 1.0]
    x, y = pairs(d, cosines, seed=2)
    target = np.array(cosines) ** 2
    spreads = []
    for P in (8, 64):
        values = estimates("tensorsketch", P, range(600), x, y)
        mean, sem = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(values))
        print("\ntensorsketch P=%d: mean - x² %s, sem %s" % (P, np.round(mean - target, 4), np.round(sem, 4)))
        assert np.all(np.abs(mean - target) <= 4 * sem + 1e-6)
        spreads.append(values.std(0, ddof=1).mean())
    assert spreads[0] > 0.1 and spreads[1] < spreads[0] / 2


def test_nystrom_approximates_x_squared():
    """Nyström is deterministic given its anchors and biased, but close to x² once the anchors span the
    d(d+1)/2 quadratic forms: d = 4 (10 forms) with P = 64 is within 1e-2 on every seed; P = 8 < 10 is
    a projection (visibly off); d = 8 (36 forms) at P = 64 is within 0.05 on average."""
    cosines = [-0.8, -0.3, 0.0, 0.5, 0.9, 1.0]
    target = np.array(cosines) ** 2
    x, y = pairs(4, cosines, seed=4)
    assert np.abs(estimates("nystrom", 64, range(5), x, y) - target).max() < 1e-2
    assert np.abs(estimates("nystrom", 8, range(5), x, y) - target).max() > 0.02
    x, y = pairs(8, cosines, seed=4)
    assert np.abs(estimates("nystrom", 64, range(5), x, y) - target).mean() < 0.05


def test_poly_estimator_bias_and_spread_table():
    """Bias (mean over 200 seeds − x²) and spread (std over seeds) of the poly kernel per estimator,
    d = 16, averaged over x ∈ {−0.5, 0, 0.5, 0.9, 1}; anchor is rescaled by d(d+2)/3 so that its
    x = 1 value is 1 (its limit (1 + 2x²)/3 after that scaling is not x²). Asserted: TensorSketch and
    random Maclaurin bias ≈ 0, anchor's bias stays at any P, Nyström's shrinks with P."""
    d, cosines = 16, [-0.5, 0.0, 0.5, 0.9, 1.0]
    x, y = pairs(d, cosines, seed=6)
    target = np.array(cosines) ** 2
    table = {}
    for poly in ("anchor", "random_maclaurin", "tensorsketch", "nystrom"):
        for P in (8, 16, 64):
            values = estimates(poly, P, range(200), x, y)
            if poly == "anchor":
                values = values * d * (d + 2) / 3
            table[poly, P] = (float(np.abs(values.mean(0) - target).mean()), float(values.std(0, ddof=1).mean()))
    print("\npoly kernel vs x², d=16, 200 seeds: |bias| / spread")
    for poly in ("anchor", "random_maclaurin", "tensorsketch", "nystrom"):
        print("  %-17s" % poly + "".join("  P=%-3d %.3f / %.3f" % (P, *table[poly, P]) for P in (8, 16, 64)))
    for P in (8, 16, 64):
        assert table["tensorsketch", P][0] < 0.05 and table["random_maclaurin", P][0] < 0.1
        assert table["anchor", P][0] > 0.1
    assert table["nystrom", 64][0] < table["nystrom", 8][0]


# ---- attention ------------------------------------------------------------------------------------

@pytest.mark.parametrize("poly", POLYS)
def test_attention_causal_bidirectional_and_decode_agree_with_twin(poly):
    """With SLAY_DENOMINATOR_CLAMP: chunked causal, bidirectional and step-by-step decode (after a
    prefill) against the float64 naive linear attention on the twin features, grouped-query heads."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly=poly, poly_dim=8, prf_dim=4, seed=11)
    rng = np.random.default_rng(5)
    T, delta = 40, 1e-2
    q = rng.standard_normal((2, T, 4, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, T, 2, 8)).astype(np.float32) for _ in range(2))
    p = fm.get_params()
    phi_q = naive.features_bthd(q, poly, p["omega"], param_of(fm, poly), P=8)
    phi_k = naive.features_bthd(k, poly, p["omega"], param_of(fm, poly), P=8)
    for causal in (True, False):
        expected = naive.linear_attention(phi_q, phi_k, v, causal, delta, denominator="clamp")
        got = slay.linear_attention(q, k, v, fm, causal=causal, delta=delta, denominator="clamp", chunk_size=16)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
        if causal:
            whole = got
    state = slay.State(fm, num_seqs=2, value_dim=8)
    first = state.prefill(q[:, :17], k[:, :17], v[:, :17], delta=delta, denominator="clamp", chunk_size=16)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t], delta=delta, denominator="clamp") for t in range(17, T)],
                     axis=1)
    decoded = np.concatenate([first, steps], axis=1)
    np.testing.assert_allclose(decoded, whole, rtol=1e-3, atol=1e-3 * np.abs(whole).max())


# ---- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("poly,P", [("tensorsketch", 0), ("tensorsketch", -3), ("tensorsketch", 65537),
                                    ("nystrom", 0), ("nystrom", 257), ("nystrom", 65536)])
def test_poly_dim_out_of_range_at_create(poly, P):
    with pytest.raises(ValueError, match="poly_dim"):
        slay.FeatureMap("slay", head_dim=4, poly=poly, poly_dim=P, prf_dim=2)


def test_largest_nystrom_poly_dim_is_accepted():
    assert slay.FeatureMap("slay", head_dim=4, nodes=1, poly="nystrom", poly_dim=256, prf_dim=1).dim == 256


def test_bad_sketch_is_refused_and_changes_nothing():
    fm = slay.FeatureMap("slay", head_dim=3, nodes=1, poly="tensorsketch", poly_dim=4, prf_dim=2, seed=2)
    good, identity = fm.get_params()["sketch"], fm.identity
    with pytest.raises(ValueError, match="shape"):
        fm.set_params(sketch=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        fm.set_params(sketch=np.zeros((2, 2, 4), np.float32))
    cases = [((0, 0, 1), 1.5, "integers"), ((1, 0, 2), 4, "integers"), ((0, 0, 0), -1, "integers"),
             ((0, 1, 0), 0, "signs"), ((1, 1, 2), 0.5, "signs"), ((1, 1, 1), -2, "signs"),
             ((0, 0, 2), np.nan, "finite"), ((0, 1, 1), np.inf, "finite")]
    for index, value, message in cases:
        bad = good.copy()
        bad[index] = value
        with pytest.raises(ValueError, match=message):
            fm.set_params(sketch=bad)
    assert fm.identity == identity
    np.testing.assert_array_equal(fm.get_params()["sketch"], good)
    with pytest.raises(ValueError, match="unknown parameter"):
        fm.set_params(anchors=np.zeros((4, 3), np.float32))


def test_bad_nystrom_anchors_are_refused():
    fm = slay.FeatureMap("slay", head_dim=3, nodes=1, poly="nystrom", poly_dim=4, prf_dim=2, seed=2)
    good, identity = fm.get_params()["anchors"], fm.identity
    with pytest.raises(ValueError, match="shape"):
        fm.set_params(anchors=np.zeros((3, 3), np.float32))
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fm.set_params(anchors=bad)
    assert fm.identity == identity
    with pytest.raises(ValueError, match="unknown parameter"):
        fm.set_params(sketch=np.zeros((2, 2, 3), np.float32))
    # Degenerate but finite anchors (all zero, or huge) are accepted and never crash.
    fm.set_params(anchors=np.zeros((4, 3), np.float32))
    assert np.all(np.isfinite(fm(np.ones((1, 2, 1, 3), np.float32))))
    fm.set_params(anchors=np.full((4, 3), 3e37, np.float32))
    fm(np.ones((1, 2, 1, 3), np.float32))


def test_c_set_param_wrong_count_and_null():
    """The C entry point directly: wrong counts give SLAY_ERR_SHAPE, NULL data SLAY_ERR_INVALID_ARGUMENT."""
    import ctypes
    from slay._lib import lib, Error
    from slay.errors import SHAPE, INVALID_ARGUMENT
    fm = slay.FeatureMap("slay", head_dim=3, nodes=1, poly="tensorsketch", poly_dim=4, prf_dim=2)
    buf = (ctypes.c_float * 12)()
    err = Error()
    assert lib.slay_feature_map_set_param(fm.handle, b"sketch", buf, 11, ctypes.byref(err)) == SHAPE
    assert lib.slay_feature_map_set_param(fm.handle, b"sketch", None, 12, ctypes.byref(err)) == INVALID_ARGUMENT
    for i in range(12):
        buf[i] = 1.0   # buckets 1, signs +1: valid
    assert lib.slay_feature_map_set_param(fm.handle, b"sketch", buf, 12, ctypes.byref(err)) == 0
    buf[0] = 0.25
    assert lib.slay_feature_map_set_param(fm.handle, b"sketch", buf, 12, ctypes.byref(err)) == INVALID_ARGUMENT
    assert b"bucket" in bytes(err.message).split(b"\0")[0]
