"""ELA kernels (slay.h SLAY_KIND_SUM_SQ_EUCLIDEAN, SUB_SQ_EUCLIDEAN, BLUEPRINT): features and the
kernel against its definition, attention in every mode against naive.ela_attention (kernel matrix
from the definition, not from features), decoding, bad input."""
import numpy as np
import pytest

import slay
import naive

KINDS = ["ela-sum-sqeuclid", "ela-sub-sqeuclid", "ela-blueprint"]
DIMS = {"ela-sum-sqeuclid": 2, "ela-sub-sqeuclid": 2, "ela-blueprint": 1}   # m − d


def make(kind, d=8, H=2):
    return slay.FeatureMap(kind, head_dim=d, num_heads=H)


def inputs(B, T, Hq=4, Hk=2, d=8, dv=5, seed=0, scale=1.0, zero_rows=False):
    """Random q, k, v; zero_rows blanks a few query and key rows (blueprint: x̂ = 0)."""
    rng = np.random.default_rng(seed)
    q = scale * rng.standard_normal((B, T, Hq, d))
    k = scale * rng.standard_normal((B, T, Hk, d))
    if zero_rows:
        q[:, ::5, 0] = 0
        k[:, 1::4, -1] = 0
        k[:, 0] = 0
    return q.astype(np.float32), k.astype(np.float32), rng.standard_normal((B, T, Hk, dv)).astype(np.float32)


# ---- features and the kernel ----------------------------------------------------------------------

