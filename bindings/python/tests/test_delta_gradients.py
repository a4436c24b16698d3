"""The delta rule's backward (DeltaNet / Gated DeltaNet) and qk_l2norm's: slay.linear_attention_backward
against central differences of the float64 token-loop twin (naive_delta.recurrence through
naive_grad.forward64), plus chaining, threads, checkpoint blocks and validation."""
import ctypes

import numpy as np
import pytest

import slay
from naive_grad import forward64
from test_gradients import check_directions

RNG = np.random.default_rng(4321)


def delta_inputs(fm, B=2, T=9, Hq=2, dv=3, beta=True, log_decay=True, gates=False, with_state=False, N=None,
                 scale=1.0):
    d, Hk, m = fm.head_dim, fm.num_heads, fm.dim
    inputs = {"q": (scale * RNG.standard_normal((B, T, Hq, d))).astype(np.float32),
              "k": (scale * RNG.standard_normal((B, T, Hk, d))).astype(np.float32),
              "v": RNG.standard_normal((B, T, Hk, dv)).astype(np.float32),
              "params": fm.get_params()}
    if beta:
        inputs["beta"] = RNG.uniform(0.1, 1.0, (B, T, Hk)).astype(np.float32)
    if log_decay:
        inputs["log_decay"] = (-0.3 * np.abs(RNG.standard_normal((B, T, Hk)))).astype(np.float32)
    if gates:
        inputs["query_gate_logits"] = RNG.standard_normal((B, T, Hq)).astype(np.float32)
        inputs["key_gate_logits"] = RNG.standard_normal((B, T, Hk)).astype(np.float32)
    if with_state:
        N = B if N is None else N
        inputs["initial_state"] = ((0.3 * RNG.standard_normal((N, Hk, m, dv))).astype(np.float32),
                                   np.abs(RNG.standard_normal((N, Hk, m))).astype(np.float32))
    dout = RNG.standard_normal((B, T, Hq, dv)).astype(np.float32)
    return inputs, dout


def run_delta(fm, names, B=2, T=9, Hq=2, dv=3, chunk_size=4, d_final=False, cu_seqlens=None, rtol=2e-5,
              scale=1.0, **flags):
    settings = {"update": "delta", "normalize": False, "qk_l2norm": flags.pop("qk_l2norm", False)}
    if "decay" in flags:
        settings["decay"] = flags.pop("decay")
    N = B if cu_seqlens is None else len(cu_seqlens) - 1
    inputs, dout = delta_inputs(fm, B, T, Hq, dv, N=N, scale=scale, **flags)
    extra = {name: inputs[name] for name in ("beta", "log_decay", "query_gate_logits", "key_gate_logits",
                                             "initial_state") if name in inputs}
    final = None
    if d_final:
        final = (RNG.standard_normal((N, fm.num_heads, fm.dim, dv)).astype(np.float32),
                 RNG.standard_normal((N, fm.num_heads, fm.dim)).astype(np.float32))
    grads = slay.linear_attention_backward(inputs["q"], inputs["k"], inputs["v"], fm, dout, d_final_state=final,
                                           chunk_size=chunk_size, cu_seqlens=cu_seqlens, **settings, **extra)
    names = list(names) + [name for name in ("beta", "log_decay", "query_gate_logits", "key_gate_logits")
                           if name in inputs]
    if "initial_state" in inputs:
        names += [("initial_state", 0), ("initial_state", 1)]
    check_directions(fm, inputs, grads, names, dout, final, rtol=rtol, cu_seqlens=cu_seqlens, **settings)
    return inputs, dout, grads


DELTA_CASES = {
    "deltanet": {"log_decay": False},
    "deltanet-beta-1": {"log_decay": False, "beta": False},
    "gated-deltanet": {},
    "gated-deltanet-qk-l2norm": {"qk_l2norm": True},
    "gated-deltanet-retnet-gamma": {"decay": [0.9, 0.7]},
    "deltanet-retnet-gamma-only": {"log_decay": False, "decay": [0.9, 0.7]},
    "softmax-gdn-gates": {"gates": True, "qk_l2norm": True},
}


