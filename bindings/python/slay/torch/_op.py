"""libslay's linear attention for torch: one forward and one backward implementation, reached two ways.

- The registered custom op torch.ops.slay.linear_attention (with a fake implementation and its
  backward, the op slay::linear_attention_backward, registered with it): what torch.compile, export,
  make_fx, fake tensors, functorch transforms and tensor subclasses see.
- In plain eager mode (none of those active) the same two implementations run behind a
  torch.autograd.Function applied directly, or with no autograd at all when no input needs a
  gradient. The custom-op layers (pytree flattening of the arguments, schema defaults, the
  dispatcher's redispatch) cost ~100 µs a call with torch 2.13; a call on a small problem is then
  dominated by them. Both ways run the same code, so they give bit-identical results (tested).

The op sees only tensors and plain values. The feature map and the call's settings travel as keys
into registries (a C handle cannot cross the dispatcher, and every schema argument costs torch's
autograd wrapper time on each call): linear_attention(q, k, v, extras, fm_key, call_key), where
extras are the optional tensors (EXTRAS, then the map's parameters). Its outputs are always
(out, S, z): S and z are empty unless the final state was asked for, so the schema is fixed.

Float32, float16 and bfloat16 tensors reach C by data_ptr and strides, no copies: the four
slay_tensor descriptors are packed with one struct.Struct call into per-thread scratch memory (a
fraction of the cost of four ctypes Structures) and handed to a private prototype of
slay_linear_attention taking addresses."""
import ctypes
import struct
import threading
import weakref

import numpy as np
import torch

import slay as _slay
from .. import linear_attention as _numpy_linear_attention
from ..state import State as _NumpyState
from ..feature_map import FeatureMap
from .._lib import lib, Error, Tensor, MAX_DIMS
from .._tensor import pointer_struct, F32, F16, BF16
from ..attention import attention_options
from ..errors import check, error_for, SlayError, INVALID_ARGUMENT, SHAPE, LAYOUT, UNSUPPORTED

_MAPS = weakref.WeakValueDictionary()

# The optional tensors of a call, in the order of the op's `extras` list (an empty tensor where one is
# absent: a list with None in it would get no gradients); the map's parameters follow.
EXTRAS = ("log_decay", "query_gate_logits", "key_gate_logits", "initial_S", "initial_z", "initial_positions",
          "cu_seqlens", "beta")
NO_EXTRAS = (None,) * len(EXTRAS)


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
        raise error_for(INVALID_ARGUMENT, "slay.torch: the feature map of this call no longer exists")
    return fm


# ---- a call's settings, resolved once per distinct combination ------------------------------------

class Call:
    """The settings of a call: `options` (slay.linear_attention's keywords), output_final_state,
    param_count, and the C options struct for calls without per-token tensors (built and validated
    once, then shared: the C library only reads it)."""

    __slots__ = ("key", "settings", "options", "output_final_state", "param_count", "update", "qk_l2norm", "struct",
                 "address")

    def __init__(self, key, settings):
        (causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state, param_count, update,
         qk_l2norm, check_finite) = settings
        self.key, self.settings = key, settings
        self.options = dict(causal=causal, delta=delta, chunk_size=chunk_size, n_threads=n_threads,
                            denominator=denominator, normalize=normalize,
                            decay=None if decay is None else list(decay), update=update, qk_l2norm=qk_l2norm,
                            check_finite=check_finite)
        self.output_final_state, self.param_count = output_final_state, param_count
        self.update, self.qk_l2norm = update, qk_l2norm
        self.struct = attention_options(**self.options)        # validates the keywords once
        self.address = ctypes.addressof(self.struct)


_CALLS = {}     # key -> Call
_RAW = {}       # the keywords exactly as given -> key (skips normalising repeated settings)


