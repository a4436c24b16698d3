"""Recurrent states: prefill + steps == one prefill == whole-sequence attention; varlen; blobs."""
import threading

import numpy as np
import pytest

import slay
import naive


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="exact", prf_dim=4, seed=11)


def inputs(B, T, Hq=4, Hk=2, d=8, dv=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, T, Hq, d)).astype(np.float32), rng.standard_normal((B, T, Hk, d)).astype(np.float32),
            rng.standard_normal((B, T, Hk, dv)).astype(np.float32))


@pytest.mark.parametrize("T0", [0, 1, 15, 16, 17, 100])
def test_prefill_then_steps_equals_whole_sequence(fm, T0):
    q, k, v = inputs(2, T0 + 5, seed=T0)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=16)
    p = fm.get_params()
    ref = naive.linear_attention(naive.features_bthd(q, "exact", p["omega"]), naive.features_bthd(k, "exact", p["omega"]),
                                 v, True)
    naive.rms_close(whole, ref)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    if T0:
        naive.rms_close(state.prefill(q[:, :T0], k[:, :T0], v[:, :T0], chunk_size=16), whole[:, :T0], rtol=1e-5)
    for t in range(T0, T0 + 5):
        naive.rms_close(state.step(q[:, t], k[:, t], v[:, t]), whole[:, t], rtol=1e-5)
    assert state.position(0) == T0 + 5
    _, final = slay.linear_attention(q, k, v, fm, output_final_state=True)
    for slot in range(2):
        for a, b in zip(state.read(slot), final.read(slot)):
            naive.rms_close(a, b, rtol=1e-5)


def test_initial_state_resumes(fm):
    q, k, v = inputs(1, 60)
    whole = slay.linear_attention(q, k, v, fm)
    first, state = slay.linear_attention(q[:, :25], k[:, :25], v[:, :25], fm, output_final_state=True)
    second = slay.linear_attention(q[:, 25:], k[:, 25:], v[:, 25:], fm, initial_state=state)
    naive.rms_close(np.concatenate([first, second], axis=1), whole, rtol=1e-5)


def test_varlen_packed_with_slots(fm):
    q, k, v = inputs(1, 45)
    state = slay.State(fm, num_seqs=5, value_dim=6)
    out = state.prefill(q, k, v, cu_seqlens=[0, 10, 10, 45], slots=[4, 0, 2])
    naive.rms_close(out[:, :10], slay.linear_attention(q[:, :10], k[:, :10], v[:, :10], fm), rtol=1e-5)
    naive.rms_close(out[:, 10:], slay.linear_attention(q[:, 10:], k[:, 10:], v[:, 10:], fm), rtol=1e-5)
    assert [state.position(s) for s in range(5)] == [0, 0, 35, 0, 10]


def test_bidirectional_build_then_query(fm):
    q, k, v = inputs(2, 30)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    assert state.prefill(None, k, v) is None
    naive.rms_close(state.query(q), slay.linear_attention(q, k, v, fm, causal=False), rtol=1e-5)


def test_save_load_fork_rollback(fm):
    q, k, v = inputs(1, 40)
    state = slay.State(fm, num_seqs=1, value_dim=6)
    state.prefill(q[:, :20], k[:, :20], v[:, :20])
    blob = state.save()
    snapshot = state.copy()
    after = [state.step(q[:, t], k[:, t], v[:, t]) for t in range(20, 30)]
    state.restore(blob)
    again = [state.step(q[:, t], k[:, t], v[:, t]) for t in range(20, 30)]
    np.testing.assert_array_equal(np.array(after), np.array(again))
    loaded = slay.State.load(blob, fm)
    np.testing.assert_array_equal(loaded.step(q[:, 20], k[:, 20], v[:, 20]), after[0])
    np.testing.assert_array_equal(snapshot.step(q[:, 20], k[:, 20], v[:, 20]), after[0])
    state.reset()
    assert state.position(0) == 0 and not state.read(0)[0].any()


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "version"])
def test_corrupt_blobs_are_refused_and_state_unchanged(fm, damage):
    q, k, v = inputs(1, 10)
    state = slay.State(fm, num_seqs=1, value_dim=6)
    state.prefill(q, k, v)
    blob = bytearray(state.save())
    before = state.read(0)
    if damage == "truncate":
        blob = blob[:-9]
    elif damage == "flip":
        blob[200] ^= 0x10
    elif damage == "magic":
        blob[0] = ord("X")
    else:
        blob[8] = 9
    with pytest.raises(slay.SlayError) as info:
        state.restore(bytes(blob))
    assert info.value.code == (-8 if damage == "version" else -7)
    for a, b in zip(state.read(0), before):
        np.testing.assert_array_equal(a, b)


