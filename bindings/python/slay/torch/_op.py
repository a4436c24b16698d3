"""The registered custom op torch.ops.slay.linear_attention: libslay's forward on CPU float32
tensors (passed by data_ptr and strides, no copies), a fake implementation for torch.compile, and
its backward, the op slay::linear_attention_backward on slay.linear_attention_backward.

The op sees only tensors and plain values. The feature map and the call's settings travel as keys
into registries (a C handle cannot cross the dispatcher, and every schema argument costs torch's
autograd wrapper time on each call): linear_attention(q, k, v, extras, fm_key, call_key), where
extras are the optional tensors (EXTRAS, then the map's parameters). Its outputs are always
(out, S, z): S and z are empty unless the final state was asked for, so the schema is fixed."""
import ctypes
import weakref

import numpy as np
import torch

from .. import linear_attention as _numpy_linear_attention
from ..state import State as _NumpyState
from .._lib import lib, Error
from .._tensor import pointer_struct
from ..attention import attention_options
from ..errors import check

_MAPS = weakref.WeakValueDictionary()
_CALLS = {}

# The optional tensors of a call, in the order of the op's `extras` list (an empty tensor where one is
# absent: a list with None in it would get no gradients); the map's parameters follow.
EXTRAS = ("log_decay", "query_gate_logits", "key_gate_logits", "initial_S", "initial_z", "initial_positions",
          "cu_seqlens", "beta")


@torch.compiler.assume_constant_result
def map_key(fm):
    """The registry key of a slay.FeatureMap (kept while the map lives); a constant for
    torch.compile, which does not trace into the registry."""
    key = id(fm)
    _MAPS[key] = fm
    return key


def map_for(key):
    fm = _MAPS.get(key)
    if fm is None:
        raise RuntimeError("slay.torch: the feature map of this call no longer exists")
    return fm


@torch.compiler.assume_constant_result
def call_key(causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state, param_count,
             update="add", qk_l2norm=False, check_finite=False):
    """The registry key of a call's settings (a constant for torch.compile)."""
    settings = (bool(causal), float(delta), int(chunk_size), int(n_threads), str(denominator), bool(normalize),
                None if decay is None else tuple(float(x) for x in decay), bool(output_final_state), int(param_count),
                str(update), bool(qk_l2norm), bool(check_finite))
    key = hash(settings)
    while _CALLS.setdefault(key, settings) != settings:
        key += 1
    return key


def settings_for(key):
    """(options dict of slay.linear_attention, output_final_state, param_count) of a call key."""
    (causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state, param_count, update,
     qk_l2norm, check_finite) = _CALLS[key]
    return (dict(causal=causal, delta=delta, chunk_size=chunk_size, n_threads=n_threads, denominator=denominator,
                 normalize=normalize, decay=None if decay is None else list(decay), update=update, qk_l2norm=qk_l2norm,
                 check_finite=check_finite), output_final_state, param_count)


def delta_backward_available():
    """True when slay.linear_attention_backward takes the delta rule (update=) and qk_l2norm."""
    import inspect
    import slay
    backward = getattr(slay, "linear_attention_backward", None)
    return backward is not None and "update" in inspect.signature(backward).parameters


def _descriptor(tensor, name):
    return ctypes.byref(pointer_struct(tensor.data_ptr(), tensor.shape, tensor.stride(), name))


_OPTIONS = {}


def _options(key, options):
    """The C options struct of a call without per-token tensors, built once per call key."""
    struct = _OPTIONS.get(key)
    if struct is None:
        struct = _OPTIONS[key] = attention_options(**options)
    return struct


def _array(tensor):
    """A numpy view of a CPU tensor (no copy, same strides), or None."""
    return None if tensor is None else tensor.detach().numpy()


def present(extras):
    """The EXTRAS tensors of an `extras` list, None where absent (empty)."""
    return [None if t.numel() == 0 else t for t in extras[:len(EXTRAS)]]


def _sequences(q, cu_seqlens):
    return q.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1


