"""ELA Hadamard Exp kernel (slay.h SLAY_KIND_HADAMARD_EXP): k(q, k) = Σ_f e^{q_f + k_f}, evaluated
by libslay in a rescaled frame. Every mode against naive.hadamard_exp_attention, a float64 twin
computed from the kernel DEFINITION with log-sum-exp (never from features), at scale 1 and ×50
(where the features overflow fp32), adversarial inputs, states and blobs, bad input."""
import struct

import numpy as np
import pytest

import slay
import naive

KIND = "ela-hadamard-exp"
CORRUPT, UNSUPPORTED = -7, -9


def make(d=8, H=2):
    return slay.FeatureMap(KIND, head_dim=d, num_heads=H)


def inputs(B, T, Hq=4, Hk=2, d=8, dv=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    q = (scale * rng.standard_normal((B, T, Hq, d))).astype(np.float32)
    k = (scale * rng.standard_normal((B, T, Hk, d))).astype(np.float32)
    return q, k, rng.standard_normal((B, T, Hk, dv)).astype(np.float32)


def relative_error(actual, expected):
    """max |actual − expected| / max |expected|; non-finite results fail."""
    assert np.all(np.isfinite(actual)), "non-finite values in the result"
    return np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max()


def assert_matches(actual, expected, tol=1e-4):
    error = relative_error(actual, expected)
    assert error <= tol, "max relative error %.3g" % error
    naive.rms_close(actual, expected, rtol=tol)


# ---- the map ----------------------------------------------------------------------------------------

def test_apply_returns_raw_exp_which_overflows():
    """slay_feature_map_apply: φ = ψ = exp(x), inf past ~88.7 (attention never forms these)."""
    fm = make(3, 1)
    assert fm.dim == 3 and fm.get_params() == {} and fm.config["kind"] == KIND
    x = np.array([0.0, -2.0, 1.5], np.float32).reshape(1, 1, 1, 3)
    for role in ("query", "key"):
        np.testing.assert_allclose(fm(x, role=role)[0, 0, 0], np.exp(x[0, 0, 0].astype(np.float64)), rtol=1e-6)
    with np.errstate(over="ignore"):
        big = fm(np.array([80.0, 89.0, -200.0], np.float32).reshape(1, 1, 1, 3))[0, 0, 0]
    assert np.isfinite(big[0]) and big[1] == np.inf and big[2] == 0


def test_kernel_from_features_equals_definition_at_scale_1():
    fm = make(8, 1)
    q, k, _ = inputs(1, 12, Hq=1, Hk=1, seed=3)
    phi = fm(q)[0, :, 0].astype(np.float64)
    psi = fm(k, role="key")[0, :, 0].astype(np.float64)
    np.testing.assert_allclose(phi @ psi.T, np.exp(naive.hadamard_exp_log_kernel(q, k)[0, 0]), rtol=1e-6)


def test_identity_is_distinct():
    assert make().identity == make().identity != make(d=9).identity
    others = {slay.FeatureMap(kind, head_dim=8, num_heads=2).identity
              for kind in ("elu+1", "relu", "ela-sum-sqeuclid", "ela-sub-sqeuclid", "ela-blueprint")}
    assert make().identity not in others


# ---- whole-sequence attention ------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 50.0])
@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_log_sum_exp_twin(scale, chunk, causal):
    """T = 40, 4 query heads on 2 key heads (GQA); at ×50 the raw features would overflow."""
    q, k, v = inputs(2, 40, seed=chunk, scale=scale)
    got = slay.linear_attention(q, k, v, make(), causal=causal, chunk_size=chunk)
    assert_matches(got, naive.hadamard_exp_attention(q, k, v, causal))


@pytest.mark.parametrize("causal", [True, False])
def test_threads_give_identical_results(causal):
    q, k, v = inputs(3, 37, seed=5, scale=50.0)
    fm = make()
    one = slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=8, n_threads=1)
    for threads in (2, 3, 16):
        np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=8, n_threads=threads), one)