def _normalized(causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state,
                param_count, update, qk_l2norm, check_finite):
    try:
        settings = (bool(causal), float(delta), chunk_size if isinstance(chunk_size, bool) else int(chunk_size),
                    n_threads if isinstance(n_threads, bool) else int(n_threads), denominator, bool(normalize),
                    None if decay is None else tuple(float(x) for x in decay), bool(output_final_state),
                    int(param_count), update, bool(qk_l2norm), bool(check_finite))
    except (TypeError, ValueError) as error:
        raise error_for(INVALID_ARGUMENT, "slay.torch.linear_attention: %s" % error) from error
    if settings[1] != settings[1] or (decay is not None and any(x != x for x in settings[6])):
        # NaN never equals itself: it could not be found in the registry again.
        raise error_for(INVALID_ARGUMENT, "slay.torch.linear_attention: delta and decay must not be NaN")
    return settings


@torch.compiler.assume_constant_result
def call_key(causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state, param_count,
             update="add", qk_l2norm=False, check_finite=False):
    """The registry key of a call's settings (a constant for torch.compile); invalid settings
    raise here, before anything runs."""
    given = (causal, delta, chunk_size, n_threads, denominator, normalize, decay, output_final_state, param_count,
             update, qk_l2norm, check_finite)
    raw = given
    try:
        return _RAW[raw]
    except KeyError:
        pass
    except TypeError:       # an unhashable keyword (a list): normalised below, not remembered
        raw = None
    settings = _normalized(*given)
    key = hash(settings)
    while key in _CALLS and _CALLS[key].settings != settings:
        key += 1
    if key not in _CALLS:
        _CALLS[key] = Call(key, settings)
    if raw is not None and len(_RAW) < 4096:
        _RAW[raw] = key
    return key


def settings_for(key):
    """(options dict of slay.linear_attention, output_final_state, param_count) of a call key."""
    call = _CALLS[key]
    return dict(call.options), call.output_final_state, call.param_count


# ---- what the library can differentiate ------------------------------------------------------------

def backward_available():
    """True once slay.linear_attention_backward exists in this build of the package."""
    return _BACKWARD


_BACKWARD = hasattr(_slay, "linear_attention_backward")


_PROBES = {}


def _differentiates(name, **keywords):
    """True when slay.linear_attention_backward gives gradients for a call with `keywords` (probed
    once on a one-token problem: a backward that refuses them raises SlayError, unsupported)."""
    if name not in _PROBES:
        result = False
        if backward_available():
            slay = _slay
            fm = FeatureMap("identity", head_dim=2, num_heads=1)
            x = np.full((1, 1, 1, 2), 0.5, np.float32)
            try:
                grads = slay.linear_attention_backward(x, x, x, fm, x, normalize=False, **keywords)
                result = all(np.all(np.isfinite(g)) for g in grads.values() if isinstance(g, np.ndarray))
            except SlayError:
                result = False
            finally:
                fm.close()
        _PROBES[name] = result
    return _PROBES[name]


def delta_backward_available():
    """True when slay.linear_attention_backward differentiates the delta rule (update="delta",
    beta, its log decay g)."""
    return _differentiates("delta", update="delta", beta=np.ones((1, 1, 1), np.float32),
                           log_decay=np.full((1, 1, 1), -0.1, np.float32))


def qk_l2norm_backward_available():
    """True when slay.linear_attention_backward differentiates qk_l2norm=True."""
    return _differentiates("qk_l2norm", qk_l2norm=True)


def refuse_missing_gradients(update, qk_l2norm):
    """The clear error for gradients this build cannot give (an update="delta" or qk_l2norm call
    whose inputs require a gradient): never a silent detach, never the gradient of another rule."""
    if update != "add" and not delta_backward_available():
        raise error_for(UNSUPPORTED, "slay.torch.linear_attention: an input requires a gradient, but this build's "
                        "backward pass has no delta rule (update=\"delta\") gradients; run under torch.no_grad() "
                        "or detach the inputs explicitly")
    if qk_l2norm and not qk_l2norm_backward_available():
        raise error_for(UNSUPPORTED, "slay.torch.linear_attention: an input requires a gradient, but this build's "
                        "backward pass has no qk_l2norm gradients; run under torch.no_grad() or detach the inputs "
                        "explicitly")


# ---- the forward -------------------------------------------------------------------------------------