@torch.library.custom_op("slay::linear_attention", mutates_args=(), device_types="cpu")
def linear_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extras: list[torch.Tensor], fm_key: int,
                        call_key: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """libslay's linear attention; the map's parameters in `extras` only carry them into autograd
    (the map already holds their values)."""
    fm = map_for(fm_key)
    options, output_final_state, _ = settings_for(call_key)
    log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions, cu_seqlens, beta = \
        present(extras)
    out = torch.empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]), dtype=torch.float32)
    if initial_S is None and not output_final_state and cu_seqlens is None:
        if log_decay is None and query_gate_logits is None and key_gate_logits is None and beta is None:
            struct = _options(call_key, options)
        else:
            struct = attention_options(log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
                                       key_gate_logits=_array(key_gate_logits), beta=_array(beta), **options)
        err = Error()
        with fm._reading() as handle:   # set_params waits for the call (slay._handle)
            check(lib.slay_linear_attention(handle, _descriptor(q, "q"), _descriptor(k, "k"), _descriptor(v, "v"),
                                            _descriptor(out, "out"), ctypes.byref(struct), ctypes.byref(err)), err)
        return out, torch.empty(0), torch.empty(0)
    initial = None
    if initial_S is not None:
        initial = _NumpyState.from_arrays(fm, _array(initial_S), _array(initial_z), _array(initial_positions))
    _, final = _numpy_linear_attention(
        _array(q), _array(k), _array(v), fm, out=out.numpy(), initial_state=initial, output_final_state=True,
        cu_seqlens=_array(cu_seqlens), log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
        key_gate_logits=_array(key_gate_logits), beta=_array(beta), **options)
    if not output_final_state:
        return out, torch.empty(0), torch.empty(0)
    S, z, _ = final.to_arrays()
    return out, torch.from_numpy(S), torch.from_numpy(z)


@linear_attention_op.register_fake
def _fake(q, k, v, extras, fm_key, call_key):
    out = q.new_empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]))
    _, output_final_state, _ = settings_for(call_key)
    if not output_final_state:
        return out, q.new_empty(0), q.new_empty(0)
    fm = map_for(fm_key)
    count, heads, features = _sequences(q, present(extras)[EXTRAS.index("cu_seqlens")]), k.shape[2], fm.dim
    return out, q.new_empty((count, heads, features, v.shape[3])), q.new_empty((count, heads, features))


# ---- autograd ------------------------------------------------------------------------------------

# ---- autograd ------------------------------------------------------------------------------------

def backward_available():
    """True once slay.linear_attention_backward exists in this build of the package."""
    import slay
    return hasattr(slay, "linear_attention_backward")


def _param_gradient_shapes(fm, count):
    """Shapes of the parameter gradients the backward op returns (empty (0,) where a map has none:
    SLAY's "nystrom" anchors, see slay.linear_attention_backward)."""
    if not count:
        return []
    if fm.kind == "slay" and getattr(fm, "poly", None) == "nystrom":
        return [(0,)] * count
    return [tuple(fm._param_shape(name)) for name in fm._param_names()]