@pytest.mark.parametrize("chunk", [5, 16])
@pytest.mark.parametrize("position", [14, 15, 31])
def test_one_huge_key_late_in_a_chunk(chunk, position):
    """A key with a huge entry (e^1000 overflows float64 too) arriving late in a chunk: it raises
    μ for one dimension mid-chunk, dominates every later query and none before it."""
    q, k, v = inputs(1, 40, seed=position, scale=50.0)
    k[0, position, 1, 3] = 1000.0
    got = slay.linear_attention(q, k, v, make(), causal=True, chunk_size=chunk)
    assert_matches(got, naive.hadamard_exp_attention(q, k, v, True))
    # Later queries of head 1's group (query heads 2, 3) read v of that key.
    np.testing.assert_allclose(got[0, position:, 2:], np.broadcast_to(v[0, position, 1], (40 - position, 2, 5)),
                               rtol=1e-5, atol=1e-6)
    assert_matches(slay.linear_attention(q, k, v, make(), causal=False, chunk_size=chunk),
                   naive.hadamard_exp_attention(q, k, v, False))


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_all_keys_equal(scale):
    q, k, v = inputs(1, 23, seed=2, scale=scale)
    k[:] = k[:, :1]
    for causal in (True, False):
        got = slay.linear_attention(q, k, v, make(), causal=causal, chunk_size=4)
        assert_matches(got, naive.hadamard_exp_attention(q, k, v, causal))


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_single_token(scale):
    """One token: y = v·k/(k + δ) for each query head, whatever the scale."""
    q, k, v = inputs(2, 1, seed=4, scale=scale)
    for causal in (True, False):
        got = slay.linear_attention(q, k, v, make(), causal=causal)
        assert_matches(got, naive.hadamard_exp_attention(q, k, v, causal))
    state = slay.State(make(), num_seqs=2, value_dim=5)
    assert_matches(state.step(q[:, 0], k[:, 0], v[:, 0]), naive.hadamard_exp_attention(q, k, v, True)[:, 0])


@pytest.mark.parametrize("denominator", ["add", "clamp"])
@pytest.mark.parametrize("delta", [0.0, 1e-6, 1e-2])
def test_delta_applies_in_the_rescaled_frame(denominator, delta):
    """Inputs around −8 make every score ≈ d·e^{−16} ≈ 1e-6, so δ matters: the output is the
    usual Σk·v/(Σk + δ) (clamp: / max(Σk, δ)), with δ scaled by e^{−r} inside."""
    q, k, v = inputs(1, 30, seed=9, scale=0.5)
    q -= 8
    k -= 8
    for causal in (True, False):
        got = slay.linear_attention(q, k, v, make(), causal=causal, chunk_size=7, delta=delta, denominator=denominator)
        assert_matches(got, naive.hadamard_exp_attention(q, k, v, causal, delta, denominator))
    state = slay.State(make(), num_seqs=1, value_dim=5)
    expected = naive.hadamard_exp_attention(q, k, v, True, delta, denominator)
    for t in range(5):
        assert_matches(state.step(q[:, t], k[:, t], v[:, t], delta=delta, denominator=denominator), expected[:, t])


def test_tiny_scores_give_finite_near_zero_outputs():
    """Scores ~e^{−200} (below fp32): exact y ≈ Σk·v/δ ≈ 0; δ·e^{−r} overflows to inf, y = 0."""
    q, k, v = inputs(1, 12, seed=1)
    q -= 100
    k -= 100
    got = slay.linear_attention(q, k, v, make(), chunk_size=5)
    assert np.all(got == 0)
    np.testing.assert_allclose(got, naive.hadamard_exp_attention(q, k, v, True), atol=1e-30)
    # δ = 0: the plain weighted average, exact however small the scores.
    assert_matches(slay.linear_attention(q, k, v, make(), chunk_size=5, delta=0.0),
                   naive.hadamard_exp_attention(q, k, v, True, 0.0))


def test_nan_propagates_without_a_trap():
    """NaN in one key entry: earlier causal outputs are unaffected, later ones (and the state) NaN."""
    q, k, v = inputs(1, 20, Hq=2, Hk=2, seed=6)
    k[0, 9, 0, 2] = np.nan
    got = slay.linear_attention(q, k, v, make(), chunk_size=4)
    assert np.all(np.isfinite(got[0, :9])) and np.all(np.isnan(got[0, 9:, 0])) and np.all(np.isfinite(got[0, :, 1]))
    q[0, 3, 1, 0] = np.nan
    got = slay.linear_attention(q, k, v, make(), chunk_size=4)
    assert np.all(np.isnan(got[0, 3, 1])) and np.all(np.isfinite(got[0, 4:, 1]))
    state = slay.State(make(), num_seqs=1, value_dim=5)
    state.prefill(q, k, v)
    assert np.isnan(state.step(q[:, 0], k[:, 0], v[:, 0])[0, 0]).all()
    with np.errstate(invalid="ignore"):
        k[0, 9, 0, 2] = np.inf
        slay.linear_attention(q, k, v, make(), chunk_size=4)  # no crash; values unspecified


