"""Half-precision state storage (slay_state_create_v2): decode steps on bf16 / fp16 states against a
float64 twin that rounds the state to the storage type after every step, read / write / blobs keep
the storage dtype, and the refusals (unknown dtype, cross-dtype copy or restore, float64 tensors)."""
import ctypes

import numpy as np
import pytest

import slay
from slay._lib import lib, Error


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
