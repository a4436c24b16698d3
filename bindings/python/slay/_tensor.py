"""numpy arrays → slay_tensor descriptors (no copies of valid inputs).

Strides go from bytes to elements; a stride that is not a multiple of 4 bytes or a data pointer
that is not 4-byte aligned cannot be described to libslay and is refused (SLAY_ERR_LAYOUT).
Inputs with negative strides (e.g. x[:, ::-1]) are copied to contiguous memory; outputs are
never copied, so they must be writeable with non-negative strides.
"""
import ctypes

import numpy as np

from ._lib import Tensor, MAX_DIMS
from .errors import SHAPE, DTYPE, LAYOUT, INVALID_ARGUMENT, error_for

F32 = 0
ITEMSIZE = 4


def _common(array, name, ndim):
    if not isinstance(array, np.ndarray):
        raise error_for(INVALID_ARGUMENT, "%s must be a numpy array, got %s" % (name, type(array).__name__))
    if array.dtype != np.float32:
        hint = " (libslay computes in fp32: pass %s.astype(np.float32))" % name if array.dtype == np.float64 else ""
        raise error_for(DTYPE, "%s must be float32, got %s%s" % (name, array.dtype, hint))
    if array.ndim != ndim:
        raise error_for(SHAPE, "%s must have %d dimensions, got shape %s" % (name, ndim, array.shape))


def _check_layout(array, name):
    if any(s % ITEMSIZE for s in array.strides):
        raise error_for(LAYOUT, "%s strides %s (bytes) are not multiples of the float32 size 4"
                        % (name, array.strides))
    if array.ctypes.data % ITEMSIZE:
        raise error_for(LAYOUT, "%s data pointer is not 4-byte aligned" % name)


def as_input(array, name, ndim):
    """A float32 array of `ndim` dims, passed with its strides; negative strides are copied."""
    _common(array, name, ndim)
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)
    _check_layout(array, name)
    return array


def as_output(array, name, shape):
    """A caller-provided output: float32, exact shape, writeable, non-negative element strides."""
    _common(array, name, len(shape))
    if tuple(array.shape) != tuple(shape):
        raise error_for(SHAPE, "%s has shape %s, expected %s" % (name, array.shape, tuple(shape)))
    if not array.flags.writeable:
        raise error_for(INVALID_ARGUMENT, "%s is not writeable" % name)
    if any(s < 0 for s in array.strides):
        raise error_for(LAYOUT, "%s has negative strides %s; outputs are not copied" % (name, array.strides))
    _check_layout(array, name)
    return array


def descriptor(array):
    """ctypes.byref of a slay_tensor describing `array` (which must stay alive during the call)."""
    return ctypes.byref(tensor_struct(array))


def tensor_struct(array):
    """The slay_tensor describing `array` (which must stay alive as long as the struct is used)."""
    return pointer_struct(array.ctypes.data, array.shape, [s // ITEMSIZE for s in array.strides])


def pointer_struct(data, shape, strides, name="tensor"):
    """The slay_tensor of float32 memory at address `data` with `shape` and `strides` in elements
    (another framework's tensor: torch's data_ptr() and stride()); the memory must stay alive as
    long as the struct is used. A misaligned address or a negative stride is refused
    (SLAY_ERR_LAYOUT); libslay checks the rest."""
    if data % ITEMSIZE:
        raise error_for(LAYOUT, "%s data pointer is not 4-byte aligned" % name)
    if min(strides, default=0) < 0:
        raise error_for(LAYOUT, "%s has negative strides %s" % (name, tuple(strides)))
    ndim = len(shape)
    if ndim > MAX_DIMS:
        raise error_for(SHAPE, "%s has %d dimensions; slay_tensor holds at most %d" % (name, ndim, MAX_DIMS))
    padding = (0,) * (MAX_DIMS - ndim)
    return Tensor(data, F32, ndim, (*shape, *padding), (*strides, *padding))


class DescriptorCache:
    """Reuses the slay_tensor of an array passed again (engines decode into the same buffers every
    step), so a step costs a dictionary lookup per tensor instead of validation and a new struct.

    An entry holds a reference to its array, so the array's memory cannot move while cached; it is
    reused only while the array's shape, strides, dtype and writeability are unchanged.
    """

    def __init__(self, capacity=16):
        self.capacity = capacity
        self.entries = {}

    def get(self, array, name, ndim, output_shape=None):
        entry = self.entries.get(id(array))
        if entry is not None:
            cached, shape, strides, dtype, writeable, reference = entry
            if (cached is array and array.shape == shape and array.strides == strides and array.dtype is dtype
                    and (output_shape is None or (shape == tuple(output_shape) and array.flags.writeable))):
                return reference
        if output_shape is None:
            checked = as_input(array, name, ndim)
        else:
            checked = as_output(array, name, output_shape)
        tensor = Tensor()
        tensor.data = checked.ctypes.data
        tensor.dtype = F32
        tensor.ndim = checked.ndim
        for axis in range(checked.ndim):
            tensor.shape[axis] = checked.shape[axis]
            tensor.strides[axis] = checked.strides[axis] // ITEMSIZE
        reference = ctypes.byref(tensor)
        if checked is array:  # copies (negative strides) are not worth caching
            if len(self.entries) >= self.capacity:
                self.entries.pop(next(iter(self.entries)))
            self.entries[id(array)] = (array, array.shape, array.strides, array.dtype, array.flags.writeable,
                                       _Reference(reference, tensor))
            return self.entries[id(array)][5]
        return _Reference(reference, tensor, checked)


class _Reference:
    """A byref plus the objects it points into; ctypes accepts it through _as_parameter_."""
    __slots__ = ("_as_parameter_", "keep")

    def __init__(self, reference, *keep):
        self._as_parameter_ = reference
        self.keep = keep
