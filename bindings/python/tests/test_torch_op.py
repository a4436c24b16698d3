"""slay.torch.linear_attention and the custom op: equality with the numpy API, zero-copy strides,
half-precision I/O, states as tensors, clear errors, torch.compile."""
import numpy as np
import pytest
import torch

import slay
import slay.torch as st

torch.manual_seed(0)


def inputs(B=2, T=19, Hq=4, Hk=2, d=16, dv=8, dtype=torch.float32):
    return (torch.randn(B, T, Hq, d, dtype=dtype) * 0.5, torch.randn(B, T, Hk, d, dtype=dtype) * 0.5,
            torch.randn(B, T, Hk, dv, dtype=dtype))


def numpy_of(*tensors):
    return [np.ascontiguousarray(t.detach().float().numpy()) for t in tensors]


@pytest.fixture(scope="module")
def fm():
    return slay.FeatureMap("slay", head_dim=16, num_heads=2, seed=1)


def test_float32_matches_numpy_with_any_strides(fm):
    """fp32 contiguous, head-first ([B, H, T, D] transposed) and sliced views give the numpy result
    bitwise: the strides go to libslay as they are."""
    q, k, v = inputs()
    expected = slay.linear_attention(*numpy_of(q, k, v), fm)
    assert np.array_equal(st.linear_attention(q, k, v, fm).numpy(), expected)
    head_first = q.transpose(1, 2).contiguous().transpose(1, 2)
    wide = torch.randn(2, 19, 2, 24)[..., 3:19]
    assert not head_first.is_contiguous() and not wide.is_contiguous()
    expected = slay.linear_attention(*numpy_of(head_first, wide, v), fm)
    assert np.array_equal(st.linear_attention(head_first, wide, v, fm).numpy(), expected)


def test_descriptors_point_at_the_tensor_memory():
    """The raw-pointer path describes a view by its data_ptr and element strides (no copy)."""
    from slay._tensor import pointer_struct
    base = torch.randn(3, 5, 4, 8)
    view = base.transpose(1, 2)[:, 1:]
    t = pointer_struct(view.data_ptr(), tuple(view.shape), view.stride())
    assert t.data == view.data_ptr() and list(t.strides)[:4] == list(view.stride())
    assert list(t.shape)[:4] == list(view.shape)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_in_and_out(fm, dtype):
    """bf16 / fp16 in → the same dtype out, equal to the fp32 computation on the same values rounded."""
    q, k, v = inputs(dtype=dtype)
    y = st.linear_attention(q, k, v, fm)
    assert y.dtype == dtype and y.shape == (2, 19, 4, 8)
    reference = slay.linear_attention(*numpy_of(q, k, v), fm)
    assert np.array_equal(y.float().numpy(), torch.from_numpy(reference).to(dtype).float().numpy())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_tensors_reach_libslay_without_copies(fm, dtype, monkeypatch):
    """bf16 / fp16 q, k, v go to the C call as they are (their data_ptr, strides and element type,
    a 2-byte-aligned sliced view included), out is written in their dtype, and the result is the
    float32 computation rounded once."""
    import ctypes
    from slay.torch import _op
    seen = []
    real = _op._linear_attention

    def spy(handle, *addresses):
        seen.append([_op._DESCRIPTOR.unpack(ctypes.string_at(a, _op._DESCRIPTOR.size)) for a in addresses[:4]])
        return real(handle, *addresses)

    monkeypatch.setattr(_op, "_linear_attention", spy)
    q, _, v = inputs(dtype=dtype)
    k = (torch.randn(2, 19, 2, 19) * 0.5).to(dtype)[..., 3:]      # starts 6 bytes into its storage
    y = st.linear_attention(q, k, v, fm)
    code = {torch.bfloat16: 3, torch.float16: 2}[dtype]
    (dq, dk, dv, dout), = seen
    for descriptor, tensor in ((dq, q), (dk, k), (dv, v), (dout, y)):
        assert descriptor[0] == tensor.data_ptr() and descriptor[1] == code
        assert list(descriptor[3:7]) == list(tensor.shape) and list(descriptor[7:11]) == list(tensor.stride())
    reference = slay.linear_attention(*numpy_of(q, k, v), fm)
    assert y.dtype == dtype and torch.equal(y, torch.from_numpy(reference).to(dtype))


def test_states_as_tensors_and_chaining(fm):
    """output_final_state gives (y, slay.torch.State) whose tensors are (S, z); chaining two calls
    through it, through an (S, z) tuple or through a numpy State equals one call."""
    q, k, v = inputs(T=24)
    whole = st.linear_attention(q, k, v, fm)
    first, state = st.linear_attention(q[:, :10], k[:, :10], v[:, :10], fm, output_final_state=True)
    assert isinstance(state, st.State) and isinstance(state, slay.State)
    S, z = state.tensors
    assert S.shape == (2, 2, fm.dim, 8) and z.shape == (2, 2, fm.dim)
    S2, z2, positions = state.to_arrays()
    assert torch.equal(S, S2) and torch.equal(z, z2) and positions.tolist() == [10, 10]
    for initial in (state, (S, z), slay.State.from_arrays(fm, S.numpy(), z.numpy(), [10, 10])):
        second = st.linear_attention(q[:, 10:], k[:, 10:], v[:, 10:], fm, initial_state=initial)
        torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=2e-5, atol=2e-6)
    rebuilt = st.State.from_arrays(fm, S, z, positions)
    step = rebuilt.step(q[:, 10], k[:, 10], v[:, 10])
    torch.testing.assert_close(step, whole[:, 10], rtol=2e-5, atol=2e-6)