_DESCRIPTOR = struct.Struct("@Pii%dq%dq" % (MAX_DIMS, MAX_DIMS))
assert _DESCRIPTOR.size == ctypes.sizeof(Tensor) and MAX_DIMS == 4
_DESCRIPTORS = struct.Struct("@" + "Pii4q4q" * 4)     # q, k, v, out back to back
# slay_linear_attention with every pointer as an address (the same symbol, declared without the
# per-argument Structure conversions of slay._lib).
_linear_attention = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 7)(("slay_linear_attention", lib))


class _Scratch(threading.local):
    """Per-thread memory for one call's four slay_tensor descriptors and its error struct: the C
    call releases the GIL, so threads never share them, and a thread runs one call at a time."""

    def __init__(self):
        self.descriptors = ctypes.create_string_buffer(_DESCRIPTORS.size)
        base = ctypes.addressof(self.descriptors)
        step = _DESCRIPTOR.size
        self.addresses = (base, base + step, base + 2 * step, base + 3 * step)
        self.error = Error()
        self.error_address = ctypes.addressof(self.error)


_scratch = _Scratch()


# slay_tensor element types of the torch dtypes libslay reads and writes (slay.h "Element types").
DTYPE_CODES = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16}


def _array(tensor):
    """A numpy view of a CPU tensor (no copy, same strides; float16 / bfloat16 tensors are widened
    to float32, a copy), or None."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype in _HALF else tensor).numpy()


_HALF = (torch.float16, torch.bfloat16)


def _check_layout(tensors):
    """The checks the packed descriptors skip (ranks other than 4, misaligned data), as clear errors."""
    for name, tensor in zip(("q", "k", "v"), tensors):
        if len(tensor.shape) != 4:
            raise error_for(SHAPE, "%s must be [B, T, H, D]; got shape %s" % (name, tuple(tensor.shape)))
        pointer_struct(tensor.data_ptr(), tensor.shape, tensor.stride(), name,
                       DTYPE_CODES[tensor.dtype])   # raises on a bad layout


def forward(fm, call, q, k, v, extras):
    """(out, S, z) of one call; q, k, v float32, float16 or bfloat16 (each its own), out in q's
    dtype (libslay widens half elements as it loads them and rounds the fp32 result once as it
    stores it); `extras` the EXTRAS tensors (float32) or None. S and z are float32, empty unless
    call.output_final_state."""
    log_decay, query_gate_logits, key_gate_logits, initial_S, initial_z, initial_positions, cu_seqlens, beta = extras
    qs, ks, vs = q.shape, k.shape, v.shape
    qp, kp, vp = q.data_ptr(), k.data_ptr(), v.data_ptr()
    if len(qs) != 4 or len(ks) != 4 or len(vs) != 4 or (qp | kp | vp) & 3:
        _check_layout((q, k, v))
    if vs[3] == qs[3]:
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
    else:
        out = q.new_empty((qs[0], qs[1], qs[2], vs[3]))
    if initial_S is None and not call.output_final_state and cu_seqlens is None:
        if log_decay is None and query_gate_logits is None and key_gate_logits is None and beta is None:
            options, address = None, call.address
        else:
            options = attention_options(log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
                                        key_gate_logits=_array(key_gate_logits), beta=_array(beta), **call.options)
            address = ctypes.addressof(options)
        scratch = _scratch
        descriptors = scratch.addresses
        # torch strides are never negative; ranks and alignment were checked above.
        codes = DTYPE_CODES
        _DESCRIPTORS.pack_into(scratch.descriptors, 0, qp, codes[q.dtype], 4, *qs, *q.stride(),
                               kp, codes[k.dtype], 4, *ks, *k.stride(), vp, codes[v.dtype], 4, *vs, *v.stride(),
                               out.data_ptr(), codes[out.dtype], 4, *out.shape, *out.stride())
        lock = fm._lock
        lock.acquire_read()      # set_params waits for the call (slay._handle)
        try:
            code = _linear_attention(fm._handle or fm.handle, descriptors[0], descriptors[1], descriptors[2],
                                     descriptors[3], address, scratch.error_address)
        finally:
            lock.release_read()
        if code:
            check(code, scratch.error)
        return out, _EMPTY, _EMPTY
    # States, packed sequences: the numpy API in float32 (half inputs widened once, out rounded once).
    initial = None
    if initial_S is not None:
        initial = _NumpyState.from_arrays(fm, _array(initial_S), _array(initial_z), _array(initial_positions))
    out32 = out if out.dtype is torch.float32 else torch.empty(out.shape, dtype=torch.float32)
    _, final = _numpy_linear_attention(
        _array(q), _array(k), _array(v), fm, out=out32.numpy(), initial_state=initial, output_final_state=True,
        cu_seqlens=_array(cu_seqlens), log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
        key_gate_logits=_array(key_gate_logits), beta=_array(beta), **call.options)
    if out32 is not out:
        out.copy_(out32)
    if not call.output_final_state:
        return out, _EMPTY, _EMPTY
    S, z, _ = final.to_arrays()
    return out, torch.from_numpy(S), torch.from_numpy(z)


_EMPTY = torch.empty(0)     # S and z of a call without its final state (never handed to the user)


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
    out, S, z = forward(map_for(fm_key), _CALLS[call_key], q, k, v, present(extras))
    # A custom op may not return an input or a shared tensor: fresh empties for absent states.
    return out, (S if S.numel() else torch.empty(0)), (z if z.numel() else torch.empty(0))


@linear_attention_op.register_fake
def _fake(q, k, v, extras, fm_key, call_key):
    out = q.new_empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]))
    if not _CALLS[call_key].output_final_state:
        return out, q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    fm = map_for(fm_key)
    count, heads, features = _sequences(q, present(extras)[EXTRAS.index("cu_seqlens")]), k.shape[2], fm.dim
    return (out, q.new_empty((count, heads, features, v.shape[3]), dtype=torch.float32),
            q.new_empty((count, heads, features), dtype=torch.float32))


# ---- the backward ------------------------------------------------------------------------------------

def _param_gradient_shapes(fm, count):
    """Shapes of the parameter gradients the backward op returns (each parameter's shape)."""
    if not count:
        return []
    return [tuple(fm._param_shape(name)) for name in fm._param_names()]


# Gradients the backward returns, in order (then one per map parameter).
GRADIENTS = ("q", "k", "v", "log_decay", "query_gate_logits", "key_gate_logits", "initial_S", "initial_z", "beta")


def _backward_impl(q, k, v, fm_key, d_out, d_S, d_z, log_decay, query_gate_logits, key_gate_logits, initial_S,
                   initial_z, initial_positions, cu_seqlens, beta, param_count, causal, delta, chunk_size, n_threads,
                   denominator, normalize, decay, update, qk_l2norm):
    """slay.linear_attention_backward on tensors: GRADIENTS then the map's parameters, an empty (0,)
    tensor for each gradient that does not exist."""
    if not backward_available():
        raise error_for(UNSUPPORTED, "slay.torch: this build of libslay has no backward pass "
                        "(slay.linear_attention_backward); gradients through slay attention cannot be computed")
    import slay
    fm = fm_key if isinstance(fm_key, FeatureMap) else map_for(fm_key)
    initial = None
    if initial_S is not None:
        initial = slay.State.from_arrays(fm, _array(initial_S), _array(initial_z), _array(initial_positions))
    d_final = None
    if d_S is not None and d_S.numel():
        d_final = (np.ascontiguousarray(_array(d_S)), None if d_z is None else np.ascontiguousarray(_array(d_z)))
    delta_keywords = {}
    if update != "add" or beta is not None or qk_l2norm:
        delta_keywords = dict(update=update, beta=_array(beta), qk_l2norm=qk_l2norm)
    grads = slay.linear_attention_backward(
        _array(q), _array(k), _array(v), fm, np.ascontiguousarray(_array(d_out)),
        d_final_state=d_final, initial_state=initial, cu_seqlens=_array(cu_seqlens),
        log_decay=_array(log_decay), query_gate_logits=_array(query_gate_logits),
        key_gate_logits=_array(key_gate_logits), causal=causal, delta=delta, chunk_size=chunk_size,
        n_threads=n_threads, denominator=denominator, normalize=normalize, decay=decay, **delta_keywords)

    def tensor(value):
        return torch.empty(0) if value is None else torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    state = grads.get("initial_state") or (None, None)
    named = grads.get("params") or {}
    params = [tensor(named.get(name)) for name in fm._param_names()] if param_count else []
    return [tensor(grads.get("q")), tensor(grads.get("k")), tensor(grads.get("v")), tensor(grads.get("log_decay")),
            tensor(grads.get("query_gate_logits")), tensor(grads.get("key_gate_logits")), tensor(state[0]),
            tensor(state[1]), tensor(grads.get("beta"))] + params


@torch.library.custom_op("slay::linear_attention_backward", mutates_args=(), device_types="cpu")
def linear_attention_backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fm_key: int, d_out: torch.Tensor,
                                 d_S: torch.Tensor | None, d_z: torch.Tensor | None, log_decay: torch.Tensor | None,
                                 query_gate_logits: torch.Tensor | None, key_gate_logits: torch.Tensor | None,
                                 initial_S: torch.Tensor | None, initial_z: torch.Tensor | None,
                                 initial_positions: torch.Tensor | None, cu_seqlens: torch.Tensor | None,
                                 beta: torch.Tensor | None, param_count: int, causal: bool, delta: float,
                                 chunk_size: int, n_threads: int, denominator: str, normalize: bool,
                                 decay: list[float] | None, update: str, qk_l2norm: bool) -> list[torch.Tensor]:
    """slay.linear_attention_backward as an opaque op (so torch.compile never traces numpy):
    [dq, dk, dv, d log_decay, d query gates, d key gates, dS0, dz0, d beta, *d params], an empty
    (0,) tensor for each gradient that does not exist."""
    return _backward_impl(q, k, v, fm_key, d_out, d_S, d_z, log_decay, query_gate_logits, key_gate_logits, initial_S,
                          initial_z, initial_positions, cu_seqlens, beta, param_count, causal, delta, chunk_size,
                          n_threads, denominator, normalize, decay, update, qk_l2norm)


