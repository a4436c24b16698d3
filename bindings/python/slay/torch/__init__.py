"""slay.torch: libslay for PyTorch (the optional extra `torch`; `import slay` never imports torch).

- linear_attention(q, k, v, fm, ...): slay.linear_attention on CPU tensors, a registered custom op
  (torch.ops.slay.linear_attention) with autograd and a fake implementation for torch.compile;
- SlayAttention: an nn.Module holding the map (parameters or buffers; deepcopy / pickle / save);
- State: slay.State with tensors in and out;
- slay.torch.fla: flash-linear-attention's entry points (import slay.torch.fla);
- slay.torch.transformers: the "slay" attention backend of Hugging Face transformers.
See docs/pytorch.md.
"""
from ..errors import SlayImportError as _SlayImportError

try:
    import torch as _torch
except ImportError as error:  # pragma: no cover - exercised where torch is absent
    raise _SlayImportError("slay.torch needs PyTorch: pip install 'libslay[torch]' (or pip install torch)") from error

from .attention import linear_attention
from .module import SlayAttention
from .state import State
from ._op import backward_available

__all__ = ["linear_attention", "SlayAttention", "State", "backward_available"]
