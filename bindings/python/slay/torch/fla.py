"""flash-linear-attention's entry points on libslay: the same names, argument order, defaults and
return convention (always (o, final_state)), so fla code runs on the CPU by changing one import:

    from fla.ops.gla import chunk_gla      →      from slay.torch.fla import chunk_gla

Identity features, exactly fla's recurrences (S is [K, V] per head, α_t = exp(g_t)):
  linear_attn   S_t = S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ (scale·q_t)  (normalize: ÷ (scale·q_t)ᵀ Σ k + 1e−10)
  retention     S_t = γ_h S_{t−1} + k_t v_tᵀ, γ_h = 1 − 2^(−5−h)
  simple_gla    S_t = exp(g_t) S_{t−1} + k_t v_tᵀ, g [B, T, H] per head (and/or g_gamma [H])
  gla           S_t = Diag(exp(g_t)) S_{t−1} + k_t v_tᵀ, g [B, T, H, K]
Inputs are [B, T, H, K] / [B, T, H, V] CPU tensors (B = 1 with cu_seqlens), states [N, H, K, V]
float32 ([N, H, V, K] with state_v_first). Gradients flow through slay.torch.linear_attention.
Unlike fla, slay.linear_attention (numpy) returns y alone unless output_final_state=True; this
module keeps fla's convention instead.
"""
import math

import torch
import torch.nn.functional as F

from ..feature_map import FeatureMap
from .attention import run
from ._errors import value_error, unsupported, not_implemented

_IDENTITY_MAPS = {}


def _identity(head_dim, num_heads):
    key = (int(head_dim), int(num_heads))
    if key not in _IDENTITY_MAPS:
        _IDENTITY_MAPS[key] = FeatureMap("identity", head_dim=key[0], num_heads=key[1])
    return _IDENTITY_MAPS[key]


def _check_varlen(q, initial_state, cu_seqlens):
    """fla's checks of packed batches, with its messages."""
    if cu_seqlens is None:
        return
    if q.shape[0] != 1:
        raise value_error(f"The batch size is expected to be 1 rather than {q.shape[0]} when using `cu_seqlens`. "
                         f"Please flatten variable-length inputs before processing.")
    if initial_state is not None and initial_state.shape[0] != len(cu_seqlens) - 1:
        raise value_error(f"The number of initial states is expected to be equal to the number of input sequences, "
                         f"i.e., {len(cu_seqlens) - 1} rather than {initial_state.shape[0]}.")


def _offsets(cu_seqlens):
    if cu_seqlens is None:
        return None
    return cu_seqlens.to("cpu", torch.int64) if isinstance(cu_seqlens, torch.Tensor) else torch.tensor(cu_seqlens)


def _reversed(tensors, cu_seqlens, initial):
    """The same problem with time running backwards: every sequence flipped in place (packed
    sequences change order, so do their initial states)."""
    flipped = [None if t is None else t.flip(1) for t in tensors]
    if cu_seqlens is None:
        return flipped, None, initial
    total = cu_seqlens[-1]
    offsets = (total - cu_seqlens).flip(0)
    return flipped, offsets, None if initial is None else initial.flip(0)


def _recurrence(q, k, v, scale, initial_state, output_final_state, cu_seqlens, reverse=False, state_v_first=False,
                log_decay=None, decay=None, normalize=False, z_initial=None):
    """(o, S_T, z_T) of the identity-feature recurrence; S in fla's layout."""
    if scale is None:
        scale = k.shape[-1] ** -0.5
    cu_seqlens = _offsets(cu_seqlens)
    S0 = initial_state
    if S0 is not None and state_v_first:
        S0 = S0.transpose(-1, -2)
    if reverse:
        (q, k, v, log_decay), cu_seqlens, S0 = _reversed((q, k, v, log_decay), cu_seqlens, S0)
        if z_initial is not None and cu_seqlens is not None:
            z_initial = z_initial.flip(0)
    initial = None
    if S0 is not None or z_initial is not None:
        count = (q.shape[0] if cu_seqlens is None else len(cu_seqlens) - 1)
        H, K, V = k.shape[2], k.shape[3], v.shape[3]
        if S0 is None:
            S0 = q.new_zeros((count, H, K, V), dtype=torch.float32)
        z0 = torch.zeros(S0.shape[:3], dtype=torch.float32) if z_initial is None else z_initial
        initial = (S0, z0)
    fm = _identity(k.shape[-1], k.shape[2])
    o, S, z, _ = run(q * scale, k, v, fm, causal=True, delta=1e-10, initial_state=initial,
                     output_final_state=output_final_state or normalize, cu_seqlens=cu_seqlens,
                     normalize=normalize, decay=decay, log_decay=log_decay)
    o = o if o.dtype == v.dtype else o.to(v.dtype)
    if reverse:
        o = o.flip(1)
        if cu_seqlens is not None and S.numel():
            S, z = S.flip(0), z.flip(0)
    if state_v_first and S.numel():
        S = S.transpose(-1, -2)
    return o, (S if output_final_state else None), z


