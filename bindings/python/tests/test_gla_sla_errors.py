"""Bad GLA log decay and SLA gate logits: the right status and a message naming the argument (and
the offending index), outputs and states untouched, never a crash. Python API first, then the C
entry points through ctypes (slay_attention_options.log_decay / query_gate_logits / key_gate_logits)."""
import ctypes

import numpy as np
import pytest

import slay
from test_errors import World, call, tensor, C_FUNCTIONS, OK, INVALID, SHAPE, LAYOUT, DTYPE

NAN, INF = float("nan"), float("inf")


def setup(T=6):
    rng = np.random.default_rng(0)
    fm = slay.FeatureMap("identity", head_dim=4, num_heads=2)
    q = rng.standard_normal((2, T, 4, 4)).astype(np.float32)
    k = rng.standard_normal((2, T, 2, 4)).astype(np.float32)
    v = rng.standard_normal((2, T, 2, 3)).astype(np.float32)
    return fm, q, k, v, np.full((2, T, 2, 4), -0.1, np.float32)


def poisoned(value, index=(1, 3, 0, 2), shape=(2, 6, 2, 4)):
    array = np.full(shape, -0.1, np.float32)
    array[index] = value
    return array


def rejects(code, match, function, *args, **kwargs):
    with pytest.raises(slay.SlayError) as info:
        function(*args, **kwargs)
    assert info.value.code == code, info.value
    assert match in str(info.value), str(info.value)


# ---- Python API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [NAN, INF, -INF, 0.5, 1e-30])
def test_bad_log_decay_values_name_the_index(value):
    fm, q, k, v, _ = setup()
    out = np.full((2, 6, 4, 3), 7.0, np.float32)
    rejects(INVALID, "log_decay[1, 3, 0, 2]", slay.linear_attention, q, k, v, fm, out=out, log_decay=poisoned(value))
    assert np.all(out == 7.0)


@pytest.mark.parametrize("shape", [(2, 6, 2, 5), (2, 5, 2, 4), (1, 6, 2, 4), (2, 6, 1, 4), (2, 6, 3), (2, 5, 2)])
def test_log_decay_shape(shape):
    fm, q, k, v, _ = setup()
    code = SHAPE
    rejects(code, "log_decay", slay.linear_attention, q, k, v, fm, log_decay=np.zeros(shape, np.float32))


def test_per_head_log_decay_is_accepted():
    """Flipped from a refusal: log_decay (B, T, Hk) is a per-head decay, equal to the same values
    repeated over the m channels, in whole-sequence calls, prefill and steps."""
    fm, q, k, v, _ = setup()
    head = (-0.4 * np.random.default_rng(3).random((2, 6, 2))).astype(np.float32)
    channels = np.ascontiguousarray(np.repeat(head[..., None], fm.dim, -1))
    expected = slay.linear_attention(q, k, v, fm, log_decay=channels)
    np.testing.assert_allclose(slay.linear_attention(q, k, v, fm, log_decay=head), expected, rtol=2e-5, atol=1e-6)
    state = slay.State(fm, num_seqs=2, value_dim=3)
    got = [state.prefill(q[:, :4], k[:, :4], v[:, :4], log_decay=head[:, :4])]
    got += [state.step(q[:, t], k[:, t], v[:, t], log_decay=head[:, t])[:, None] for t in (4, 5)]
    np.testing.assert_allclose(np.concatenate(got, 1), expected, rtol=2e-5, atol=1e-6)


def test_log_decay_dtype_and_causal():
    fm, q, k, v, log_decay = setup()
    rejects(DTYPE, "log_decay", slay.linear_attention, q, k, v, fm, log_decay=log_decay.astype(np.float64))
    rejects(INVALID, "causal", slay.linear_attention, q, k, v, fm, causal=False, log_decay=log_decay)
    state = slay.State(fm, num_seqs=2, value_dim=3)
    rejects(INVALID, "causal", state.prefill, q, k, v, causal=False, log_decay=log_decay)


@pytest.mark.parametrize("which,shape", [("query_gate_logits", (2, 6, 4)), ("key_gate_logits", (2, 6, 2))])
def test_bad_gate_logits(which, shape):
    fm, q, k, v, _ = setup()
    out = np.full((2, 6, 4, 3), 7.0, np.float32)
    bad = np.zeros(shape, np.float32)
    bad[0, 2, 1] = NAN
    rejects(INVALID, which + "[0, 2, 1]", slay.linear_attention, q, k, v, fm, out=out, **{which: bad})
    bad[0, 2, 1] = INF
    rejects(INVALID, which + "[0, 2, 1]", slay.linear_attention, q, k, v, fm, out=out, **{which: bad})
    wrong = np.zeros(shape[:2] + (shape[2] + 1,), np.float32)
    rejects(SHAPE, which, slay.linear_attention, q, k, v, fm, out=out, **{which: wrong})
    assert np.all(out == 7.0)


