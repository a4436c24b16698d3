"""State blob format version 2: exact size, finite contents, layout and storage-dtype fields, and
version 1 blobs still loading (slay.h, slay_state_save / slay_state_load)."""
import struct

import numpy as np
import pytest

import slay

CORRUPT, VERSION, DTYPE = -7, -8, -4
HEADER = 72


def _recheck(blob):
    body = bytes(blob[:-8])
    h = 0xCBF29CE484222325
    for byte in body:
        h = ((h ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
    return body + h.to_bytes(8, "little")


def _prefilled(kind="slay", num_seqs=2, seed=3):
    fm = slay.FeatureMap(kind, head_dim=4, num_heads=2, prf_dim=3, poly_dim=2)
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((num_seqs, 6, 2, 4)).astype(np.float32) for _ in range(3))
    state = slay.State(fm, num_seqs=num_seqs, value_dim=4)
    state.prefill(q, k, v)
    return fm, state


def _refused(state, fm, blob, code, match):
    before = state.save()
    for attempt in (lambda: state.restore(blob), lambda: slay.State.load(blob, fm)):
        with pytest.raises(slay.SlayError, match=match) as info:
            attempt()
        assert info.value.code == code, info.value
    assert state.save() == before


def test_header_records_version_layout_and_dtype():
    fm, state = _prefilled()
    blob = state.save()
    assert blob[:8] == b"SLAYSTAT"
    version, mark = struct.unpack_from("<II", blob, 8)
    assert (version, mark) == (2, 0x01020304)
    assert struct.unpack_from("<QQQQ", blob, 24) == (2, 2, state.feature_dim, 4)
    assert struct.unpack_from("<II", blob, 56) == (0, 0)      # no optional sections, SLAY_DTYPE_F32
    assert struct.unpack_from("<Q", blob, 64)[0] == len(blob) - HEADER - 8
    _, hexp = _prefilled("ela-hadamard-exp")
    assert struct.unpack_from("<II", hexp.save(), 56) == (1, 0)   # running maxima present


def test_trailing_bytes_are_refused():
    fm, state = _prefilled()
    blob = state.save()
    _refused(state, fm, blob + b"\0", CORRUPT, "trailing")
    _refused(state, fm, blob + bytes(4096), CORRUPT, "trailing")
    _refused(state, fm, blob[:-1], CORRUPT, "truncated")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["S", "z", "last slot"])
def test_non_finite_state_values_are_refused_even_with_a_valid_checksum(value, where):
    fm, state = _prefilled()
    blob = bytearray(state.save())
    n, h, m, dv = 2, 2, state.feature_dim, 4
    first = HEADER + 8 * n
    per_slot = h * m * (dv + 1)
    index = {"S": 5, "z": h * m * dv + 3, "last slot": 2 * per_slot - 1}[where]
    struct.pack_into("<f", blob, first + 4 * index, value)
    _refused(state, fm, _recheck(blob), CORRUPT, "not finite")


def test_non_finite_running_maxima_are_refused():
    fm, state = _prefilled("ela-hadamard-exp")
    blob = bytearray(state.save())
    n, h, m, dv = 2, 2, 4, 4
    maxima = HEADER + 8 * n + 4 * n * h * m * (dv + 1)
    for value in (float("nan"), float("inf")):
        bad = bytearray(blob)
        struct.pack_into("<f", bad, maxima + 4, value)
        _refused(state, fm, _recheck(bad), CORRUPT, "maximum")
    empty = bytearray(blob)
    struct.pack_into("<f", empty, maxima + 4, -float("inf"))   # "no key yet" is a valid μ
    slay.State.load(_recheck(empty), fm)


def test_storage_dtype_must_match_the_state():
    fm, state = _prefilled()
    blob = bytearray(state.save())
    n, h, m, dv = 2, 2, state.feature_dim, 4
    # A well-formed BF16 blob of the same dims: 2-byte elements.
    floats = n * h * m * (dv + 1)
    half = bytearray(blob[:HEADER + 8 * n]) + bytes(2 * floats) + bytes(8)
    struct.pack_into("<I", half, 60, 3)
    struct.pack_into("<Q", half, 64, 8 * n + 2 * floats)
    before = state.save()
    with pytest.raises(slay.SlayError, match="SLAY_DTYPE_BF16") as info:
        state.restore(_recheck(half))
    assert info.value.code == DTYPE and isinstance(info.value, TypeError)
    assert state.save() == before
    # Loading creates a state of the blob's dtype (slay_state_create_v2).
    assert slay.State.load(_recheck(half), fm).storage_dtype == "bfloat16"
    # Unknown dtype values and layout bits are corrupt data.
    for offset, value in ((60, 1), (60, 7), (56, 2), (56, 0x80000000)):
        bad = bytearray(blob)
        struct.pack_into("<I", bad, offset, value)
        _refused(state, fm, _recheck(bad), CORRUPT, "dtype|layout")


def test_future_versions_are_refused():
    fm, state = _prefilled()
    blob = bytearray(state.save())
    struct.pack_into("<I", blob, 8, 3)
    _refused(state, fm, _recheck(blob), VERSION, "version")


@pytest.mark.parametrize("kind", ["slay", "ela-hadamard-exp"])
def test_version_1_blobs_still_load(kind):
    """Version 1: a 64-byte header without the layout and dtype fields, payload bytes at 56."""
    fm, state = _prefilled(kind)
    blob = state.save()
    old = bytearray(blob[:56]) + struct.pack("<Q", struct.unpack_from("<Q", blob, 64)[0]) + blob[HEADER:]
    struct.pack_into("<I", old, 8, 1)
    old = _recheck(old)
    loaded = slay.State.load(old, fm)
    assert loaded.save() == blob
    state.reset()
    state.restore(old)
    assert state.save() == blob
    _refused(state, fm, old + b"\0", CORRUPT, "trailing")