@linear_attention_backward_op.register_fake
def _fake_backward(q, k, v, fm_key, d_out, d_S, d_z, log_decay, query_gate_logits, key_gate_logits, initial_S,
                   initial_z, initial_positions, cu_seqlens, beta, param_count, causal, delta, chunk_size, n_threads,
                   denominator, normalize, decay, update, qk_l2norm):
    fm = map_for(fm_key)

    def like(tensor):   # gradients are float32 (autograd casts them to each input's dtype)
        return q.new_empty(0, dtype=torch.float32) if tensor is None else q.new_empty(tuple(tensor.shape),
                                                                                     dtype=torch.float32)

    count, heads, features = _sequences(q, cu_seqlens), k.shape[2], fm.dim
    f32 = torch.float32
    initial = [q.new_empty(0, dtype=f32), q.new_empty(0, dtype=f32)] if initial_S is None else [
        q.new_empty((count, heads, features, v.shape[3]), dtype=f32), q.new_empty((count, heads, features), dtype=f32)]
    return ([like(q), like(k), like(v), like(log_decay), like(query_gate_logits), like(key_gate_logits)] + initial
            + [like(beta)] + [q.new_empty(shape, dtype=f32) for shape in _param_gradient_shapes(fm, param_count)])


def _input_gradients(outs, extras, param_count):
    """(dq, dk, dv, [d extras..., d params...]) from the backward's list, None where an input was
    absent or has no gradient."""
    log_decay, query_gate_logits, key_gate_logits, initial_S, _, _, _, beta = extras

    def pick(index, wanted=True):
        return outs[index] if wanted and outs[index].numel() else None

    d_extras = [pick(3, log_decay is not None), pick(4, query_gate_logits is not None),
                pick(5, key_gate_logits is not None), pick(6, initial_S is not None), pick(7, initial_S is not None),
                None, None, pick(8, beta is not None)] + [pick(9 + i) for i in range(param_count)]
    return pick(0), pick(1), pick(2), d_extras