def test_blob_from_other_map_or_dims(fm):
    other = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="exact", prf_dim=4, seed=12)
    blob = slay.State(other, num_seqs=1, value_dim=6).save()
    with pytest.raises(slay.SlayValueError, match="different feature map"):
        slay.State.load(blob, fm)
    with pytest.raises(slay.SlayValueError, match="state does not match"):
        slay.State(fm, num_seqs=2, value_dim=6).restore(slay.State(fm, num_seqs=1, value_dim=6).save())


def test_step_errors_leave_state_unchanged(fm):
    q, k, v = inputs(2, 3)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    before = state.save()
    with pytest.raises(slay.SlayValueError):
        state.step(q[:, 0, :, :4], k[:, 0], v[:, 0])
    with pytest.raises(slay.SlayValueError, match="distinct"):
        state.step(q[:, 0], k[:, 0], v[:, 0], slots=[1, 1])
    with pytest.raises(slay.SlayValueError, match="monotone"):
        state.prefill(q[:1], k[:1], v[:1], cu_seqlens=[0, 2, 1])
    with pytest.raises(slay.SlayValueError, match="ends at"):
        state.prefill(q[:1], k[:1], v[:1], cu_seqlens=[0, 1, 2])
    assert state.save() == before


def test_concurrent_states_share_one_map(fm):
    q, k, v = inputs(1, 80)
    expected = slay.linear_attention(q, k, v, fm)
    results = [None] * 4

    def run(i):
        state = slay.State(fm, num_seqs=1, value_dim=6)
        results[i] = np.concatenate([state.prefill(q[:, :40], k[:, :40], v[:, :40])] +
                                    [state.step(q[:, t], k[:, t], v[:, t])[:, None] for t in range(40, 80)], axis=1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        naive.rms_close(r, expected, rtol=1e-5)


@pytest.mark.parametrize("poly", ["anchor", "exact_full"])
def test_every_polynomial_decodes_like_prefill(poly):
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=3, poly=poly, poly_dim=6, prf_dim=4, seed=3)
    q, k, v = inputs(2, 40)
    whole = slay.linear_attention(q, k, v, fm, chunk_size=16)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    state.prefill(q[:, :17], k[:, :17], v[:, :17], chunk_size=16)
    steps = np.stack([state.step(q[:, t], k[:, t], v[:, t]) for t in range(17, 40)], axis=1)
    naive.rms_close(steps, whole[:, 17:], rtol=1e-5)


def test_linear_attention_varlen(fm):
    q, k, v = inputs(1, 50)
    cu = [0, 20, 21, 50]
    for causal in (True, False):
        got = slay.linear_attention(q, k, v, fm, causal=causal, cu_seqlens=cu)
        for a, b in zip(cu[:-1], cu[1:]):
            naive.rms_close(got[:, a:b], slay.linear_attention(q[:, a:b], k[:, a:b], v[:, a:b], fm, causal=causal),
                            rtol=1e-5)


def test_state_rejects_heads_that_do_not_divide(fm):
    q, k, v = inputs(1, 5, Hq=3)
    state = slay.State(fm, num_seqs=1, value_dim=6)
    with pytest.raises(slay.SlayValueError, match="multiple"):
        state.prefill(q, k, v)
    with pytest.raises(slay.SlayValueError, match="multiple"):
        state.step(q[:, 0], k[:, 0], v[:, 0])


