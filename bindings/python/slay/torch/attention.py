"""slay.torch.linear_attention: slay.linear_attention on CPU torch tensors, through the registered
custom op torch.ops.slay.linear_attention (autograd and torch.compile see one opaque op)."""
import numpy as np
import torch

from ..feature_map import FeatureMap, require_map
from ..state import State as _NumpyState
from ..errors import error_for, INVALID_ARGUMENT, UNSUPPORTED
from ._inputs import as_float32, check_tensor, needs_grad
from ._op import apply, call_key, backward_available, refuse_missing_gradients, NO_EXTRAS
from .state import State


def _gate(logits, weights, gate_input, name):
    """Gate logits as given, or gate_input @ weights in torch (so gradients reach both)."""
    if weights is None:
        return logits
    if logits is not None:
        raise error_for(INVALID_ARGUMENT, "give %s_gate_logits or %s_gate_weights, not both" % (name, name))
    if gate_input is None:
        raise error_for(INVALID_ARGUMENT, "%s_gate_weights needs gate_input (x with logits = x @ W)" % name)
    return as_float32(gate_input, "gate_input") @ as_float32(weights, "%s_gate_weights" % name)


def _initial(fm, initial_state):
    """(S, z, positions) tensors of an initial_state: a slay.State, an S tensor, or an (S, z) tuple."""
    if initial_state is None:
        return None, None, None
    if isinstance(initial_state, _NumpyState):
        if initial_state.fm is not fm and initial_state.fm.identity != fm.identity:
            from ..errors import STATE_MISMATCH
            raise error_for(STATE_MISMATCH, "initial_state belongs to a different feature map than fm")
        if isinstance(initial_state, State) and initial_state.tensors is not None:
            S, z = initial_state.tensors
        else:
            S, z, _ = (torch.from_numpy(a) for a in _NumpyState.to_arrays(initial_state))
        positions = torch.tensor([initial_state.position(i) for i in range(S.shape[0])], dtype=torch.int64)
        return as_float32(S, "initial_state S"), as_float32(z, "initial_state z"), positions
    if isinstance(initial_state, tuple):
        if len(initial_state) != 2:
            raise error_for(INVALID_ARGUMENT, "an initial_state tuple is (S, z); got %d items" % len(initial_state))
        S, z = initial_state
        return as_float32(S, "initial_state S"), as_float32(z, "initial_state z"), None
    if isinstance(initial_state, torch.Tensor):
        S = as_float32(initial_state, "initial_state")
        return S, torch.zeros(S.shape[:3], dtype=torch.float32), None
    raise error_for(INVALID_ARGUMENT, "initial_state must be a slay.State, an S tensor [N, H, m, dv] or an (S, z) "
                    "tuple, got %s" % type(initial_state).__name__)


def _cu_seqlens(cu_seqlens):
    if cu_seqlens is None:
        return None
    if isinstance(cu_seqlens, torch.Tensor):
        if cu_seqlens.device.type != "cpu":
            raise error_for(INVALID_ARGUMENT, "cu_seqlens is on %s; libslay runs on the CPU" % cu_seqlens.device)
        return cu_seqlens.to(torch.int64).contiguous()
    return torch.as_tensor(np.asarray(cu_seqlens, dtype=np.int64))


def _decay(decay):
    """The per-head γ as a tuple of floats (hashable: the call's settings are cached by it), or None."""
    if decay is None:
        return None
    if isinstance(decay, torch.Tensor):
        if decay.requires_grad and torch.is_grad_enabled():
            raise error_for(INVALID_ARGUMENT, "decay (RetNet γ) has no gradient in libslay; pass it without "
                            "requires_grad, or use log_decay, which has one")
        decay = decay.detach().cpu().numpy()
    return tuple(float(x) for x in np.ravel(np.asarray(decay, dtype=np.float64)))


def _requires_grad(tensors):
    for tensor in tensors:
        if tensor is not None and tensor.requires_grad:
            return True
    return False


