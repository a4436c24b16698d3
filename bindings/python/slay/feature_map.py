"""slay.FeatureMap: an owned slay_feature_map handle."""
import ctypes

import numpy as np

from contextlib import contextmanager

from ._handle import OwnedHandle, ReadersWriterLock
from ._lib import lib, Error, FeatureMapParams
from ._tensor import as_input, as_output, descriptor
from .errors import check, error_for, translated, INVALID_ARGUMENT

KINDS = {"slay": 1, "elu+1": 2, "relu": 3, "favor+": 4, "relu-random": 5, "random-fourier": 6, "cosformer": 7,
         "ela-sum-sqeuclid": 8, "ela-sub-sqeuclid": 9, "ela-blueprint": 10, "ela-hadamard-exp": 11, "identity": 12}
POLYS = {"anchor": 1, "exact": 2, "exact_full": 3, "laplace": 4, "random_maclaurin": 5, "tensorsketch": 6,
         "nystrom": 7}
EXPANSIONS = {"quadrature": 0, "taylor": 1}
ROLES = {"query": 0, "key": 1}


class FeatureMap(OwnedHandle):
    """A feature map φ for `num_heads` heads of width `head_dim` (see include/slay.h).

    FeatureMap(kind="slay", head_dim, num_heads=1, nodes=2, poly="anchor", poly_dim=8, prf_dim=8,
    eps=1e-6, prf_clamp=20.0, seed=0, max_length=0, orthogonal=False, shared_omega=False,
    expansion="quadrature", degree=2); head_dim is required, the defaults are slay.h's
    slay_feature_map_params_init. Immutable except through set_params; usable from many
    threads at once (set_params and close wait until no thread computes with the map, and
    computations wait for them). poly (slay.h SLAY_POLY_*): "anchor", "exact", "exact_full", "laplace",
    "random_maclaurin", "tensorsketch" or "nystrom" (poly_dim <= 256); the last three are signed,
    so use denominator="clamp" in attention.

    SLAY (slay.h SLAY_EXPANSION_*): expansion="quadrature" is the paper's map, Gauss–Laguerre nodes
    (nodes R, 1..64) ⊗ (poly ⊗ prf_dim positive random features, exponents clamped to ±prf_clamp,
    drawn from seed); orthogonal=True draws block-orthogonal ω, shared_omega=True one ω for every
    node. expansion="taylor" is the deterministic Maclaurin series truncated after x^degree
    (degree 2..8; dim = Σ_{k=2..degree} C(head_dim + k − 1, k) <= 2^22), reading only head_dim,
    num_heads, eps and degree. eps is the ε of the kernel x²/(2 + ε − 2x).

    Classic maps (slay.h SLAY_KIND_*): "elu+1" and "relu" (dim = head_dim), "favor+",
    "relu-random" and "random-fourier" (dim = prf_dim, random parameters from seed; random-fourier
    is signed) and "cosformer" (dim = 2·head_dim, needs max_length >= 1; positions >= max_length
    are clamped to max_length − 1, so make it at least the longest sequence).

    ELA kernels (exact, no parameters): "ela-sum-sqeuclid" ‖q + k‖² and "ela-sub-sqeuclid"
    ‖q − k‖² (dim = head_dim + 2; query and key features differ, so pass role=), and
    "ela-blueprint" (q̂·k̂ + 1)(‖q‖² + 1)(‖k‖² + 1) (dim = head_dim + 1), and "ela-hadamard-exp"
    Σ_f e^{q_f + k_f} (dim = head_dim): calling the map gives the raw exp(x), inf past ~88.7, but
    attention and states evaluate it in a rescaled frame, exact and finite for any finite inputs
    (normalised attention only: no decay, log_decay or gates; states also keep per-dimension key
    maxima).

    "identity": φ(x) = x (dim = head_dim, signed), the backbone map of RetNet / GLA / SLA
    (normalize=False with decay=, log_decay= and gates).
    """

    _free = staticmethod(lib.slay_feature_map_free)
    _what = "feature map"

    @translated
    def __init__(self, kind="slay", head_dim=None, num_heads=1, nodes=2, poly="anchor", poly_dim=8,
                 prf_dim=8, eps=1e-6, prf_clamp=20.0, seed=0, max_length=0, orthogonal=False,
                 shared_omega=False, expansion="quadrature", degree=2):
        self._handle = None
        self._lock = ReadersWriterLock()
        if not isinstance(kind, str) or kind not in KINDS:
            raise error_for(INVALID_ARGUMENT, "unknown kind %r; known: %s" % (kind, ", ".join(KINDS)))
        if not isinstance(poly, str) or poly not in POLYS:
            raise error_for(INVALID_ARGUMENT, "unknown poly %r; known: %s" % (poly, ", ".join(POLYS)))
        if not isinstance(expansion, str) or expansion not in EXPANSIONS:
            raise error_for(INVALID_ARGUMENT, "unknown expansion %r; known: %s" % (expansion, ", ".join(EXPANSIONS)))
        if head_dim is None:
            raise error_for(INVALID_ARGUMENT, "head_dim is required")
        params = FeatureMapParams()
        lib.slay_feature_map_params_init(ctypes.byref(params))
        params.kind = KINDS[kind]
        params.poly = POLYS[poly]
        for field, value in (("head_dim", head_dim), ("num_heads", num_heads), ("poly_dim", poly_dim),
                             ("prf_dim", prf_dim), ("nodes", nodes), ("seed", seed), ("max_length", max_length),
                             ("degree", degree)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise error_for(INVALID_ARGUMENT, "%s must be an int, got %r" % (field, value))
        for field, value, bits in (("head_dim", head_dim, 63), ("num_heads", num_heads, 63),
                                   ("poly_dim", poly_dim, 63), ("prf_dim", prf_dim, 63), ("nodes", nodes, 31),
                                   ("max_length", max_length, 63), ("degree", degree, 31)):
            if not -2**bits <= int(value) < 2**bits:
                raise error_for(INVALID_ARGUMENT, "%s = %d is out of range" % (field, value))
            setattr(params, field, int(value))
        if not 0 <= int(seed) < 2**64:
            raise error_for(INVALID_ARGUMENT, "seed must be in [0, 2^64)")
        params.seed = int(seed)
        params.eps = float(eps)
        params.prf_clamp = float(prf_clamp)
        params.prf_orthogonal = 1 if orthogonal else 0
        params.prf_shared = 1 if shared_omega else 0
        params.expansion = EXPANSIONS[expansion]
        handle = ctypes.c_void_p()
        err = Error()
        check(lib.slay_feature_map_create(ctypes.byref(params), ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle
        self.kind = kind
        self.poly = poly

    def _exclusive(self):
        return self._lock.writing()

    @contextmanager
    def _reading(self):
        """The open handle, read-locked: any number of threads at once, none during set_params."""
        with self._lock.reading():
            yield self.handle

    # -- properties ---------------------------------------------------------------------------
    @property
    def dim(self):
        out = ctypes.c_int64()
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_dim(handle, ctypes.byref(out), ctypes.byref(err)), err)
        return out.value

    @property
    def identity(self):
        out = ctypes.c_uint64()
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_identity(handle, ctypes.byref(out), ctypes.byref(err)), err)
        return out.value

    @property
    def config(self):
        params = FeatureMapParams()
        lib.slay_feature_map_params_init(ctypes.byref(params))
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_config(handle, ctypes.byref(params), ctypes.byref(err)), err)
        poly = {v: k for k, v in POLYS.items()}[params.poly]
        return {"kind": self.kind, "head_dim": params.head_dim, "num_heads": params.num_heads,
                "nodes": params.nodes, "poly": poly, "poly_dim": params.poly_dim, "prf_dim": params.prf_dim,
                "eps": params.eps, "prf_clamp": params.prf_clamp, "seed": params.seed,
                "max_length": params.max_length, "orthogonal": bool(params.prf_orthogonal),
                "shared_omega": bool(params.prf_shared),
                "expansion": {v: k for k, v in EXPANSIONS.items()}[params.expansion], "degree": params.degree}

    @property
    def head_dim(self):
        return self.config["head_dim"]

    @property
    def num_heads(self):
        return self.config["num_heads"]

    # -- parameters ---------------------------------------------------------------------------
    def _param_names(self):
        count = ctypes.c_int32()
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_param_count(handle, ctypes.byref(count), ctypes.byref(err)), err)
            names = []
            for index in range(count.value):
                name = ctypes.c_char_p()
                check(lib.slay_feature_map_param_name(handle, index, ctypes.byref(name), ctypes.byref(err)), err)
                names.append(name.value.decode())
        return names

    def _param_shape(self, name):
        ndim = ctypes.c_int32()
        shape = (ctypes.c_int64 * 4)()
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_param_shape(handle, name.encode(), ctypes.byref(ndim), shape,
                                                   ctypes.byref(err)), err)
        return tuple(shape[i] for i in range(ndim.value))

    @translated
    def get_params(self):
        """Named parameter arrays as float32 copies: SLAY {"anchors": (P, d), "omega": (R, H, d, M)}
        (anchors only for poly="anchor" and "nystrom"; "random_maclaurin" has "maclaurin" (2, P, d) and
        "tensorsketch" "sketch" (2, 2, d): [k][0] buckets, [k][1] signs); favor+ / relu-random {"omega": (H, d, m)}; random-fourier
        also "bias" (H, m); elu+1, relu, cosformer and the ela-* kinds {}."""
        result = {}
        with self._reading() as handle:
            for name in self._param_names():
                array = np.zeros(self._param_shape(name), np.float32)
                err = Error()
                check(lib.slay_feature_map_get_param(handle, name.encode(),
                                                     array.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                                     array.size, ctypes.byref(err)), err)
                result[name] = array
        return result

    @translated
    def set_params(self, **arrays):
        """Replace named parameter arrays (float32, exact shape, finite). Thread-safe: waits until
        no thread computes with this map (attention, states, features), and they wait for it.
        States created before keep refusing to run (their map changed; slay.h)."""
        names = self._param_names()
        for name, value in arrays.items():
            if name not in names:
                raise error_for(INVALID_ARGUMENT, "unknown parameter %r; this map has %s" % (name, ", ".join(names)))
            array = _float32_array(value, name)
            shape = self._param_shape(name)
            if array.shape != shape:
                from .errors import SHAPE
                raise error_for(SHAPE, "parameter %r has shape %s, got %s" % (name, shape, array.shape))
            err = Error()
            with self._lock.writing():
                check(lib.slay_feature_map_set_param(self.handle, name.encode(),
                                                     array.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                                     array.size, ctypes.byref(err)), err)

    # -- features -----------------------------------------------------------------------------
    @translated
    def __call__(self, x, role="query", out=None):
        """Features of x (B, T, H, d) → (B, T, H, dim) with the dtype of x, for role "query" or
        "key" (they differ for the asymmetric ELA kinds); out: an optional (B, T, H, dim) array to
        write into (returned). x and out may be float32, float16 or bfloat16 (ml_dtypes); features
        are computed in fp32."""
        if not isinstance(role, str) or role not in ROLES:
            raise error_for(INVALID_ARGUMENT, "role must be 'query' or 'key', got %r" % (role,))
        x = as_input(x, "x", 4, half=True)
        shape = x.shape[:3] + (self.dim,)
        out = np.empty(shape, x.dtype) if out is None else as_output(out, "out", shape, half=True)
        err = Error()
        with self._reading() as handle:
            check(lib.slay_feature_map_apply(handle, ROLES[role], descriptor(x), descriptor(out),
                                             ctypes.byref(err)), err)
        return out

    def __reduce__(self):
        """pickle / copy.deepcopy: the map is re-created from its config and parameters (a C handle
        itself cannot be pickled)."""
        return (_rebuild, (self.config, self.get_params()))

    def __repr__(self):
        if self._handle is None:
            return "FeatureMap(closed)"
        c = self.config
        if c["kind"] != "slay":
            return "FeatureMap(%r, head_dim=%d, num_heads=%d, dim=%d)" % (c["kind"], c["head_dim"], c["num_heads"], self.dim)
        return "FeatureMap(%r, head_dim=%d, num_heads=%d, nodes=%d, poly=%r, dim=%d)" % (
            c["kind"], c["head_dim"], c["num_heads"], c["nodes"], c["poly"], self.dim)


def _rebuild(config, params):
    """A FeatureMap from FeatureMap.__reduce__'s config and parameters."""
    fm = FeatureMap(**config)
    if params:
        fm.set_params(**params)
    return fm


def _float32_array(value, name):
    try:
        return np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise error_for(INVALID_ARGUMENT, "parameter %r is not convertible to a float32 array: %s" % (name, error))


def require_map(fm, name="fm"):
    """The open handle of a FeatureMap argument, or a clear error."""
    if not isinstance(fm, FeatureMap):
        raise error_for(INVALID_ARGUMENT, "%s must be a slay.FeatureMap, got %s" % (name, type(fm).__name__))
    return fm.handle