def test_state_calls_leave_the_state_unchanged():
    fm, q, k, v, log_decay = setup()
    state = slay.State(fm, num_seqs=2, value_dim=3)
    state.prefill(q, k, v, log_decay=log_decay)
    blob = state.save()
    rejects(INVALID, "log_decay[1, 3, 0, 2]", state.prefill, q, k, v, log_decay=poisoned(0.1))
    rejects(INVALID, "log_decay[1, 1, 3]", state.step, q[:, 0], k[:, 0], v[:, 0],
            log_decay=poisoned(NAN, (1, 1, 3), (2, 2, 4)))
    rejects(SHAPE, "log_decay", state.step, q[:, 0], k[:, 0], v[:, 0], log_decay=log_decay[:, 0, :, :3])
    rejects(SHAPE, "log_decay", state.step, q[:, 0], k[:, 0], v[:, 0], log_decay=log_decay[:, :2])
    rejects(INVALID, "query_gate_logits[0, 3]", state.step, q[:, 0], k[:, 0], v[:, 0],
            query_gate_logits=poisoned(NAN, (0, 3), (2, 4)))
    rejects(SHAPE, "key_gate_logits", state.step, q[:, 0], k[:, 0], v[:, 0], key_gate_logits=np.zeros((2, 4), np.float32))
    rejects(INVALID, "query_gate_logits[1, 0, 0]", state.query, q, query_gate_logits=poisoned(NAN, (1, 0, 0), (2, 6, 4)))
    assert state.save() == blob


# ---- C entry points -----------------------------------------------------------------------------

SEQUENCE_CALLS = ["slay_linear_attention", "slay_state_prefill"]
ALL_CALLS = SEQUENCE_CALLS + ["slay_state_step"]


def world_with(function, field, array=None, **override):
    """World (test_errors) with options.<field> → a tensor of `array` (default: valid values)."""
    w = World()
    step = function == "slay_state_step"
    shape = {"log_decay": (2, 5, 2, w.m), "query_gate_logits": (2, 5, 2), "key_gate_logits": (2, 5, 2)}[field]
    if step:
        shape = (shape[0],) + shape[2:]
    w.extra = np.full(shape, -0.25, np.float32) if array is None else array
    w.extra_tensor = tensor(w.extra, **override)
    setattr(w.options, field, ctypes.addressof(w.extra_tensor))
    return w


@pytest.mark.parametrize("field", ["log_decay", "query_gate_logits", "key_gate_logits"])
@pytest.mark.parametrize("function", ALL_CALLS)
def test_c_valid_tensors_succeed(function, field):
    w = world_with(function, field)
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == OK, message


@pytest.mark.parametrize("change,code,match", [
    (dict(data=None), INVALID, "options.{field}.data is NULL"),
    (dict(dtype=1), DTYPE, "options.{field}.dtype"),
    (dict(ndim=1), SHAPE, "options.{field}.ndim"),
    (dict(shape={0: 3}), SHAPE, "{field} has shape"),
    (dict(shape={1: 0}), SHAPE, "options.{field}.shape"),
    (dict(strides={0: -1}), LAYOUT, "options.{field}.strides"),
])
@pytest.mark.parametrize("field", ["log_decay", "query_gate_logits", "key_gate_logits"])
@pytest.mark.parametrize("function", ALL_CALLS)
def test_c_bad_tensors(function, field, change, code, match):
    w = world_with(function, field, **change)
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == code, message
    assert match.format(field=field) in message, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("value", [NAN, INF, 1.0])
@pytest.mark.parametrize("function", ALL_CALLS)
def test_c_bad_log_decay_values(function, value):
    w = world_with(function, "log_decay")
    w.extra.reshape(-1)[-1] = value
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == INVALID and "log_decay[" in message and "<= 0" in message, message
    w.assert_unchanged(before)


@pytest.mark.parametrize("field", ["log_decay", "query_gate_logits", "key_gate_logits"])
@pytest.mark.parametrize("function", ALL_CALLS)
def test_c_output_overlapping_token_tensor(function, field):
    """An output overlapping log_decay or gate logits → SLAY_ERR_LAYOUT, like any input."""
    w = world_with(function, field)
    output = w.out1 if function == "slay_state_step" else w.out
    w.extra_tensor.data = output.ctypes.data
    before = w.snapshot()
    status, message = call(function, *C_FUNCTIONS[function][0](w))
    assert status == LAYOUT and "overlaps" in message, message
    w.assert_unchanged(before)


def test_c_causal_zero_with_log_decay():
    for function in SEQUENCE_CALLS:
        w = world_with(function, "log_decay")
        w.options.causal = 0
        status, message = call(function, *C_FUNCTIONS[function][0](w))
        assert status == INVALID and "causal" in message, message


def test_c_state_query_does_not_read_log_decay_or_key_gates():
    """slay_state_query ignores log_decay and key_gate_logits (even garbage), but reads query gates."""
    w = World()
    junk = tensor(np.zeros(1, np.float32), data=None, dtype=9)
    w.options.log_decay = ctypes.addressof(junk)
    w.options.key_gate_logits = ctypes.addressof(junk)
    status, message = call("slay_state_query", *C_FUNCTIONS["slay_state_query"][0](w))
    assert status == OK, message
    w.options.query_gate_logits = ctypes.addressof(junk)
    status, message = call("slay_state_query", *C_FUNCTIONS["slay_state_query"][0](w))
    assert status == INVALID and "query_gate_logits" in message, message


def test_c_options_init_sets_the_new_fields_null():
    from slay._lib import lib, AttentionOptions
    options = AttentionOptions()
    ctypes.memset(ctypes.byref(options), 0x5A, ctypes.sizeof(options))
    assert lib.slay_attention_options_init(ctypes.byref(options)) == OK
    assert not options.log_decay and not options.query_gate_logits and not options.key_gate_logits