# ---- states --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 50.0])
@pytest.mark.parametrize("T0", [0, 1, 13])
def test_prefill_then_steps_equals_twin(scale, T0):
    fm = make()
    T = T0 + 8
    q, k, v = inputs(2, T, seed=T0 + 3, scale=scale)
    expected = naive.hadamard_exp_attention(q, k, v, True)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    if T0:
        assert_matches(state.prefill(q[:, :T0], k[:, :T0], v[:, :T0], chunk_size=5), expected[:, :T0])
    for t in range(T0, T):
        assert_matches(state.step(q[:, t], k[:, t], v[:, t]), expected[:, t])
    assert state.position(0) == T


def test_steps_with_threads_and_slots_are_identical():
    q, k, v = inputs(3, 12, seed=8, scale=50.0)
    fm = make()
    one, two = slay.State(fm, num_seqs=4, value_dim=5), slay.State(fm, num_seqs=4, value_dim=5, max_threads=2)
    slots = np.array([3, 0, 2], np.int32)
    one.prefill(q[:, :6], k[:, :6], v[:, :6], slots=slots)
    two.prefill(q[:, :6], k[:, :6], v[:, :6], slots=slots, n_threads=2)
    for t in range(6, 12):
        a = one.step(q[:, t], k[:, t], v[:, t], slots=slots)
        np.testing.assert_array_equal(two.step(q[:, t], k[:, t], v[:, t], slots=slots, n_threads=2), a)
        assert_matches(a, naive.hadamard_exp_attention(q, k, v, True)[:, t])
    assert one.save() == two.save()


def test_read_returns_rows_rescaled_by_the_running_maxima():
    """slay_state_read: row f is Σ_j e^{k_jf − μ_f} v_j (and Σ_j e^{k_jf − μ_f}), μ_f = max_j k_jf."""
    q, k, v = inputs(1, 17, Hq=2, Hk=2, seed=12, scale=50.0)
    state = slay.State(make(), num_seqs=1, value_dim=5)
    state.prefill(q, k, v, chunk_size=5)
    S, z = state.read(0)
    k64, v64 = k[0].astype(np.float64), v[0].astype(np.float64)   # (T, H, d), (T, H, dv)
    mu = k64.max(0)
    E = np.exp(k64 - mu)
    np.testing.assert_allclose(z, E.sum(0), rtol=1e-5)
    np.testing.assert_allclose(S, np.einsum("thf,thv->hfv", E, v64), rtol=1e-4, atol=1e-5)
    assert np.isfinite(S).all() and z.min() >= 1 - 1e-6


def test_save_load_restore_copy_slot_mid_sequence():
    """Fork / save at t = 11 of 25 (×50 inputs), continue every copy: all equal the twin."""
    fm = make()
    q, k, v = inputs(2, 25, seed=21, scale=50.0)
    expected = naive.hadamard_exp_attention(q, k, v, True)
    state = slay.State(fm, num_seqs=3, value_dim=5)
    state.prefill(q[:, :11], k[:, :11], v[:, :11], chunk_size=4)
    blob = state.save()
    assert len(blob) == len(slay.State(make(), num_seqs=3, value_dim=5).save())
    loaded = slay.State.load(blob, fm)
    forked = state.copy()
    state.copy_slot(2, state, 0)          # slot 2 = fork of sequence 0
    rolled = slay.State(fm, num_seqs=3, value_dim=5)
    rolled.restore(blob)
    for t in range(11, 25):
        outs = [s.step(q[:, t], k[:, t], v[:, t]) for s in (loaded, forked, rolled)]
        fork = state.step(q[:1, t], k[:1, t], v[:1, t], slots=np.array([2], np.int32))
        reference = state.step(q[:, t], k[:, t], v[:, t])
        for out in outs:
            np.testing.assert_array_equal(out, reference)
        np.testing.assert_array_equal(fork[0], reference[0])
        assert_matches(reference, expected[:, t])
    # Restoring the mid-sequence blob rolls back positions, S̃, z̃ and μ.
    state.restore(blob)
    assert state.position(0) == 11
    assert_matches(state.prefill(q[:, 11:], k[:, 11:], v[:, 11:], chunk_size=5), expected[:, 11:])


