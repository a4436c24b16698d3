"""Feature maps: the documented parameter generator, features against the float64 twin, parameters."""
import numpy as np
import pytest

import slay
import naive


def assert_within_ulp(got, expected, ulps=1):
    """float32 arrays equal up to `ulps` units in the last place (same sign)."""
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.float32
    diff = np.abs(got.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    assert diff.max() <= ulps, "max %d ulp apart" % diff.max()


# ---- slay.h "Parameter generator" ----------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 7, 2**63 + 5, 2**64 - 1])
@pytest.mark.parametrize("d,H,R,M,P", [(8, 2, 3, 4, 5), (16, 4, 2, 8, 8), (1, 1, 1, 1, 1), (33, 3, 2, 5, 12)])
def test_params_follow_documented_generator(seed, d, H, R, M, P):
    """slay.h 'Parameter generator': splitmix64 keys per stream (anchors 1, omega 2), Box–Muller
    normals in double rounded to float, anchor rows normalised in double: every binding
    reproduces the matrices from the seed (≤ 1 ulp of float32)."""
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=R, poly="anchor", poly_dim=P, prf_dim=M, seed=seed)
    anchors, omega = naive.params(seed, d=d, H=H, R=R, M=M, P=P)
    got = fm.get_params()
    assert sorted(got) == ["anchors", "omega"]
    assert got["omega"].shape == (R, H, d, M) and got["anchors"].shape == (P, d)
    assert_within_ulp(got["omega"], omega)
    assert_within_ulp(got["anchors"], anchors)


@pytest.mark.parametrize("poly", ["exact", "exact_full"])
def test_exact_maps_have_only_omega(poly):
    """slay.h: "anchors" exists for SLAY_POLY_ANCHOR only; omega (R, H, d, M) follows the generator."""
    fm = slay.FeatureMap("slay", head_dim=5, num_heads=2, nodes=2, poly=poly, poly_dim=9, prf_dim=3, seed=4)
    got = fm.get_params()
    assert list(got) == ["omega"]
    assert_within_ulp(got["omega"], naive.params(4, d=5, H=2, R=2, M=3)[1])


def test_identity_is_a_function_of_the_map():
    """slay_feature_map_identity: same seed and dims → same identity; another seed, dims or eps → another."""
    def make(**kw):
        args = dict(head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=1)
        args.update(kw)
        return slay.FeatureMap("slay", **args).identity
    base = make()
    assert base == make()
    others = [make(seed=2), make(head_dim=5), make(num_heads=2), make(poly_dim=4), make(prf_dim=3), make(nodes=3),
              make(eps=1e-3), make(poly="exact")]
    assert base not in others and len(set(others)) == len(others)


def test_set_params_round_trip_changes_identity():
    """slay_feature_map_set_param replaces the matrices (get returns them bitwise), changes the identity,
    and a map given another map's matrices computes that map's features with its identity."""
    fm = slay.FeatureMap("slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=1)
    other = slay.FeatureMap("slay", head_dim=4, num_heads=1, poly="anchor", poly_dim=3, prf_dim=2, seed=2)
    original = fm.get_params()
    identity = fm.identity
    new = other.get_params()
    fm.set_params(omega=new["omega"])
    assert fm.identity not in (identity, other.identity)
    fm.set_params(anchors=new["anchors"])
    got = fm.get_params()
    for name in new:
        np.testing.assert_array_equal(got[name], new[name])
    assert fm.identity == other.identity
    x = np.random.default_rng(0).standard_normal((1, 3, 1, 4)).astype(np.float32)
    np.testing.assert_array_equal(fm(x), other(x))
    fm.set_params(**original)
    assert fm.identity == identity


def test_anchors_are_used_as_given():
    """slay.h: anchor rows are used as given; the map does not renormalise them."""
    fm = slay.FeatureMap("slay", head_dim=6, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=3, seed=8)
    p = fm.get_params()
    anchors = (p["anchors"] * np.array([[0.5], [2.0], [1.0], [3.0]], np.float32)).astype(np.float32)
    fm.set_params(anchors=anchors)
    x = np.random.default_rng(1).standard_normal((2, 5, 2, 6)).astype(np.float32)
    np.testing.assert_allclose(fm(x), naive.features_bthd(x, "anchor", p["omega"], anchors), rtol=2e-5, atol=1e-9)


# ---- SLAY features (docs/math.md §1, slay_feature_map_apply) ------------------------------------------

@pytest.mark.parametrize("R", [1, 2, 3])
@pytest.mark.parametrize("poly,d", [("anchor", 1), ("anchor", 5), ("anchor", 16), ("exact", 1), ("exact", 3),
                                    ("exact", 8), ("exact_full", 2), ("exact_full", 6)])
def test_features_match_twin(poly, d, R):
    """slay_feature_map_apply: SLAY features √w_r·poly_p·prf_j at index (r·P' + p)·M + j, for
    both roles; m = R·P'·M with P' = P, d(d+1)/2 or d²."""
    P, M, H = 7, 5, 2
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=R, poly=poly, poly_dim=P, prf_dim=M, seed=3)
    assert fm.dim == R * naive.poly_dim(poly, d, P) * M
    p = fm.get_params()
    x = np.random.default_rng(d * 10 + R).standard_normal((2, 9, H, d)).astype(np.float32) * 3
    expected = naive.features_bthd(x, poly, p["omega"], p.get("anchors"))
    for role in ("query", "key"):
        out = np.full((2, 9, H, fm.dim), np.nan, np.float32)
        got = fm(x, role=role, out=out)
        assert got is out and got.shape == (2, 9, H, fm.dim)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("eps,clamp", [(1e-2, 20.0), (1e-6, 0.5), (0.5, 3.0)])
