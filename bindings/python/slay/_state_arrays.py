"""States as plain arrays: S [N, H, m, dv], z [N, H, m] and positions [N], to and from slay.State
(slay.h slay_state_read / slay_state_write), and the initial_state forms slay.linear_attention
accepts besides a State: an S array, or an (S, z) tuple."""
import ctypes

import numpy as np

from ._lib import lib, Error
from .errors import check, error_for, INVALID_ARGUMENT, SHAPE

_FLOATS = ctypes.POINTER(ctypes.c_float)


def _float_array(value, name, ndim):
    array = np.ascontiguousarray(value, dtype=np.float32)
    if array.ndim != ndim:
        raise error_for(SHAPE, "%s must have %d dimensions, got shape %s" % (name, ndim, array.shape))
    return array


def state_from_arrays(state_class, fm, S, z=None, positions=None, max_threads=1):
    """A new state_class (slay.State) for fm with S [N, H, m, dv] float32, z [N, H, m] (None:
    zeros, as for unnormalised attention) and positions [N] (tokens absorbed; None: zeros)."""
    matrix = _float_array(S, "S", 4)
    count, heads, features, width = matrix.shape
    normaliser = np.zeros((count, heads, features), np.float32) if z is None else _float_array(z, "z", 3)
    if normaliser.shape != (count, heads, features):
        raise error_for(SHAPE, "z has shape %s; S %s needs z [N, H, m] = %s"
                        % (normaliser.shape, matrix.shape, (count, heads, features)))
    if positions is None:
        where = np.zeros(count, np.int64)
    else:
        where = np.asarray(positions)
        if where.shape != (count,) or not np.issubdtype(where.dtype, np.integer):
            raise error_for(SHAPE, "positions must be %d integers (one per sequence), got %r" % (count, positions))
        where = where.astype(np.int64)
    state = state_class(fm, num_seqs=count, value_dim=width, max_threads=max_threads)
    found = (state.num_heads, state.feature_dim)
    if (heads, features) != found:
        state.close()
        raise error_for(SHAPE, "S has H = %d, m = %d; the feature map has %d key heads of %d features"
                        % (heads, features, found[0], found[1]))
    err = Error()
    code = 0
    with state._using() as handle:
        for slot in range(count):
            code = lib.slay_state_write(handle, slot, matrix[slot].ctypes.data_as(_FLOATS), matrix[slot].size,
                                        normaliser[slot].ctypes.data_as(_FLOATS), normaliser[slot].size,
                                        int(where[slot]), ctypes.byref(err))
            if code:
                break
    if code:
        state.close()
        check(code, err)
    return state


def state_to_arrays(state):
    """(S [N, H, m, dv], z [N, H, m], positions [N] int64) copies of every slot of a slay.State."""
    # One lock for the whole read, so the slots form one consistent snapshot.
    with state._using() as handle:
        count, heads, features, width = state._dims()
        matrix = np.empty((count, heads, features, width), np.float32)
        normaliser = np.empty((count, heads, features), np.float32)
        err = Error()
        for slot in range(count):
            check(lib.slay_state_read(handle, slot, matrix[slot].ctypes.data_as(_FLOATS), matrix[slot].size,
                                      normaliser[slot].ctypes.data_as(_FLOATS), normaliser[slot].size,
                                      ctypes.byref(err)), err)
        positions = np.array([state.position(slot) for slot in range(count)], np.int64)
    return matrix, normaliser, positions


def as_initial_state(state_class, fm, initial_state):
    """initial_state of slay.linear_attention as a State: a State as is, an S array [N, H, m, dv]
    (z zeros), or an (S, z) tuple."""
    if isinstance(initial_state, state_class):
        return initial_state
    if isinstance(initial_state, tuple):
        if len(initial_state) != 2:
            raise error_for(INVALID_ARGUMENT, "an initial_state tuple is (S, z); got %d items" % len(initial_state))
        return state_from_arrays(state_class, fm, initial_state[0], initial_state[1])
    if isinstance(initial_state, np.ndarray):
        return state_from_arrays(state_class, fm, initial_state)
    raise error_for(INVALID_ARGUMENT, "initial_state must be a slay.State, an S array [N, H, m, dv] or an (S, z) "
                    "tuple, got %s" % type(initial_state).__name__)
