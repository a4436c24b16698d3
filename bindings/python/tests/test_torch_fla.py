"""slay.torch.fla against flash-linear-attention's recurrences written out here as float64 token
loops (fla's naive.py forms): outputs and final states, initial states, cu_seqlens, reverse,
state_v_first, fla's argument names, order, defaults and its (o, final_state) return."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from slay.torch import fla

torch.manual_seed(0)
B, T, H, K, V = 2, 21, 3, 8, 5


def recurrence(q, k, v, scale=None, h0=None, decay=None, normalize=False, z0=None):
    """fla's recurrence in float64: S_t = decay_t ⊙ S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ(scale q_t),
    decay_t [B, H, K] (None: 1); normalize divides by (scale q_t)ᵀ(z0 + Σ k) + 1e−10.
    Returns (o, S_T, z_T)."""
    q, k, v = (x.double() for x in (q, k, v))
    scale = K ** -0.5 if scale is None else scale
    S = torch.zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3], dtype=torch.float64)
    if h0 is not None:
        S = S + h0.double()
    z = torch.zeros(q.shape[0], q.shape[2], q.shape[3], dtype=torch.float64) if z0 is None else z0.double().clone()
    o = torch.zeros(*q.shape[:3], v.shape[3], dtype=torch.float64)
    for t in range(q.shape[1]):
        if decay is not None:
            S = S * decay[:, t].double().unsqueeze(-1)
        S = S + torch.einsum("bhk,bhv->bhkv", k[:, t], v[:, t])
        z = z + k[:, t]
        o[:, t] = torch.einsum("bhkv,bhk->bhv", S, q[:, t] * scale)
        if normalize:
            o[:, t] = o[:, t] / ((q[:, t] * scale * z).sum(-1, keepdim=True) + 1e-10)
    return o, S, z


def data(positive=False):
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    if positive:
        q, k = q.abs() + 0.1, k.abs() + 0.1
    return q, k, v


def close(a, b, tol=2e-4):
    torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol)


def test_signatures_are_flas():
    """Argument names, order and defaults as in fla (fla's **kwargs options as keyword-only)."""
    expected = {
        "chunk_linear_attn": "(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True, "
                             "cu_seqlens=None)",
        "fused_recurrent_linear_attn": "(q, k, v, scale=None, initial_state=None, output_final_state=False, "
                                       "reverse=False, normalize=False, cu_seqlens=None)",
        "chunk_retention": "(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, *, "
                           "chunk_size=None)",
        "chunk_simple_gla": "(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False, "
                            "state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None, *, chunk_size=None)",
        "chunk_gla": "(q, k, v, g, scale=None, initial_state=None, output_final_state=False, state_v_first=False, "
                     "cu_seqlens=None, cu_seqlens_cpu=None)",
        "fused_recurrent_gla": "(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False, "
                               "reverse=False, state_v_first=False, cu_seqlens=None)",
        "chunk_gated_delta_rule": "(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, "
                                  "use_qk_l2norm_in_kernel=False, use_beta_sigmoid_in_kernel=False, "
                                  "allow_neg_eigval=False, state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None, "
                                  "chunk_indices=None, cp_context=None, *, chunk_size=64, use_gate_in_kernel=False, "
                                  "A_log=None, dt_bias=None)",
        "fused_recurrent_gated_delta_rule": "(q, k, v, g=None, gk=None, gv=None, beta=None, scale=None, "
                                            "initial_state=None, output_final_state=False, "
                                            "use_qk_l2norm_in_kernel=False, use_gate_in_kernel=False, A_log=None, "
                                            "dt_bias=None, use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False, "
                                            "state_v_first=False, cu_seqlens=None)",
    }
    for name, signature in expected.items():
        assert str(inspect.signature(getattr(fla, name))) == signature, name


@pytest.mark.parametrize("name", ["chunk_linear_attn", "fused_recurrent_linear_attn"])
def test_linear_attn_unnormalised(name):
    q, k, v = data()
    h0 = torch.randn(B, H, K, V)
    o, S = getattr(fla, name)(q, k, v, initial_state=h0, output_final_state=True, normalize=False)
    ro, rS, _ = recurrence(q, k, v, h0=h0)
    close(o, ro)
    close(S, rS)
    o, S = getattr(fla, name)(q, k, v, scale=0.3, normalize=False)
    assert S is None
    close(o, recurrence(q, k, v, scale=0.3)[0])


def test_chunk_linear_attn_normalised_returns_kv_and_z_states():
    """normalize=True (chunk default): (o, (S, z_state [N, 1, H, K])); z chains through a tuple."""
    q, k, v = data(positive=True)
    o, (S, z) = fla.chunk_linear_attn(q, k, v, output_final_state=True)
    ro, rS, rz = recurrence(q, k, v, normalize=True)
    close(o, ro)
    close(S, rS)
    assert z.shape == (B, 1, H, K)
    close(z[:, 0], rz)
    first, state = fla.chunk_linear_attn(q[:, :8], k[:, :8], v[:, :8], output_final_state=True)
    second, _ = fla.chunk_linear_attn(q[:, 8:], k[:, 8:], v[:, 8:], initial_state=state, output_final_state=True)
    close(torch.cat([first, second], 1), ro)
    _, (none, z_only) = fla.chunk_linear_attn(q, k, v)
    assert none is None and z_only.shape == (B, 1, H, K)


def test_retention_decay_per_head():
    q, k, v = data()
    h0 = torch.randn(B, H, K, V)
    o, S = fla.chunk_retention(q, k, v, initial_state=h0, output_final_state=True)
    gamma = torch.tensor([1 - 2.0 ** (-5 - h) for h in range(H)], dtype=torch.float64)
    decay = gamma.view(1, 1, H, 1).expand(B, T, H, K)
    ro, rS, _ = recurrence(q, k, v, h0=h0, decay=decay)
    close(o, ro)
    close(S, rS)


def test_simple_gla_per_head_gate_and_g_gamma():
    q, k, v = data()
    g = F.logsigmoid(torch.randn(B, T, H))
    g_gamma = torch.log(torch.tensor([0.9, 0.95, 0.99]))
    o, S = fla.chunk_simple_gla(q, k, v, g, output_final_state=True)
    ro, rS, _ = recurrence(q, k, v, decay=g.exp().unsqueeze(-1).expand(B, T, H, K))
    close(o, ro)
    close(S, rS)
    o, S = fla.chunk_simple_gla(q, k, v, g_gamma=g_gamma, output_final_state=True, state_v_first=True)
    ro, rS, _ = recurrence(q, k, v, decay=g_gamma.exp().view(1, 1, H, 1).expand(B, T, H, K))
    close(o, ro)
    close(S, rS.transpose(-1, -2))


@pytest.mark.parametrize("name", ["chunk_gla", "fused_recurrent_gla"])
def test_gla_per_channel_gate_initial_state_and_varlen(name):
    """GLA with g [B, T, H, K]; packed sequences (cu_seqlens) == separate calls, each from its own
    initial state; state_v_first transposes the states."""
    function = getattr(fla, name)
    q, k, v = data()
    g = F.logsigmoid(torch.randn(B, T, H, K))
    h0 = torch.randn(B, H, K, V)
    o, S = function(q, k, v, g, initial_state=h0, output_final_state=True)
    ro, rS, _ = recurrence(q, k, v, h0=h0, decay=g.exp())
    close(o, ro)
    close(S, rS)
    cu = torch.tensor([0, 5, 21], dtype=torch.long)
    packed = [x[:1] for x in (q, k, v, g)]
    o, S = function(*packed, initial_state=h0.transpose(-1, -2), output_final_state=True, cu_seqlens=cu,
                    state_v_first=True)
    for i, (a, b) in enumerate([(0, 5), (5, 21)]):
        ro, rS, _ = recurrence(*(x[:, a:b] for x in packed[:3]), h0=h0[i:i + 1], decay=packed[3][:, a:b].exp())
        close(o[:, a:b], ro)
        close(S[i:i + 1], rS.transpose(-1, -2))
    with pytest.raises(ValueError, match="batch size is expected to be 1"):
        function(q, k, v, g, cu_seqlens=cu)


@pytest.mark.parametrize("packed", [False, True])
def test_reverse_runs_time_backwards(packed):
    """fused_recurrent_* reverse=True: the recurrence from the last token to the first (each packed
    sequence on its own)."""
    q, k, v = data()
    gk = F.logsigmoid(torch.randn(B, T, H, K))
    cu = None
    if packed:
        q, k, v, gk = (x[:1] for x in (q, k, v, gk))
        cu = torch.tensor([0, 9, 21])
    h0 = torch.randn(2, H, K, V)
    o, S = fla.fused_recurrent_gla(q, k, v, gk, initial_state=h0[:q.shape[0]] if not packed else h0,
                                   output_final_state=True, reverse=True, cu_seqlens=cu)
    spans = [(0, T)] if not packed else [(0, 9), (9, 21)]
    for i, (a, b) in enumerate(spans):
        rows = slice(None) if not packed else slice(0, 1)
        flip = [x[rows, a:b].flip(1) for x in (q, k, v, gk)]
        start = h0[:q.shape[0]] if not packed else h0[i:i + 1]
        ro, rS, _ = recurrence(*flip[:3], h0=start, decay=flip[3].exp())
        close(o[:, a:b], ro.flip(1))
        close(S if not packed else S[i:i + 1], rS)
    o, _ = fla.fused_recurrent_linear_attn(q, k, v, reverse=True, cu_seqlens=cu)
    close(o[:, :spans[0][1]], recurrence(*(x[:, :spans[0][1]].flip(1) for x in (q, k, v)))[0].flip(1))


def test_value_gate_is_refused():
    q, k, v = data()
    with pytest.raises(NotImplementedError, match="gv"):
        fla.fused_recurrent_gla(q, k, v, gv=torch.zeros(B, T, H, V))


def test_bf16_like_fla():
    """bf16 in, bf16 out; the final state stays float32 (as fla keeps it)."""
    q, k, v = (x.bfloat16() for x in data())
    g = F.logsigmoid(torch.randn(B, T, H, K)).bfloat16()
    o, S = fla.chunk_gla(q, k, v, g, output_final_state=True)
    assert o.dtype == torch.bfloat16 and S.dtype == torch.float32
    ro, rS, _ = recurrence(q, k, v, decay=g.double().exp())
    close(o, ro, tol=3e-2)


def delta_recurrence(q, k, v, beta, g=None, scale=None, h0=None):
    """fla's naive_recurrent_gated_delta_rule in float64: S = exp(g_t) S; v' = β_t (v_t − Sᵀk_t);
    S += k_t v'ᵀ; o_t = Sᵀ(scale q_t). Returns (o, S_T)."""
    q, k, v, beta = (x.double() for x in (q, k, v, beta))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = torch.zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3], dtype=torch.float64)
    if h0 is not None:
        S = S + h0.double()
    o = torch.zeros(*v.shape, dtype=torch.float64)
    for t in range(q.shape[1]):
        if g is not None:
            S = S * g[:, t].double().exp()[..., None, None]
        update = (v[:, t] - (S * k[:, t, :, :, None]).sum(-2)) * beta[:, t, :, None]
        S = S + k[:, t, :, :, None] * update[:, :, None, :]
        o[:, t] = torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S)
    return o, S