def test_partitioned_prefill_and_step_equal_whole(fm):
    """options ith/nth: an engine's own pool splits the call; the shares equal one call."""
    import ctypes
    from slay._lib import lib, AttentionOptions
    from slay._tensor import descriptor
    q, k, v = inputs(3, 30)
    whole_state = slay.State(fm, num_seqs=3, value_dim=6)
    whole = whole_state.prefill(q[:, :20], k[:, :20], v[:, :20])
    whole_steps = [whole_state.step(q[:, t], k[:, t], v[:, t]) for t in range(20, 30)]
    state = slay.State(fm, num_seqs=3, value_dim=6, max_threads=4)
    out = np.full((3, 20, 4, 6), np.nan, np.float32)
    for ith in range(4):
        opts = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(opts))
        opts.ith, opts.nth = ith, 4
        qa, ka, va = (np.ascontiguousarray(a[:, :20]) for a in (q, k, v))
        assert lib.slay_state_prefill(state.handle, descriptor(qa), descriptor(ka), descriptor(va), descriptor(out),
                                      None, None, 3, ctypes.byref(opts), None) == 0
    np.testing.assert_array_equal(out, whole)
    for t in range(20, 30):
        step_out = np.full((3, 4, 6), np.nan, np.float32)
        qs, ks, vs = (np.ascontiguousarray(a[:, t]) for a in (q, k, v))
        for ith in range(4):
            opts = AttentionOptions()
            lib.slay_attention_options_init(ctypes.byref(opts))
            opts.ith, opts.nth = ith, 4
            assert lib.slay_state_step(state.handle, descriptor(qs), descriptor(ks), descriptor(vs),
                                       descriptor(step_out), None, 3, ctypes.byref(opts), None) == 0
        np.testing.assert_array_equal(step_out, whole_steps[t - 20])
    assert state.position(2) == 30
    opts = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(opts))
    opts.ith, opts.nth = 4, 5  # ith beyond max_threads workspaces
    qs, ks, vs = (np.ascontiguousarray(a[:, 0]) for a in (q, k, v))
    assert lib.slay_state_step(state.handle, descriptor(qs), descriptor(ks), descriptor(vs),
                               descriptor(np.zeros((3, 4, 6), np.float32)), None, 3, ctypes.byref(opts), None) == -1


