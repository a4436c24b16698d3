"""GLA data-dependent per-channel decay (options.log_decay), SLA head softmax gates
(options.query_gate_logits / key_gate_logits) and the identity map, against the float64
token-by-token recurrence of naive_gla.py: chunked causal attention, prefill + decode steps,
packed batches, grouped-query heads, extreme decays, thread-count independence."""
import numpy as np
import pytest

import slay
from naive_gla import FEATURES, batched, recurrence, softmax_gates

B, T, HQ, HK, D, DV = 2, 70, 4, 2, 8, 16


def inputs(T=T, seed=0, B=B, Hq=HQ, Hk=HK, d=D, dv=DV, strength=0.3):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, T, Hq, d)).astype(np.float32)
    k = rng.standard_normal((B, T, Hk, d)).astype(np.float32)
    v = rng.standard_normal((B, T, Hk, dv)).astype(np.float32)
    log_decay = (-strength * np.abs(rng.standard_normal((B, T, Hk, d)))).astype(np.float32)
    return q, k, v, log_decay


def gate_logits(B=B, T=T, Hq=HQ, Hk=HK, seed=5):
    rng = np.random.default_rng(seed)
    return (2 * rng.standard_normal((B, T, Hq))).astype(np.float32), (2 * rng.standard_normal((B, T, Hk))).astype(np.float32)


def maps(kind, Hk=HK, d=D):
    return slay.FeatureMap(kind, head_dim=d, num_heads=Hk)


def close(got, expected, rtol=2e-5):
    """Relative to the largest output: unnormalised outputs have no natural per-element scale."""
    assert np.all(np.isfinite(got))
    scale = max(np.abs(expected).max(), 1e-30)
    assert np.abs(got - expected).max() <= rtol * scale, np.abs(got - expected).max() / scale


CASES = [("identity", False), ("elu+1", False), ("elu+1", True)]


# ---- identity map --------------------------------------------------------------------------------

def test_identity_map_features():
    fm = maps("identity")
    x = np.random.default_rng(1).standard_normal((2, 3, HK, D)).astype(np.float32)
    assert fm.dim == D and fm.kind == "identity"
    np.testing.assert_array_equal(fm(x), x)
    np.testing.assert_array_equal(fm(x, role="key"), x)
    assert fm.get_params() == {} and fm.config["kind"] == "identity"


def test_identity_map_is_plain_linear_attention():
    """normalize=False with φ = x: y_i = Σ_{j ≤ i} (q_i·k_j) v_j."""
    q, k, v, _ = inputs(T=20)
    got = slay.linear_attention(q, k, v, maps("identity"), normalize=False, chunk_size=7)
    kk, vv = np.repeat(k, 2, axis=2).astype(np.float64), np.repeat(v, 2, axis=2).astype(np.float64)
    scores = np.einsum("bthd,bshd->bhts", q.astype(np.float64), kk) * np.tril(np.ones((20, 20)))
    close(got, np.einsum("bhts,bshv->bthv", scores, vv))


# ---- GLA decay ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,normalize", CASES)
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_gla_matches_recurrence(kind, normalize, chunk):
    q, k, v, log_decay = inputs()
    got = slay.linear_attention(q, k, v, maps(kind), chunk_size=chunk, normalize=normalize, log_decay=log_decay)
    phi = FEATURES[kind]
    close(got, batched(phi(q), phi(k), v, log_decay, normalize=normalize))


EXTREMES = {
    "-1e4": lambda shape, rng: np.full(shape, -1e4, np.float32),
    "-50": lambda shape, rng: np.full(shape, -50.0, np.float32),
    "0": lambda shape, rng: np.zeros(shape, np.float32),
    "mixed": lambda shape, rng: rng.choice(np.array([0.0, -1e-3, -0.5, -50.0, -1e4, -3e38], np.float32), size=shape),
    "mixed-rows": lambda shape, rng: np.where(rng.random(shape[:3] + (1,)) < 0.2, np.float32(-1e4),
                                              (-0.05 * rng.random(shape)).astype(np.float32)).astype(np.float32),
}


@pytest.mark.parametrize("name", list(EXTREMES))
@pytest.mark.parametrize("chunk", [1, 16, 64])
def test_extreme_decays_are_finite_and_exact(name, chunk):
    """log α = −1e4 (α underflows), −50, 0 and mixtures down to −3e38: finite, matching the twin."""
    q, k, v, _ = inputs(T=50, seed=3)
    log_decay = EXTREMES[name](k.shape, np.random.default_rng(4))
    for kind, normalize in CASES:
        got = slay.linear_attention(q, k, v, maps(kind), chunk_size=chunk, normalize=normalize, log_decay=log_decay)
        phi = FEATURES[kind]
        with np.errstate(over="ignore", under="ignore"):
            expected = batched(phi(q), phi(k), v, log_decay, normalize=normalize)
        close(got, expected, rtol=5e-5)


