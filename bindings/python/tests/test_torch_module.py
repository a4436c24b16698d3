"""slay.torch.SlayAttention: parameters / buffers, state_dict, deepcopy, pickle, torch.save, dtype."""
import copy
import io
import pickle

import pytest
import torch

import slay
import slay.torch as st


def inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    return [torch.randn(2, 11, 2, 8, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("learnable", [False, True])
def test_parameters_are_parameters_or_buffers(learnable):
    module = st.SlayAttention(head_dim=8, num_heads=2, learnable=learnable, seed=4)
    names = set(slay.FeatureMap("slay", head_dim=8, num_heads=2, seed=4).get_params())
    assert names == {"anchors", "omega"}
    assert (names <= set(dict(module.named_parameters()))) == learnable
    assert (names <= set(dict(module.named_buffers()))) == (not learnable)
    assert names <= set(module.state_dict())


def test_state_dict_round_trip_changes_the_map():
    """Loading another module's state_dict makes this one compute exactly like it (the C map
    follows the loaded parameters)."""
    a = st.SlayAttention(head_dim=8, num_heads=2, seed=1)
    b = st.SlayAttention(head_dim=8, num_heads=2, seed=2)
    q, k, v = inputs()
    assert not torch.equal(a(q, k, v), b(q, k, v))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(q, k, v), b(q, k, v))


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_of_a_model_holding_it_compute_the_same(how):
    model = torch.nn.Sequential(torch.nn.Identity())
    model.attention = st.SlayAttention(head_dim=8, num_heads=2, kind="favor+", prf_dim=16, seed=9)
    with torch.no_grad():
        model.attention.omega.mul_(1.25)
    if how == "deepcopy":
        clone = copy.deepcopy(model)
    elif how == "pickle":
        clone = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        clone = torch.load(buffer, weights_only=False)
    q, k, v = inputs()
    assert clone.attention.feature_map is not model.attention.feature_map
    assert torch.equal(clone.attention(q, k, v), model.attention(q, k, v))


def test_dtype_governs_io_and_keeps_parameters_float32():
    module = st.SlayAttention(head_dim=8, num_heads=2)
    q, k, v = inputs()
    reference = module(q, k, v)
    half = copy.deepcopy(module).to(torch.bfloat16)
    assert half.anchors.dtype == torch.float32 and half.io_dtype == torch.bfloat16
    y = half(q, k, v)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, reference.to(torch.bfloat16))
    assert half(*inputs(torch.bfloat16)).dtype == torch.bfloat16


def test_final_state_from_the_module():
    module = st.SlayAttention(head_dim=8, num_heads=2, kind="elu+1")
    q, k, v = inputs()
    y, state = module(q, k, v, output_final_state=True)
    assert state.to_arrays()[0].shape == (2, 2, 8, 8)
    assert torch.equal(y, module(q, k, v))


def test_forward_takes_every_keyword_of_the_op():
    """forward has the op's keywords by name (tools read the signature), and the delta-rule ones
    (update, beta, qk_l2norm) compute what slay.torch.linear_attention computes."""
    import inspect
    forward = inspect.signature(st.SlayAttention.forward).parameters
    op = inspect.signature(st.linear_attention).parameters
    assert not any(p.kind == p.VAR_KEYWORD for p in forward.values())
    # out and the gate projections (gate_input, *_gate_weights) belong to the functional op only.
    only_op = {"fm", "out", "gate_input", "query_gate_weights", "key_gate_weights"}
    assert set(op) - only_op == set(forward) - {"self"}
    module = st.SlayAttention(head_dim=8, num_heads=2, kind="identity")
    q, k, v = inputs()
    g = torch.Generator().manual_seed(5)
    beta, log_decay = torch.rand(2, 11, 2, generator=g), -0.1 * torch.rand(2, 11, 2, generator=g)
    for qk_l2norm in (False, True):
        keywords = dict(normalize=False, update="delta", beta=beta, log_decay=log_decay, qk_l2norm=qk_l2norm,
                        check_finite=True)
        y = module(q, k, v, **keywords)
        assert torch.equal(y, st.linear_attention(q, k, v, module.feature_map, **keywords))
    assert not torch.equal(module(q, k, v, normalize=False, update="delta", beta=beta),
                           module(q, k, v, normalize=False))
