"""slay_attention_options from Python keywords, shared by attention.py and state.py."""
import ctypes

import numpy as np

from ._lib import lib, AttentionOptions
from ._tensor import as_input, tensor_struct
from .errors import error_for, INVALID_ARGUMENT, SHAPE

DENOMINATORS = {"add": 0, "clamp": 1}
UPDATES = {"add": 0, "delta": 1}


def check_int(value, name, lo, hi):
    """value as an int in lo..hi (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error_for(INVALID_ARGUMENT, "%s must be an int, got %r" % (name, value))
    if not lo <= int(value) <= hi:
        raise error_for(INVALID_ARGUMENT, "%s must be in %d..%d, got %d" % (name, lo, hi, value))
    return int(value)


def gate_logits(logits, weights, gate_input, name):
    """Gate logits as given, or gate_input @ weights (numpy, float32) from projection weights
    W [D, H] and gate_input x [..., D]; giving both logits and weights is an error."""
    if weights is None:
        return logits
    if logits is not None:
        raise error_for(INVALID_ARGUMENT, "give %s_gate_logits or %s_gate_weights, not both" % (name, name))
    if gate_input is None:
        raise error_for(INVALID_ARGUMENT, "%s_gate_weights needs gate_input (x with logits = x @ W)" % name)
    x = np.asarray(gate_input, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise error_for(SHAPE, "%s_gate_weights has shape %s; expected [D, H] with D = gate_input's last dimension "
                        "(gate_input shape %s)" % (name, w.shape, x.shape))
    return np.ascontiguousarray(x @ w, dtype=np.float32)


def resolve_gates(query_gate_logits, key_gate_logits, gate_input, query_gate_weights, key_gate_weights):
    """(query logits, key logits) from logits or from gate_input and weights."""
    if gate_input is not None and query_gate_weights is None and key_gate_weights is None:
        raise error_for(INVALID_ARGUMENT, "gate_input is given but neither query_gate_weights nor key_gate_weights")
    return (gate_logits(query_gate_logits, query_gate_weights, gate_input, "query"),
            gate_logits(key_gate_logits, key_gate_weights, gate_input, "key"))


def _point_at(options, field, array, ndims):
    """options.<field> → a slay_tensor of `array` (float32 / float16 / bfloat16, one of `ndims` dims, any strides), both
    kept alive on the struct."""
    if array is None:
        return
    given = getattr(array, "ndim", None)
    array = as_input(array, field, given if given in ndims else ndims[-1], half=True)
    tensor = tensor_struct(array)
    options._keep.append((array, tensor))
    setattr(options, field, ctypes.addressof(tensor))


def attention_options(causal=True, delta=1e-6, chunk_size=0, n_threads=1, denominator="add", normalize=True,
                      decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None, step=False,
                      update="add", beta=None, qk_l2norm=False, check_finite=False):
    """The C options struct; the keywords as in slay.linear_attention, their defaults
    slay_attention_options_init's; step=True makes the token tensors [N, …] (slay_state_step).
    `decay` (per key head γ) is converted to a float32 array kept alive on the returned struct
    (attribute `_decay`) for as long as the struct lives; so are the tensors log_decay
    ([B, T, Hk] or [B, T, Hk, m]; [N, Hk] or [N, Hk, m] when step), beta ([B, T, Hk] / [N, Hk]) and
    the gate logits ([B, T, H] or [N, H]), which must be float32, float16 or bfloat16 numpy arrays."""
    if denominator not in DENOMINATORS:
        raise error_for(INVALID_ARGUMENT, "denominator must be 'add' or 'clamp', got %r" % (denominator,))
    if update not in UPDATES:
        raise error_for(INVALID_ARGUMENT, "update must be 'add' or 'delta', got %r" % (update,))
    options = AttentionOptions()
    lib.slay_attention_options_init(ctypes.byref(options))
    options.denominator = DENOMINATORS[denominator]
    options.normalize = 1 if normalize else 0
    options.update = UPDATES[update]
    options.qk_l2norm = 1 if qk_l2norm else 0
    options.check_finite = 1 if check_finite else 0
    options._keep = []
    rank = 3 if step else 4
    _point_at(options, "log_decay", log_decay, (rank - 1, rank))
    _point_at(options, "query_gate_logits", query_gate_logits, (rank - 1,))
    _point_at(options, "key_gate_logits", key_gate_logits, (rank - 1,))
    _point_at(options, "beta", beta, (rank - 1,))
    if decay is not None:
        gammas = np.ascontiguousarray(np.asarray(decay, dtype=np.float32).reshape(-1))
        options._decay = gammas
        options.decay = gammas.ctypes.data
    options.causal = 1 if causal else 0
    options.delta = float(delta)
    options.chunk_size = check_int(chunk_size, "chunk_size", -2**62, 2**62)
    options.n_threads = check_int(n_threads, "n_threads", -2**31, 2**31 - 1)
    return options