@torch.library.custom_op("slay::linear_attention_backward", mutates_args=(), device_types="cpu")
def linear_attention_backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fm_key: int, d_out: torch.Tensor,
                                 d_S: torch.Tensor | None, d_z: torch.Tensor | None, log_decay: torch.Tensor | None,
                                 query_gate_logits: torch.Tensor | None, key_gate_logits: torch.Tensor | None,
                                 initial_S: torch.Tensor | None, initial_z: torch.Tensor | None,
                                 initial_positions: torch.Tensor | None, cu_seqlens: torch.Tensor | None,
                                 param_count: int, causal: bool, delta: float, chunk_size: int, n_threads: int,
                                 denominator: str, normalize: bool, decay: list[float] | None) -> list[torch.Tensor]:
    """slay.linear_attention_backward as an opaque op (so torch.compile never traces numpy):
    [dq, dk, dv, d log_decay, d query gates, d key gates, dS0, dz0, *d params], an empty (0,)
    tensor for each gradient that does not exist."""
    if not backward_available():
        raise RuntimeError("slay.torch: this build of libslay has no backward pass (slay.linear_attention_backward); "
                           "gradients through slay attention cannot be computed")
    import slay
    fm = map_for(fm_key)
    initial = None
    if initial_S is not None:
        initial = slay.State.from_arrays(fm, _array(initial_S), _array(initial_z), _array(initial_positions))
    d_final = None
    if d_S is not None and d_S.numel():
        d_final = (np.ascontiguousarray(_array(d_S)), None if d_z is None else np.ascontiguousarray(_array(d_z)))
    grads = slay.linear_attention_backward(
        _array(q), _array(k), _array(v), fm, np.ascontiguousarray(_array(d_out), dtype=np.float32),
        d_final_state=d_final, initial_state=initial, cu_seqlens=_array(cu_seqlens),
        log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
        key_gate_logits=_array(key_gate_logits), causal=causal, delta=delta, chunk_size=chunk_size,
        n_threads=n_threads, denominator=denominator, normalize=normalize, decay=decay)

    def tensor(value):
        return torch.empty(0) if value is None else torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    state = grads.get("initial_state") or (None, None)
    named = grads.get("params") or {}
    params = [tensor(named.get(name)) for name in fm._param_names()] if param_count else []
    return [tensor(grads.get("q")), tensor(grads.get("k")), tensor(grads.get("v")), tensor(grads.get("log_decay")),
            tensor(grads.get("query_gate_logits")), tensor(grads.get("key_gate_logits")), tensor(state[0]),
            tensor(state[1])] + params


@linear_attention_backward_op.register_fake
def _fake_backward(q, k, v, fm_key, d_out, d_S, d_z, log_decay, query_gate_logits, key_gate_logits, initial_S,
                   initial_z, initial_positions, cu_seqlens, param_count, causal, delta, chunk_size, n_threads,
                   denominator, normalize, decay):
    fm = map_for(fm_key)

    def like(tensor):
        return q.new_empty(0) if tensor is None else q.new_empty(tuple(tensor.shape))

    count, heads, features = _sequences(q, cu_seqlens), k.shape[2], fm.dim
    initial = [q.new_empty(0), q.new_empty(0)] if initial_S is None else [
        q.new_empty((count, heads, features, v.shape[3])), q.new_empty((count, heads, features))]
    return ([like(q), like(k), like(v), like(log_decay), like(query_gate_logits), like(key_gate_logits)] + initial
            + [q.new_empty(shape) for shape in _param_gradient_shapes(fm, param_count)])


def _setup_context(ctx, inputs, output):
    q, k, v, extras, fm_key, call_key = inputs
    ctx.save_for_backward(q, k, v, *present(extras))
    ctx.fm_key, ctx.call_key = fm_key, call_key


def _backward(ctx, d_out, d_S, d_z):
    (q, k, v, log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
     cu_seqlens, beta) = ctx.saved_tensors
    options, output_final_state, param_count = settings_for(ctx.call_key)
    options = dict(options)
    if (options.pop("update") != "add" or options.pop("qk_l2norm")) and not delta_backward_available():
        raise RuntimeError("slay.torch: this build's backward pass has no delta rule / qk_l2norm gradients")
    options.pop("qk_l2norm", None)
    options.pop("check_finite")
    if not output_final_state:
        d_S = d_z = None
    outs = linear_attention_backward_op(q, k, v, ctx.fm_key, d_out.contiguous(), d_S, d_z, log_decay,
                                        query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
                                        cu_seqlens, param_count, **options)

    def pick(index, wanted=True):
        return outs[index] if wanted and outs[index].numel() else None

    d_extras = [pick(3, log_decay is not None), pick(4, query_gate_logits is not None),
                pick(5, key_gate_logits is not None), pick(6, initial_S is not None), pick(7, initial_S is not None),
                None, None, None] + [pick(8 + i) for i in range(param_count)]
    return pick(0), pick(1), pick(2), d_extras, None, None


torch.library.register_autograd("slay::linear_attention", _backward, setup_context=_setup_context)