@pytest.mark.parametrize("case", sorted(DELTA_CASES))
def test_delta_rule_matches_the_twin_with_gqa_and_states(case):
    """q, k, v, β, g, gate logits, dS0 and dz0 (z passes through: dz0 = dz_T) against central
    differences of the float64 token loop, with two query heads per key head."""
    fm = slay.FeatureMap(kind="identity", head_dim=3, num_heads=2)
    run_delta(fm, ["q", "k", "v"], Hq=4, T=7, with_state=True, d_final=True, scale=0.6, **DELTA_CASES[case])


@pytest.mark.parametrize("kind,config,l2", [("elu+1", {}, True), ("favor+", {"prf_dim": 6}, True),
                                            ("slay", {"poly": "anchor", "poly_dim": 3, "prf_dim": 3}, True),
                                            ("slay", {"poly": "anchor", "poly_dim": 3, "prf_dim": 3}, False)],
                         ids=["elu+1", "favor+", "slay", "slay-raw-features"])
def test_delta_rule_map_gradients_match_the_twin(kind, config, l2):
    """Maps with parameters learn through the delta rule too (qk_l2norm keeps β‖φ(k)‖² <= 2; SLAY's
    raw features are small, so it also runs without it: then its features go through the map's
    own gradient, never a factorised shortcut of the additive form)."""
    fm = slay.FeatureMap(kind=kind, head_dim=3, num_heads=1, **config)
    names = ["q", "k", "v"] + [("params", name) for name in fm.get_params()]
    run_delta(fm, names, T=8, qk_l2norm=l2, with_state=True)


def test_delta_rule_packed_sequences_match_the_twin():
    """cu_seqlens, an empty sequence included (the blocks of several chunks a long sequence gets
    are forced in the Swift test LinearAttentionBackwardTests)."""
    fm = slay.FeatureMap(kind="identity", head_dim=3, num_heads=1)
    run_delta(fm, ["q", "k", "v"], B=1, T=12, cu_seqlens=[0, 5, 5, 12], with_state=True, d_final=True, scale=0.6)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 0], ids=["chunk-1", "chunk-7", "chunk-64", "automatic"])
def test_delta_rule_every_chunk_size_matches_the_twin(chunk_size):
    """The chunked (WY) backward for chunks of 1 row, a ragged 7, one chunk, and the automatic 16."""
    fm = slay.FeatureMap(kind="identity", head_dim=3, num_heads=1)
    run_delta(fm, ["q", "k", "v"], B=1, T=40, Hq=2, chunk_size=chunk_size, qk_l2norm=True, d_final=True,
              with_state=True, rtol=5e-5)


def test_delta_rule_twin_agrees_with_the_library():
    fm = slay.FeatureMap(kind="identity", head_dim=4, num_heads=2)
    inputs, _ = delta_inputs(fm, B=1, T=11, Hq=4, gates=True)
    args = {name: inputs[name] for name in ("beta", "log_decay", "query_gate_logits", "key_gate_logits")}
    y = slay.linear_attention(inputs["q"], inputs["k"], inputs["v"], fm, normalize=False, update="delta",
                              qk_l2norm=True, **args)
    expected = forward64(fm, inputs["q"], inputs["k"], inputs["v"], normalize=False, update="delta", qk_l2norm=True,
                         **args)[0]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def gdn_call(fm, q, k, v, dout, beta, g, **extra):
    return slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, update="delta", beta=beta, log_decay=g,
                                          qk_l2norm=True, **extra)


