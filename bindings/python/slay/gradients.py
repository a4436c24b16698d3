"""Gradients: the backward pass of slay.linear_attention (slay_linear_attention_backward) and a
float64 backward of exact attention (for distillation losses against it)."""
import ctypes

import numpy as np

from ._lib import lib, Error, AttentionBackwardParams
from ._tensor import as_input, as_output, tensor_struct
from .options import attention_options, resolve_gates
from .errors import check, error_for, DTYPE, INVALID_ARGUMENT, SHAPE, STATE_MISMATCH
from .feature_map import require_map

GRADIENT_NAMES = ("q", "k", "v", "beta", "log_decay", "query_gate_logits", "key_gate_logits", "initial_state", "params",
                  "gate_input", "query_gate_weights", "key_gate_weights")


def _wanted(wrt):
    if wrt is None:
        return set(GRADIENT_NAMES)
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    unknown = [name for name in names if name not in GRADIENT_NAMES]
    if unknown:
        raise error_for(INVALID_ARGUMENT, "wrt has unknown names %s; known: %s" % (unknown, ", ".join(GRADIENT_NAMES)))
    return set(names)


OUT_NAMES = ("q", "k", "v", "beta", "log_decay", "query_gate_logits", "key_gate_logits")


class _Targets:
    """The arrays gradients are written into: the caller's `out` entries (checked like the
    forward's out=), fresh zeros for the rest."""

    def __init__(self, out):
        self.out = out
        self.used = set()

    def take(self, name, shape, dtype=np.float32):
        array = self.out.get(name)
        if array is None:
            return np.zeros(shape, dtype)
        array = as_output(array, "out[%r]" % name, tuple(shape), half=np.dtype(dtype) != np.float32)
        if array.dtype != np.dtype(dtype):
            raise error_for(DTYPE, "out[%r] is %s; the gradient is %s" % (name, array.dtype, np.dtype(dtype)))
        self.used.add(name)
        return array

    def check_used(self):
        unused = sorted(set(self.out) - self.used)
        if unused:
            raise error_for(INVALID_ARGUMENT, "out has %s, which this call does not compute (an option it "
                            "does not have, or left out of wrt)" % unused)


def _targets(out):
    if out is None:
        return _Targets({})
    if not isinstance(out, dict):
        raise error_for(INVALID_ARGUMENT, "out must be a dict {name: array}, got %s" % type(out).__name__)
    unknown = [name for name in out if name not in OUT_NAMES]
    if unknown:
        raise error_for(INVALID_ARGUMENT, "out has unknown names %s; it takes %s" % (unknown, ", ".join(OUT_NAMES)))
    return _Targets({name: array for name, array in out.items() if array is not None})


def _initial_state_arrays(initial_state, fm, sequences, value_dim):
    """(S [N, Hk, m, dv], z [N, Hk, m], positions or None) from a slay.State (slots 0..N−1) or a
    tuple (S, z) of arrays (z may be None)."""
    from .state import State
    if isinstance(initial_state, State):
        if initial_state.fm is not fm and initial_state.fm.identity != fm.identity:
            raise error_for(STATE_MISMATCH, "initial_state belongs to a different feature map than fm")
        if initial_state.num_seqs < sequences:
            raise error_for(SHAPE, "initial_state has %d slots for %d sequences" % (initial_state.num_seqs, sequences))
        slots = [initial_state.read(slot) for slot in range(sequences)]
        matrix = np.stack([s for s, _ in slots]).astype(np.float32)
        normaliser = np.stack([z for _, z in slots]).astype(np.float32)
        positions = np.array([initial_state.position(slot) for slot in range(sequences)], np.int64)
        return matrix, normaliser, positions
    if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
        raise error_for(INVALID_ARGUMENT, "initial_state must be a slay.State or a tuple (S [N, Hk, m, dv], z [N, Hk, m])")
    matrix = as_input(np.asarray(initial_state[0], np.float32), "initial_state[0]", 4)
    normaliser = None if initial_state[1] is None else as_input(np.asarray(initial_state[1], np.float32),
                                                                 "initial_state[1]", 3)
    return matrix, normaliser, None


