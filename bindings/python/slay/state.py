"""slay.State: recurrent states of N sequences for prefill, decoding, save / load / fork."""
import ctypes
import threading
from contextlib import contextmanager, nullcontext

import numpy as np

from ._handle import OwnedHandle
from ._lib import lib, Error
from ._tensor import as_input, as_output, descriptor, DescriptorCache
from .options import attention_options, resolve_gates
from .errors import check, error_for, translated, INVALID_ARGUMENT, OUT_OF_MEMORY
from .feature_map import require_map


def _int64_array(values, name):
    if values is None:
        return None, None
    given = np.asarray(values)
    # Offsets are integers: 1.7 must not silently become 1.
    if given.size and not np.issubdtype(given.dtype, np.integer):
        raise error_for(INVALID_ARGUMENT, "%s must hold integers, got dtype %s" % (name, given.dtype))
    array = np.ascontiguousarray(given, dtype=np.int64)
    if array.ndim != 1:
        raise error_for(INVALID_ARGUMENT, "%s must be 1-D" % name)
    return array, array.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))


def _slots(slots):
    if slots is None:
        return None, None
    array = np.asarray(slots)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise error_for(INVALID_ARGUMENT, "slots must be a 1-D integer sequence")
    if array.size and (array.min() < -2**31 or array.max() >= 2**31):
        raise error_for(INVALID_ARGUMENT, "slots out of int32 range")
    array = np.ascontiguousarray(array, dtype=np.int32)
    return array, array.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


# storage_dtype names → SLAY_DTYPE_* (slay.h).
STORAGE_DTYPES = {"float32": 0, "float16": 2, "bfloat16": 3}


def _storage_code(storage_dtype):
    """SLAY_DTYPE_* of a storage_dtype given by name or as a numpy (or ml_dtypes) dtype."""
    try:
        name = storage_dtype if isinstance(storage_dtype, str) else np.dtype(storage_dtype).name
    except TypeError:
        name = None
    if name not in STORAGE_DTYPES:
        raise error_for(INVALID_ARGUMENT, "storage_dtype must be one of 'float32', 'bfloat16', 'float16', got %r"
                        % (storage_dtype,))
    return STORAGE_DTYPES[name]


def _integer(value, name, bits=63):
    """An int argument in the signed range of its C type, or a SlayValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error_for(INVALID_ARGUMENT, "%s must be an int, got %r" % (name, value))
    if not -2**bits <= int(value) < 2**bits:
        raise error_for(INVALID_ARGUMENT, "%s = %d is out of range" % (name, value))
    return int(value)


def _map_lock(fm):
    """The readers-writer lock of a State's map (read-held during every call on the state), or None."""
    return fm._lock if getattr(fm, "_reading", None) is not None else None


def _map_reading(fm):
    """The read lock of a State's map as a context manager."""
    lock = _map_lock(fm)
    return lock.reading() if lock is not None else nullcontext()