def _normalized(o, S, z, output_final_state):
    """fla's normalised linear attention result: (o, (kv_state or None, z_state [N, 1, H, K]))."""
    return o, (S if output_final_state else None, z.unsqueeze(1))


def _split_state(initial_state, normalize):
    if normalize and isinstance(initial_state, tuple):
        kv_init, z_init = initial_state
        return kv_init, (None if z_init is None else z_init.squeeze(1).float())
    return initial_state, None


def chunk_linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True,
                      cu_seqlens=None):
    """fla.ops.linear_attn.chunk_linear_attn: S_t = S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ(scale·q_t);
    normalize=True divides by (scale·q_t)ᵀ(z_0 + Σ k) + 1e−10 and returns (o, (S or None, z_state
    [N, 1, H, K])); initial_state is S [N, H, K, V] or, with normalize, a (S, z_state) tuple."""
    kv_init, z_init = _split_state(initial_state, normalize)
    _check_varlen(q, kv_init, cu_seqlens)
    o, S, z = _recurrence(q, k, v, scale, kv_init, output_final_state, cu_seqlens, normalize=normalize,
                          z_initial=z_init)
    return _normalized(o, S, z, output_final_state) if normalize else (o, S)


def fused_recurrent_linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False, reverse=False,
                                normalize=False, cu_seqlens=None):
    """fla.ops.linear_attn.fused_recurrent_linear_attn: chunk_linear_attn's recurrence (normalize
    defaults to False here, as in fla), also in reverse time order (reverse=True)."""
    kv_init, z_init = _split_state(initial_state, normalize)
    _check_varlen(q, kv_init, cu_seqlens)
    o, S, z = _recurrence(q, k, v, scale, kv_init, output_final_state, cu_seqlens, reverse=reverse,
                          normalize=normalize, z_initial=z_init)
    return _normalized(o, S, z, output_final_state) if normalize else (o, S)


def chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, *,
                    chunk_size=None):
    """fla.ops.retention.chunk_retention: S_t = γ_h S_{t−1} + k_t v_tᵀ with γ_h = 1 − 2^(−5−h) for
    head h, o_t = S_tᵀ(scale·q_t). chunk_size (fla's keyword) only changes libslay's rounding."""
    _check_varlen(q, initial_state, cu_seqlens)
    gammas = [1.0 - 2.0 ** (-5.0 - h) for h in range(q.shape[2])]
    o, S, _ = _recurrence(q, k, v, scale, initial_state, output_final_state, cu_seqlens, decay=gammas)
    return o, S