def test_reset_empties_the_maxima():
    """After reset a slot behaves as new: a large key absorbed before must not shape the frame."""
    fm = make()
    q, k, v = inputs(1, 9, seed=13, scale=50.0)
    state = slay.State(fm, num_seqs=1, value_dim=5)
    state.prefill(q + 0, k + 200, v)
    state.reset(0)
    fresh = slay.State(fm, num_seqs=1, value_dim=5)
    np.testing.assert_array_equal(state.prefill(q, k, v), fresh.prefill(q, k, v))
    assert state.save() == fresh.save()
    state.reset()
    assert state.save() == slay.State(fm, num_seqs=1, value_dim=5).save()


def test_packed_cu_seqlens_with_slots():
    fm = make()
    lengths = [7, 1, 12]
    cu = np.cumsum([0] + lengths)
    q, k, v = inputs(1, cu[-1], seed=17, scale=50.0)
    got = slay.linear_attention(q, k, v, fm, cu_seqlens=cu, chunk_size=5)
    state = slay.State(fm, num_seqs=4, value_dim=5)
    prefilled = state.prefill(q, k, v, cu_seqlens=cu, slots=np.array([3, 1, 0], np.int32), chunk_size=3)
    for i, n in enumerate(lengths):
        part = slice(cu[i], cu[i + 1])
        expected = naive.hadamard_exp_attention(q[:, part], k[:, part], v[:, part], True)
        assert_matches(got[:, part], expected)
        assert_matches(prefilled[:, part], expected)


def test_absorb_then_query_equals_bidirectional():
    fm = make()
    q, k, v = inputs(2, 19, seed=23, scale=50.0)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    state.prefill(None, k, v, chunk_size=6)
    expected = naive.hadamard_exp_attention(q, k, v, False)
    assert_matches(state.query(q, chunk_size=4), expected)
    assert_matches(slay.State(fm, num_seqs=2, value_dim=5).prefill(q, k, v, causal=False, chunk_size=7), expected)
    # A query on an empty slot sees no key: 0 / (0 + δ) = 0.
    assert not slay.State(fm, num_seqs=2, value_dim=5).query(q).any()


# ---- bad input -----------------------------------------------------------------------------------------

def _exp_twin(q, k, v, scale_q=None, **kwargs):
    """float64 token-loop twin with φ = ψ = exp (finite in float64 far beyond fp32's range)."""
    import naive_gla
    phi_q, phi_k = np.exp(q.astype(np.float64)), np.exp(k.astype(np.float64))
    pick = lambda a, b: None if a is None else a[b]
    extra = {name: kwargs.pop(name) for name in ("log_decay", "query_gates", "key_gates") if name in kwargs}
    return np.stack([naive_gla.recurrence(phi_q[b], phi_k[b], v[b], log_decay=pick(extra.get("log_decay"), b),
                                          query_gates=pick(extra.get("query_gates"), b),
                                          key_gates=pick(extra.get("key_gates"), b), **kwargs)[0]
                     for b in range(v.shape[0])])