def test_zero_log_decay_equals_no_decay():
    q, k, v, log_decay = inputs(T=40, seed=6)
    fm = maps("elu+1")
    plain = slay.linear_attention(q, k, v, fm, chunk_size=16)
    gla = slay.linear_attention(q, k, v, fm, chunk_size=16, log_decay=np.zeros_like(log_decay))
    np.testing.assert_allclose(gla, plain, rtol=1e-5, atol=1e-6)


def test_gla_combines_with_retnet_decay():
    """decay (γ per key head) and log_decay multiply: α_eff = α·γ."""
    q, k, v, log_decay = inputs(seed=7)
    gammas = [0.9, 0.6]
    got = slay.linear_attention(q, k, v, maps("identity"), normalize=False, chunk_size=16, log_decay=log_decay,
                                decay=gammas)
    expected = batched(q, k, v, log_decay, gammas=np.array(gammas, np.float32), normalize=False)
    close(got, expected)
    state = slay.State(maps("identity"), num_seqs=B, value_dim=DV)
    state.prefill(q[:, :30], k[:, :30], v[:, :30], normalize=False, log_decay=log_decay[:, :30], decay=gammas)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t], normalize=False, log_decay=log_decay[:, t], decay=gammas)
                      for t in range(30, T)], axis=1)
    close(steps, expected[:, 30:])


@pytest.mark.parametrize("kind,normalize", CASES)
def test_prefill_then_steps_equal_whole(kind, normalize):
    q, k, v, log_decay = inputs(T=40, seed=1)
    fm = maps(kind)
    whole = slay.linear_attention(q, k, v, fm, normalize=normalize, log_decay=log_decay, chunk_size=16)
    state = slay.State(fm, num_seqs=B, value_dim=DV)
    first = state.prefill(q[:, :23], k[:, :23], v[:, :23], normalize=normalize, log_decay=log_decay[:, :23],
                          chunk_size=16)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t], normalize=normalize, log_decay=log_decay[:, t])
                      for t in range(23, 40)], axis=1)
    close(first, whole[:, :23])
    close(steps, whole[:, 23:], rtol=5e-5)
    assert state.position(0) == 40


def test_packed_sequences():
    """cu_seqlens: log_decay is packed like k, [1, T_total, Hk, m]; sequences do not leak into each other."""
    q, k, v, log_decay = inputs(T=45, B=1, seed=2)
    cu = [0, 12, 13, 45]
    got = slay.linear_attention(q, k, v, maps("identity"), normalize=False, log_decay=log_decay, cu_seqlens=cu,
                                chunk_size=8)
    for s in range(3):
        part = slice(cu[s], cu[s + 1])
        expected, _ = recurrence(q[0, part], k[0, part], v[0, part], log_decay[0, part], normalize=False)
        close(got[0, part], expected)


def test_absorbed_state_is_the_recurrence():
    """prefill(None, k, v, log_decay) leaves S = Σ_j (Π_{t > j} α_t) ⊙ φ(k_j) v_jᵀ, and z alike."""
    _, k, v, log_decay = inputs(T=33, seed=8)
    state = slay.State(maps("elu+1"), num_seqs=B, value_dim=DV)
    state.prefill(None, k, v, log_decay=log_decay, chunk_size=8)
    phi = FEATURES["elu+1"]
    for b in range(B):
        _, (S, z) = recurrence(phi(k[b][:, :1].repeat(2, 1)), phi(k[b]), v[b], log_decay[b])
        matrix, normaliser = state.read(b)
        close(matrix, S)
        close(normaliser, z)


