"""Checks and conversions of torch tensors at the slay.torch boundary: CPU only; q, k, v and the
output are float32, bfloat16 or float16, passed as they are (any strides: libslay takes the three
element types); the other tensors (gates, decays, beta, states) are converted to float32."""
import torch

from ..errors import error_for, INVALID_ARGUMENT, DTYPE

IO_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_F32 = torch.float32


def check_tensor(tensor, name):
    """A CPU tensor of a supported floating dtype, or a clear error."""
    if isinstance(tensor, torch.Tensor) and tensor.is_cpu and tensor.dtype in IO_DTYPES:
        return tensor
    if not isinstance(tensor, torch.Tensor):
        raise error_for(INVALID_ARGUMENT, "%s must be a torch.Tensor, got %s" % (name, type(tensor).__name__))
    if tensor.device.type != "cpu":
        raise error_for(INVALID_ARGUMENT, "%s is on %s; libslay runs on the CPU (move it with .cpu(), or use a GPU "
                        "kernel such as flash-linear-attention there)" % (name, tensor.device))
    raise error_for(DTYPE, "%s has dtype %s; slay.torch takes float32, bfloat16 or float16" % (name, tensor.dtype))


def as_float32(tensor, name):
    """tensor in float32: itself when it already is (no copy), else one conversion; None stays None."""
    if tensor is None:
        return None
    if isinstance(tensor, torch.Tensor) and tensor.dtype is _F32 and tensor.is_cpu:
        return tensor
    check_tensor(tensor, name)
    return tensor.float()


def needs_grad(*tensors):
    """True when autograd records and one of the tensors (or tensors in lists) requires a gradient."""
    if not torch.is_grad_enabled():
        return False
    for tensor in tensors:
        if isinstance(tensor, (list, tuple)):
            if needs_grad(*tensor):
                return True
        elif isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            return True
    return False