def test_cu_seqlens_and_options_match_numpy():
    """cu_seqlens, GLA log_decay, gates (also from gate_input and weights) and normalize=False as
    in the numpy API."""
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    q, k, v = inputs(B=1, T=30)
    log_decay = -torch.rand(1, 30, 2, 16) * 0.2
    x, wq, wk = torch.randn(1, 30, 6), torch.randn(6, 4), torch.randn(6, 2)
    y, state = st.linear_attention(q, k, v, fm, normalize=False, log_decay=log_decay, gate_input=x,
                                   query_gate_weights=wq, key_gate_weights=wk, cu_seqlens=[0, 11, 30],
                                   output_final_state=True)
    ny, nstate = slay.linear_attention(*numpy_of(q, k, v), fm, normalize=False, log_decay=log_decay.numpy(),
                                       gate_input=x.numpy(), query_gate_weights=wq.numpy(),
                                       key_gate_weights=wk.numpy(), cu_seqlens=[0, 11, 30], output_final_state=True)
    np.testing.assert_allclose(y.numpy(), ny, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.tensors[0].numpy(), nstate.to_arrays()[0], rtol=1e-5, atol=1e-5)
    assert state.to_arrays()[2].tolist() == [11, 19]


def test_clear_errors(fm):
    """Non-CPU tensors, integer dtypes, a missing map and (without the backward) inputs that need a
    gradient are refused with messages that say what to do; nothing is silently detached."""
    q, k, v = inputs()
    with pytest.raises(ValueError, match="libslay runs on the CPU"):
        st.linear_attention(q.to("meta"), k, v, fm)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        st.linear_attention(q.double(), k, v, fm)
    with pytest.raises(ValueError, match="slay.FeatureMap"):
        st.linear_attention(q, k, v, None)
    with pytest.raises(ValueError, match="torch.Tensor"):
        st.linear_attention(q.numpy(), k, v, fm)
    if not st.backward_available():
        with pytest.raises(RuntimeError, match="no backward pass"):
            st.linear_attention(q.requires_grad_(), k, v, fm)


def test_registered_custom_op_passes_opcheck(fm):
    """torch.ops.slay.linear_attention is a registered op whose schema and fake implementation agree
    with the real one (torch.library.opcheck)."""
    from slay.torch._op import map_key, call_key, EXTRAS
    q, k, v = inputs(B=1, T=7)
    args = (q, k, v, [torch.empty(0)] * len(EXTRAS), map_key(fm), call_key(True, 1e-6, 0, 1, "add", True, None, True, 0))
    torch.library.opcheck(torch.ops.slay.linear_attention.default, args,
                          test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_aot_eager(fm):
    """A function using the op compiles with torch.compile (backend aot_eager) and gives the eager
    result; with the backward, the compiled backward gives the eager gradients too."""
    q, k, v = inputs(T=9)
    w = torch.randn(8, 8)

    def block(q, k, v):
        return (st.linear_attention(q, k, v, fm) @ w).sum(-1)

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(q, k, v), block(q, k, v))
    if st.backward_available():
        eager_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        block(*eager_inputs).square().sum().backward()
        compiled_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        compiled(*compiled_inputs).square().sum().backward()
        for a, b in zip(eager_inputs, compiled_inputs):
            torch.testing.assert_close(a.grad, b.grad)


def test_delta_rule_matches_numpy_and_refuses_missing_gradients(monkeypatch):
    """update="delta" with beta and per-head log_decay equals the numpy API; with a backward that
    lacks delta-rule gradients (simulated: the capability probe answers no), inputs that need them
    raise at the call (never silently detached, never given the gradients of the additive rule)."""
    from slay.torch import _op
    monkeypatch.setitem(_op._PROBES, "delta", False)
    fm = slay.FeatureMap("identity", head_dim=16, num_heads=2)
    q, k, v = inputs(B=1, T=12, Hq=2)
    k = torch.nn.functional.normalize(k, dim=-1)
    beta, g = torch.rand(1, 12, 2), -torch.rand(1, 12, 2) * 0.2
    y = st.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta, log_decay=g)
    expected = slay.linear_attention(*numpy_of(q, k, v), fm, normalize=False, update="delta", beta=beta.numpy(),
                                     log_decay=g.numpy())
    assert np.array_equal(y.numpy(), expected)
    for needing in ("q", "beta", "log_decay"):
        args = dict(q=q.clone(), beta=beta.clone(), log_decay=g.clone())
        args[needing].requires_grad_()
        with pytest.raises(slay.SlayError, match="delta rule"):
            st.linear_attention(args["q"], k, v, fm, normalize=False, update="delta", beta=args["beta"],
                                log_decay=args["log_decay"])
    with torch.no_grad():   # no gradient asked: runs
        st.linear_attention(q.clone().requires_grad_(), k, v, fm, normalize=False, update="delta", beta=beta)