def run(q, k, v, fm, causal=True, delta=1e-6, chunk_size=0, n_threads=1, initial_state=None,
        output_final_state=False, cu_seqlens=None, denominator="add", normalize=True, decay=None, log_decay=None,
        query_gate_logits=None, key_gate_logits=None, params=(), update="add", beta=None, qk_l2norm=False,
        check_finite=False):
    """The op: (out in q's dtype, S, z, initial positions), S and z float32. q, k, v go to libslay
    in their own dtype (float32, bfloat16 or float16, no copies); the other tensors in float32."""
    if not isinstance(fm, FeatureMap):
        require_map(fm)
    q, k, v = check_tensor(q, "q"), check_tensor(k, "k"), check_tensor(v, "v")   # half: passed as it is
    key = call_key(causal, delta, chunk_size, n_threads, denominator, normalize,
                   None if decay is None else _decay(decay), output_final_state, len(params), update, qk_l2norm,
                   check_finite)
    if (initial_state is None and cu_seqlens is None and log_decay is None and query_gate_logits is None
            and key_gate_logits is None and beta is None):
        positions, extras = None, NO_EXTRAS
    else:
        S0, z0, positions = _initial(fm, initial_state)
        extras = (as_float32(log_decay, "log_decay"), as_float32(query_gate_logits, "query_gate_logits"),
                  as_float32(key_gate_logits, "key_gate_logits"), S0, z0, positions,
                  None if cu_seqlens is None else _cu_seqlens(cu_seqlens), as_float32(beta, "beta"))
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad
                                        or (extras is not NO_EXTRAS and _requires_grad(extras))
                                        or (params and _requires_grad(params)))
    if grad:
        if not backward_available():
            raise error_for(UNSUPPORTED, "slay.torch.linear_attention: an input requires a gradient, but this build "
                            "of libslay has no backward pass (slay.linear_attention_backward); run under "
                            "torch.no_grad() or detach the inputs explicitly")
        if update != "add" or qk_l2norm:
            refuse_missing_gradients(update, qk_l2norm)
    out, S, z = apply(fm, key, q, k, v, extras, params, grad)
    return out, S, z, positions


def final_positions(q, cu_seqlens, positions):
    """Tokens each sequence's final state has absorbed."""
    if cu_seqlens is None:
        lengths = torch.full((q.shape[0],), q.shape[1], dtype=torch.int64)
    else:
        lengths = _cu_seqlens(cu_seqlens).diff()
    return lengths if positions is None else lengths + positions


def linear_attention(q, k, v, fm, causal=True, delta=1e-6, chunk_size=0, n_threads=1, out=None,
                     initial_state=None, output_final_state=False, cu_seqlens=None, denominator="add",
                     normalize=True, decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None,
                     gate_input=None, query_gate_weights=None, key_gate_weights=None, update="add", beta=None,
                     qk_l2norm=False, check_finite=False):
    """slay.linear_attention on CPU torch tensors, with autograd: q (B, T, Hq, d), k (B, T, Hk, d),
    v (B, T, Hk, dv) → (B, T, Hq, dv) in q's dtype, or (y, slay.torch.State) when
    output_final_state is true (the state's `tensors` are its (S, z) with gradients).

    float32, bfloat16 and float16 tensors (each its own) are passed to libslay with their strides,
    without copies: it widens half elements as it loads them, computes in float32 and rounds the
    output once as it stores it. CUDA tensors are refused with a clear error.
    Every keyword is slay.linear_attention's: causal, delta, chunk_size, n_threads, out (a float32
    tensor to write into, without autograd), initial_state (a slay.State, an S tensor
    [N, Hk, m, dv] or an (S, z) tuple; gradients reach the tensors), output_final_state,
    cu_seqlens, denominator, normalize, decay (per key head γ, no gradient), log_decay,
    query_gate_logits, key_gate_logits, gate_input with query_gate_weights / key_gate_weights
    (logits = gate_input @ W, computed in torch so the weights get gradients), update ("add" or
    "delta", the delta rule of DeltaNet / Gated DeltaNet), beta (B, T, Hk), qk_l2norm, check_finite.
    Gradients (q, k, v, log_decay, gate logits, initial state, the delta rule's beta, the map's
    parameters through slay.torch.SlayAttention) come from slay.linear_attention_backward; an input that requires a
    gradient the library cannot give raises an error, it is never silently detached.
    """
    if not isinstance(fm, FeatureMap):
        raise error_for(INVALID_ARGUMENT, "fm must be a slay.FeatureMap, got %s" % type(fm).__name__)
    if gate_input is not None or query_gate_weights is not None or key_gate_weights is not None:
        query_gate_logits = _gate(query_gate_logits, query_gate_weights, gate_input, "query")
        key_gate_logits = _gate(key_gate_logits, key_gate_weights, gate_input, "key")
        if gate_input is not None and query_gate_weights is None and key_gate_weights is None:
            raise error_for(INVALID_ARGUMENT, "gate_input is given but neither query_gate_weights nor "
                            "key_gate_weights")
    if out is not None:
        check_tensor(out, "out")
        if out.dtype != check_tensor(q, "q").dtype:
            raise error_for(INVALID_ARGUMENT, "out has dtype %s, q %s" % (out.dtype, q.dtype))
        if needs_grad(q, k, v, log_decay, query_gate_logits, key_gate_logits):
            raise error_for(INVALID_ARGUMENT, "out= does not record gradients; drop it when inputs require grad")
    y, S, z, positions = run(q, k, v, fm, causal, delta, chunk_size, n_threads, initial_state, output_final_state,
                             cu_seqlens, denominator, normalize, decay, log_decay, query_gate_logits,
                             key_gate_logits, (), update, beta, qk_l2norm, check_finite)
    if out is not None:
        out.copy_(y)
        y = out
    if not output_final_state:
        return y
    state = State.from_arrays(fm, S.detach(), z.detach(), final_positions(q, cu_seqlens, positions))
    state.tensors = (S, z)
    return y, state
