"""slay.torch.State: a slay.State whose array methods take and return torch tensors."""
import numpy as np
import torch

from ..state import State as _State
from ..errors import error_for, INVALID_ARGUMENT


def _numpy(value, dtype=np.float32):
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise error_for(INVALID_ARGUMENT, "slay.torch.State: tensors must be on the CPU, got %s" % value.device)
        value = value.detach()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return np.asarray(value, dtype=dtype)


def _tensor(array):
    return None if array is None else torch.from_numpy(array)


class State(_State):
    """Recurrent states of N sequences, as slay.State (same constructor, blobs, slots and methods),
    with tensors in and out: from_arrays(fm, S, z=None, positions=None) takes S [N, H, m, dv] and
    z [N, H, m] tensors, to_arrays() and read(slot) return tensors, and prefill / query / step take
    CPU tensors (float32 without a copy; other float dtypes converted) and return float32 tensors.

    `tensors` is set on the final state that slay.torch.linear_attention returns: its (S, z) as
    tensors that carry gradients back through the call (the C state itself is a detached copy).
    States never carry gradients through prefill / step; use slay.torch.linear_attention for that.
    """

    tensors = None

    @classmethod
    def from_arrays(cls, fm, S, z=None, positions=None, max_threads=1):
        """A new State for fm from tensors (or arrays): S [N, H, m, dv], z [N, H, m] (None: zeros),
        positions [N] (None: zeros); max_threads as in State()."""
        return super().from_arrays(fm, _numpy(S), _numpy(z), None if positions is None else _numpy(positions, np.int64),
                                   max_threads)

    def to_arrays(self):
        """(S [N, H, m, dv], z [N, H, m], positions [N] int64) as tensors (copies)."""
        return tuple(torch.from_numpy(a) for a in super().to_arrays())

    def read(self, slot=0):
        """(S [H, m, dv], z [H, m]) of slot `slot` as float32 tensors (copies)."""
        return tuple(torch.from_numpy(a) for a in super().read(slot))

    def prefill(self, q, k, v, causal=True, delta=1e-6, chunk_size=0, n_threads=1, cu_seqlens=None, slots=None,
                out=None, denominator="add", normalize=True, decay=None, log_decay=None, query_gate_logits=None,
                key_gate_logits=None, gate_input=None, query_gate_weights=None, key_gate_weights=None, update="add",
                beta=None, qk_l2norm=False, check_finite=False):
        """slay.State.prefill with tensors (q may be None); returns a tensor or None. Every keyword
        (causal, delta, chunk_size, n_threads, cu_seqlens, slots, out, denominator, normalize,
        decay, log_decay, query_gate_logits, key_gate_logits, gate_input, query_gate_weights,
        key_gate_weights, update, beta, qk_l2norm, check_finite) as in slay.State.prefill."""
        result = super().prefill(_numpy(q), _numpy(k), _numpy(v), causal=causal, delta=delta, chunk_size=chunk_size,
                                 n_threads=n_threads, cu_seqlens=_numpy(cu_seqlens, np.int64),
                                 slots=_numpy(slots, np.int64), out=_numpy(out), denominator=denominator,
                                 normalize=normalize, decay=decay, log_decay=_numpy(log_decay),
                                 query_gate_logits=_numpy(query_gate_logits), key_gate_logits=_numpy(key_gate_logits),
                                 gate_input=_numpy(gate_input), query_gate_weights=_numpy(query_gate_weights),
                                 key_gate_weights=_numpy(key_gate_weights), update=update, beta=_numpy(beta),
                                 qk_l2norm=qk_l2norm, check_finite=check_finite)
        return out if out is not None else _tensor(result)

    def query(self, q, delta=1e-6, chunk_size=0, n_threads=1, cu_seqlens=None, slots=None, out=None,
              denominator="add", normalize=True, query_gate_logits=None, gate_input=None, query_gate_weights=None):
        """slay.State.query with tensors; every keyword (delta, chunk_size, n_threads, cu_seqlens,
        slots, out, denominator, normalize, query_gate_logits, gate_input, query_gate_weights) as
        there."""
        result = super().query(_numpy(q), delta=delta, chunk_size=chunk_size, n_threads=n_threads,
                               cu_seqlens=_numpy(cu_seqlens, np.int64), slots=_numpy(slots, np.int64),
                               out=_numpy(out), denominator=denominator, normalize=normalize,
                               query_gate_logits=_numpy(query_gate_logits), gate_input=_numpy(gate_input),
                               query_gate_weights=_numpy(query_gate_weights))
        return out if out is not None else _tensor(result)

    def step(self, q, k, v, delta=1e-6, n_threads=1, slots=None, out=None, denominator="add", normalize=True,
             decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None, gate_input=None,
             query_gate_weights=None, key_gate_weights=None, update="add", beta=None, qk_l2norm=False,
             check_finite=False):
        """slay.State.step with tensors: q (N, Hq, d), k (N, H, d), v (N, H, dv) → (N, Hq, dv);
        every keyword (delta, n_threads, slots, out, denominator, normalize, decay, log_decay,
        query_gate_logits, key_gate_logits, gate_input, query_gate_weights, key_gate_weights,
        update, beta, qk_l2norm, check_finite) as in slay.State.step."""
        result = super().step(_numpy(q), _numpy(k), _numpy(v), delta=delta, n_threads=n_threads,
                              slots=_numpy(slots, np.int64), out=_numpy(out), denominator=denominator,
                              normalize=normalize, decay=decay, log_decay=_numpy(log_decay),
                              query_gate_logits=_numpy(query_gate_logits), key_gate_logits=_numpy(key_gate_logits),
                              gate_input=_numpy(gate_input), query_gate_weights=_numpy(query_gate_weights),
                              key_gate_weights=_numpy(key_gate_weights), update=update, beta=_numpy(beta),
                              qk_l2norm=qk_l2norm, check_finite=check_finite)
        return out if out is not None else _tensor(result)

    def copy(self):
        """A new, independent slay.torch.State with the same contents."""
        copied = super().copy()
        handle, copied._handle = copied._handle, None
        return State(self.fm, _handle=handle)