def linear_attention_backward(q, k, v, fm, dout, d_final_state=None, causal=True, delta=1e-6, chunk_size=0,
                              n_threads=1, initial_state=None, cu_seqlens=None, denominator="add", normalize=True,
                              decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None,
                              gate_input=None, query_gate_weights=None, key_gate_weights=None, update="add",
                              beta=None, qk_l2norm=False, check_finite=False, wrt=None, out=None):
    """Gradients of slay.linear_attention(q, k, v, fm, <the same keywords>) given dout = ∂L/∂y
    (B, T, Hq, dv), as a dict of arrays (q, k, v and dout may be float32, float16 or bfloat16: the
    gradients of q, k, v have their dtypes; the others are float32):

    "q", "k", "v"; "beta", "log_decay", "query_gate_logits", "key_gate_logits" when those were given (and
    "gate_input", "query_gate_weights", "key_gate_weights" when the gates came from weights);
    "initial_state": (dS [N, Hk, m, dv], dz [N, Hk, m]) when initial_state was given;
    "params": {name: array} shaped like fm.get_params() for a map with parameters (SLAY's "nystrom"
    anchors through the whitening (K_AA + λI)^(−1/2) too; TensorSketch's discrete "sketch" gets
    zeros).

    d_final_state: (dS_T [N, Hk, m, dv], dz_T [N, Hk, m] or None), the gradient of the final state
    a forward with output_final_state=True returned (flash-linear-attention's dht). initial_state:
    a slay.State (slots 0..N−1, as the forward takes it) or a tuple (S, z) of arrays.
    wrt: None (every gradient) or the names to compute. out: an optional dict of preallocated arrays
    to write gradients into, keyed like the result ("q", "k", "v", "beta", "log_decay",
    "query_gate_logits", "key_gate_logits"), each of the gradient's shape and dtype, like the
    forward's out=; the result holds those arrays (a training loop that reuses its gradient buffers
    skips allocating and first-touching fresh memory on every step). The other keywords are the forward's;
    log_decay may be per channel (B, T, Hk, m) or per head (B, T, Hk), and its gradient has its
    shape. update="delta" (DeltaNet / Gated DeltaNet: causal, normalize=False, beta and log_decay
    (B, T, Hk)) returns "beta" and "log_decay" too; qk_l2norm=True is differentiated through the
    normalisation; "ela-hadamard-exp" in the forward's overflow-safe rescaled frame; every map
    and SLAY polynomial, SLAY's Taylor expansion included.
    Memory O(chunk · m + m · dv) per thread; nothing of size T × m is kept (slay.h); the delta
    rule keeps chunk states of m × dv, at most 16 MiB per thread plus a block's (slay.h).
    """
    wanted = _wanted(wrt)
    targets = _targets(out)
    handle = require_map(fm)
    q = as_input(q, "q", 4, half=True)
    k = as_input(k, "k", 4, half=True)
    v = as_input(v, "v", 4, half=True)
    dout = as_input(dout, "dout", 4, half=True)
    from_weights = {"query": query_gate_weights is not None, "key": key_gate_weights is not None}
    query_logits, key_logits = resolve_gates(query_gate_logits, key_gate_logits, gate_input, query_gate_weights,
                                             key_gate_weights)
    options = attention_options(causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay,
                                query_logits, key_logits, update=update, beta=beta, qk_l2norm=qk_l2norm,
                                check_finite=check_finite)
    params = AttentionBackwardParams()
    lib.slay_attention_backward_params_init(ctypes.byref(params))
    keep = []

    def point(field, array):
        if array is None:
            return
        tensor = tensor_struct(array)
        keep.append((array, tensor))
        setattr(params, field, ctypes.addressof(tensor))

    sequences = q.shape[0]
    if cu_seqlens is not None:
        cu = np.ascontiguousarray(cu_seqlens, dtype=np.int64)
        if cu.ndim != 1 or len(cu) < 2:
            raise error_for(INVALID_ARGUMENT, "cu_seqlens must be 1-D with at least 2 offsets")
        keep.append(cu)
        params.cu_seqlens = cu.ctypes.data
        sequences = len(cu) - 1
        params.num_seqs = sequences
    hk, m, dv = k.shape[2], fm.dim, v.shape[3]
    result = {}
    if initial_state is not None:
        matrix, normaliser, positions = _initial_state_arrays(initial_state, fm, sequences, dv)
        point("initial_state", matrix)
        point("initial_normaliser", normaliser)
        if positions is not None:
            keep.append(positions)
            params.positions = positions.ctypes.data
        if "initial_state" in wanted:
            result["initial_state"] = (np.zeros((sequences, hk, m, dv), np.float32), np.zeros((sequences, hk, m), np.float32))
            point("d_initial_state", result["initial_state"][0])
            point("d_initial_normaliser", result["initial_state"][1])
    if d_final_state is not None:
        if not isinstance(d_final_state, (tuple, list)) or len(d_final_state) != 2:
            raise error_for(INVALID_ARGUMENT, "d_final_state must be a tuple (dS [N, Hk, m, dv], dz [N, Hk, m] or None)")
        point("d_final_state", None if d_final_state[0] is None else
              as_input(np.asarray(d_final_state[0], np.float32), "d_final_state[0]", 4))
        point("d_final_normaliser", None if d_final_state[1] is None else
              as_input(np.asarray(d_final_state[1], np.float32), "d_final_state[1]", 3))
    for name, like in (("q", q), ("k", k), ("v", v)):
        if name in wanted:
            result[name] = targets.take(name, like.shape, like.dtype)    # dq, dk, dv: the dtype of q, k, v
            point("d" + name, result[name])
    gates_needed = wanted & {"gate_input", "query_gate_weights", "key_gate_weights"}
    if beta is not None and "beta" in wanted:
        result["beta"] = targets.take("beta", np.shape(beta))
        point("d_beta", result["beta"])
    if log_decay is not None and "log_decay" in wanted:
        result["log_decay"] = targets.take("log_decay", np.shape(log_decay))
        point("d_log_decay", result["log_decay"])
    query_gradient = key_gradient = None
    if query_logits is not None and ("query_gate_logits" in wanted or (from_weights["query"] and gates_needed)):
        # From gate weights, the logits' gradient is an intermediate, not a result.
        query_gradient = (np.zeros(np.shape(query_logits), np.float32) if from_weights["query"]
                          else targets.take("query_gate_logits", np.shape(query_logits)))
        point("d_query_gate_logits", query_gradient)
    if key_logits is not None and ("key_gate_logits" in wanted or (from_weights["key"] and gates_needed)):
        key_gradient = (np.zeros(np.shape(key_logits), np.float32) if from_weights["key"]
                        else targets.take("key_gate_logits", np.shape(key_logits)))
        point("d_key_gate_logits", key_gradient)
    targets.check_used()
    names = list(fm.get_params().keys())
    shapes = [fm._param_shape(name) for name in names]
    flat = None
    if names and "params" in wanted:
        flat = np.zeros(int(sum(np.prod(s) for s in shapes)), np.float32)
        params.d_params = flat.ctypes.data
        params.d_params_count = flat.size
    err = Error()
    with fm._reading() as handle:   # set_params waits for the call (slay._handle)
        check(lib.slay_linear_attention_backward(handle, ctypes.byref(tensor_struct(q)), ctypes.byref(tensor_struct(k)),
                                                 ctypes.byref(tensor_struct(v)), ctypes.byref(tensor_struct(dout)),
                                                 ctypes.byref(options), ctypes.byref(params), ctypes.byref(err)), err)
    del keep
    if flat is not None:
        result["params"] = {}
        offset = 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            result["params"][name] = flat[offset:offset + size].reshape(shape).copy()
            offset += size
    if query_gradient is not None and "query_gate_logits" in wanted and not from_weights["query"]:
        result["query_gate_logits"] = query_gradient
    if key_gradient is not None and "key_gate_logits" in wanted and not from_weights["key"]:
        result["key_gate_logits"] = key_gradient
    _weight_gradients(result, wanted, gate_input, query_gate_weights, key_gate_weights, query_gradient, key_gradient)
    return result


