"""libslay: linear attention with SLAY feature maps (ctypes binding of libslay.so)."""
from ._lib import lib as _library, ABI_VERSION
from .errors import SlayError, SlayValueError, SlayTypeError, SlayMemoryError, SlayRuntimeError, NonFiniteError
from .feature_map import FeatureMap
from .attention import linear_attention, exact_attention
from .gradients import linear_attention_backward, exact_attention_backward
from .fit import fit_feature_map
from .state import State
from .quadrature import gauss_laguerre

__version__ = _library.slay_version_string().decode()


def kernel_variant():
    """"avx2-fma" or "portable": the compute kernels this process uses (see slay.h)."""
    return _library.slay_kernel_variant().decode()

__all__ = ["FeatureMap", "State", "linear_attention", "exact_attention", "linear_attention_backward", "exact_attention_backward", "fit_feature_map", "gauss_laguerre", "SlayError",
           "SlayValueError", "SlayTypeError", "SlayMemoryError", "SlayRuntimeError", "NonFiniteError", "ABI_VERSION", "__version__", "kernel_variant"]