def test_eps_and_clamp_match_twin(eps, clamp):
    """slay_feature_map_params eps (C = 2 + ε in s_r = t_r/C, w_r = α_r/C) and prf_clamp (PRF
    exponent clamped to [−c, c])."""
    fm = slay.FeatureMap("slay", head_dim=4, num_heads=1, nodes=3, poly="exact", prf_dim=6, eps=eps, prf_clamp=clamp,
                         seed=5)
    x = np.random.default_rng(2).standard_normal((1, 20, 1, 4)).astype(np.float32)
    omega = fm.get_params()["omega"]
    expected = naive.slay_features(x[:, :, 0], 0, "exact", omega, eps=eps, clamp=clamp)
    np.testing.assert_allclose(fm(x)[:, :, 0], expected, rtol=2e-5, atol=1e-9)


def test_features_positive_and_kernel_nonnegative():
    """docs/math.md §1: anchor ⊗ PRF features are positive; exact-poly Gram matrices are PSD-like (≥ 0)."""
    x = np.random.default_rng(0).standard_normal((1, 30, 1, 6)).astype(np.float32)
    anchor = slay.FeatureMap("slay", head_dim=6, poly="anchor", prf_dim=4)(x)
    assert np.all(anchor >= 0)
    phi = slay.FeatureMap("slay", head_dim=6, poly="exact", prf_dim=4)(x).astype(np.float64)[0, :, 0]
    assert np.all(phi @ phi.T >= -1e-7)