def test_delta_rule_chained_calls_equal_one_call():
    """Backward of (first half → final state → second half) == backward of the whole sequence."""
    fm = slay.FeatureMap(kind="identity", head_dim=4, num_heads=2)
    inputs, dout = delta_inputs(fm, B=2, T=12, Hq=2, dv=3)
    q, k, v, beta, g = (inputs[n] for n in ("q", "k", "v", "beta", "log_decay"))
    whole = gdn_call(fm, q, k, v, dout, beta, g, chunk_size=4)
    h = 5
    state = slay.State(fm, num_seqs=2, value_dim=3)
    state.prefill(q[:, :h], k[:, :h], v[:, :h], normalize=False, update="delta", beta=beta[:, :h], log_decay=g[:, :h],
                  qk_l2norm=True)
    S1 = np.stack([state.read(slot)[0] for slot in range(2)])
    z1 = np.zeros(S1.shape[:3], np.float32)
    second = gdn_call(fm, q[:, h:], k[:, h:], v[:, h:], dout[:, h:], beta[:, h:], g[:, h:], initial_state=(S1, z1),
                      chunk_size=4)
    first = gdn_call(fm, q[:, :h], k[:, :h], v[:, :h], dout[:, :h], beta[:, :h], g[:, :h], chunk_size=4,
                     d_final_state=(second["initial_state"][0], None))
    for name in ("q", "k", "v", "beta", "log_decay"):
        joined = np.concatenate([first[name], second[name]], axis=1)
        np.testing.assert_allclose(joined, whole[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_delta_rule_thread_counts_are_bitwise_identical():
    fm = slay.FeatureMap(kind="identity", head_dim=4, num_heads=3)
    inputs, dout = delta_inputs(fm, B=2, T=40, Hq=6, dv=5, with_state=True)
    q, k, v, beta, g = (inputs[n] for n in ("q", "k", "v", "beta", "log_decay"))
    one = gdn_call(fm, q, k, v, dout, beta, g, n_threads=1, initial_state=inputs["initial_state"])
    two = gdn_call(fm, q, k, v, dout, beta, g, n_threads=2, initial_state=inputs["initial_state"])
    assert sorted(one) == sorted(two) == sorted(["q", "k", "v", "beta", "log_decay", "initial_state"])
    for name in ("q", "k", "v", "beta", "log_decay"):
        assert np.array_equal(one[name], two[name]), name
    assert np.array_equal(one["initial_state"][0], two["initial_state"][0])


def test_delta_rule_long_sequence_stays_finite_with_beta_up_to_two():
    fm = slay.FeatureMap(kind="identity", head_dim=8, num_heads=1)
    T = 3000
    q = RNG.standard_normal((1, T, 1, 8)).astype(np.float32)
    k = RNG.standard_normal((1, T, 1, 8)).astype(np.float32)
    v = RNG.standard_normal((1, T, 1, 4)).astype(np.float32)
    dout = RNG.standard_normal((1, T, 1, 4)).astype(np.float32)
    beta = RNG.uniform(0, 2, (1, T, 1)).astype(np.float32)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, update="delta", beta=beta,
                                           qk_l2norm=True)
    for name in ("q", "k", "v", "beta"):
        assert np.all(np.isfinite(grads[name])), name


def test_delta_rule_refusals_and_validation():
    fm = slay.FeatureMap(kind="identity", head_dim=4)
    inputs, dout = delta_inputs(fm, B=1, T=6, Hq=1)
    q, k, v, beta, g = (inputs[n] for n in ("q", "k", "v", "beta", "log_decay"))
    with pytest.raises(slay.SlayRuntimeError, match="causal"):
        slay.linear_attention_backward(q, k, v, fm, dout, causal=False, normalize=False, update="delta", beta=beta)
    with pytest.raises(slay.SlayError, match="unnormalised"):
        slay.linear_attention_backward(q, k, v, fm, dout, normalize=True, update="delta", beta=beta)
    with pytest.raises(slay.SlayValueError, match="beta"):
        slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, update="delta", beta=2.5 + beta)
    with pytest.raises(slay.SlayValueError, match="log_decay"):
        slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, update="delta", log_decay=-g)
    from slay._lib import lib, Error, AttentionBackwardParams, AttentionOptions
    from slay._tensor import tensor_struct

    def call(beta_option, size=None, **fields):
        params = AttentionBackwardParams()
        lib.slay_attention_backward_params_init(ctypes.byref(params))
        if size is not None:
            params.struct_size = size
        keep = []
        for name, value in fields.items():
            t = tensor_struct(value)
            keep.append((value, t))
            setattr(params, name, ctypes.addressof(t))
        options = AttentionOptions()
        lib.slay_attention_options_init(ctypes.byref(options))
        options.update, options.normalize = 1, 0
        if beta_option is not None:
            bt = tensor_struct(beta_option)
            keep.append(bt)
            options.beta = ctypes.addressof(bt)
        err = Error()
        status = lib.slay_linear_attention_backward(fm.handle, ctypes.byref(tensor_struct(q)),
                                                    ctypes.byref(tensor_struct(k)), ctypes.byref(tensor_struct(v)),
                                                    ctypes.byref(tensor_struct(dout)), ctypes.byref(options),
                                                    ctypes.byref(params), ctypes.byref(err))
        return status, err.message.decode()

    d_beta = np.full(beta.shape, 7.0, np.float32)
    status, message = call(None, d_beta=d_beta)
    assert status == -1 and "options.beta" in message and np.all(d_beta == 7)
    status, message = call(beta, d_beta=np.zeros((1, 6, 2), np.float32))
    assert status == -2 and "d_beta" in message
    status, message = call(beta, d_beta=beta)
    assert status == -3 and "overlaps" in message
    assert call(beta, d_beta=d_beta)[0] == 0 and not np.all(d_beta == 7)
    # A caller built against the header before d_beta passes the smaller struct: still accepted.
    old_size = AttentionBackwardParams.d_beta.offset
    dq = np.zeros(q.shape, np.float32)
    assert call(beta, size=old_size, dq=dq)[0] == 0 and np.any(dq)
    assert call(beta, size=old_size + 4)[0] == -1