def test_set_params_invalidates_states_and_blobs():
    """slay.h: after slay_feature_map_set_param, prefill/query/step fail with SLAY_ERR_STATE_MISMATCH
    (state unchanged) and blobs saved before no longer load into a state of the changed map."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="exact", prf_dim=4, seed=21)
    q, k, v = inputs(1, 6)
    state = slay.State(fm, num_seqs=1, value_dim=6)
    state.prefill(q, k, v)
    blob = state.save()
    before = state.read(0)
    omega = fm.get_params()["omega"]
    fm.set_params(omega=omega[::-1].copy())
    for call in (lambda: state.prefill(q, k, v), lambda: state.query(q),
                 lambda: state.step(q[:, 0], k[:, 0], v[:, 0])):
        with pytest.raises(slay.SlayError) as info:
            call()
        assert info.value.code == -12 and str(info.value)
    for a, b in zip(state.read(0), before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(slay.SlayError) as info:
        slay.State.load(blob, fm)
    assert info.value.code == -12


def test_step_descriptor_cache_revalidates(fm):
    """Reused buffers skip validation only while shape, strides, dtype and writeability hold."""
    q, k, v = inputs(2, 3)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    qs, ks, vs = (np.ascontiguousarray(a[:, 0]) for a in (q, k, v))
    out = np.empty((2, 4, 6), np.float32)
    first = state.step(qs, ks, vs, out=out).copy()
    qs[:] = q[:, 1]
    ks[:] = k[:, 1]
    vs[:] = v[:, 1]
    second = state.step(qs, ks, vs, out=out)  # same buffers, new contents
    reference = slay.State(fm, num_seqs=2, value_dim=6)
    reference.step(q[:, 0], k[:, 0], v[:, 0])
    np.testing.assert_array_equal(second, reference.step(q[:, 1], k[:, 1], v[:, 1]))
    assert not np.array_equal(first, second)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        state.step(qs, ks, vs, out=out)
    wide = np.empty((2, 4, 6), np.float32)
    wide.shape = (2, 24, 1)
    with pytest.raises(ValueError):
        state.step(qs, ks, vs, out=wide)


def test_step_without_out_returns_fresh_arrays(fm):
    """Without out=, each step returns its own array (decoded into a reused buffer, then copied):
    a later step, or a step of another shape or dtype, never changes an earlier result."""
    q, k, v = inputs(2, 4)
    state = slay.State(fm, num_seqs=2, value_dim=6)
    reference = slay.State(fm, num_seqs=2, value_dim=6)
    results = [state.step(q[:, t], k[:, t], v[:, t]) for t in range(3)]
    kept = [r.copy() for r in results]
    half = state.step(q[:, 3].astype(np.float16), k[:, 3].astype(np.float16), v[:, 3].astype(np.float16))
    one = state.step(q[:1, 3], k[:1, 3], v[:1, 3], slots=[1])
    assert half.dtype == np.float16 and one.shape == (1, 4, 6)
    assert len({id(r) for r in results}) == 3
    for t in range(3):
        np.testing.assert_array_equal(results[t], kept[t])
        np.testing.assert_array_equal(results[t], reference.step(q[:, t], k[:, t], v[:, t], out=np.empty((2, 4, 6), np.float32)))


def _recheck(blob):
    """Recompute the FNV-1a checksum of a blob whose header was edited."""
    body = bytes(blob[:-8])
    h = 0xCBF29CE484222325
    for byte in body:
        h = ((h ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
    return body + h.to_bytes(8, "little")


def test_crafted_blob_sizes_are_refused_not_trapped(fm):
    """A blob whose dims pass every limit but whose sizes overflow must be corrupt data."""
    import struct
    header = bytearray(b"SLAYSTAT" + struct.pack("<II", 1, 0x01020304) + struct.pack("<Q", fm.identity)
                       + struct.pack("<QQQQ", 453278, 64989, 15655078, 4) + struct.pack("<Q", (1 << 63) - 64))
    blob = _recheck(header + bytes(8))
    with pytest.raises(slay.SlayError) as info:
        slay.State.load(blob, fm)
    assert info.value.code in (-5, -7, -12)


def test_blob_positions_are_validated(fm):
    state = slay.State(fm, num_seqs=1, value_dim=6)
    blob = bytearray(state.save())
    blob[72:80] = (2 ** 63 - 1).to_bytes(8, "little")
    with pytest.raises(slay.SlayValueError, match="position"):
        state.restore(_recheck(blob))
    blob[72:80] = (-5).to_bytes(8, "little", signed=True)
    with pytest.raises(slay.SlayValueError, match="position"):
        slay.State.load(_recheck(blob), fm)


def test_initial_state_must_belong_to_the_map(fm):
    other = slay.FeatureMap("slay", head_dim=8, num_heads=2, nodes=2, poly="exact", prf_dim=4, seed=99)
    q, k, v = inputs(1, 4)
    state = slay.State(other, num_seqs=1, value_dim=6)
    with pytest.raises(slay.SlayValueError, match="different feature map"):
        slay.linear_attention(q, k, v, fm, initial_state=state)


def test_concurrent_partitioned_steps_with_slots(fm):
    """The nth shares of one step may run at once (an engine's pool); explicit slots included."""
    import ctypes
    import threading
    from slay._lib import lib, AttentionOptions
    from slay._tensor import descriptor
    q, k, v = inputs(4, 12)
    slots = np.array([3, 1, 0, 2], np.int32)
    expected_state = slay.State(fm, num_seqs=4, value_dim=6)
    state = slay.State(fm, num_seqs=4, value_dim=6, max_threads=4)
    for t in range(12):
        qs, ks, vs = (np.ascontiguousarray(a[:, t]) for a in (q, k, v))
        expected = expected_state.step(qs, ks, vs, slots=slots)
        out = np.full((4, 4, 6), np.nan, np.float32)
        codes = [None] * 4

        def share(ith):
            opts = AttentionOptions()
            lib.slay_attention_options_init(ctypes.byref(opts))
            opts.ith, opts.nth = ith, 4
            codes[ith] = lib.slay_state_step(state.handle, descriptor(qs), descriptor(ks), descriptor(vs),
                                             descriptor(out), slots.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                             4, ctypes.byref(opts), None)
        threads = [threading.Thread(target=share, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == [0, 0, 0, 0]
        np.testing.assert_array_equal(out, expected)


def test_misaligned_data_is_a_layout_error(fm):
    import ctypes
    from slay._lib import lib, Error, Tensor
    raw = np.zeros(1 + 1 * 3 * 2 * 8, np.float32)
    q = np.zeros((1, 3, 2, 8), np.float32)
    out = np.zeros((1, 3, 2, 6), np.float32)
    v = np.zeros((1, 3, 2, 6), np.float32)
    t = Tensor()
    t.data = raw.ctypes.data + 2  # not a multiple of 4 bytes
    t.dtype, t.ndim = 0, 4
    for axis, (extent, stride) in enumerate(zip((1, 3, 2, 8), (48, 16, 8, 1))):
        t.shape[axis], t.strides[axis] = extent, stride
    from slay._tensor import descriptor
    err = Error()
    code = lib.slay_linear_attention(fm.handle, ctypes.byref(t), descriptor(q), descriptor(v), descriptor(out), None,
                                     ctypes.byref(err))
    assert code == -3 and b"aligned" in err.message