def _weight_gradients(result, wanted, gate_input, query_weights, key_weights, query_gradient, key_gradient):
    """logits = x @ W: dW = xᵀ dlogits, dx = dlogits Wᵀ (summed over the query and key gates)."""
    if gate_input is None:
        return
    x = np.asarray(gate_input, np.float32)
    rows = x.reshape(-1, x.shape[-1])
    input_gradient = np.zeros_like(x)
    for name, weights, gradient in (("query_gate_weights", query_weights, query_gradient),
                                    ("key_gate_weights", key_weights, key_gradient)):
        if weights is None or gradient is None:
            continue
        w = np.asarray(weights, np.float32)
        g = gradient.reshape(-1, gradient.shape[-1])
        if name in wanted:
            result[name] = (rows.T @ g).astype(np.float32)
        input_gradient += (g @ w.T).reshape(x.shape)
    if "gate_input" in wanted:
        result["gate_input"] = input_gradient


# ---- exact attention (float64) ---------------------------------------------------------------

def _unit_rows(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0), norm


def _unit_backward(unit, norm, gradient):
    """dx from dû for û = x/‖x‖ (0 where x = 0, like the forward)."""
    radial = (unit * gradient).sum(-1, keepdims=True)
    return np.where(norm > 0, (gradient - unit * radial) / np.where(norm > 0, norm, 1), 0)