def _head_log_decay(g, K):
    """Per-head log decay [B, T, H] as the per-channel [B, T, H, K] libslay reads (a stride-0 view)."""
    return g.float().unsqueeze(-1).expand(*g.shape, K)


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                     state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None, *, chunk_size=None):
    """fla.ops.simple_gla.chunk_simple_gla: S_t = exp(g_t) S_{t−1} + k_t v_tᵀ with a per-head
    forget gate g [B, T, H] (log space) and/or a data-independent log decay g_gamma [H].
    cu_seqlens_cpu (a host copy of cu_seqlens) is used when given; chunk_size only changes
    rounding. state_v_first: states are [N, H, V, K]."""
    if chunk_size is not None and chunk_size != 2 ** (chunk_size.bit_length() - 1):
        raise value_error(f"`chunk_size` must be a power of 2, got {chunk_size}.")
    _check_varlen(q, initial_state, cu_seqlens)
    log_decay = None if g is None else _head_log_decay(g, k.shape[-1])
    decay = None
    if g_gamma is not None:
        if isinstance(g_gamma, torch.Tensor) and g_gamma.requires_grad and torch.is_grad_enabled():
            raise unsupported("chunk_simple_gla: libslay gives no gradient for g_gamma (a data-independent decay); "
                               "pass it without requires_grad, or use g")
        decay = [math.exp(float(x)) for x in torch.as_tensor(g_gamma).detach().reshape(-1)]
    o, S, _ = _recurrence(q, k, v, scale, initial_state, output_final_state,
                          cu_seqlens if cu_seqlens_cpu is None else cu_seqlens_cpu,
                          state_v_first=state_v_first, log_decay=log_decay, decay=decay)
    return o, S


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, state_v_first=False,
              cu_seqlens=None, cu_seqlens_cpu=None):
    """fla.ops.gla.chunk_gla: S_t = Diag(exp(g_t)) S_{t−1} + k_t v_tᵀ, g [B, T, H, K] (log space,
    ≤ 0), o_t = S_tᵀ(scale·q_t). state_v_first: states are [N, H, V, K]."""
    _check_varlen(q, initial_state, cu_seqlens)
    if not q.shape == k.shape == g.shape:
        raise value_error("q, k, g must have the same shape.")
    if v.shape[:3] != q.shape[:3]:
        raise value_error("v must be of shape (batch size, seq len, num of head, head dim).")
    o, S, _ = _recurrence(q, k, v, scale, initial_state, output_final_state,
                          cu_seqlens if cu_seqlens_cpu is None else cu_seqlens_cpu,
                          state_v_first=state_v_first, log_decay=g)
    return o, S


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, state_v_first=False, cu_seqlens=None):
    """fla.ops.gla.fused_recurrent_gla: chunk_gla's recurrence with the key-side gate gk
    [B, T, H, K] (None: no decay), also in reverse time order. The value-side gate gv (a decay per
    value channel) has no libslay form: it is refused with NotImplementedError."""
    if gv is not None:
        raise not_implemented("fused_recurrent_gla: libslay decays the key channels of the state (gk); a "
                                  "value-channel gate gv is not supported")
    _check_varlen(q, initial_state, cu_seqlens)
    o, S, _ = _recurrence(q, k, v, scale, initial_state, output_final_state, cu_seqlens, reverse=reverse,
                          state_v_first=state_v_first, log_decay=gk)
    return o, S


__all__ = ["chunk_linear_attn", "fused_recurrent_linear_attn", "chunk_retention", "chunk_simple_gla", "chunk_gla",
           "fused_recurrent_gla"]


def _l2norm(x):
    """fla's l2norm (use_qk_l2norm_in_kernel): x / sqrt(Σ x² + 1e−6), differentiable."""
    return x * torch.rsqrt(x.float().square().sum(-1, keepdim=True) + 1e-6).to(x.dtype)


