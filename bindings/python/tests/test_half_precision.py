"""Half precision. State storage (slay_state_create_v2): decode steps on bf16 / fp16 states against a
float64 twin that rounds the state to the storage type after every step, read / write / blobs keep
the storage dtype, and the refusals (unknown dtype, cross-dtype copy or restore, float64 tensors).
Tensors (SLAY_DTYPE_F16 / BF16 for q, k, v, out, gate logits, log decay and β): at every entry point
half I/O against the float64 twins applied to the half values upcast, and bitwise against the fp32
path on the upcast values."""
import ctypes

import numpy as np
import pytest

import slay
from slay._lib import lib, Error

import naive
import naive_delta
import naive_gla

try:
    import ml_dtypes
    BF16 = ml_dtypes.bfloat16
except ImportError:  # optional: the bf16 array tests need it (pip install ml_dtypes)
    BF16 = None

HALF = [np.float16, pytest.param(BF16, marks=pytest.mark.skipif(BF16 is None, reason="ml_dtypes not installed"),
                                 id="bfloat16")]


def round_to(x, storage):
    """x (float64) rounded to the storage type as libslay stores it (nearest-even), as float64."""
    if storage == "float16":
        return x.astype(np.float16).astype(np.float64)
    if storage == "bfloat16":
        bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        return rounded.view(np.float32).astype(np.float64)
    return x.astype(np.float32).astype(np.float64)


def identity_map(heads=2, d=16):
    return slay.FeatureMap("identity", head_dim=d, num_heads=heads)


def twin_steps(q, k, v, storage, decay=None, log_decay=None, normalize=False):
    """Token loop in float64 with the state rounded to `storage` after each step; features are the
    identity. q (T, N, Hq, d), k (T, N, H, d), v (T, N, H, dv). Returns outputs (T, N, Hq, dv)."""
    T, N, Hq, d = q.shape
    H, dv = k.shape[2], v.shape[3]
    group = Hq // H
    S = np.zeros((N, H, d, dv))
    z = np.zeros((N, H, d))
    outs = np.zeros((T, N, Hq, dv))
    for t in range(T):
        for n in range(N):
            for h in range(H):
                a = np.ones(d)
                if decay is not None:
                    a = a * decay[h]
                if log_decay is not None:
                    a = a * np.exp(log_decay[t, n, h].astype(np.float64))
                kk, vv = k[t, n, h].astype(np.float64), v[t, n, h].astype(np.float64)
                S[n, h] = round_to(a[:, None] * S[n, h] + np.outer(kk, vv), storage)
                z[n, h] = round_to(a * z[n, h] + kk, storage)
                for g in range(group):
                    qq = q[t, n, h * group + g].astype(np.float64)
                    num = qq @ S[n, h]
                    outs[t, n, h * group + g] = num / (qq @ z[n, h] + 1e-6) if normalize else num
    return outs


@pytest.mark.parametrize("storage", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("decay_kind", [None, "gamma", "gla"])
def test_steps_match_a_twin_that_rounds_the_state(storage, group, decay_kind):
    H, d, dv, N, T = 2, 16, 24, 2, 12
    fm = identity_map(H, d)
    rng = np.random.default_rng(hash((storage, group, decay_kind)) % 2**32)
    q = rng.standard_normal((T, N, H * group, d)).astype(np.float32)
    k = (0.5 * rng.standard_normal((T, N, H, d))).astype(np.float32)
    v = rng.standard_normal((T, N, H, dv)).astype(np.float32)
    decay = np.array([0.9, 0.8], np.float32) if decay_kind == "gamma" else None
    log_decay = (-0.1 * rng.random((T, N, H, d))).astype(np.float32) if decay_kind == "gla" else None
    state = slay.State(fm, num_seqs=N, value_dim=dv, storage_dtype=storage)
    assert state.storage_dtype == storage
    got = np.stack([state.step(q[t], k[t], v[t], normalize=False, decay=decay,
                               log_decay=None if log_decay is None else log_decay[t]) for t in range(T)])
    want = twin_steps(q, k, v, storage, decay=decay, log_decay=log_decay)
    # The twin rounds the same values; fp32 arithmetic differs from it by far less than one
    # storage ulp, which can flip a rounding: allow a few storage ulps of the state's scale.
    ulp = {"float32": 2.0 ** -23, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}[storage]
    scale = np.abs(want).max()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=8 * ulp * scale * np.sqrt(d), rtol=0)
    S, z = state.read(1)
    assert S.dtype == np.float32 and np.all(np.isfinite(S))
    # What read() returns is exactly representable in the storage type.
    np.testing.assert_array_equal(round_to(S.astype(np.float64), storage), S.astype(np.float64))