def test_strided_input_equals_contiguous():
    """slay_feature_map_apply: x may have any strides; the result is bitwise that of a contiguous copy.
    Negative strides are copied by the binding; outputs may be strided views."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=3, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=1)
    base = np.random.default_rng(0).standard_normal((2, 3, 11, 16)).astype(np.float32)
    x = base.transpose(0, 2, 1, 3)[..., ::2]  # head-first buffer, every other feature
    expected = fm(np.ascontiguousarray(x))
    np.testing.assert_array_equal(fm(x), expected)
    np.testing.assert_array_equal(fm(x[:, ::-1])[:, ::-1], expected)
    out = np.full((2, 3, 11, fm.dim), np.nan, np.float32)
    fm(x, out=out.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(out.transpose(0, 2, 1, 3), expected)


def test_zero_rows_map_to_zero_features():
    """A zero row has no direction: its polynomial part and hence every feature is 0 (no NaN)."""
    fm = slay.FeatureMap("slay", head_dim=4, poly="exact", prf_dim=2)
    assert np.all(fm(np.zeros((1, 2, 1, 4), np.float32)) == 0)


# ---- handle and configuration --------------------------------------------------------------------

def test_config_and_close():
    """slay_feature_map_config returns the creation parameters; a closed map raises, close twice is a no-op."""
    with slay.FeatureMap("slay", head_dim=4, num_heads=3, nodes=4, poly="exact", poly_dim=5, prf_dim=2, eps=1e-3,
                         prf_clamp=7.5, seed=2**64 - 1) as fm:
        assert fm.config == {"kind": "slay", "head_dim": 4, "num_heads": 3, "nodes": 4, "poly": "exact",
                             "poly_dim": 5, "prf_dim": 2, "eps": 1e-3, "prf_clamp": 7.5, "seed": 2**64 - 1,
                             "max_length": 0, "orthogonal": False, "shared_omega": False,
                             "expansion": "quadrature", "degree": 2}
        assert "exact" in repr(fm)
    assert fm._handle is None and repr(fm) == "FeatureMap(closed)"
    for use in (lambda: fm.dim, lambda: fm.identity, lambda: fm.config, fm.get_params,
                lambda: fm(np.zeros((1, 1, 3, 4), np.float32)), lambda: fm.set_params()):
        with pytest.raises(slay.SlayValueError, match="closed"):
            use()
    with pytest.raises(slay.SlayValueError, match="closed"):
        slay.linear_attention(*(np.zeros((1, 1, 3, 4), np.float32),) * 3, fm)
    fm.close()  # closing twice is a no-op


def test_defaults_follow_header():
    """slay_feature_map_params_init defaults: kind SLAY, num_heads 1, R 2, anchor, P = M = 8, ε 1e-6, c 20, seed 0,
    max_length 0, quadrature expansion, degree 2."""
    fm = slay.FeatureMap("slay", head_dim=3)
    assert fm.config == {"kind": "slay", "head_dim": 3, "num_heads": 1, "nodes": 2, "poly": "anchor", "poly_dim": 8,
                         "prf_dim": 8, "eps": 1e-6, "prf_clamp": 20.0, "seed": 0, "max_length": 0, "orthogonal": False,
                         "shared_omega": False, "expansion": "quadrature", "degree": 2}
    assert fm.dim == 2 * 8 * 8


def test_slay_orthogonal_omega_follows_documented_construction():
    """slay.h: prf_orthogonal = 1 builds ω like FAVOR+'s on stream 7 with R·H heads."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=3, poly="exact", prf_dim=5, seed=11, orthogonal=True)
    omega = fm.get_params()["omega"]
    expected = naive.favor_omega(11, 8, 3 * 2, 5, stream=7).reshape(3, 2, 8, 5)
    np.testing.assert_allclose(omega, expected, rtol=1e-5, atol=1e-6)
    for r in range(3):
        for h in range(2):
            directions = omega[r, h] / np.linalg.norm(omega[r, h], axis=0, keepdims=True)
            gram = directions.T.astype(np.float64) @ directions
            np.testing.assert_allclose(gram, np.eye(5), atol=1e-5)
    assert fm.config["orthogonal"] is True
    plain = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=3, poly="exact", prf_dim=5, seed=11)
    assert plain.identity != fm.identity


def test_slay_orthogonal_omega_lowers_kernel_variance():
    """Same expectation (the quadrature kernel), lower spread over seeds than i.i.d. ω."""
    d, cosines = 16, [0.3, 0.6, 0.9]
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for c in cosines:
        a = rng.standard_normal(d); a /= np.linalg.norm(a)
        b = rng.standard_normal(d); b -= (b @ a) * a; b /= np.linalg.norm(b)
        xs.append(a); ys.append(c * a + np.sqrt(1 - c * c) * b)
    x = np.array(xs, np.float32)[None, :, None, :]
    y = np.array(ys, np.float32)[None, :, None, :]
    s_, w_ = naive.quadrature(1, 1e-6)
    target = np.array([w_[0] * c * c * np.exp(2 * s_[0] * c) for c in cosines])
    errors = {}
    for orthogonal in (False, True):
        values = []
        for seed in range(40):
            fm = slay.FeatureMap("slay", head_dim=d, nodes=1, poly="exact", prf_dim=16, seed=seed, orthogonal=orthogonal)
            values.append((fm(x)[0, :, 0].astype(np.float64) * fm(y, role="key")[0, :, 0]).sum(-1))
        errors[orthogonal] = np.mean((np.array(values) - target) ** 2)
    assert errors[True] < errors[False]