def _options_cases(B, T, Hq, Hk, d, seed=5):
    """(name, keywords for libslay, keywords for the twin, per-step keyword slicer) of the options that
    now compose with Hadamard Exp: normalize=False, RetNet γ, per-channel and per-head log_decay, gates."""
    import naive_gla
    rng = np.random.default_rng(seed)
    gammas = np.array([0.9, 0.7][:Hk], np.float32)
    channel = (-0.3 * rng.random((B, T, Hk, d))).astype(np.float32)
    head = (-0.3 * rng.random((B, T, Hk))).astype(np.float32)
    ql = rng.standard_normal((B, T, Hq)).astype(np.float32)
    kl = rng.standard_normal((B, T, Hk)).astype(np.float32)
    return [
        ("unnormalised", dict(normalize=False), dict(normalize=False)),
        ("decay", dict(decay=gammas), dict(gammas=gammas)),
        ("decay unnormalised", dict(decay=gammas, normalize=False), dict(gammas=gammas, normalize=False)),
        ("log_decay per channel", dict(log_decay=channel), dict(log_decay=channel)),
        ("log_decay per head", dict(log_decay=head), dict(log_decay=np.repeat(head[..., None], d, -1))),
        ("log_decay and decay", dict(log_decay=channel, decay=gammas), dict(log_decay=channel, gammas=gammas)),
        ("gates", dict(query_gate_logits=ql, key_gate_logits=kl, normalize=False),
         dict(query_gates=naive_gla.softmax_gates(ql), key_gates=naive_gla.softmax_gates(kl), normalize=False)),
        ("gates and decay", dict(key_gate_logits=kl, log_decay=head),
         dict(key_gates=naive_gla.softmax_gates(kl), log_decay=np.repeat(head[..., None], d, -1))),
    ]


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_decay_gates_and_unnormalised_compose(scale):
    """Flipped from a refusal: normalize=False, RetNet γ, GLA log_decay (per channel and per head) and SLA
    gates compose with Hadamard Exp (its rescaled frame decays like any state) — whole sequences at every
    chunk size, and prefill + steps, against a float64 token loop with φ = exp; at scale 8 the raw
    features e^{q+k} reach e^{60}."""
    fm = make()
    B, T, Hq, Hk, d = 2, 11, 4, 2, 8
    q, k, v = inputs(B, T, seed=4, scale=scale)
    for name, kwargs, twin in _options_cases(B, T, Hq, Hk, d):
        expected = _exp_twin(q, k, v, **twin)
        tol = 1e-4 if twin.get("normalize", True) else 2e-4
        for chunk in (1, 3, 0, 16):
            assert_matches(slay.linear_attention(q, k, v, fm, chunk_size=chunk, **kwargs), expected, tol)
        # prefill 6 tokens, then steps
        state = slay.State(fm, num_seqs=B, value_dim=5)
        head_of = lambda a, lo, hi: None if a is None else a[:, lo:hi]
        first = {key: (value[:, :6] if isinstance(value, np.ndarray) and value.ndim >= 3 else value)
                 for key, value in kwargs.items()}
        got = [state.prefill(q[:, :6], k[:, :6], v[:, :6], chunk_size=4, **first)]
        for t in range(6, T):
            step = {key: (value[:, t] if isinstance(value, np.ndarray) and value.ndim >= 3 else value)
                    for key, value in kwargs.items()}
            got.append(state.step(q[:, t], k[:, t], v[:, t], **step)[:, None])
        assert_matches(np.concatenate(got, 1), expected, tol)


def test_decay_strong_stays_finite_and_exact():
    """A strong decay (log α = −40 per token) with large inputs: the frame follows the decayed maxima,
    so recent keys keep full precision instead of underflowing against an old, decayed maximum."""
    fm = make()
    q, k, v = inputs(1, 9, seed=8, scale=20.0)
    log_decay = np.full((1, 9, 2), -40.0, np.float32)
    got = slay.linear_attention(q, k, v, fm, log_decay=log_decay, chunk_size=4)
    expected = _exp_twin(q, k, v, log_decay=np.repeat(log_decay[..., None], 8, -1))
    assert_matches(got, expected, 1e-4)