def test_query_reads_the_decayed_state():
    """slay_state_query does not take log_decay: it reads the state the decayed prefill left."""
    q, k, v, log_decay = inputs(T=10, seed=9)
    state = slay.State(maps("elu+1"), num_seqs=B, value_dim=DV)
    state.prefill(None, k, v, log_decay=log_decay)
    got = state.query(q)
    phi = FEATURES["elu+1"]
    for b in range(B):
        _, (S, z) = recurrence(phi(q[b]), phi(k[b]), v[b], log_decay[b])
        phi_q = phi(q[b])
        for h in range(HQ):
            expected = phi_q[:, h] @ S[h // 2] / (phi_q[:, h] @ z[h // 2] + 1e-6)[:, None]
            close(got[b, :, h], expected)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_are_bitwise_equal(threads):
    """One (sequence, head) pair on several threads splits value columns: still bitwise equal."""
    q, k, v, log_decay = inputs(T=90, B=1, Hq=2, Hk=1, dv=32, seed=10)
    qg, kg = gate_logits(B=1, T=90, Hq=2, Hk=1)
    fm = maps("identity", Hk=1)
    kwargs = dict(normalize=False, log_decay=log_decay, query_gate_logits=qg, key_gate_logits=kg, chunk_size=32)
    one = slay.linear_attention(q, k, v, fm, n_threads=1, **kwargs)
    np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, n_threads=threads, **kwargs), one)
    q, k, v, log_decay = inputs(T=90, seed=11)
    one = slay.linear_attention(q, k, v, maps("elu+1"), log_decay=log_decay, n_threads=1)
    np.testing.assert_array_equal(slay.linear_attention(q, k, v, maps("elu+1"), log_decay=log_decay,
                                                        n_threads=threads), one)


# ---- SLA gates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("decay", ["none", "gla", "retnet"])
@pytest.mark.parametrize("kind", ["identity", "elu+1"])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_gates_match_recurrence(decay, kind, chunk):
    """Unnormalised backbone (SLA): both gates matter."""
    q, k, v, log_decay = inputs(seed=12)
    qg, kg = gate_logits()
    extra = {"gla": dict(log_decay=log_decay), "retnet": dict(decay=[0.95, 0.8]), "none": {}}[decay]
    got = slay.linear_attention(q, k, v, maps(kind), normalize=False, chunk_size=chunk, query_gate_logits=qg,
                                key_gate_logits=kg, **extra)
    phi = FEATURES[kind]
    expected = batched(phi(q), phi(k), v, extra.get("log_decay"), query_gates=softmax_gates(qg),
                       key_gates=softmax_gates(kg), gammas=extra.get("decay"), normalize=False)
    close(got, expected)
    ungated = slay.linear_attention(q, k, v, maps(kind), normalize=False, chunk_size=chunk, **extra)
    assert np.abs(got - ungated).max() > 1e-3 * np.abs(ungated).max()


@pytest.mark.parametrize("decay", ["none", "gla"])
def test_query_gate_cancels_when_normalised(decay):
    """normalize=True: g^Q scales numerator and denominator alike (δ = 0 here), the key gate still counts."""
    q, k, v, log_decay = inputs(seed=13)
    qg, kg = gate_logits()
    fm = maps("elu+1")
    extra = dict(log_decay=log_decay) if decay == "gla" else {}
    gated = slay.linear_attention(q, k, v, fm, delta=0.0, query_gate_logits=qg, key_gate_logits=kg, **extra)
    key_only = slay.linear_attention(q, k, v, fm, delta=0.0, key_gate_logits=kg, **extra)
    np.testing.assert_allclose(gated, key_only, rtol=1e-5, atol=1e-6)
    phi = FEATURES["elu+1"]
    close(gated, batched(phi(q), phi(k), v, extra.get("log_decay"), key_gates=softmax_gates(kg), delta=0.0))


