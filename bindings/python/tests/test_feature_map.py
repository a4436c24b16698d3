"""Feature maps: the documented generator, features against the float64 twin, parameters."""
import numpy as np
import pytest

import slay
import naive


@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
def test_params_follow_documented_generator(seed):
    """slay.h 'Parameter generator': every binding reproduces the matrices from the seed."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=3, poly="anchor", poly_dim=5, prf_dim=4, seed=seed)
    anchors, omega = naive.params(seed, d=8, H=2, R=3, M=4, P=5)
    got = fm.get_params()
    np.testing.assert_array_max_ulp(got["omega"], omega, maxulp=1)
    np.testing.assert_array_max_ulp(got["anchors"], anchors, maxulp=2)


@pytest.mark.parametrize("poly,d,R", [("anchor", 16, 2), ("exact", 8, 1), ("exact", 16, 3), ("exact_full", 6, 2)])
def test_features_match_twin(poly, d, R):
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=2, nodes=R, poly=poly, poly_dim=7, prf_dim=5, seed=3)
    p = fm.get_params()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 2, d)).astype(np.float32) * 3
    expected = naive.features_bthd(x, poly, p["omega"], p.get("anchors"))
    polyfeatures = {"anchor": 7, "exact": d * (d + 1) // 2, "exact_full": d * d}[poly]
    assert fm.dim == R * polyfeatures * 5
    for role in ("query", "key"):
        got = fm(x, role=role)
        assert got.shape == (2, 9, 2, fm.dim)
        if poly == "anchor":
            assert np.all(got >= 0)  # anchor ⊗ PRF features are positive
        gram = np.einsum("bthm,bshm->bhts", got.astype(np.float64), got.astype(np.float64))
        assert np.all(gram >= -1e-7)  # every SLAY kernel estimate x²·e^(...) is non-negative
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-9)


def test_set_params_round_trip_changes_identity():
    fm = slay.FeatureMap("slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=1)
    same = slay.FeatureMap("slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=1)
    other = slay.FeatureMap("slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=2)
    assert fm.identity == same.identity != other.identity
    new = other.get_params()
    fm.set_params(**new)
    got = fm.get_params()
    for name in new:
        np.testing.assert_array_equal(got[name], new[name])
    assert fm.identity == other.identity
    x = np.random.default_rng(0).standard_normal((1, 3, 1, 4)).astype(np.float32)
    np.testing.assert_array_equal(fm(x), other(x))


def test_config_and_close():
    with slay.FeatureMap("slay", head_dim=4, num_heads=3, nodes=4, poly="exact", prf_dim=2, eps=1e-3, seed=9) as fm:
        c = fm.config
        assert (c["head_dim"], c["num_heads"], c["nodes"], c["poly"], c["prf_dim"], c["eps"], c["seed"]) == \
            (4, 3, 4, "exact", 2, 1e-3, 9)
        assert "omega" in fm.get_params() and "anchors" not in fm.get_params()
    with pytest.raises(ValueError, match="closed"):
        fm.dim
    fm.close()  # closing twice is a no-op


def test_zero_rows_map_to_zero_features():
    fm = slay.FeatureMap("slay", head_dim=4, poly="exact", prf_dim=2)
    assert np.all(fm(np.zeros((1, 2, 1, 4), np.float32)) == 0)