def test_laplace_poly_is_prf_only():
    """SLAY_POLY_LAPLACE: features √w_r·PRF_r only; the kernel estimates Σ_r w_r e^{2 s_r x}."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="laplace", prf_dim=6, seed=5)
    assert fm.dim == 2 * 1 * 6
    omega = fm.get_params()["omega"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 7, 2, 8)).astype(np.float32)
    got = fm(x)
    assert np.all(got >= 0)
    np.testing.assert_allclose(got, naive.features_bthd(x, "laplace", omega), rtol=2e-5, atol=1e-9)
    q, k, v = (rng.standard_normal((1, 40, 2, 8)).astype(np.float32) for _ in range(3))
    expected = naive.linear_attention(naive.features_bthd(q, "laplace", omega), naive.features_bthd(k, "laplace", omega),
                                      v, True)
    naive.rms_close(slay.linear_attention(q, k, v, fm, chunk_size=16), expected)
    state = slay.State(fm, num_seqs=1, value_dim=8)
    state.prefill(q[:, :30], k[:, :30], v[:, :30])
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t]) for t in range(30, 40)], 1)
    naive.rms_close(steps, expected[:, 30:], rtol=1e-4)


def test_shared_omega_hadamard_variant():
    """prf_shared: one ω (1, H, d, M) for every node, node r using √(2 s_r)·ω."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=3, poly="exact", prf_dim=4, seed=6, shared_omega=True)
    omega = fm.get_params()["omega"]
    assert omega.shape == (1, 2, 8, 4)
    np.testing.assert_array_equal(omega.reshape(-1), naive.normals(6, 2, omega.size))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 5, 2, 8)).astype(np.float32)
    expected = naive.features_bthd(x, "exact", np.repeat(omega, 3, axis=0))
    np.testing.assert_allclose(fm(x), expected, rtol=2e-5, atol=1e-9)
    q, k, v = (rng.standard_normal((1, 30, 2, 8)).astype(np.float32) for _ in range(3))
    reference = naive.linear_attention(naive.features_bthd(q, "exact", np.repeat(omega, 3, axis=0)),
                                       naive.features_bthd(k, "exact", np.repeat(omega, 3, axis=0)), v, True)
    naive.rms_close(slay.linear_attention(q, k, v, fm, chunk_size=8), reference)
    assert fm.config["shared_omega"] is True
    fm.set_params(omega=omega * 0.5)
    with pytest.raises(ValueError, match="shape"):
        fm.set_params(omega=np.zeros((3, 2, 8, 4), np.float32))


def test_random_maclaurin_polynomial():
    """SLAY_POLY_RANDOM_MACLAURIN: documented directions (stream 8), features vs the twin, attention
    with the clamp denominator vs the twin, and an unbiased x² (mean over seeds)."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="random_maclaurin", poly_dim=6, prf_dim=4,
                         seed=13)
    params = fm.get_params()
    r = params["maclaurin"]
    assert r.shape == (2, 6, 8) and fm.dim == 2 * 6 * 4
    np.testing.assert_array_equal(r.reshape(-1), naive.normals(13, 8, r.size))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 2, 8)).astype(np.float32)
    np.testing.assert_allclose(fm(x), naive.features_bthd(x, "random_maclaurin", params["omega"], r),
                               rtol=2e-5, atol=1e-7)
    q, k, v = (rng.standard_normal((1, 40, 2, 8)).astype(np.float32) for _ in range(3))
    phi_q = naive.features_bthd(q, "random_maclaurin", params["omega"], r)
    phi_k = naive.features_bthd(k, "random_maclaurin", params["omega"], r)
    A = np.einsum("bthm,bshm->bhts", phi_q, phi_k) * np.tril(np.ones((40, 40)))
    expected = np.einsum("bhts,bshv->bthv", A, v) / np.maximum(A.sum(-1).transpose(0, 2, 1)[..., None], 1e-2)
    got = slay.linear_attention(q, k, v, fm, denominator="clamp", delta=1e-2, chunk_size=16)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    # E over the directions of the polynomial part is x² (the PRF part aside): check the poly Gram.
    a = rng.standard_normal(8); a /= np.linalg.norm(a)
    b = rng.standard_normal(8); b /= np.linalg.norm(b)
    estimates = []
    for seed in range(300):
        rr = naive.normals(seed, 8, 2 * 64 * 8).reshape(2, 64, 8).astype(np.float64)
        pa = (rr[0] @ a) * (rr[1] @ a) / 8.0
        pb = (rr[0] @ b) * (rr[1] @ b) / 8.0
        estimates.append(pa @ pb)
    assert abs(np.mean(estimates) - (a @ b) ** 2) < 0.05
