"""slay.gauss_laguerre: the library's Gauss–Laguerre rule (the quadrature inside SLAY)."""
import ctypes

import numpy as np

from ._lib import lib, Error
from .errors import check, error_for, translated, DTYPE, INVALID_ARGUMENT

MAX_NODES = 64


@translated
def gauss_laguerre(R):
    """The R-point rule ∫₀^∞ e^{−t} f(t) dt ≈ Σ α_r f(t_r): (nodes, weights), float64, ascending nodes.

    1 <= R <= 64 (else SlayValueError from the library, with its message).
    """
    if isinstance(R, bool) or not isinstance(R, (int, np.integer)):
        raise error_for(DTYPE, "R must be an int, got %r" % (R,))
    R = int(R)
    if not -2**31 <= R < 2**31:
        raise error_for(INVALID_ARGUMENT, "R must be in 1..%d, got %d" % (MAX_NODES, R))
    # Buffers for any R the library accepts; other values go to the library, which reports them.
    nodes = np.zeros(MAX_NODES, np.float64)
    weights = np.zeros(MAX_NODES, np.float64)
    err = Error()
    doubles = ctypes.POINTER(ctypes.c_double)
    check(lib.slay_gauss_laguerre(R, nodes.ctypes.data_as(doubles),
                                  weights.ctypes.data_as(doubles), ctypes.byref(err)), err)
    return nodes[:R].copy(), weights[:R].copy()
