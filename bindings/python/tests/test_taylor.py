"""SLAY_EXPANSION_TAYLOR: the spherical Yat kernel's Maclaurin series as exact features. The kernel
from the features against the truncated series computed from its definition, attention in every
mode against the kernel matrix of the definition (not from features), convergence to exact Yat
attention, decoding, bad input."""
from math import comb

import numpy as np
import pytest

import slay
import naive


def make(d=6, H=2, degree=2, eps=1e-6):
    return slay.FeatureMap("slay", head_dim=d, num_heads=H, expansion="taylor", degree=degree, eps=eps)


def series(x, degree, eps):
    """Σ_{k=2..N} 2^{k−2} x^k / C^{k−1}, C = 2 + ε: the truncated Maclaurin series of x²/(C − 2x)."""
    C = 2 + eps
    return sum(2.0 ** (k - 2) * x ** k / C ** (k - 1) for k in range(2, degree + 1))


def taylor_attention(q, k, v, degree, causal, eps=1e-6, delta=1e-6):
    """Kernel-normalised attention with K_ij = series(q̂_i·k̂_j) in float64; GQA by head repeat."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    x = np.einsum("bthd,bshd->bhts", naive._unit(q), naive._unit(k))
    K = series(x, degree, eps)
    if causal:
        K = K * np.tril(np.ones(K.shape[-2:]))
    return np.einsum("bhts,bshv->bthv", K, v) / (K.sum(-1).transpose(0, 2, 1)[..., None] + delta)


def inputs(B, T, Hq=4, Hk=2, d=6, dv=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    q = scale * rng.standard_normal((B, T, Hq, d))
    k = scale * rng.standard_normal((B, T, Hk, d))
    return q.astype(np.float32), k.astype(np.float32), rng.standard_normal((B, T, Hk, dv)).astype(np.float32)


# ---- features and the kernel ----------------------------------------------------------------------

@pytest.mark.parametrize("d,degree", [(1, 2), (3, 2), (6, 3), (5, 4), (3, 8)])
def test_dimension_is_the_number_of_monomials(d, degree):
    assert make(d=d, H=1, degree=degree).dim == sum(comb(d + k - 1, k) for k in range(2, degree + 1))


@pytest.mark.parametrize("degree", [2, 3, 4, 6])
@pytest.mark.parametrize("eps", [1e-6, 1e-2])
def test_kernel_from_features_equals_series(degree, eps):
    """φ(q)·φ(k) == Σ_k c_k (q̂·k̂)^k for random, aligned, opposite and scaled rows."""
    rng = np.random.default_rng(degree)
    d = 5
    q = rng.standard_normal((40, d))
    k = rng.standard_normal((40, d))
    k[:10] = 3.0 * q[:10] + 1e-3 * rng.standard_normal((10, d))   # x ≈ 1
    k[10:15] = -q[10:15]                                            # x = −1
    q[15:20] *= 1e6
    fm = make(d=d, H=1, degree=degree, eps=eps)
    phi = fm(q.reshape(1, 40, 1, d).astype(np.float32)).reshape(40, -1).astype(np.float64)
    psi = fm(k.reshape(1, 40, 1, d).astype(np.float32), role="key").reshape(40, -1).astype(np.float64)
    x = naive._unit(q) @ naive._unit(k).T
    expected = series(x, degree, eps)
    assert np.abs(phi @ psi.T - expected).max() < 2e-6
    assert np.all(expected >= -1e-12)   # the truncated series is ≥ 0 on [−1, 1]


def test_zero_rows_have_zero_features_and_roles_agree():
    fm = make(d=4, H=1, degree=3)
    x = np.zeros((1, 2, 1, 4), np.float32)
    x[0, 1] = [1, -2, 0.5, 3]
    assert np.all(fm(x)[0, 0] == 0)
    assert np.array_equal(fm(x, role="query"), fm(x, role="key"))


def test_no_params_deterministic_identity():
    fm = make()
    assert fm.get_params() == {}
    assert fm.config["expansion"] == "taylor" and fm.config["degree"] == 2
    assert fm.identity == make().identity
    identities = {make().identity, make(degree=3).identity, make(eps=1e-3).identity, make(d=7).identity,
                  slay.FeatureMap("slay", head_dim=6, num_heads=2).identity}
    assert len(identities) == 5
    # seed and the quadrature fields are not read
    other = slay.FeatureMap("slay", head_dim=6, num_heads=2, expansion="taylor", seed=9, nodes=0, prf_dim=0, poly_dim=0)
    assert other.identity == fm.identity and other.dim == fm.dim


# ---- attention --------------------------------------------------------------------------------------

@pytest.mark.parametrize("degree", [2, 3])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_causal_equals_definition(degree, chunk):
    q, k, v = inputs(2, 40, seed=chunk + degree)
    got = slay.linear_attention(q, k, v, make(degree=degree), causal=True, chunk_size=chunk)
    naive.rms_close(got, taylor_attention(q, k, v, degree, True), rtol=2e-4)


@pytest.mark.parametrize("degree", [2, 4])
def test_bidirectional_equals_definition(degree):
    q, k, v = inputs(2, 37, seed=degree)
    got = slay.linear_attention(q, k, v, make(degree=degree), causal=False, chunk_size=16)
    naive.rms_close(got, taylor_attention(q, k, v, degree, False), rtol=2e-4)


@pytest.mark.parametrize("T0", [0, 1, 13])
def test_prefill_then_steps_equals_whole_sequence(T0):
    fm = make(degree=3)
    T = T0 + 6
    q, k, v = inputs(2, T, seed=T0 + 3)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=8)
    naive.rms_close(whole, taylor_attention(q, k, v, 3, True), rtol=2e-4)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    if T0:
        naive.rms_close(state.prefill(q[:, :T0], k[:, :T0], v[:, :T0], chunk_size=8), whole[:, :T0], rtol=1e-4)
    for t in range(T0, T):
        naive.rms_close(state.step(q[:, t], k[:, t], v[:, t]), whole[:, t], rtol=1e-4)


def test_converges_to_exact_yat_attention_as_the_degree_grows():
    """Relative L2 error against exact spherical Yat attention falls with N (x is small for
    random data in d = 16, so a few terms carry almost all of the kernel; measured 0.34, 0.12,
    0.054, 0.022 for N = 2, 3, 5, 8)."""
    q, k, v = inputs(1, 64, Hq=2, Hk=2, d=16, seed=5)
    exact = naive.exact_attention(q, k, v, "yat-spherical", causal=True)
    errors = [np.linalg.norm(slay.linear_attention(q, k, v, make(d=16, degree=n)) - exact) / np.linalg.norm(exact)
              for n in (2, 3, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.08


def test_same_result_for_any_thread_count():
    q, k, v = inputs(1, 50, Hq=2, Hk=2, dv=32, seed=2)
    fm = make(degree=3)
    one = slay.linear_attention(q, k, v, fm, n_threads=1)
    assert np.array_equal(one, slay.linear_attention(q, k, v, fm, n_threads=2))


# ---- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,code,match", [
    (dict(degree=1), slay.errors.INVALID_ARGUMENT, "degree"),
    (dict(degree=9), slay.errors.INVALID_ARGUMENT, "degree"),
    (dict(degree=-3), slay.errors.INVALID_ARGUMENT, "degree"),
    (dict(degree=2**31), slay.errors.INVALID_ARGUMENT, "degree"),
    (dict(degree=2.0), slay.errors.INVALID_ARGUMENT, "degree"),
    (dict(expansion="maclaurin"), slay.errors.INVALID_ARGUMENT, "expansion"),
    (dict(expansion=1), slay.errors.INVALID_ARGUMENT, "expansion"),
    (dict(eps=0.0), slay.errors.INVALID_ARGUMENT, "eps"),
    (dict(eps=float("nan")), slay.errors.INVALID_ARGUMENT, "eps"),
    (dict(head_dim=0), slay.errors.SHAPE, "head_dim"),
    (dict(num_heads=0), slay.errors.SHAPE, "num_heads"),
    (dict(head_dim=65536, degree=8), slay.errors.OVERFLOW, "Taylor"),
    (dict(head_dim=4096, degree=2), slay.errors.OVERFLOW, "2\\^22"),
])
def test_create_rejects(kwargs, code, match):
    args = dict(head_dim=4, expansion="taylor")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        slay.FeatureMap("slay", **args)
    assert isinstance(info.value, slay.SlayError) and info.value.code == code


# ---- with GLA decay and SLA gates -----------------------------------------------------------------

@pytest.mark.parametrize("chunk", [5, 64])
def test_gla_decay_and_gates_against_the_recurrence(chunk):
    """The Taylor map has a factorised scores shortcut: with gates the engine scales its score
    matrix, with per-channel decay it cannot use it. Both against naive_gla's float64 recurrence on
    the map's own features (identical for every head, so a 4-head map maps the queries)."""
    from naive_gla import batched, softmax_gates
    q, k, v = inputs(2, 30, seed=chunk)
    fm = make(degree=3)
    phi_q = make(H=4, degree=3)(q).astype(np.float64)
    phi_k = fm(k, role="key").astype(np.float64)
    rng = np.random.default_rng(chunk)
    qg = (2 * rng.standard_normal((2, 30, 4))).astype(np.float32)
    kg = (2 * rng.standard_normal((2, 30, 2))).astype(np.float32)
    log_decay = (-0.3 * np.abs(rng.standard_normal((2, 30, 2, fm.dim)))).astype(np.float32)
    for extra in (dict(), dict(log_decay=log_decay)):
        got = slay.linear_attention(q, k, v, fm, normalize=False, chunk_size=chunk, query_gate_logits=qg,
                                    key_gate_logits=kg, **extra)
        expected = batched(phi_q, phi_k, v, extra.get("log_decay"), query_gates=softmax_gates(qg),
                           key_gates=softmax_gates(kg), normalize=False)
        naive.rms_close(got, expected, rtol=1e-4)
