"""numpy arrays → slay_tensor descriptors (no copies of valid inputs)."""
import ctypes

import numpy as np

from ._lib import Tensor
from .errors import SHAPE, DTYPE, LAYOUT, INVALID_ARGUMENT, error_for

F32 = 0


def as_input(array, name, ndim):
    """A float32 array of `ndim` dims; any strides (negative ones are copied to contiguous)."""
    if not isinstance(array, np.ndarray):
        raise error_for(INVALID_ARGUMENT, "%s must be a numpy array, got %s" % (name, type(array).__name__))
    if array.dtype != np.float32:
        raise error_for(DTYPE, "%s must be float32, got %s" % (name, array.dtype))
    if array.ndim != ndim:
        raise error_for(SHAPE, "%s must have %d dimensions, got shape %s" % (name, ndim, array.shape))
    if any(s < 0 for s in array.strides) or any(s % 4 for s in array.strides):
        array = np.ascontiguousarray(array)
    return array


def as_output(array, name, shape):
    """A caller-provided output: float32, exact shape, writeable, non-negative element strides."""
    if not isinstance(array, np.ndarray):
        raise error_for(INVALID_ARGUMENT, "%s must be a numpy array, got %s" % (name, type(array).__name__))
    if array.dtype != np.float32:
        raise error_for(DTYPE, "%s must be float32, got %s" % (name, array.dtype))
    if tuple(array.shape) != tuple(shape):
        raise error_for(SHAPE, "%s has shape %s, expected %s" % (name, array.shape, tuple(shape)))
    if not array.flags.writeable:
        raise error_for(INVALID_ARGUMENT, "%s is not writeable" % name)
    if any(s < 0 or s % 4 for s in array.strides):
        raise error_for(LAYOUT, "%s strides %s are negative or not multiples of 4 bytes" % (name, array.strides))
    return array


def descriptor(array):
    t = Tensor()
    t.data = array.ctypes.data
    t.dtype = F32
    t.ndim = array.ndim
    for axis in range(array.ndim):
        t.shape[axis] = array.shape[axis]
        t.strides[axis] = array.strides[axis] // 4
    return ctypes.byref(t)