@pytest.mark.parametrize("name", ["chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule"])
def test_gated_delta_rule(name):
    """Gated DeltaNet with L2-normalised q, k (in the kernel), an initial state and the final state;
    DeltaNet (no g) too."""
    function = getattr(fla, name)
    q, k, v = data()
    g, beta = F.logsigmoid(torch.randn(B, T, H)), torch.rand(B, T, H)
    h0 = torch.randn(B, H, K, V) * 0.1
    o, S = function(q, k, v, g=g, beta=beta, initial_state=h0, output_final_state=True, use_qk_l2norm_in_kernel=True)
    qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    ro, rS = delta_recurrence(qn, kn, v, beta, g, h0=h0)
    close(o, ro, 5e-4)
    close(S, rS, 5e-4)
    o, S = function(q, kn, v, g=None, beta=beta)
    assert S is None
    close(o, delta_recurrence(q, kn, v, beta)[0], 5e-4)


def test_gated_delta_rule_varlen_gva_and_gates_in_kernel():
    """Packed sequences, grouped value attention (HV = 2 H), beta as logits and g from A_log / dt_bias."""
    Hv = 2 * H
    q, k = torch.randn(1, T, H, K), F.normalize(torch.randn(1, T, H, K), dim=-1)
    v = torch.randn(1, T, Hv, V)
    raw_g, beta_logits = torch.randn(1, T, Hv), torch.randn(1, T, Hv)
    A_log, dt_bias = torch.randn(Hv) * 0.3, torch.randn(Hv) * 0.3
    cu = torch.tensor([0, 8, T])
    o, S = fla.chunk_gated_delta_rule(q, k, v, raw_g, beta_logits, output_final_state=True, cu_seqlens=cu,
                                      use_beta_sigmoid_in_kernel=True, allow_neg_eigval=True,
                                      use_gate_in_kernel=True, A_log=A_log, dt_bias=dt_bias)
    g = -A_log.exp() * F.softplus(raw_g + dt_bias)
    beta = 2 * beta_logits.sigmoid()
    qr, kr = q.repeat_interleave(2, 2), k.repeat_interleave(2, 2)
    for i, (a, b) in enumerate([(0, 8), (8, T)]):
        ro, rS = delta_recurrence(qr[:, a:b], kr[:, a:b], v[:, a:b], beta[:, a:b], g[:, a:b])
        close(o[:, a:b], ro, 5e-4)
        close(S[i:i + 1], rS, 5e-4)
    with pytest.raises(NotImplementedError, match="per-channel"):
        fla.fused_recurrent_gated_delta_rule(q, k, v, gk=torch.zeros(1, T, Hv, K), beta=beta)