def test_features_follow_slay_h():
    """The documented factorisations, role by role (sum/sub: query and key features differ)."""
    x = np.array([1.0, -2.0, 0.5], np.float32).reshape(1, 1, 1, 3)
    sq = 5.25
    expected = {
        ("ela-sum-sqeuclid", "query"): [1, -2, 0.5, sq, 1], ("ela-sum-sqeuclid", "key"): [2, -4, 1, 1, sq],
        ("ela-sub-sqeuclid", "query"): [1, -2, 0.5, sq, 1], ("ela-sub-sqeuclid", "key"): [-2, 4, -1, 1, sq],
    }
    for (kind, role), row in expected.items():
        np.testing.assert_array_equal(make(kind, 3, 1)(x, role=role)[0, 0, 0], row, err_msg=kind + role)
    blueprint = make("ela-blueprint", 3, 1)
    unit = np.array([1.0, -2.0, 0.5]) / np.sqrt(sq)
    for role in ("query", "key"):
        np.testing.assert_allclose(blueprint(x, role=role)[0, 0, 0], (sq + 1) * np.append(unit, 1), rtol=1e-6)
    np.testing.assert_array_equal(blueprint(np.zeros((1, 1, 1, 3), np.float32))[0, 0, 0], [0, 0, 0, 1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d,scale", [(1, 1.0), (8, 1.0), (8, 50.0), (33, 1e-3)])
def test_kernel_from_features_equals_definition(kind, d, scale):
    """φ(q)·ψ(k) through slay_feature_map_apply == the definition in float64, to fp32 rounding."""
    fm = make(kind, d, 1)
    assert fm.dim == d + DIMS[kind]
    q, k, _ = inputs(1, 12, Hq=1, Hk=1, d=d, seed=d, scale=scale, zero_rows=True)
    phi = fm(q, role="query")[0, :, 0].astype(np.float64)
    psi = fm(k, role="key")[0, :, 0].astype(np.float64)
    exact = naive.ela_kernel(kind, q, k)[0, 0]
    # Error bound: fp32 rounding of each feature, relative to Σ|φ_i ψ_i| (the squared-Euclidean
    # expansion cancels when q ≈ ±k).
    bound = 4e-7 * (np.abs(phi) @ np.abs(psi).T) + 1e-30
    assert np.all(np.abs(phi @ psi.T - exact) <= bound)
    assert np.all(exact >= 0)


@pytest.mark.parametrize("kind", KINDS)
def test_no_params_and_distinct_identities(kind):
    fm = make(kind)
    assert fm.get_params() == {} and fm.config["kind"] == kind
    assert fm.identity == make(kind).identity != make(kind, d=9).identity
    assert len({make(k).identity for k in KINDS + ["elu+1", "relu"]}) == len(KINDS) + 2


# ---- attention --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 7, 16, 64])
def test_causal_chunked_equals_definition(kind, chunk):
    """Causal linear attention, T = 40 (not a multiple of 7, 16 or 64), 4 query heads on 2 key
    heads == kernel-normalised attention with the kernel matrix from the definition."""
    q, k, v = inputs(2, 40, seed=chunk)
    got = slay.linear_attention(q, k, v, make(kind), causal=True, chunk_size=chunk)
    naive.rms_close(got, naive.ela_attention(kind, q, k, v, True), rtol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [5, 16, 64])
def test_bidirectional_equals_definition(kind, chunk):
    q, k, v = inputs(2, 37, seed=chunk + 1)
    got = slay.linear_attention(q, k, v, make(kind), causal=False, chunk_size=chunk)
    naive.rms_close(got, naive.ela_attention(kind, q, k, v, False), rtol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("causal", [True, False])
def test_large_and_zero_inputs(kind, causal):
    """Inputs ×50 with zero rows (blueprint x̂ = 0): finite and exact to the definition."""
    q, k, v = inputs(1, 30, seed=7, scale=50.0, zero_rows=True)
    got = slay.linear_attention(q, k, v, make(kind), causal=causal, chunk_size=8)
    naive.rms_close(got, naive.ela_attention(kind, q, k, v, causal), rtol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T0", [0, 1, 13])
def test_prefill_then_steps_equals_whole_sequence(kind, T0):
    """slay.State: prefill(T0) + steps == whole-sequence attention == the definition."""
    fm = make(kind)
    T = T0 + 6
    q, k, v = inputs(2, T, seed=T0 + 3)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=8)
    naive.rms_close(whole, naive.ela_attention(kind, q, k, v, True), rtol=2e-4)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    if T0:
        naive.rms_close(state.prefill(q[:, :T0], k[:, :T0], v[:, :T0], chunk_size=8), whole[:, :T0], rtol=1e-4)
    for t in range(T0, T):
        naive.rms_close(state.step(q[:, t], k[:, t], v[:, t]), whole[:, t], rtol=1e-4)
    assert state.position(0) == T


def test_roles_matter_in_attention():
    """Swapping the roles (query features for keys) would compute a different kernel: the
    sum and sub maps give different attention although they share query features."""
    q, k, v = inputs(1, 20, seed=11)
    total = slay.linear_attention(q, k, v, make("ela-sum-sqeuclid"))
    difference = slay.linear_attention(q, k, v, make("ela-sub-sqeuclid"))
    assert np.abs(total - difference).max() > 1e-2


# ---- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,code,match", [
    (dict(kind="ela"), slay.errors.INVALID_ARGUMENT, "kind"),
    (dict(kind="ela-hadamard-exp", head_dim=0), slay.errors.SHAPE, "head_dim"),
    (dict(kind="ela-sqeuclid"), slay.errors.INVALID_ARGUMENT, "kind"),
    (dict(kind="ela-sum-sqeuclid", head_dim=0), slay.errors.SHAPE, "head_dim"),
    (dict(kind="ela-sub-sqeuclid", head_dim=-1), slay.errors.SHAPE, "head_dim"),
    (dict(kind="ela-blueprint", head_dim=0), slay.errors.SHAPE, "head_dim"),
    (dict(kind="ela-blueprint", num_heads=0), slay.errors.SHAPE, "num_heads"),
    (dict(kind="ela-sum-sqeuclid", head_dim=65537), slay.errors.SHAPE, "head_dim"),
])
def test_create_rejects(kwargs, code, match):
    args = dict(head_dim=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        slay.FeatureMap(**args)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code


@pytest.mark.parametrize("kind", KINDS)
def test_unused_fields_are_ignored(kind):
    """prf_dim, poly_dim, max_length and seed are not read by the ELA kinds."""
    assert slay.FeatureMap(kind, head_dim=4, prf_dim=0, poly_dim=0, max_length=-1, seed=5).dim == 4 + DIMS[kind]


def test_wrong_head_dim_input_is_refused():
    fm = make("ela-blueprint", d=4)
    with pytest.raises(ValueError):
        fm(np.zeros((1, 2, 2, 5), np.float32))