@pytest.mark.parametrize("chunk", [5, 64])
def test_gates_with_the_factorised_scores_shortcut(chunk):
    """The SLAY map computes the intra-chunk block from its factorised kernel; the gates then scale
    the score matrix. Twin from the map's own features (its features are not trivial)."""
    fm = slay.FeatureMap("slay", head_dim=D, num_heads=HK, nodes=2, poly="exact", prf_dim=4, seed=3)
    q, k, v, _ = inputs(T=30, seed=14)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    k = k / np.linalg.norm(k, axis=-1, keepdims=True)
    qg, kg = gate_logits(T=30)
    phi_q = np.stack([fm(np.ascontiguousarray(q[:, :, h:h + 1]).repeat(HK, axis=2))[:, :, h // 2] for h in range(HQ)],
                     axis=2)
    phi_k = fm(k, role="key")
    for normalize in (False, True):
        got = slay.linear_attention(q, k, v, fm, normalize=normalize, chunk_size=chunk, query_gate_logits=qg,
                                    key_gate_logits=kg)
        expected = batched(phi_q, phi_k, v, query_gates=softmax_gates(qg), key_gates=softmax_gates(kg),
                           normalize=normalize)
        close(got, expected, rtol=1e-4)


def test_gates_bidirectional():
    """Gates are per-token feature scales, so they also apply without causality."""
    q, k, v, _ = inputs(T=12, seed=15)
    qg, kg = gate_logits(T=12)
    got = slay.linear_attention(q, k, v, maps("identity"), causal=False, normalize=False, query_gate_logits=qg,
                                key_gate_logits=kg)
    gq, gk = softmax_gates(qg), softmax_gates(kg)
    kk = np.repeat(k * gk[..., None], 2, axis=2).astype(np.float64)
    scores = np.einsum("bthd,bshd->bhts", q * gq[..., None], kk)
    close(got, np.einsum("bhts,bshv->bthv", scores, np.repeat(v, 2, axis=2).astype(np.float64)))


@pytest.mark.parametrize("normalize", [False, True])
def test_gates_prefill_steps_query_equal_whole(normalize):
    q, k, v, log_decay = inputs(T=40, seed=16)
    qg, kg = gate_logits(T=40)
    fm = maps("elu+1")
    kwargs = dict(normalize=normalize, log_decay=log_decay, query_gate_logits=qg, key_gate_logits=kg)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=16, **kwargs)
    state = slay.State(fm, num_seqs=B, value_dim=DV)
    first = state.prefill(q[:, :25], k[:, :25], v[:, :25], chunk_size=16, normalize=normalize,
                          log_decay=log_decay[:, :25], query_gate_logits=qg[:, :25], key_gate_logits=kg[:, :25])
    steps = [state.step(q[:, t], k[:, t], v[:, t], normalize=normalize, log_decay=log_decay[:, t],
                        query_gate_logits=qg[:, t], key_gate_logits=kg[:, t]) for t in range(25, 40)]
    close(first, whole[:, :25])
    close(np.stack(steps, axis=1), whole[:, 25:], rtol=5e-5)
    # A read-only query after the last token: the last output again (the state already holds that token).
    last = state.query(q[:, 39:40], normalize=normalize, query_gate_logits=qg[:, 39:40])
    close(last[:, 0], whole[:, 39], rtol=5e-5)


def test_weights_path_equals_logits_path():
    """gate_input x with W_GQ / W_GK: logits = x @ W (numpy, float32)."""
    rng = np.random.default_rng(17)
    q, k, v, log_decay = inputs(T=20, seed=17)
    x = rng.standard_normal((B, 20, 6)).astype(np.float32)
    wq = rng.standard_normal((6, HQ)).astype(np.float32)
    wk = rng.standard_normal((6, HK)).astype(np.float32)
    fm = maps("identity")
    by_weights = slay.linear_attention(q, k, v, fm, normalize=False, log_decay=log_decay, gate_input=x,
                                       query_gate_weights=wq, key_gate_weights=wk)
    by_logits = slay.linear_attention(q, k, v, fm, normalize=False, log_decay=log_decay, query_gate_logits=x @ wq,
                                      key_gate_logits=x @ wk)
    np.testing.assert_array_equal(by_weights, by_logits)
    state_w, state_l = slay.State(fm, num_seqs=B, value_dim=DV), slay.State(fm, num_seqs=B, value_dim=DV)
    a = state_w.step(q[:, 0], k[:, 0], v[:, 0], normalize=False, gate_input=x[:, 0], query_gate_weights=wq,
                     key_gate_weights=wk)
    b = state_l.step(q[:, 0], k[:, 0], v[:, 0], normalize=False, query_gate_logits=x[:, 0] @ wq,
                     key_gate_logits=x[:, 0] @ wk)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state_w.query(q[:, :3], gate_input=x[:, :3], query_gate_weights=wq),
                                  state_l.query(q[:, :3], query_gate_logits=x[:, :3] @ wq))


def test_gate_weights_and_logits_are_exclusive():
    q, k, v, _ = inputs(T=4)
    x = np.zeros((B, 4, 3), np.float32)
    with pytest.raises(ValueError, match="not both"):
        slay.linear_attention(q, k, v, maps("identity"), gate_input=x, query_gate_weights=np.zeros((3, HQ), np.float32),
                              query_gate_logits=np.zeros((B, 4, HQ), np.float32))
    with pytest.raises(ValueError, match="gate_input"):
        slay.linear_attention(q, k, v, maps("identity"), key_gate_weights=np.zeros((3, HK), np.float32))
    with pytest.raises(ValueError, match="gate_input"):
        slay.linear_attention(q, k, v, maps("identity"), gate_input=x)
    with pytest.raises(ValueError, match="gate_weights"):
        slay.linear_attention(q, k, v, maps("identity"), gate_input=x, key_gate_weights=np.zeros((4, HK), np.float32))