def _backward_arguments(call, d_S, d_z):
    options = call.options
    if not call.output_final_state:
        d_S = d_z = None
    return d_S, d_z, (call.param_count, options["causal"], options["delta"], options["chunk_size"],
                      options["n_threads"], options["denominator"], options["normalize"], options["decay"],
                      options["update"], options["qk_l2norm"])


def _setup_context(ctx, inputs, output):
    q, k, v, extras, fm_key, call_key = inputs
    ctx.save_for_backward(q, k, v, *present(extras))
    ctx.fm_key, ctx.call_key = fm_key, call_key


def _backward(ctx, d_out, d_S, d_z):
    q, k, v, *extras = ctx.saved_tensors
    call = _CALLS[ctx.call_key]
    d_S, d_z, settings = _backward_arguments(call, d_S, d_z)
    outs = linear_attention_backward_op(q, k, v, ctx.fm_key, d_out.contiguous(), d_S, d_z, *extras[:7], extras[7],
                                        *settings)
    dq, dk, dv, d_extras = _input_gradients(outs, extras, call.param_count)
    return dq, dk, dv, d_extras, None, None


torch.library.register_autograd("slay::linear_attention", _backward, setup_context=_setup_context)


# ---- the eager path: the same implementations without the custom-op layers ---------------------------

