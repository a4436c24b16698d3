"""The registered custom op torch.ops.slay.linear_attention: libslay's forward on CPU float32
tensors (passed by data_ptr and strides, no copies), a fake implementation for torch.compile, and
its backward on slay.linear_attention_backward.

The op sees only tensors and plain values; the feature map travels as a key into a registry of
live maps (a C handle cannot cross the dispatcher). Its outputs are always (out, S, z): S and z
are empty unless the final state was asked for, so the schema is fixed."""
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


def _descriptor(tensor, name):
    return ctypes.byref(pointer_struct(tensor.data_ptr(), tensor.shape, tensor.stride(), name))


_OPTIONS = {}


def _options(causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay, query_gate_logits,
             key_gate_logits):
    """The C options struct; without per-token tensors it is built once per setting and reused."""
    if log_decay is not None or query_gate_logits is not None or key_gate_logits is not None:
        return attention_options(causal, delta, chunk_size, n_threads, denominator, normalize, decay,
                                 _array(log_decay), _array(query_gate_logits), _array(key_gate_logits))
    key = (causal, delta, chunk_size, n_threads, denominator, normalize, None if decay is None else tuple(decay))
    options = _OPTIONS.get(key)
    if options is None:
        if len(_OPTIONS) > 64:
            _OPTIONS.clear()
        options = _OPTIONS[key] = attention_options(causal, delta, chunk_size, n_threads, denominator, normalize,
                                                    decay)
    return options


def _array(tensor):
    """A numpy view of a CPU tensor (no copy, same strides), or None."""
    return None if tensor is None else tensor.detach().numpy()


def _sequences(q, cu_seqlens):
    return q.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1


@torch.library.custom_op("slay::linear_attention", mutates_args=(), device_types="cpu")
def linear_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fm_key: int,
                        log_decay: torch.Tensor | None, query_gate_logits: torch.Tensor | None,
                        key_gate_logits: torch.Tensor | None, initial_S: torch.Tensor | None,
                        initial_z: torch.Tensor | None, initial_positions: torch.Tensor | None,
                        cu_seqlens: torch.Tensor | None, params: list[torch.Tensor], causal: bool, delta: float,
                        chunk_size: int, n_threads: int, denominator: str, normalize: bool,
                        decay: list[float] | None, output_final_state: bool
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """libslay's linear attention; `params` only carry the map's parameters into autograd (the
    map already holds their values)."""
    fm = map_for(fm_key)
    out = torch.empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]), dtype=torch.float32)
    if initial_S is None and not output_final_state and cu_seqlens is None:
        options = _options(causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay,
                           query_gate_logits, key_gate_logits)
        err = Error()
        check(lib.slay_linear_attention(fm.handle, _descriptor(q, "q"), _descriptor(k, "k"), _descriptor(v, "v"),
                                        _descriptor(out, "out"), ctypes.byref(options), ctypes.byref(err)), err)
        return out, torch.empty(0), torch.empty(0)
    initial = None
    if initial_S is not None:
        initial = _NumpyState.from_arrays(fm, _array(initial_S), _array(initial_z), _array(initial_positions))
    _, final = _numpy_linear_attention(
        _array(q), _array(k), _array(v), fm, causal=causal, delta=delta, chunk_size=chunk_size,
        n_threads=n_threads, out=out.numpy(), initial_state=initial, output_final_state=True,
        cu_seqlens=_array(cu_seqlens), denominator=denominator, normalize=normalize, decay=decay,
        log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
        key_gate_logits=_array(key_gate_logits))
    if not output_final_state:
        return out, torch.empty(0), torch.empty(0)
    S, z, _ = final.to_arrays()
    return out, torch.from_numpy(S), torch.from_numpy(z)


@linear_attention_op.register_fake
def _fake(q, k, v, fm_key, log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
          cu_seqlens, params, causal, delta, chunk_size, n_threads, denominator, normalize, decay,
          output_final_state):
    out = q.new_empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]))
    if not output_final_state:
        return out, q.new_empty(0), q.new_empty(0)
    fm = map_for(fm_key)
    count, heads, features = _sequences(q, cu_seqlens), k.shape[2], fm.dim
    return out, q.new_empty((count, heads, features, v.shape[3])), q.new_empty((count, heads, features))


# ---- autograd ------------------------------------------------------------------------------------

def backward_available():
    """True once slay.linear_attention_backward exists in this build of the package."""
    import slay
    return hasattr(slay, "linear_attention_backward")


_DIFFERENTIABLE = ("q", "k", "v", "log_decay", "query_gate_logits", "key_gate_logits", "initial_S", "initial_z")


def _setup_context(ctx, inputs, output):
    (q, k, v, fm_key, log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
     cu_seqlens, params, causal, delta, chunk_size, n_threads, denominator, normalize, decay,
     output_final_state) = inputs
    ctx.save_for_backward(q, k, v, log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z,
                          initial_positions, cu_seqlens)
    ctx.fm_key = fm_key
    ctx.param_count = len(params)
    ctx.settings = dict(causal=causal, delta=delta, chunk_size=chunk_size, n_threads=n_threads,
                        denominator=denominator, normalize=normalize, decay=decay)
    ctx.output_final_state = output_final_state


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


def _backward(ctx, d_out, d_S, d_z):
    (q, k, v, log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
     cu_seqlens) = ctx.saved_tensors
    if not ctx.output_final_state:
        d_S = d_z = None
    outs = linear_attention_backward_op(q, k, v, ctx.fm_key, d_out.contiguous(), d_S, d_z, log_decay,
                                        query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions,
                                        cu_seqlens, ctx.param_count, **ctx.settings)

    def pick(index, wanted=True):
        return outs[index] if wanted and outs[index].numel() else None

    d_params = [pick(8 + i) for i in range(ctx.param_count)]
    return (pick(0), pick(1), pick(2), None, pick(3, log_decay is not None), pick(4, query_gate_logits is not None),
            pick(5, key_gate_logits is not None), pick(6, initial_S is not None), pick(7, initial_S is not None),
            None, None, d_params, None, None, None, None, None, None, None, None)


torch.library.register_autograd("slay::linear_attention", _backward, setup_context=_setup_context)