@pytest.mark.parametrize("storage", ["bfloat16", "float16"])
def test_normalised_steps_and_blobs_keep_the_storage_dtype(storage):
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=3)
    rng = np.random.default_rng(5)
    ref = slay.State(fm, num_seqs=2, value_dim=8)
    half = slay.State(fm, num_seqs=2, value_dim=8, storage_dtype=storage)
    for _ in range(20):
        q, k = (rng.standard_normal((2, 2, 16)).astype(np.float32) for _ in range(2))
        v = rng.standard_normal((2, 2, 8)).astype(np.float32)
        a, b = ref.step(q, k, v), half.step(q, k, v)
    assert np.abs(a - b).max() <= 3e-2 * np.abs(a).max()
    blob = half.save()
    loaded = slay.State.load(blob, fm)
    assert loaded.storage_dtype == storage
    for x, y in zip(loaded.read(0), half.read(0)):
        np.testing.assert_array_equal(x, y)
    q, k = (rng.standard_normal((2, 2, 16)).astype(np.float32) for _ in range(2))
    v = rng.standard_normal((2, 2, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.step(q, k, v), half.step(q, k, v))
    # A blob restores only into a state of its own dtype; copies across dtypes are refused.
    with pytest.raises(slay.SlayError, match="dtype"):
        ref.restore(blob)
    with pytest.raises(slay.SlayError, match="dtype"):
        ref.copy_slot(0, half, 0)
    fork = half.copy()
    assert fork.storage_dtype == storage
    fork.copy_slot(1, half, 0)


def test_storage_dtype_names_and_refusals():
    fm = identity_map()
    assert slay.State(fm, storage_dtype=np.float16).storage_dtype == "float16"
    assert slay.State(fm, storage_dtype=np.float32).storage_dtype == "float32"
    assert slay.State(fm).storage_dtype == "float32"
    for bad in ("float64", "int8", None, np.float64):
        with pytest.raises(ValueError, match="storage_dtype"):
            slay.State(fm, storage_dtype=bad)
    handle = ctypes.c_void_p()
    err = Error()
    for code in (1, 4, -1):
        assert lib.slay_state_create_v2(fm.handle, 1, 16, 1, code, ctypes.byref(handle), ctypes.byref(err)) == -4
        assert b"storage_dtype" in err.message and not handle.value


@pytest.mark.parametrize("storage", ["bfloat16", "float16"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_prefill_and_query_on_half_states_compute_in_fp32_and_round_once(storage, n_threads):
    """Prefill loads each (slot, head) state into fp32, runs the chunks in fp32 and rounds once at the
    end: the same outputs as an fp32 state holding the same (rounded) values, and the final state is
    that state's, rounded."""
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=3)
    rng = np.random.default_rng(11)
    q = rng.standard_normal((2, 40, 4, 16)).astype(np.float32)
    k = rng.standard_normal((2, 40, 2, 16)).astype(np.float32)
    v = rng.standard_normal((2, 40, 2, 32)).astype(np.float32)
    half = slay.State(fm, num_seqs=2, value_dim=32, storage_dtype=storage)
    half.prefill(None, k[:, :15], v[:, :15], chunk_size=8, n_threads=n_threads)
    S, z, positions = half.to_arrays()
    full = slay.State.from_arrays(fm, S, z, positions)
    got = half.prefill(q[:, 15:], k[:, 15:], v[:, 15:], chunk_size=8, n_threads=n_threads)
    want = full.prefill(q[:, 15:], k[:, 15:], v[:, 15:], chunk_size=8, n_threads=n_threads)
    np.testing.assert_array_equal(got, want)
    for slot in range(2):
        for a, b in zip(half.read(slot), full.read(slot)):
            np.testing.assert_array_equal(a, round_to(b.astype(np.float64), storage).astype(np.float32))
    np.testing.assert_array_equal(half.query(q[:, :5], n_threads=n_threads), full.query(q[:, :5], n_threads=n_threads)
                                  if storage == "float32" else slay.State.from_arrays(fm, *half.to_arrays()).query(
                                      q[:, :5], n_threads=n_threads))


def test_write_refuses_values_beyond_fp16_and_converts_exactly():
    fm = identity_map(heads=1, d=4)
    state = slay.State(fm, value_dim=2, storage_dtype="float16")
    S = np.full((1, 4, 2), 70000, np.float32)
    err = Error()
    fp = ctypes.POINTER(ctypes.c_float)
    assert lib.slay_state_write(state.handle, 0, S.ctypes.data_as(fp), S.size, None, 0, 0, ctypes.byref(err)) != 0
    assert b"65504" in err.message
    S = np.array([1 / 3, 2.0, -1e-6, 65504], np.float32).repeat(2).reshape(1, 4, 2)
    assert lib.slay_state_write(state.handle, 0, S.ctypes.data_as(fp), S.size, None, 0, 0, ctypes.byref(err)) == 0
    np.testing.assert_array_equal(state.read(0)[0], S.astype(np.float16).astype(np.float32))


def test_float64_tensors_are_refused_with_what_to_do():
    fm = identity_map()
    x = np.ones((1, 4, 2, 16))
    with pytest.raises(slay.SlayError, match=r"astype\(np.float32\)"):
        slay.linear_attention(x, x, x, fm)
    # The C boundary says the same for a SLAY_DTYPE_F64 tensor.
    from slay._tensor import tensor_struct
    from slay.attention import attention_options
    state = slay.State(fm, value_dim=16)
    q = np.ones((1, 2, 16), np.float32)
    out = np.zeros((1, 2, 16), np.float32)
    wide = tensor_struct(q)
    wide.dtype = 1
    err = Error()
    options = attention_options(True, 1e-6, 1, 1, "add", True, None, step=True)
    code = lib.slay_state_step(state.handle, ctypes.byref(wide), ctypes.byref(tensor_struct(q)),
                               ctypes.byref(tensor_struct(q)), ctypes.byref(tensor_struct(out)), None, 1,
                               ctypes.byref(options), ctypes.byref(err))
    assert code == -4 and b"SLAY_DTYPE_F64" in err.message and b"convert q to SLAY_DTYPE_F32" in err.message
    assert not out.any()


# ---- fp16 / bf16 tensors ------------------------------------------------------------------------------
#
# An output in a half type is the fp32-accumulated result rounded once to nearest-even. Against the
# float64 twin of the same (half) inputs, its error is therefore at most the fp32 accumulation error
# (bounded here by FP32_RTOL times the output scale, as the fp32 tests of these paths do) plus half an
# ulp of the output type: 2^-11 relative for fp16 (11 significant bits), 2^-8 for bf16 (8 bits), and
# 2^-25 absolute for fp16 subnormals.

FP32_RTOL = 1e-4


def half_ulp(dtype):
    return 2.0 ** -11 if dtype == np.float16 else 2.0 ** -8


def halve(rng_array, dtype):
    """A half array and its exact float64 values."""
    half = rng_array.astype(dtype)
    return half, half.astype(np.float64)


def assert_half_output(got, want, dtype):
    """got (a `dtype` array) is want (float64) to within fp32 accumulation plus output rounding."""
    assert got.dtype == np.dtype(dtype)
    got = got.astype(np.float64)
    assert np.all(np.isfinite(got))
    bound = half_ulp(dtype) * np.abs(want) + FP32_RTOL * np.abs(want).max() + 2.0 ** -25
    excess = np.abs(got - want) - bound
    assert excess.max() <= 0, "error exceeds fp32 + half rounding by %.3g" % excess.max()


def assert_fp32_output(got, want):
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=FP32_RTOL * np.abs(want).max())


def upcast(*arrays):
    return [None if a is None else a.astype(np.float32) for a in arrays]


def attention_inputs(rng, dtype, B=2, T=37, Hq=4, Hk=2, d=16, dv=24, positive=True):
    """(q, k, v) in `dtype` and their float64 values; positive inputs keep normalised denominators
    well away from 0 (identity features)."""
    draw = (lambda shape: rng.uniform(0.05, 1.0, shape)) if positive else (lambda shape: rng.standard_normal(shape))
    q = halve(draw((B, T, Hq, d)) / 4, dtype)
    k = halve(draw((B, T, Hk, d)) / 4, dtype)
    v = halve(rng.standard_normal((B, T, Hk, dv)), dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention_half_io_against_the_float64_twin(dtype, causal):
    rng = np.random.default_rng(1)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    (q, q64), (k, k64), (v, v64) = attention_inputs(rng, dtype)
    want = naive.linear_attention(q64, k64, v64, causal)
    out = slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=16)
    assert_half_output(out, want, dtype)
    wide = slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=16, out=np.empty(out.shape, np.float32))
    assert_fp32_output(wide, want)
    # Bitwise: half inputs read exactly as their fp32 upcast, and the half output is the fp32 one rounded.
    np.testing.assert_array_equal(wide, slay.linear_attention(*upcast(q, k, v), fm, causal=causal, chunk_size=16))
    np.testing.assert_array_equal(out, wide.astype(dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_slay_map_half_io_is_the_fp32_path_on_the_upcast_values(dtype):
    """The SLAY map itself (polynomial and PRF features of the half rows), causal and bidirectional,
    two threads with column blocks: half I/O is bitwise the fp32 path on the upcast values."""
    rng = np.random.default_rng(2)
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=3)
    (q, _), (k, _), (v, _) = attention_inputs(rng, dtype, T=70, dv=32, positive=False)
    for causal in (True, False):
        for threads in (1, 2):
            ref = slay.linear_attention(*upcast(q, k, v), fm, causal=causal, n_threads=threads)
            wide = slay.linear_attention(q, k, v, fm, causal=causal, n_threads=threads, out=np.empty(ref.shape, np.float32))
            np.testing.assert_array_equal(wide, ref)
            np.testing.assert_array_equal(slay.linear_attention(q, k, v, fm, causal=causal, n_threads=threads),
                                          ref.astype(dtype))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("per_channel", [True, False])
def test_gla_and_gates_with_half_token_tensors_against_the_twin(dtype, per_channel):
    """log_decay and the gate logits in half precision too (the gated form's chunks)."""
    rng = np.random.default_rng(3)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    (q, q64), (k, k64), (v, v64) = attention_inputs(rng, dtype)
    shape = (2, 37, 2, 16) if per_channel else (2, 37, 2)
    log_decay, g64 = halve(-0.2 * rng.random(shape), dtype)
    query_logits, ql64 = halve(rng.standard_normal((2, 37, 4)), dtype)
    key_logits, kl64 = halve(rng.standard_normal((2, 37, 2)), dtype)
    channels = g64 if per_channel else np.repeat(g64[..., None], 16, axis=-1)
    want = naive_gla.batched(q64, k64, v64, log_decay=channels, query_gates=naive_gla.softmax_gates(ql64),
                             key_gates=naive_gla.softmax_gates(kl64), normalize=False)
    call = dict(log_decay=log_decay, query_gate_logits=query_logits, key_gate_logits=key_logits, normalize=False,
                chunk_size=16)
    out = slay.linear_attention(q, k, v, fm, **call)
    assert_half_output(out, want, dtype)
    ref = slay.linear_attention(*upcast(q, k, v), fm, **dict(call, log_decay=log_decay.astype(np.float32),
                                                               query_gate_logits=query_logits.astype(np.float32),
                                                               key_gate_logits=key_logits.astype(np.float32)))
    np.testing.assert_array_equal(out, ref.astype(dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_delta_rule_with_half_beta_and_decay_against_the_twin(dtype):
    rng = np.random.default_rng(4)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    (q, q64), (k, k64), (v, v64) = attention_inputs(rng, dtype, T=29, positive=False)
    beta, b64 = halve(rng.uniform(0.2, 1.0, (2, 29, 2)), dtype)
    g, g64 = halve(-0.1 * rng.random((2, 29, 2)), dtype)
    want = naive_delta.batched(q64, k64, v64, beta=b64, g=g64, qk_l2norm=True)
    out = slay.linear_attention(q, k, v, fm, update="delta", normalize=False, beta=beta, log_decay=g, qk_l2norm=True)
    assert_half_output(out, want, dtype)
    steps = slay.State(fm, num_seqs=2, value_dim=24)
    stepped = np.stack([steps.step(q[:, t], k[:, t], v[:, t], update="delta", normalize=False, beta=beta[:, t],
                                   log_decay=g[:, t], qk_l2norm=True) for t in range(29)], axis=1)
    assert_half_output(stepped, want, dtype)


@pytest.mark.parametrize("dtype", HALF)
def test_rescaled_exp_form_half_io_against_the_twin(dtype):
    rng = np.random.default_rng(5)
    fm = slay.FeatureMap("ela-hadamard-exp", head_dim=8, num_heads=2)
    q, q64 = halve(rng.standard_normal((1, 30, 2, 8)), dtype)
    k, k64 = halve(rng.standard_normal((1, 30, 2, 8)), dtype)
    v, v64 = halve(rng.standard_normal((1, 30, 2, 8)), dtype)
    want = naive.hadamard_exp_attention(q64, k64, v64, causal=True)
    assert_half_output(slay.linear_attention(q, k, v, fm, chunk_size=8), want, dtype)
    state = slay.State(fm, value_dim=8)
    stepped = np.stack([state.step(q[:, t], k[:, t], v[:, t]) for t in range(30)], axis=1)
    assert_half_output(stepped, want, dtype)


@pytest.mark.parametrize("dtype", HALF)
def test_state_prefill_query_and_step_half_io_against_the_twin(dtype):
    """slay_state_prefill (in two parts), slay_state_query and slay_state_step with half q, k, v
    and outputs: the causal twin over the whole sequence, and the query twin over the absorbed keys."""
    rng = np.random.default_rng(6)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    (q, q64), (k, k64), (v, v64) = attention_inputs(rng, dtype, T=40)
    want = naive.linear_attention(q64, k64, v64, causal=True)
    state = slay.State(fm, num_seqs=2, value_dim=24)
    first = state.prefill(q[:, :25], k[:, :25], v[:, :25], chunk_size=8)
    second = state.prefill(q[:, 25:35], k[:, 25:35], v[:, 25:35], chunk_size=8)
    steps = [state.step(q[:, t], k[:, t], v[:, t]) for t in range(35, 40)]
    got = np.concatenate([first, second, np.stack(steps, axis=1)], axis=1)
    assert_half_output(got, want, dtype)
    # query: every query row reads the state after all 40 keys (the bidirectional twin).
    probe, probe64 = halve(rng.uniform(0.05, 1.0, (2, 6, 4, 16)) / 4, dtype)
    full = naive.linear_attention(np.concatenate([probe64, q64[:, 6:]], axis=1), k64, v64, causal=False)[:, :6]
    assert_half_output(state.query(probe), full, dtype)
    assert_fp32_output(state.query(probe, out=np.empty((2, 6, 4, 24), np.float32)), full)
    # Keys only (q None), in half, then the same bits as an fp32 state fed the upcast values.
    absorbed = slay.State(fm, num_seqs=2, value_dim=24)
    absorbed.prefill(None, k, v)
    reference = slay.State(fm, num_seqs=2, value_dim=24)
    reference.prefill(None, *upcast(k, v))
    for a, b in zip(absorbed.to_arrays(), reference.to_arrays()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", HALF)
def test_state_step_half_io_is_bitwise_the_fp32_step_and_reuses_descriptors(dtype):
    """A decode loop with half q / k / v / out buffers refilled in place (the descriptor cache),
    log decay and gates in half: each output is the fp32 step's on the upcast values, rounded."""
    rng = np.random.default_rng(7)
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=3)
    half = slay.State(fm, num_seqs=3, value_dim=16)
    wide = slay.State(fm, num_seqs=3, value_dim=16)
    q, k = np.empty((3, 4, 16), dtype), np.empty((3, 2, 16), dtype)
    v, out = np.empty((3, 2, 16), dtype), np.empty((3, 4, 16), dtype)
    for _ in range(6):
        q[...] = rng.standard_normal(q.shape)
        k[...] = rng.standard_normal(k.shape)
        v[...] = rng.standard_normal(v.shape)
        log_decay = (-0.1 * rng.random((3, 2))).astype(dtype)
        gates = rng.standard_normal((3, 4)).astype(dtype)
        result = half.step(q, k, v, out=out, log_decay=log_decay, query_gate_logits=gates)
        assert result is out
        ref = wide.step(*upcast(q, k, v), log_decay=log_decay.astype(np.float32), query_gate_logits=gates.astype(np.float32))
        np.testing.assert_array_equal(out, ref.astype(dtype))
    assert half.step(q, k, v).dtype == np.dtype(dtype)
    assert half.step(q, k, v.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype", HALF)
def test_exact_attention_and_feature_map_apply_take_half_tensors(dtype):
    rng = np.random.default_rng(8)
    (q, q64), (k, k64), (v, v64) = attention_inputs(rng, dtype, T=20, positive=False)
    for kernel in ("softmax", "yat-spherical"):
        want = naive.exact_attention(q64, k64, v64, kernel, causal=True)
        assert_half_output(slay.exact_attention(q, k, v, kernel=kernel), want, dtype)
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=3)
    ref = fm(k.astype(np.float32), role="key")
    np.testing.assert_array_equal(fm(k, role="key", out=np.empty(ref.shape, np.float32)), ref)
    np.testing.assert_array_equal(fm(k, role="key"), ref.astype(dtype))


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes not installed")
def test_mixed_dtypes_across_tensors():
    """Each tensor has its own dtype: q fp16, k bf16, v fp32, out bf16, gates fp16, log decay bf16."""
    rng = np.random.default_rng(9)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    q = rng.standard_normal((1, 33, 2, 16)).astype(np.float16)
    k = rng.standard_normal((1, 33, 2, 16)).astype(BF16)
    v = rng.standard_normal((1, 33, 2, 8)).astype(np.float32)
    log_decay = (-0.1 * rng.random((1, 33, 2))).astype(BF16)
    gates = rng.standard_normal((1, 33, 2)).astype(np.float16)
    out = np.empty((1, 33, 2, 8), BF16)
    slay.linear_attention(q, k, v, fm, out=out, log_decay=log_decay, key_gate_logits=gates, normalize=False)
    ref = slay.linear_attention(*upcast(q, k), v, fm, log_decay=log_decay.astype(np.float32),
                                key_gate_logits=gates.astype(np.float32), normalize=False)
    np.testing.assert_array_equal(out, ref.astype(BF16))
    assert slay.linear_attention(q, k, v, fm).dtype == np.float32  # v decides the default


def test_strided_half_views_and_refusals():
    rng = np.random.default_rng(10)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    base = rng.standard_normal((1, 20, 2, 32)).astype(np.float16)
    q = base[..., ::2]                     # element stride 2 in the last axis
    k = np.ascontiguousarray(base[..., :16])
    v = base[:, ::-1, :, 16:]              # negative stride: copied by the binding
    out = np.zeros((1, 20, 2, 32), np.float16)[..., ::2]
    slay.linear_attention(q, k, v, fm, out=out, normalize=False)
    ref = slay.linear_attention(*upcast(q, k, np.ascontiguousarray(v)), fm, normalize=False)
    np.testing.assert_array_equal(out, ref.astype(np.float16))
    # The backward's option tensors stay fp32; float64 and other dtypes are refused with advice.
    with pytest.raises(slay.SlayError, match=r"SLAY_DTYPE_F32 \(0\) for options.log_decay"):
        wide = [np.ascontiguousarray(a, np.float32) for a in (q, k, v)]
        slay.linear_attention_backward(*wide, fm, np.ones((1, 20, 2, 16), np.float32), normalize=False,
                                       log_decay=np.full((1, 20, 2), -0.1, np.float16))
    with pytest.raises(slay.SlayError, match=r"astype\(np.float32\)"):
        slay.linear_attention(q.astype(np.float64), k, v, fm)
    with pytest.raises(slay.SlayError, match="float16 or bfloat16"):
        slay.linear_attention(q.astype(np.int16), k, v, fm)
    # A half tensor whose data is not 2-byte aligned is a layout error at the C boundary.
    from slay._tensor import pointer_struct
    raw = np.zeros(2 * 20 * 2 * 16 + 1, np.float16)
    err = Error()
    odd = pointer_struct(raw.ctypes.data, (1, 20, 2, 16), (640, 32, 16, 1), dtype=2)
    odd.data += 1
    good = pointer_struct(k.ctypes.data, k.shape, [s // 2 for s in k.strides], dtype=2)
    target = np.zeros((1, 20, 2, 16), np.float32)
    code = lib.slay_linear_attention(fm.handle, ctypes.byref(odd), ctypes.byref(good), ctypes.byref(good),
                                     ctypes.byref(pointer_struct(target.ctypes.data, target.shape, (640, 32, 16, 1))),
                                     None, ctypes.byref(err))
    assert code != 0 and b"aligned to 2 bytes" in err.message and not target.any()
    # An unknown dtype code names the three accepted ones.
    bad = pointer_struct(k.ctypes.data, k.shape, [s // 2 for s in k.strides], dtype=7)
    code = lib.slay_linear_attention(fm.handle, ctypes.byref(bad), ctypes.byref(good), ctypes.byref(good),
                                     ctypes.byref(pointer_struct(target.ctypes.data, target.shape, (640, 32, 16, 1))),
                                     None, ctypes.byref(err))
    assert code == -4 and b"SLAY_DTYPE_BF16 (3)" in err.message and not target.any()


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes not installed")
def test_half_precision_page_examples_run():
    """The ```python blocks of docs/half-precision.md run as written (they use ml_dtypes)."""
    import pathlib
    import re
    page = pathlib.Path(__file__).resolve().parents[3] / "docs" / "half-precision.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    assert blocks
    for number, block in enumerate(blocks, 1):
        exec(compile(block, "half-precision.md python block %d" % number, "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("dtype", HALF)
def test_check_finite_and_value_checks_read_half_tensors(dtype):
    """check_finite, and the value checks of log decay and β, read half elements as their values."""
    rng = np.random.default_rng(12)
    fm = slay.FeatureMap("identity", head_dim=8, num_heads=2)
    q, k, v = (rng.standard_normal((1, 6, 2, 8)).astype(dtype) for _ in range(3))
    k[0, 3, 1, 5] = np.inf
    out = np.full((1, 6, 2, 8), 7, dtype)
    with pytest.raises(slay.NonFiniteError, match=r"k\[0, 3, 1, 5\] is inf"):
        slay.linear_attention(q, k, v, fm, check_finite=True, out=out)
    assert (out == 7).all()
    state = slay.State(fm, value_dim=8)
    with pytest.raises(slay.NonFiniteError, match=r"k\[0, 1, 5\] is inf"):
        state.step(q[:, 3], k[:, 3], v[:, 3], check_finite=True)
    log_decay = np.full((1, 6, 2), -0.5, dtype)
    log_decay[0, 2, 0] = 0.25
    with pytest.raises(slay.SlayError, match=r"log_decay\[0, 2, 0\] is 0.25"):
        slay.linear_attention(q, q, v, fm, log_decay=log_decay)
    beta = np.full((1, 6, 2), 0.5, dtype)
    beta[0, 4, 1] = 3
    with pytest.raises(slay.SlayError, match=r"beta\[0, 4, 1\] is 3.0"):
        slay.linear_attention(q, q, v, fm, update="delta", normalize=False, beta=beta)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("causal", [True, False])
def test_backward_half_inputs_and_gradients_against_the_twin(dtype, causal):
    """slay_linear_attention_backward with half q, k, v, dout and half dq, dk, dv (the dtypes of q,
    k, v): against the float64 twin's directional derivatives on the half values upcast, within
    fp32 plus half an ulp of each gradient entry, and bitwise the fp32 backward's gradients rounded.
    The options' tensors (log decay, gates, beta) and their gradients stay fp32 (refused above)."""
    from naive_grad import directional64
    rng = np.random.default_rng(13)
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=4, seed=5)
    q, k, v, dout = (rng.standard_normal(shape).astype(dtype) for shape in
                     ((2, 9, 4, 8), (2, 9, 2, 8), (2, 9, 2, 3), (2, 9, 4, 3)))
    grads = slay.linear_attention_backward(q, k, v, fm, dout, causal=causal, chunk_size=4, wrt=("q", "k", "v"))
    wide = slay.linear_attention_backward(*upcast(q, k, v), fm, dout.astype(np.float32), causal=causal, chunk_size=4,
                                          wrt=("q", "k", "v"))
    inputs = {"q": q.astype(np.float64), "k": k.astype(np.float64), "v": v.astype(np.float64), "params": fm.get_params()}
    for name in ("q", "k", "v"):
        assert grads[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(grads[name], wide[name].astype(dtype))
        grad = grads[name].astype(np.float64)
        for _ in range(2):
            u = rng.standard_normal(grad.shape)
            expected = directional64(fm, inputs, name, u, dout.astype(np.float64), causal=causal)
            actual = float((grad * u).sum())
            bound = half_ulp(dtype) * float((np.abs(grad) * np.abs(u)).sum()) \
                + 2e-5 * (np.linalg.norm(grad) * np.linalg.norm(u) + abs(expected))
            assert abs(actual - expected) <= bound, (name, actual, expected, bound)
