"""Gradients of slay.torch (through slay.linear_attention_backward) against torch autograd of
float64 references written in torch: q, k, v, GQA, initial and final states, GLA log_decay, SLA
gate logits and weights, learnable SLAY map parameters, and the fla layer."""
import pytest
import torch
import torch.nn.functional as F

import slay
import slay.torch as st
from slay.torch._bench import TorchChunkedSlay

pytestmark = pytest.mark.skipif(not st.backward_available(), reason="needs slay.linear_attention_backward")
torch.manual_seed(0)


def leaves(*tensors):
    return [t.detach().clone().double().requires_grad_() for t in tensors]


def reference(q, k, v, phi, S0=None, z0=None, log_decay=None, qg=None, kg=None, normalize=True, delta=1e-6):
    """Causal linear attention as a float64 token loop: S_t = Diag(exp(log_decay_t)) S_{t−1} +
    φ(k_t) v_tᵀ, z alike; y_t = φ(q_t)ᵀS_t (/ (φ(q_t)ᵀz_t + δ)); SLA gates scale φ(q), φ(k) by the
    softmax over heads of their logits; GQA by repeating key heads. Returns (y, S_T, z_T)."""
    B, T, Hq, _ = q.shape
    Hk = k.shape[2]
    fq, fk = phi(q), phi(k)
    if qg is not None:
        fq = fq * torch.softmax(qg, -1).unsqueeze(-1)
    if kg is not None:
        fk = fk * torch.softmax(kg, -1).unsqueeze(-1)
    m, dv = fk.shape[-1], v.shape[-1]
    S = torch.zeros(B, Hk, m, dv, dtype=torch.float64) if S0 is None else S0
    z = torch.zeros(B, Hk, m, dtype=torch.float64) if z0 is None else z0
    ys = []
    for t in range(T):
        if log_decay is not None:
            alpha = log_decay[:, t].exp()
            S, z = S * alpha.unsqueeze(-1), z * alpha
        S = S + fk[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        z = z + fk[:, t]
        Sq, zq = S.repeat_interleave(Hq // Hk, 1), z.repeat_interleave(Hq // Hk, 1)
        y = torch.einsum("bhm,bhmv->bhv", fq[:, t], Sq)
        if normalize:
            y = y / ((fq[:, t] * zq).sum(-1, keepdim=True) + delta)
        ys.append(y)
    return torch.stack(ys, 1), S, z


def elu1(x):
    return F.elu(x) + 1


def check(ours, theirs, tol=2e-4):
    for a, b in zip(ours, theirs):
        assert a.grad is not None, "no gradient"
        torch.testing.assert_close(a.grad.double(), b.grad, rtol=tol, atol=tol)


def test_elu_gqa_with_initial_and_final_state():
    """dq, dk, dv (GQA: summed over the query heads of a key head), dS0, dz0 and the gradient that
    the final state's (S, z) carry back, all equal the float64 reference's."""
    fm = slay.FeatureMap("elu+1", head_dim=8, num_heads=2)
    q, k, v = torch.randn(2, 13, 4, 8), torch.randn(2, 13, 2, 8), torch.randn(2, 13, 2, 5)
    S0, z0 = torch.rand(2, 2, 8, 5), torch.rand(2, 2, 8) + 1
    wy, wS, wz = torch.randn(2, 13, 4, 5), torch.randn(2, 2, 8, 5), torch.randn(2, 2, 8)
    ours = [t.clone().requires_grad_() for t in (q, k, v, S0, z0)]
    y, state = st.linear_attention(*ours[:3], fm, initial_state=(ours[3], ours[4]), output_final_state=True)
    S, z = state.tensors
    ((y * wy).sum() + (S * wS).sum() + (z * wz).sum()).backward()
    theirs = leaves(q, k, v, S0, z0)
    ry, rS, rz = reference(*theirs[:3], elu1, S0=theirs[3], z0=theirs[4])
    ((ry * wy.double()).sum() + (rS * wS.double()).sum() + (rz * wz.double()).sum()).backward()
    check(ours, theirs)


def test_gla_decay_and_gates_from_weights():
    """Identity map, unnormalised: d log_decay, the gate logits' gradients through gate_input @ W
    (so the weights and the input learn), as the reference's."""
    fm = slay.FeatureMap("identity", head_dim=6, num_heads=3)
    q, k, v = torch.randn(1, 11, 3, 6), torch.randn(1, 11, 3, 6), torch.randn(1, 11, 3, 4)
    log_decay = -torch.rand(1, 11, 3, 6) * 0.3
    x, wq, wk = torch.randn(1, 11, 5), torch.randn(5, 3), torch.randn(5, 3)
    ours = [t.clone().requires_grad_() for t in (q, k, v, log_decay, x, wq, wk)]
    y = st.linear_attention(*ours[:3], fm, normalize=False, log_decay=ours[3], gate_input=ours[4],
                            query_gate_weights=ours[5], key_gate_weights=ours[6])
    w = torch.randn_like(y)
    (y * w).sum().backward()
    theirs = leaves(q, k, v, log_decay, x, wq, wk)
    ry, _, _ = reference(*theirs[:3], lambda t: t, log_decay=theirs[3], qg=theirs[4] @ theirs[5],
                         kg=theirs[4] @ theirs[6], normalize=False)
    (ry * w.double()).sum().backward()
    check(ours, theirs)


def test_learnable_slay_map_parameters():
    """SlayAttention(learnable=True): the anchors and ω get the gradients torch autograd gives the
    same chunked SLAY written in torch, and q, k, v theirs."""
    module = st.SlayAttention(head_dim=8, num_heads=2, learnable=True, poly_dim=4, prf_dim=4, seed=2)
    q, k, v = torch.randn(1, 40, 2, 8), torch.randn(1, 40, 2, 8), torch.randn(1, 40, 2, 3)
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    y = module(*ours, chunk_size=16)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    twin = TorchChunkedSlay(module.feature_map, 16)
    twin.anchors = twin.anchors.double().requires_grad_()
    twin.omega = twin.omega.double().requires_grad_()
    twin.s, twin.w = twin.s.double(), twin.w.double()
    theirs = leaves(q, k, v)
    (twin(*theirs) * w.double()).sum().backward()
    check(ours, theirs, tol=1e-3)
    torch.testing.assert_close(module.anchors.grad.double(), twin.anchors.grad, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(module.omega.grad.double(), twin.omega.grad, rtol=1e-3, atol=1e-3)


def test_fla_chunk_gla_gradients():
    """slay.torch.fla.chunk_gla: dq, dk, dv, dg, dh0 and the final state's gradient as fla's
    recurrence in float64 autograd gives them."""
    from slay.torch import fla
    B, T, H, K, V = 1, 17, 2, 4, 3
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    g, h0 = F.logsigmoid(torch.randn(B, T, H, K)), torch.randn(B, H, K, V)
    ours = [t.clone().requires_grad_() for t in (q, k, v, g, h0)]
    o, ht = fla.chunk_gla(*ours[:4], initial_state=ours[4], output_final_state=True)
    wo, wh = torch.randn_like(o), torch.randn_like(ht)
    ((o * wo).sum() + (ht * wh).sum()).backward()
    theirs = leaves(q, k, v, g, h0)
    ry, rS, _ = reference(theirs[0] * K ** -0.5, theirs[1], theirs[2], lambda t: t, S0=theirs[4],
                          log_decay=theirs[3], normalize=False)
    ((ry * wo.double()).sum() + (rS * wh.double()).sum()).backward()
    check(ours, theirs)


def test_half_precision_gradients_flow_in_the_input_dtype():
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2)
    q = torch.randn(1, 9, 2, 8, dtype=torch.bfloat16, requires_grad=True)
    k, v = torch.randn(1, 9, 2, 8, dtype=torch.bfloat16), torch.randn(1, 9, 2, 8, dtype=torch.bfloat16)
    st.linear_attention(q, k, v, fm).float().sum().backward()
    assert q.grad.dtype == torch.bfloat16 and torch.isfinite(q.grad.float()).all()


def delta_reference(q, k, v, beta, g, phi, S0=None, qk_l2norm=False):
    """The delta rule as a float64 token loop (DeltaNet / Gated DeltaNet):
    S_t = e^{g_t} (I − β_t k̂_t k̂_tᵀ) S_{t−1} + β_t k̂_t v_tᵀ, o_t = S_tᵀ q̂_t, with q̂, k̂ = φ(q), φ(k)
    (L2-normalised first, ‖x‖ = sqrt(Σ x² + 1e-6), with qk_l2norm); GQA by repeating key heads.
    Returns (o, S_T)."""
    B, T, Hq, _ = q.shape
    Hk = k.shape[2]
    fq, fk = phi(q), phi(k)
    if qk_l2norm:
        fq = fq / (fq.square().sum(-1, keepdim=True) + 1e-6).sqrt()
        fk = fk / (fk.square().sum(-1, keepdim=True) + 1e-6).sqrt()
    S = torch.zeros(B, Hk, fk.shape[-1], v.shape[-1], dtype=torch.float64) if S0 is None else S0
    outputs = []
    for t in range(T):
        kt, b = fk[:, t], beta[:, t].unsqueeze(-1).unsqueeze(-1)
        alpha = torch.ones_like(b) if g is None else g[:, t].exp().unsqueeze(-1).unsqueeze(-1)
        S = alpha * (S - b * kt.unsqueeze(-1) * (kt.unsqueeze(-2) @ S)) + b * kt.unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhm,bhmv->bhv", fq[:, t], S.repeat_interleave(Hq // Hk, 1)))
    return torch.stack(outputs, 1), S


@pytest.mark.parametrize("qk_l2norm", [False, True])
def test_delta_rule_gradients(qk_l2norm):
    """update="delta": dq, dk, dv, d beta, d log_decay (g), the initial state's gradient and the one
    the final state carries back, with GQA, equal torch autograd of the float64 token loop."""
    if not st._op.delta_backward_available():
        pytest.skip("this build's backward has no delta rule")
    fm = slay.FeatureMap("identity", head_dim=6, num_heads=2)
    q, k, v = torch.randn(2, 21, 4, 6), torch.randn(2, 21, 2, 6), torch.randn(2, 21, 2, 5)
    if not qk_l2norm:
        k = F.normalize(k, dim=-1)    # β‖k‖² ≤ 2 keeps the update a contraction
    beta, g = torch.rand(2, 21, 2) * 0.9 + 0.05, -torch.rand(2, 21, 2) * 0.3
    S0 = torch.randn(2, 2, 6, 5) * 0.3
    wy, wS = torch.randn(2, 21, 4, 5), torch.randn(2, 2, 6, 5)
    ours = [t.clone().requires_grad_() for t in (q, k, v, beta, g, S0)]
    y, state = st.linear_attention(*ours[:3], fm, normalize=False, update="delta", beta=ours[3], log_decay=ours[4],
                                   initial_state=(ours[5], torch.zeros(2, 2, 6)), output_final_state=True,
                                   qk_l2norm=qk_l2norm)
    ((y * wy).sum() + (state.tensors[0] * wS).sum()).backward()
    theirs = leaves(q, k, v, beta, g, S0)
    ry, rS = delta_reference(*theirs[:5], lambda t: t, S0=theirs[5], qk_l2norm=qk_l2norm)
    ((ry * wy.double()).sum() + (rS * wS.double()).sum()).backward()
    check(ours, theirs)


@pytest.mark.parametrize("entry", ["chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule"])
def test_fla_gated_delta_rule_gradients(entry):
    """fla's gated delta rule entry points backward: dq, dk, dv, dg, d beta, dh0 and the final
    state's gradient, with in-kernel L2 norm and beta logits, as fla's recurrence in float64
    autograd gives them."""
    if not st._op.delta_backward_available():
        pytest.skip("this build's backward has no delta rule")
    from slay.torch import fla
    B, T, H, K, V = 1, 19, 2, 5, 3
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    g, beta_logits, h0 = F.logsigmoid(torch.randn(B, T, H)), torch.randn(B, T, H), torch.randn(B, H, K, V) * 0.3
    ours = [t.clone().requires_grad_() for t in (q, k, v, g, beta_logits, h0)]
    o, ht = getattr(fla, entry)(*ours[:3], g=ours[3], beta=ours[4], initial_state=ours[5], output_final_state=True,
                                use_qk_l2norm_in_kernel=True, use_beta_sigmoid_in_kernel=True)
    wo, wh = torch.randn_like(o), torch.randn_like(ht)
    ((o * wo).sum() + (ht * wh).sum()).backward()
    theirs = leaves(q, k, v, g, beta_logits, h0)
    l2 = lambda t: t * torch.rsqrt(t.square().sum(-1, keepdim=True) + 1e-6)   # noqa: E731 (fla's l2norm)
    ry, rS = delta_reference(l2(theirs[0]) * K ** -0.5, l2(theirs[1]), theirs[2], theirs[4].sigmoid(), theirs[3],
                             lambda t: t, S0=theirs[5])
    ((ry * wo.double()).sum() + (rS * wh.double()).sum()).backward()
    check(ours, theirs)