class _Eager(torch.autograd.Function):
    """forward(fm, call, extras, q, k, v, *tensors) → out, or (out, S, z) when the call outputs its
    final state. `extras` is the EXTRAS tuple (None where absent); `tensors` repeats the present
    ones (so autograd sees them as inputs), then the map's parameters. Few inputs, few saved
    tensors: each costs time on every call."""

    @staticmethod
    def forward(ctx, fm, call, extras, q, k, v, *tensors):
        out, S, z = forward(fm, call, q, k, v, extras)
        present = len(tensors) - call.param_count
        if present:     # one ctx attribute (each costs time): the map, the call, which extras exist
            ctx.info = (fm, call, tuple(t is not None for t in extras))
            ctx.save_for_backward(q, k, v, *tensors[:present])
        else:
            ctx.info = (fm, call, None)
            ctx.save_for_backward(q, k, v)
        return (out, S, z) if call.output_final_state else out

    @staticmethod
    def backward(ctx, d_out, d_S=None, d_z=None):
        q, k, v, *given = ctx.saved_tensors
        fm, call, layout = ctx.info
        if layout is None:
            extras = NO_EXTRAS
        else:
            given.reverse()
            extras = tuple(given.pop() if present else None for present in layout)
        d_S, d_z, settings = _backward_arguments(call, d_S, d_z)
        outs = _backward_impl(q, k, v, fm, d_out.contiguous(), d_S, d_z, *extras, *settings)
        dq, dk, dv, d_extras = _input_gradients(outs, extras, call.param_count)
        kept = [d for d, t in zip(d_extras, extras) if t is not None]
        return (None, None, None, dq, dk, dv, *kept, *d_extras[len(EXTRAS):])


try:    # Function.apply without its Python wrapper (functorch bookkeeping, unused on the eager path)
    _apply = torch._C._FunctionBase.__dict__["apply"].__get__(None, _Eager)
except (AttributeError, KeyError, TypeError):   # pragma: no cover - other torch versions
    _apply = _Eager.apply

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def apply(fm, key, q, k, v, extras, params, grad):
    """(out, S, z) of the call `key` (q, k, v float32 or half, see forward); extras the EXTRAS
    tensors or None (NO_EXTRAS when all are), params the map's parameter tensors; grad: whether
    autograd must record the call."""
    call = _CALLS[key]
    # The eager path when nothing traces or transforms this call: no torch.compile, functorch
    # transform, dispatch or function mode, and plain tensors (fake tensors and other subclasses
    # take the registered op).
    if (type(q) in _PLAIN and type(k) in _PLAIN and type(v) in _PLAIN and not torch.compiler.is_compiling()
            and not torch._C._len_torch_dispatch_stack() and not torch._C._len_torch_function_stack()
            and not torch._C._are_functorch_transforms_active()):
        if not grad:
            return forward(fm, call, q, k, v, extras)
        if extras is NO_EXTRAS:
            result = _apply(fm, call, extras, q, k, v, *params)
        else:
            result = _apply(fm, call, extras, q, k, v, *[t for t in extras if t is not None], *params)
        return result if call.output_final_state else (result, _EMPTY, _EMPTY)
    absent = torch.empty(0)
    optional = [absent if t is None else t for t in extras]
    return linear_attention_op(q, k, v, optional + list(params), map_key(fm), key)
