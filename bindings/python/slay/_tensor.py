"""numpy arrays → slay_tensor descriptors (no copies of valid inputs).

Strides go from bytes to elements; a stride that is not a multiple of the element size or a data
pointer that is not aligned to it cannot be described to libslay and is refused (SLAY_ERR_LAYOUT).
Inputs with negative strides (e.g. x[:, ::-1]) are copied to contiguous memory; outputs are
never copied, so they must be writeable with non-negative strides.

Element types: float32 everywhere; where a function is called with half=True (the attention
tensors, their options tensors and their outputs) also numpy float16 (SLAY_DTYPE_F16) and
bfloat16 arrays of the optional package ml_dtypes (SLAY_DTYPE_BF16), which libslay converts in its
loads and stores (fp32 arithmetic). ml_dtypes is recognised by the dtype's name, never imported.
"""
import ctypes
import struct

import numpy as np

from ._lib import Tensor, MAX_DIMS
from .errors import SHAPE, DTYPE, LAYOUT, INVALID_ARGUMENT, error_for

F32 = 0
F16 = 2
BF16 = 3
ITEMSIZE = 4


def dtype_code(dtype):
    """SLAY_DTYPE_* of a numpy dtype: float32 → 0, float16 → 2, ml_dtypes.bfloat16 → 3; None for
    any other."""
    if dtype == np.float32:
        return F32
    if dtype == np.float16:
        return F16
    if dtype.name == "bfloat16" and dtype.itemsize == 2:
        return BF16
    return None


def _common(array, name, ndim, half=False):
    if not isinstance(array, np.ndarray):
        raise error_for(INVALID_ARGUMENT, "%s must be a numpy array, got %s" % (name, type(array).__name__))
    code = dtype_code(array.dtype)
    if code is None or (code != F32 and not half):
        accepted = "float32, float16 or bfloat16 (ml_dtypes)" if half else "float32"
        hint = ""
        if array.dtype == np.float64:
            hint = " (libslay computes in fp32: pass %s.astype(np.float32))" % name
        elif code is not None:
            hint = " (this function takes float32 only: pass %s.astype(np.float32))" % name
        raise error_for(DTYPE, "%s must be %s, got %s%s" % (name, accepted, array.dtype, hint))
    if array.ndim != ndim:
        raise error_for(SHAPE, "%s must have %d dimensions, got shape %s" % (name, ndim, array.shape))


def _check_layout(array, name):
    size = array.dtype.itemsize
    if any(s % size for s in array.strides):
        raise error_for(LAYOUT, "%s strides %s (bytes) are not multiples of the %s size %d"
                        % (name, array.strides, array.dtype, size))
    if array.ctypes.data % size:
        raise error_for(LAYOUT, "%s data pointer is not %d-byte aligned" % (name, size))


def as_input(array, name, ndim, half=False):
    """A float32 (half=True: or float16 / bfloat16) array of `ndim` dims, passed with its strides;
    negative strides are copied."""
    _common(array, name, ndim, half)
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)
    _check_layout(array, name)
    return array


def as_output(array, name, shape, half=False):
    """A caller-provided output: float32 (half=True: or float16 / bfloat16), exact shape,
    writeable, non-negative element strides."""
    _common(array, name, len(shape), half)
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
    size = array.dtype.itemsize
    return pointer_struct(array.ctypes.data, array.shape, [s // size for s in array.strides],
                          dtype=dtype_code(array.dtype))


def pointer_struct(data, shape, strides, name="tensor", dtype=F32):
    """The slay_tensor of memory at address `data` with `shape` and `strides` in elements (another
    framework's tensor: torch's data_ptr() and stride()), of element type `dtype` (SLAY_DTYPE_*:
    F32 = 0, F16 = 2, BF16 = 3); the memory must stay alive as long as the struct is used. A
    misaligned address or a negative stride is refused (SLAY_ERR_LAYOUT); libslay checks the rest
    (including whether the function it is passed to takes that dtype)."""
    size = 2 if dtype in (F16, BF16) else ITEMSIZE
    if data % size:
        raise error_for(LAYOUT, "%s data pointer is not %d-byte aligned" % (name, size))
    if min(strides, default=0) < 0:
        raise error_for(LAYOUT, "%s has negative strides %s" % (name, tuple(strides)))
    ndim = len(shape)
    if ndim > MAX_DIMS:
        raise error_for(SHAPE, "%s has %d dimensions; slay_tensor holds at most %d" % (name, ndim, MAX_DIMS))
    # One pack_into the struct's own buffer: a quarter of the cost of the ctypes constructor,
    # which is a visible part of a small call (slay.torch's per-call overhead).
    tensor = _new_tensor(Tensor)
    _PACKERS[ndim].pack_into(tensor, 0, data, dtype, ndim, *shape, *strides)
    return tensor


# slay_tensor's layout (slay.h): data pointer, int32 dtype, int32 ndim, int64 shape[4], int64
# strides[4]; one packer per rank writes shape and strides of that rank (a fresh struct is zeroed).
_PACKERS = [struct.Struct("=Qii%dq%dx%dq%dx" % (r, 8 * (MAX_DIMS - r), r, 8 * (MAX_DIMS - r))) for r in range(MAX_DIMS + 1)]
_new_tensor = Tensor.__new__
assert all(packer.size == ctypes.sizeof(Tensor) for packer in _PACKERS)


class DescriptorCache:
    """Reuses the slay_tensor of an array passed again (engines decode into the same buffers every
    step), so a step costs a dictionary lookup per tensor instead of validation and a new struct.

    An entry holds a reference to its array, so the array's memory cannot move while cached; it is
    reused only while the array's shape, strides, dtype and writeability are unchanged.
    """

    def __init__(self, capacity=16):
        self.capacity = capacity
        self.entries = {}

    def get(self, array, name, ndim, output_shape=None, half=True):
        entry = self.entries.get(id(array))
        if (entry is not None and entry[0] is array and array.shape == entry[1] and array.strides == entry[2]
                and array.dtype is entry[3]
                and (output_shape is None or (entry[1] == output_shape and array.flags.writeable))):
            return entry[5]
        if output_shape is None:
            checked = as_input(array, name, ndim, half)
        else:
            checked = as_output(array, name, output_shape, half)
        tensor = Tensor()
        tensor.data = checked.ctypes.data
        tensor.dtype = dtype_code(checked.dtype)
        tensor.ndim = checked.ndim
        size = checked.dtype.itemsize
        for axis in range(checked.ndim):
            tensor.shape[axis] = checked.shape[axis]
            tensor.strides[axis] = checked.strides[axis] // size
        reference = ctypes.byref(tensor)
        if checked is array:  # copies (negative strides) are not worth caching
            if len(self.entries) >= self.capacity:
                self.entries.pop(next(iter(self.entries)))
            # The byref keeps its struct alive and the entry keeps the array: ctypes takes the byref
            # as it is, without looking up _as_parameter_ on every call.
            self.entries[id(array)] = (array, array.shape, array.strides, array.dtype, array.flags.writeable, reference)
            return reference
        return _Reference(reference, tensor, checked)


class _Reference:
    """A byref plus the objects it points into; ctypes accepts it through _as_parameter_."""
    __slots__ = ("_as_parameter_", "keep")

    def __init__(self, reference, *keep):
        self._as_parameter_ = reference
        self.keep = keep