def _recording_mode():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recording(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    return Recording()


@pytest.mark.parametrize("final_state", [False, True])
def test_eager_path_and_registered_op_agree(fm, final_state):
    """Eager calls skip the custom-op layers (a torch.autograd.Function on the same forward and
    backward); the registered op torch.ops.slay.linear_attention gives bit-identical outputs, final
    states and gradients, with log_decay, gates and an initial state. Under a dispatch mode (how
    make_fx / export / fake tensors trace) slay.torch takes the registered op."""
    from slay.torch._op import map_key, call_key
    q, k, v = inputs(T=9)
    log_decay = -torch.rand(2, 9, 2) * 0.3
    key_gates = torch.randn(2, 9, 2)
    S0, z0 = torch.rand(2, 2, fm.dim, 8), torch.rand(2, 2, fm.dim)
    leaves_eager = [t.clone().requires_grad_() for t in (q, k, v, log_decay, key_gates, S0, z0)]
    leaves_op = [t.clone().requires_grad_() for t in (q, k, v, log_decay, key_gates, S0, z0)]
    result = st.linear_attention(*leaves_eager[:3], fm, log_decay=leaves_eager[3], key_gate_logits=leaves_eager[4],
                                 initial_state=(leaves_eager[5], leaves_eager[6]), output_final_state=final_state)
    y_eager, S_eager = (result[0], result[1].tensors[0]) if final_state else (result, None)
    empty = torch.empty(0)
    positions = torch.zeros(2, dtype=torch.int64)
    extras = [leaves_op[3], empty, leaves_op[4], leaves_op[5], leaves_op[6], positions, empty, empty]
    y_op, S_op, _ = torch.ops.slay.linear_attention(*leaves_op[:3], extras, map_key(fm),
                                                    call_key(True, 1e-6, 0, 1, "add", True, None, final_state, 0))
    assert torch.equal(y_eager, y_op)
    loss_eager, loss_op = y_eager.square().sum(), y_op.square().sum()
    if final_state:
        assert torch.equal(S_eager, S_op)
        loss_eager, loss_op = loss_eager + S_eager.sum(), loss_op + S_op.sum()
    if st.backward_available():
        loss_eager.backward()
        loss_op.backward()
        for a, b in zip(leaves_eager, leaves_op):
            assert a.grad is not None and torch.equal(a.grad, b.grad)
    with _recording_mode() as mode:
        st.linear_attention(q, k, v, fm)
    assert "slay.linear_attention.default" in mode.ops


def test_concurrent_calls_from_threads_give_their_own_results(fm):
    """The descriptors and error struct live in per-thread scratch memory and the C call releases
    the GIL: threads calling at once each get exactly their single-threaded result."""
    import threading
    problems = [inputs(B=1, T=7 + i) for i in range(4)]
    expected = [st.linear_attention(*p, fm) for p in problems]
    failures = []

    def worker(index):
        for _ in range(30):
            if not torch.equal(st.linear_attention(*problems[index], fm), expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_tensor_state_methods_take_the_numpy_keywords_and_decode_the_delta_rule():
    """slay.torch.State.prefill / query / step have slay.State's keywords by name; a delta-rule
    prompt prefilled and then decoded token by token with tensors gives the whole-sequence op's
    outputs."""
    import inspect
    for method in ("prefill", "query", "step"):
        ours = list(inspect.signature(getattr(st.State, method)).parameters)
        theirs = list(inspect.signature(getattr(slay.State, method)).parameters)
        assert ours == theirs, method
    fm = slay.FeatureMap("identity", head_dim=8, num_heads=2)
    q, k, v = inputs(B=2, T=10, Hq=2, d=8, dv=4)
    beta, g = torch.rand(2, 10, 2), -torch.rand(2, 10, 2) * 0.2
    keywords = dict(normalize=False, update="delta", qk_l2norm=True, check_finite=True)
    expected = st.linear_attention(q, k, v, fm, beta=beta, log_decay=g, **keywords)
    state = st.State(fm, num_seqs=2, value_dim=4)
    head = state.prefill(q[:, :6], k[:, :6], v[:, :6], beta=beta[:, :6], log_decay=g[:, :6], **keywords)
    steps = [state.step(q[:, t], k[:, t], v[:, t], beta=beta[:, t], log_decay=g[:, t], **keywords)
             for t in range(6, 10)]
    torch.testing.assert_close(torch.cat([head, torch.stack(steps, 1)], 1), expected, rtol=1e-5, atol=1e-5)
