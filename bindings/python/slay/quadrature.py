import ctypes

import numpy as np

from ._lib import lib, Error
from .errors import check


def gauss_laguerre(R):
    """The R-point Gauss–Laguerre rule (nodes, weights) as float64 arrays, 1 <= R <= 64."""
    if not isinstance(R, (int, np.integer)):
        raise TypeError("R must be an int")
    count = max(int(R), 1) if 1 <= int(R) <= 64 else 1
    nodes = np.zeros(count, np.float64)
    weights = np.zeros(count, np.float64)
    err = Error()
    check(lib.slay_gauss_laguerre(int(R) if -2**31 <= int(R) < 2**31 else -1,
                                  nodes.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                                  weights.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), ctypes.byref(err)), err)
    return nodes, weights