class State(OwnedHandle):
    """States S [H, m, dv] and z [H, m] of `num_seqs` slots for feature map `fm`.

    State(fm, num_seqs=1, value_dim=None, max_threads=1, storage_dtype="float32"): num_seqs slots
    (1..2^20), value width value_dim (None: fm's head_dim), max_threads decode workspaces (1..256),
    S and z stored as "float32", "bfloat16" or "float16" (half the memory and decode traffic; all
    arithmetic stays fp32; see docs/half-precision.md for the accuracy cost). prefill(q, k, v) runs
    prompts (causal outputs, or absorb only with q=None); step(q, k, v) decodes one token per
    sequence; query(q) reads without changing; save() → bytes, State.load(blob, fm,
    max_threads=1), restore(blob), copy(), copy_slot(dst_slot, src, src_slot), reset(slot=None),
    read(slot=0), position(slot=0). Safe to share between threads: calls on one State run one at
    a time (the others wait), and each call read-locks the feature map, so fm.set_params waits for
    it (slay.h allows one call at a time per state).
    """

    _free = staticmethod(lib.slay_state_free)
    _what = "state"

    @translated
    def __init__(self, fm, num_seqs=1, value_dim=None, max_threads=1, storage_dtype="float32", _handle=None):
        self._handle = None
        self._lock = threading.RLock()
        self.fm = fm
        self._descriptors = DescriptorCache()
        self._step_options = {}
        self._step_buffer = None
        self._error = ctypes.byref(Error())
        if _handle is not None:
            self._handle = _handle
            return
        require_map(fm)
        if value_dim is None:
            value_dim = fm.head_dim
        num_seqs = _integer(num_seqs, "num_seqs")
        value_dim = _integer(value_dim, "value_dim")
        max_threads = _integer(max_threads, "max_threads", 32)
        handle = ctypes.c_void_p()
        err = Error()
        with fm._reading() as fm_handle:
            check(lib.slay_state_create_v2(fm_handle, num_seqs, value_dim, max_threads, _storage_code(storage_dtype),
                                           ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle

    def _exclusive(self):
        return self._lock

    @contextmanager
    def _using(self):
        """This state's handle, with the state locked and its feature map read-locked."""
        with self._lock, _map_reading(self.fm):
            yield self.handle

    @property
    def storage_dtype(self):
        """The element type S and z are stored in: "float32", "bfloat16" or "float16"."""
        code = ctypes.c_int32()
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_storage_dtype(handle, ctypes.byref(code), ctypes.byref(err)), err)
        return {v: k for k, v in STORAGE_DTYPES.items()}[code.value]

    def _dims(self):
        values = [ctypes.c_int64() for _ in range(4)]
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_dims(handle, *[ctypes.byref(x) for x in values], ctypes.byref(err)), err)
        return [x.value for x in values]

    num_seqs = property(lambda self: self._dims()[0])
    num_heads = property(lambda self: self._dims()[1])
    feature_dim = property(lambda self: self._dims()[2])
    value_dim = property(lambda self: self._dims()[3])

    @classmethod
    @translated
    def from_arrays(cls, fm, S, z=None, positions=None, max_threads=1):
        """A new State for fm from plain arrays: S [N, H, m, dv] float32, z [N, H, m] (None: zeros)
        and positions [N] (tokens absorbed per slot, cosFormer reads them; None: zeros); one slot per
        sequence, max_threads as in State(). Not for "ela-hadamard-exp" (its rows are rescaled;
        use save / load). slay.h slay_state_write."""
        from ._state_arrays import state_from_arrays
        return state_from_arrays(cls, fm, S, z, positions, max_threads)

    @translated
    def to_arrays(self):
        """(S [N, H, m, dv], z [N, H, m], positions [N] int64): float32 copies of every slot (the
        inverse of from_arrays; read(slot) gives one slot)."""
        from ._state_arrays import state_to_arrays
        return state_to_arrays(self)

    @translated
    def position(self, slot=0):
        """Tokens absorbed by slot `slot` since creation or reset."""
        out = ctypes.c_int64()
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_position(handle, _integer(slot, "slot"), ctypes.byref(out), ctypes.byref(err)), err)
        return out.value

    @translated
    def read(self, slot=0):
        """(S [H, m, dv], z [H, m]) of one slot, as float32 copies. For "ela-hadamard-exp" the rows
        are stored rescaled by e^{−μ_f} (μ_f the running maximum of the keys' entry f; slay.h
        slay_state_read)."""
        _, h, m, dv = self._dims()
        matrix = np.zeros((h, m, dv), np.float32)
        normaliser = np.zeros((h, m), np.float32)
        err = Error()
        fp = ctypes.POINTER(ctypes.c_float)
        with self._using() as handle:
            check(lib.slay_state_read(handle, _integer(slot, "slot"), matrix.ctypes.data_as(fp), matrix.size,
                                      normaliser.ctypes.data_as(fp), normaliser.size, ctypes.byref(err)), err)
        return matrix, normaliser

    @translated
    def prefill(self, q, k, v, causal=True, delta=1e-6, chunk_size=0, n_threads=1, cu_seqlens=None,
                slots=None, out=None, denominator="add", normalize=True, decay=None, log_decay=None,
                query_gate_logits=None, key_gate_logits=None, gate_input=None, query_gate_weights=None,
                key_gate_weights=None, update="add", beta=None, qk_l2norm=False, check_finite=False):
        """Runs prompts through their slots; returns outputs (B, T, Hq, dv), or None when q is None.

        k (B, T, H, d), v (B, T, H, dv), q (B, T, Hq, d) or None (keys and values only absorbed).
        cu_seqlens: None for a padded batch (B sequences), or N + 1 offsets of N packed sequences
        (B = 1). slots: None (slots 0..N−1) or N distinct slot indices. out: optional output array.
        causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay
        ((B, T, Hk) or (B, T, Hk, m)), the gates (query_gate_logits, key_gate_logits, or gate_input
        with query_gate_weights / key_gate_weights), update ("add" or "delta"), beta (B, T, Hk) and
        qk_l2norm as in slay.linear_attention (query gates are unused when q is None).
        check_finite=True: NaN / ±inf in q, k or v raise slay.NonFiniteError and leave the state
        untouched (otherwise a non-finite key or value poisons its slot until reset()).
        q, k, v, out and the token tensors may each be float32, float16 or bfloat16 (ml_dtypes);
        the outputs have the dtype of v unless out is given."""
        k = as_input(k, "k", 4, half=True)
        v = as_input(v, "v", 4, half=True)
        cu, cu_ptr = _int64_array(cu_seqlens, "cu_seqlens")
        num = (len(cu) - 1) if cu is not None else k.shape[0]
        slot_array, slot_ptr = _slots(slots)
        if q is not None:
            q = as_input(q, "q", 4, half=True)
            shape = (q.shape[0], q.shape[1], q.shape[2], v.shape[3])
            out = np.empty(shape, v.dtype) if out is None else as_output(out, "out", shape, half=True)
        if slot_array is not None and len(slot_array) != num:
            raise error_for(INVALID_ARGUMENT, "slots has %d entries for %d sequences" % (len(slot_array), num))
        if cu is not None and len(cu) < 2:
            raise error_for(INVALID_ARGUMENT, "cu_seqlens needs at least 2 offsets")
        query_gates, key_gates = resolve_gates(query_gate_logits, key_gate_logits, gate_input, query_gate_weights,
                                               key_gate_weights)
        options = attention_options(causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay,
                                    query_gates, key_gates, update=update, beta=beta, qk_l2norm=qk_l2norm,
                                    check_finite=check_finite)
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_prefill(handle, descriptor(q) if q is not None else None, descriptor(k),
                                         descriptor(v), descriptor(out) if q is not None else None, cu_ptr, slot_ptr,
                                         num, ctypes.byref(options), ctypes.byref(err)), err)
        return out if q is not None else None

    @translated
    def query(self, q, delta=1e-6, chunk_size=0, n_threads=1, cu_seqlens=None, slots=None, out=None,
              denominator="add", normalize=True, query_gate_logits=None, gate_input=None, query_gate_weights=None):
        """Read-only: φ(q)ᵀS / (φ(q)ᵀz + δ) for every query (B, T, Hq, d) → (B, T, Hq, dv).
        cu_seqlens, slots and out as in prefill; delta, chunk_size, n_threads, denominator and
        normalize as in slay.linear_attention. Query gates (query_gate_logits (B, T, Hq), or
        gate_input with query_gate_weights) apply; decay and key gates belong to key absorption
        (prefill, step). q and out may be float32, float16 or bfloat16; the outputs have the dtype
        of q unless out is given."""
        q = as_input(q, "q", 4, half=True)
        cu, cu_ptr = _int64_array(cu_seqlens, "cu_seqlens")
        num = (len(cu) - 1) if cu is not None else q.shape[0]
        _, slot_ptr = _slots(slots)
        shape = (q.shape[0], q.shape[1], q.shape[2], self.value_dim)
        out = np.empty(shape, q.dtype) if out is None else as_output(out, "out", shape, half=True)
        query_gates, _ = resolve_gates(query_gate_logits, None, gate_input, query_gate_weights, None)
        options = attention_options(True, delta, chunk_size, n_threads, denominator, normalize,
                                    query_gate_logits=query_gates)
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_query(handle, descriptor(q), descriptor(out), cu_ptr, slot_ptr, num,
                                       ctypes.byref(options), ctypes.byref(err)), err)
        return out

    @translated
    def step(self, q, k, v, delta=1e-6, n_threads=1, slots=None, out=None, denominator="add", normalize=True,
             decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None, gate_input=None,
             query_gate_weights=None, key_gate_weights=None, update="add", beta=None, qk_l2norm=False,
             check_finite=False):
        """One token per sequence: q (N, Hq, d), k (N, H, d), v (N, H, dv) → (N, Hq, dv).

        slots: None (slots 0..N−1) or N distinct slot indices; out: optional (N, Hq, dv) array.
        delta, n_threads, denominator, normalize and decay as in slay.linear_attention (chunk_size
        and causal do not apply to a step); log_decay (N, Hk) or (N, Hk, m); gate logits
        query_gate_logits (N, Hq) / key_gate_logits (N, Hk), or gate_input (N, D) with
        query_gate_weights / key_gate_weights; update="delta" with beta (N, Hk) for the delta rule;
        qk_l2norm as in slay.linear_attention. check_finite=True: NaN / ±inf in q, k or v raise
        slay.NonFiniteError with the state untouched. q, k, v, out and the token tensors may each
        be float32, float16 or bfloat16 (ml_dtypes); the outputs have the dtype of v unless out is
        given.

        The hot path of decoding: arrays passed again (the same q/k/v/out buffers every step) reuse
        their validated descriptors, and the options and error structs are reused, so the call
        costs a few microseconds on top of the library's work.
        """
        cache = self._descriptors
        q_ref = cache.get(q, "q", 3)
        k_ref = cache.get(k, "k", 3)
        v_ref = cache.get(v, "v", 3)
        shape = (q.shape[0], q.shape[1], v.shape[2])
        if out is None:
            # Decoded into a buffer kept for this shape and dtype, then copied out under the lock:
            # a copy costs a fraction of describing a fresh array to ctypes every step.
            buffer = self._step_buffer
            if buffer is None or buffer.shape != shape or buffer.dtype is not v.dtype:
                buffer = self._step_buffer = np.empty(shape, v.dtype)
            out_ref = cache.get(buffer, "out", 3, shape)
        else:
            buffer = None
            out_ref = cache.get(out, "out", 3, shape)
        if slots is None:
            slot_ptr = None
        else:
            _, slot_ptr = _slots(slots)
        if (log_decay is None and query_gate_logits is None and key_gate_logits is None and gate_input is None
                and query_gate_weights is None and key_gate_weights is None and beta is None):
            key = (delta, n_threads, denominator, normalize, None if decay is None else tuple(np.ravel(decay).tolist()),
                   update, qk_l2norm, check_finite)
            options = self._step_options.get(key)
            if options is None:
                options = ctypes.byref(attention_options(True, delta, 1, n_threads, denominator, normalize, decay,
                                                         update=update, qk_l2norm=qk_l2norm, check_finite=check_finite))
                self._step_options = {key: options}
        else:
            # Per-token tensors change every step: a fresh struct, not the cached one.
            query_gates, key_gates = resolve_gates(query_gate_logits, key_gate_logits, gate_input, query_gate_weights,
                                                   key_gate_weights)
            options = ctypes.byref(attention_options(True, delta, 1, n_threads, denominator, normalize, decay,
                                                     log_decay, query_gates, key_gates, step=True, update=update,
                                                     beta=beta, qk_l2norm=qk_l2norm, check_finite=check_finite))
        # The state's lock and its map's read lock, taken directly (the hot path; _using() does the same).
        map_lock = _map_lock(self.fm)
        with self._lock:
            if map_lock is not None:
                map_lock.acquire_read()
            try:
                # The shared error struct is written under the lock, and read before it is released.
                err = self._error
                code = lib.slay_state_step(self.handle, q_ref, k_ref, v_ref, out_ref, slot_ptr, shape[0], options, err)
                if code:
                    check(code, err._obj)
                if buffer is not None:
                    out = buffer.copy()
            finally:
                if map_lock is not None:
                    map_lock.release_read()
        return out

    @translated
    def save(self):
        """The whole state as a checksummed blob (bytes; slay.h slay_state_save)."""
        size = ctypes.c_size_t()
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_serialized_size(handle, ctypes.byref(size), ctypes.byref(err)), err)
            try:
                buffer = ctypes.create_string_buffer(size.value)
            except MemoryError:
                raise error_for(OUT_OF_MEMORY, "cannot allocate the %d-byte blob" % size.value) from None
            written = ctypes.c_size_t()
            check(lib.slay_state_save(handle, buffer, size, ctypes.byref(written), ctypes.byref(err)), err)
        return buffer.raw[:written.value]

    @classmethod
    @translated
    def load(cls, blob, fm, max_threads=1):
        """A new State for fm from a blob of save(); max_threads as in State()."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise error_for(INVALID_ARGUMENT, "blob must be bytes")
        data = bytes(blob)
        require_map(fm)
        max_threads = _integer(max_threads, "max_threads", 32)
        handle = ctypes.c_void_p()
        err = Error()
        with fm._reading() as fm_handle:
            check(lib.slay_state_load(fm_handle, data, len(data), max_threads, ctypes.byref(handle),
                                      ctypes.byref(err)), err)
        return cls(fm, _handle=handle)

    @translated
    def restore(self, blob):
        """Replace this state's contents from a blob of save() (same map and dims)."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise error_for(INVALID_ARGUMENT, "blob must be bytes")
        data = bytes(blob)
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_restore(handle, data, len(data), ctypes.byref(err)), err)

    @translated
    def copy(self):
        """A new, independent State with the same contents."""
        copied = ctypes.c_void_p()
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_copy(handle, ctypes.byref(copied), ctypes.byref(err)), err)
        return State(self.fm, _handle=copied)

    @translated
    def copy_slot(self, dst_slot, src, src_slot):
        """Copy slot src_slot of State src (may be self) into slot dst_slot of this state."""
        if not isinstance(src, State):
            raise error_for(INVALID_ARGUMENT, "src must be a slay.State, got %s" % type(src).__name__)
        dst_slot, src_slot = _integer(dst_slot, "dst_slot"), _integer(src_slot, "src_slot")
        err = Error()
        # Two states are locked in a fixed order (by id), so two threads copying between the same
        # pair in opposite directions cannot deadlock.
        first, second = sorted((self, src), key=id)
        with first._using(), second._using() if second is not first else nullcontext():
            check(lib.slay_state_copy_slot(self.handle, dst_slot, src.handle, src_slot, ctypes.byref(err)), err)

    @translated
    def reset(self, slot=None):
        """Zero slot `slot`, or every slot when slot is None."""
        err = Error()
        with self._using() as handle:
            check(lib.slay_state_reset(handle, -1 if slot is None else _integer(slot, "slot"), ctypes.byref(err)), err)