def _recheck(blob):
    """Re-seal a blob's FNV-1a checksum after editing it."""
    body = bytes(blob[:-8])
    h = 0xCBF29CE484222325
    for byte in body:
        h = ((h ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
    return body + h.to_bytes(8, "little")


def test_blob_maxima_are_checked():
    """μ follows the payload and is covered by the checksum; a blob without μ (or with μ for
    another kind) is corrupt even with a valid checksum."""
    fm = make()
    q, k, v = inputs(2, 9, seed=31, scale=50.0)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    state.prefill(q, k, v)
    blob = state.save()
    n, h, m, dv = 2, 2, 8, 5
    plain = 72 + 8 * n + 4 * n * h * (m * dv + m)
    assert len(blob) == plain + 4 * n * h * m + 8
    assert struct.unpack_from("<Q", blob, 64)[0] == len(blob) - 80
    mu = np.frombuffer(blob[plain:plain + 4 * n * h * m], np.float32).reshape(n, h, m)
    np.testing.assert_array_equal(mu, k.max(1))
    before = state.save()
    damaged = bytearray(blob)
    damaged[plain + 5] ^= 0x40                       # one bit of μ
    for restore in (lambda b: state.restore(b), lambda b: slay.State.load(b, fm)):
        with pytest.raises(slay.SlayError, match="checksum") as info:
            restore(bytes(damaged))
        assert info.value.code == CORRUPT
    # μ cut off, payload size and checksum made consistent: still refused (the kind needs μ).
    cut = bytearray(blob[:plain] + bytes(8))
    struct.pack_into("<I", cut, 56, 0)                # layout flags: no maxima
    struct.pack_into("<Q", cut, 64, plain - 72)
    with pytest.raises(slay.SlayError, match="maxima") as info:
        state.restore(_recheck(cut))
    assert info.value.code == CORRUPT
    # And a plain map's blob with μ appended.
    other = slay.State(slay.FeatureMap("elu+1", head_dim=8, num_heads=2), num_seqs=2, value_dim=5)
    extended = bytearray(other.save()[:-8] + bytes(4 * n * h * m) + bytes(8))
    struct.pack_into("<I", extended, 56, 1)           # layout flags: maxima
    struct.pack_into("<Q", extended, 64, len(extended) - 80)
    with pytest.raises(slay.SlayError, match="maxima") as info:
        other.restore(_recheck(extended))
    assert info.value.code == CORRUPT
    assert state.save() == before
    # A Hadamard Exp blob in a state of another map: the identity decides (state mismatch).
    with pytest.raises(slay.SlayError, match="different feature map"):
        other.restore(blob)


def test_blob_nan_maxima_are_corrupt():
    """libslay never writes a NaN μ (the running maximum skips NaN keys), and a NaN μ would
    poison every later output of its slot: a blob carrying one is corrupt even with a valid
    checksum, and so is +inf (only a +inf key produces it, and that key's state is NaN). −inf
    (no key yet) and huge finite μ load, and later calls neither trap nor fail."""
    fm = make()
    q, k, v = inputs(2, 9, seed=37, scale=5.0)
    state = slay.State(fm, num_seqs=2, value_dim=5)
    state.prefill(q, k, v)
    blob = state.save()
    n, h, m, dv = 2, 2, 8, 5
    plain = 72 + 8 * n + 4 * n * h * (m * dv + m)
    before = state.save()
    for value, text in ((float("nan"), "NaN"), (-float("nan"), "NaN"), (float("inf"), "inf")):
        bad = bytearray(blob)
        struct.pack_into("<f", bad, plain + 4 * (n * h * m - 1), value)
        bad = _recheck(bad)
        for restore in (lambda b: state.restore(b), lambda b: slay.State.load(b, fm)):
            with pytest.raises(slay.SlayError, match=text) as info:
                restore(bad)
            assert info.value.code == CORRUPT
    assert state.save() == before
    odd = bytearray(blob)
    for f, value in enumerate((-float("inf"), 3e38, -3e38)):
        struct.pack_into("<f", odd, plain + 4 * f, value)
    loaded = slay.State.load(_recheck(odd), fm)
    loaded.prefill(q, k, v)
    loaded.step(q[:, 0], k[:, 0], v[:, 0])
    loaded.query(q)


def test_partitioned_prefill_and_step_equal_whole():
    """options ith/nth split the (sequence, key head) pairs; the shares equal one call bitwise."""
    import ctypes
    from slay._lib import lib, AttentionOptions
    from slay._tensor import descriptor
    fm = make()
    q, k, v = inputs(3, 20, seed=41, scale=50.0)
    whole_state = slay.State(fm, num_seqs=3, value_dim=5)
    whole = whole_state.prefill(q[:, :14], k[:, :14], v[:, :14], chunk_size=4)
    whole_steps = [whole_state.step(q[:, t], k[:, t], v[:, t]) for t in range(14, 20)]
    state = slay.State(fm, num_seqs=3, value_dim=5, max_threads=4)

    def options(ith):
        opts = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(opts))
        opts.ith, opts.nth, opts.chunk_size = ith, 4, 4
        return opts
    out = np.full((3, 14, 4, 5), np.nan, np.float32)
    qa, ka, va = (np.ascontiguousarray(a[:, :14]) for a in (q, k, v))
    for ith in range(4):
        assert lib.slay_state_prefill(state.handle, descriptor(qa), descriptor(ka), descriptor(va), descriptor(out),
                                      None, None, 3, ctypes.byref(options(ith)), None) == 0
    np.testing.assert_array_equal(out, whole)
    for t in range(14, 20):
        step_out = np.full((3, 4, 5), np.nan, np.float32)
        qs, ks, vs = (np.ascontiguousarray(a[:, t]) for a in (q, k, v))
        for ith in range(4):
            assert lib.slay_state_step(state.handle, descriptor(qs), descriptor(ks), descriptor(vs),
                                       descriptor(step_out), None, 3, ctypes.byref(options(ith)), None) == 0
        np.testing.assert_array_equal(step_out, whole_steps[t - 14])
    assert state.save() == whole_state.save()