def test_qk_l2norm_additive_forms_match_the_twin():
    """qk_l2norm on the additive and gated forms (normalised and not), through φ / sqrt(Σφ² + 1e-6)."""
    from test_gradients import run
    fm = slay.FeatureMap(kind="elu+1", head_dim=3, num_heads=2)
    for settings in ({"normalize": False, "qk_l2norm": True},
                     {"qk_l2norm": True, "log_decay": True, "key_gate_logits": True},
                     {"qk_l2norm": True, "causal": False}):
        names = ["q", "k", "v"] + [n for n in ("log_decay", "key_gate_logits") if settings.get(n)]
        run(fm, dict(settings), names, Hq=4, T=7, with_state=settings.get("causal", True), d_final=True)


def test_qk_l2norm_gradient_at_a_zero_row_is_the_forwards():
    """‖x‖ = sqrt(Σ x² + 1e-6) > 0: at φ = 0 the normalisation is x / 1e-3, smooth, so the
    gradient there is finite and equals the twin's central differences."""
    fm = slay.FeatureMap(kind="identity", head_dim=3, num_heads=1)
    q = RNG.standard_normal((1, 5, 1, 3)).astype(np.float32) * 1e-4
    k = RNG.standard_normal((1, 5, 1, 3)).astype(np.float32)
    q[0, 2] = 0
    k[0, 3] = 0
    v = RNG.standard_normal((1, 5, 1, 2)).astype(np.float32)
    dout = RNG.standard_normal((1, 5, 1, 2)).astype(np.float32)
    grads = slay.linear_attention_backward(q, k, v, fm, dout, normalize=False, qk_l2norm=True)
    inputs = {"q": q, "k": k, "v": v, "params": {}}
    check_directions(fm, inputs, grads, ["q", "k", "v"], dout, None, rtol=1e-4, normalize=False, qk_l2norm=True)
    assert np.all(np.isfinite(grads["q"])) and np.any(grads["q"][0, 2])