def exact_attention_backward(q, k, v, dout, kernel="softmax", eps=1e-6, causal=True, scale=None, delta=1e-6):
    """Gradients {"q", "k", "v"} (float64) of slay.exact_attention(q, k, v, kernel=, eps=, causal=,
    scale=, delta=) given dout = ∂L/∂y (B, T, Hq, dv), computed in float64 with numpy in
    O(B·H·T²) memory: for small T (distillation losses against exact attention, and checks).
    Grouped-query heads: dk, dv are summed over the query heads that read a key head."""
    from .attention import EXACT_KERNELS
    if not isinstance(kernel, str) or kernel not in EXACT_KERNELS:
        raise error_for(INVALID_ARGUMENT, "unknown kernel %r; known: %s" % (kernel, ", ".join(EXACT_KERNELS)))
    q, k, v, dout = (np.asarray(a, np.float64) for a in (q, k, v, dout))
    for name, array in (("q", q), ("k", k), ("v", v), ("dout", dout)):
        if array.ndim != 4:
            raise error_for(SHAPE, "%s must have 4 dimensions [B, T, H, D], got shape %s" % (name, array.shape))
    B, T, Hq, d = q.shape
    Hk = k.shape[2]
    if k.shape != (B, T, Hk, d) or v.shape[:3] != (B, T, Hk) or Hq % Hk:
        raise error_for(SHAPE, "q %s, k %s, v %s do not agree (Hq a multiple of Hk)" % (q.shape, k.shape, v.shape))
    if dout.shape != (B, T, Hq, v.shape[3]):
        raise error_for(SHAPE, "dout has shape %s, expected %s" % (dout.shape, (B, T, Hq, v.shape[3])))
    group = Hq // Hk
    kr = np.repeat(k, group, axis=2)
    vr = np.repeat(v, group, axis=2)
    mask = np.tril(np.ones((T, T))) if causal else np.ones((T, T))
    qh, kh, vh, dh = (a.transpose(0, 2, 1, 3) for a in (q, kr, vr, dout))  # [B, H, T, ·]
    if kernel == "softmax":
        s = 1 / np.sqrt(d) if scale is None else float(scale)
        logits = np.where(mask > 0, s * qh @ kh.transpose(0, 1, 3, 2), -np.inf)
        P = np.exp(logits - logits.max(-1, keepdims=True))
        P /= P.sum(-1, keepdims=True)
        dV = P.transpose(0, 1, 3, 2) @ dh
        dP = dh @ vh.transpose(0, 1, 3, 2)
        dS = P * (dP - (dP * P).sum(-1, keepdims=True))
        dQ = s * dS @ kh
        dK = s * dS.transpose(0, 1, 3, 2) @ qh
    else:
        if kernel == "yat-spherical":
            qu, qn = _unit_rows(qh)
            ku, kn = _unit_rows(kh)
            x = qu @ ku.transpose(0, 1, 3, 2)
            C = 2 + eps
            K = x * x / (C - 2 * x)
        else:
            a = qh @ kh.transpose(0, 1, 3, 2)
            b = (qh ** 2).sum(-1)[..., :, None] + (kh ** 2).sum(-1)[..., None, :] - 2 * a + eps
            K = a * a / b
        K = K * mask
        den = K.sum(-1, keepdims=True) + delta
        out = (K @ vh) / den
        dN = dh / den
        dD = -(dh * out).sum(-1, keepdims=True) / den
        dK_ = (dN @ vh.transpose(0, 1, 3, 2) + dD) * mask
        dV = K.transpose(0, 1, 3, 2) @ dN
        if kernel == "yat-spherical":
            dx = dK_ * 2 * x * (C - x) / (C - 2 * x) ** 2
            dQ = _unit_backward(qu, qn, dx @ ku)
            dK = _unit_backward(ku, kn, dx.transpose(0, 1, 3, 2) @ qu)
        else:
            da = dK_ * (2 * a / b + 2 * a * a / b ** 2)
            dnorm = -dK_ * a * a / b ** 2  # ∂K/∂‖q‖² = ∂K/∂‖k‖² = −a²/b²
            dQ = da @ kh + 2 * qh * dnorm.sum(-1)[..., None]
            dK = da.transpose(0, 1, 3, 2) @ qh + 2 * kh * dnorm.sum(-2)[..., None]
    dq = dQ.transpose(0, 2, 1, 3)
    dk = dK.transpose(0, 2, 1, 3).reshape(B, T, Hk, group, d).sum(3)
    dv = dV.transpose(0, 2, 1, 3).reshape(B, T, Hk, group, v.shape[3]).sum(3)
    return {"q": dq, "k": dk, "v": dv}