def _gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
                      use_gate_in_kernel, A_log, dt_bias, use_beta_sigmoid_in_kernel, allow_neg_eigval,
                      state_v_first, cu_seqlens):
    """(o, S_T) of fla's gated delta rule with identity features:
    S_t = exp(g_t) S_{t−1} + k_t (β_t (v_t − (exp(g_t) S_{t−1})ᵀ k_t))ᵀ, o_t = S_tᵀ (scale·q_t)."""
    if q.shape[2] != k.shape[2]:
        raise value_error(f"q and k must have the same number of heads, but got q.shape[2]={q.shape[2]} and "
                         f"k.shape[2]={k.shape[2]}")
    H, HV = q.shape[2], v.shape[2]
    if HV % H != 0:
        raise value_error(f"For GVA, num_v_heads (HV={HV}) must be evenly divisible by num_heads (H={H}), but got "
                         f"HV % H = {HV % H}")
    if allow_neg_eigval and not use_beta_sigmoid_in_kernel:
        raise value_error("`allow_neg_eigval=True` requires `use_beta_sigmoid_in_kernel=True`.")
    _check_varlen(q, initial_state, cu_seqlens)
    if scale is None:
        scale = k.shape[-1] ** -0.5
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    if HV > H:  # grouped value attention: each key head serves HV / H value heads
        q, k = q.repeat_interleave(HV // H, 2), k.repeat_interleave(HV // H, 2)
    if beta is None:
        beta = torch.ones(v.shape[:3], dtype=torch.float32)
    beta = beta.float()
    if use_beta_sigmoid_in_kernel:
        beta = beta.sigmoid() * (2 if allow_neg_eigval else 1)
    if use_gate_in_kernel:
        if A_log is None:
            raise value_error("A_log must be provided when use_gate_in_kernel=True.")
        g = g.float() if dt_bias is None else g.float() + dt_bias.float()
        g = -A_log.float().exp() * F.softplus(g)
    S0 = initial_state
    if S0 is not None and state_v_first:
        S0 = S0.transpose(-1, -2)
    fm = _identity(k.shape[-1], k.shape[2])
    o, S, _, _ = run(q * scale, k, v, fm, causal=True, normalize=False, initial_state=S0,
                     output_final_state=output_final_state, cu_seqlens=_offsets(cu_seqlens),
                     log_decay=None if g is None else g.float(), update="delta", beta=beta)
    o = o if o.dtype == v.dtype else o.to(v.dtype)
    if not output_final_state:
        return o, None
    return o, S.transpose(-1, -2) if state_v_first else S


def chunk_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                           use_qk_l2norm_in_kernel=False, use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False,
                           state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None, chunk_indices=None,
                           cp_context=None, *, chunk_size=64, use_gate_in_kernel=False, A_log=None, dt_bias=None):
    """fla.ops.gated_delta_rule.chunk_gated_delta_rule (Gated DeltaNet): g [B, T, HV] log decays
    (None: DeltaNet), beta [B, T, HV], v [B, T, HV, V] with HV a multiple of q / k's heads (grouped
    value attention), states [N, HV, K, V]. use_qk_l2norm_in_kernel L2-normalises q and k,
    use_beta_sigmoid_in_kernel takes beta as logits (× 2 with allow_neg_eigval), use_gate_in_kernel
    computes g = −exp(A_log) · softplus(g + dt_bias). cu_seqlens_cpu, chunk_indices and chunk_size
    (fla's kernel tuning) change nothing but rounding; cp_context (context parallelism) is refused."""
    if cp_context is not None:
        raise not_implemented("chunk_gated_delta_rule: context parallelism (cp_context) is not supported")
    if chunk_size not in (16, 32, 64):
        raise value_error(f"`chunk_size` must be 16, 32, or 64 for Gated Delta Rule, got {chunk_size}.")
    return _gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
                             use_gate_in_kernel, A_log, dt_bias, use_beta_sigmoid_in_kernel, allow_neg_eigval,
                             state_v_first, cu_seqlens if cu_seqlens_cpu is None else cu_seqlens_cpu)


def fused_recurrent_gated_delta_rule(q, k, v, g=None, gk=None, gv=None, beta=None, scale=None, initial_state=None,
                                     output_final_state=False, use_qk_l2norm_in_kernel=False,
                                     use_gate_in_kernel=False, A_log=None, dt_bias=None,
                                     use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False, state_v_first=False,
                                     cu_seqlens=None):
    """fla.ops.gated_delta_rule.fused_recurrent_gated_delta_rule: chunk_gated_delta_rule's
    recurrence (beta None: 1). The per-channel gates gk [B, T, HV, K] and gv [B, T, HV, V] have no
    delta-rule form in libslay (one g per token and head): they are refused with
    NotImplementedError."""
    if gk is not None or gv is not None:
        raise not_implemented("fused_recurrent_gated_delta_rule: libslay's delta rule takes one log decay g per "
                                  "token and head; per-channel gk / gv are not supported")
    return _gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
                             use_gate_in_kernel, A_log, dt_bias, use_beta_sigmoid_in_kernel, allow_neg_eigval,
                             state_v_first, cu_seqlens)


__all__ += ["chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule"]
