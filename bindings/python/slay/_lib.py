"""Loads libslay.so and declares every C function of include/slay.h with argtypes/restype."""
import ctypes
import os
import pathlib

from .errors import SlayImportError

ABI_VERSION = 1

_HERE = pathlib.Path(__file__).resolve().parent


def _library_path():
    """SLAY_LIBRARY when it is set (a path), else the libslay.so inside this package (where `pip install`
    and scripts/build.sh put it)."""
    override = os.environ.get("SLAY_LIBRARY")
    return pathlib.Path(override) if override else _HERE / "libslay.so"


def _load():
    path = _library_path()
    if not path.exists():
        raise SlayImportError("libslay.so not found at %s; install the package with `pip install ./bindings/python`, "
                          "build it in place with `bash scripts/build.sh`, or set SLAY_LIBRARY to its path" % path)
    try:
        return ctypes.CDLL(str(path))
    except OSError as error:
        raise SlayImportError("cannot load %s: %s" % (path, error)) from error


MAX_DIMS = 4
ERROR_MESSAGE_SIZE = 256


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int32), ("message", ctypes.c_char * ERROR_MESSAGE_SIZE)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS), ("strides", ctypes.c_int64 * MAX_DIMS)]


class FeatureMapParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("kind", ctypes.c_int32), ("head_dim", ctypes.c_int64),
                ("num_heads", ctypes.c_int64), ("nodes", ctypes.c_int32), ("poly", ctypes.c_int32),
                ("poly_dim", ctypes.c_int64), ("prf_dim", ctypes.c_int64), ("eps", ctypes.c_double),
                ("prf_clamp", ctypes.c_double), ("seed", ctypes.c_uint64), ("max_length", ctypes.c_int64),
                ("prf_orthogonal", ctypes.c_int32), ("prf_shared", ctypes.c_int32),
                ("expansion", ctypes.c_int32), ("degree", ctypes.c_int32)]


class AttentionOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("causal", ctypes.c_int32), ("delta", ctypes.c_double),
                ("chunk_size", ctypes.c_int64), ("n_threads", ctypes.c_int32), ("ith", ctypes.c_int32),
                ("nth", ctypes.c_int32), ("denominator", ctypes.c_int32), ("normalize", ctypes.c_int32),
                ("decay", ctypes.c_void_p), ("log_decay", ctypes.c_void_p), ("query_gate_logits", ctypes.c_void_p),
                ("key_gate_logits", ctypes.c_void_p), ("update", ctypes.c_int32), ("qk_l2norm", ctypes.c_int32),
                ("beta", ctypes.c_void_p), ("check_finite", ctypes.c_int32)]


class AttentionBackwardParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("cu_seqlens", ctypes.c_void_p), ("num_seqs", ctypes.c_int64),
                ("positions", ctypes.c_void_p), ("initial_state", ctypes.c_void_p),
                ("initial_normaliser", ctypes.c_void_p), ("d_final_state", ctypes.c_void_p),
                ("d_final_normaliser", ctypes.c_void_p), ("dq", ctypes.c_void_p), ("dk", ctypes.c_void_p),
                ("dv", ctypes.c_void_p), ("d_log_decay", ctypes.c_void_p), ("d_query_gate_logits", ctypes.c_void_p),
                ("d_key_gate_logits", ctypes.c_void_p), ("d_initial_state", ctypes.c_void_p),
                ("d_initial_normaliser", ctypes.c_void_p), ("d_params", ctypes.c_void_p),
                ("d_params_count", ctypes.c_int64), ("d_beta", ctypes.c_void_p)]


class ExactAttentionOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("kernel", ctypes.c_int32), ("causal", ctypes.c_int32),
                ("scale", ctypes.c_double), ("eps", ctypes.c_double), ("delta", ctypes.c_double),
                ("n_threads", ctypes.c_int32)]


P = ctypes.POINTER
c_void_p, c_char_p = ctypes.c_void_p, ctypes.c_char_p
i32, i64, u64, f64, size_t = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_double, ctypes.c_size_t
T, E = P(Tensor), P(Error)

# name: (restype, argtypes) — one entry per SLAY_API function in slay.h (a test checks the match).
SIGNATURES = {
    "slay_version_string": (c_char_p, []),
    "slay_version_number": (i32, []),
    "slay_abi_version": (i32, []),
    "slay_kernel_variant": (c_char_p, []),
    "slay_status_string": (c_char_p, [i32]),
    "slay_feature_map_params_init": (i32, [P(FeatureMapParams)]),
    "slay_feature_map_create": (i32, [P(FeatureMapParams), P(c_void_p), E]),
    "slay_feature_map_free": (None, [c_void_p]),
    "slay_feature_map_dim": (i32, [c_void_p, P(i64), E]),
    "slay_feature_map_config": (i32, [c_void_p, P(FeatureMapParams), E]),
    "slay_feature_map_identity": (i32, [c_void_p, P(u64), E]),
    "slay_feature_map_apply": (i32, [c_void_p, i32, T, T, E]),
    "slay_feature_map_param_count": (i32, [c_void_p, P(i32), E]),
    "slay_feature_map_param_name": (i32, [c_void_p, i32, P(c_char_p), E]),
    "slay_feature_map_param_shape": (i32, [c_void_p, c_char_p, P(i32), P(i64), E]),
    "slay_feature_map_get_param": (i32, [c_void_p, c_char_p, P(ctypes.c_float), i64, E]),
    "slay_feature_map_set_param": (i32, [c_void_p, c_char_p, P(ctypes.c_float), i64, E]),
    "slay_attention_options_init": (i32, [P(AttentionOptions)]),
    "slay_linear_attention": (i32, [c_void_p, T, T, T, T, P(AttentionOptions), E]),
    "slay_exact_attention_options_init": (i32, [P(ExactAttentionOptions)]),
    "slay_exact_attention": (i32, [T, T, T, T, P(ExactAttentionOptions), E]),
    "slay_state_create": (i32, [c_void_p, i64, i64, i32, P(c_void_p), E]),
    "slay_state_create_v2": (i32, [c_void_p, i64, i64, i32, i32, P(c_void_p), E]),
    "slay_state_storage_dtype": (i32, [c_void_p, P(i32), E]),
    "slay_state_free": (None, [c_void_p]),
    "slay_state_copy": (i32, [c_void_p, P(c_void_p), E]),
    "slay_state_copy_slot": (i32, [c_void_p, i64, c_void_p, i64, E]),
    "slay_state_reset": (i32, [c_void_p, i64, E]),
    "slay_state_dims": (i32, [c_void_p, P(i64), P(i64), P(i64), P(i64), E]),
    "slay_state_position": (i32, [c_void_p, i64, P(i64), E]),
    "slay_state_read": (i32, [c_void_p, i64, P(ctypes.c_float), i64, P(ctypes.c_float), i64, E]),
    "slay_state_write": (i32, [c_void_p, i64, P(ctypes.c_float), i64, P(ctypes.c_float), i64, i64, E]),
    "slay_state_prefill": (i32, [c_void_p, T, T, T, T, P(i64), P(i32), i64, P(AttentionOptions), E]),
    "slay_state_query": (i32, [c_void_p, T, T, P(i64), P(i32), i64, P(AttentionOptions), E]),
    "slay_state_step": (i32, [c_void_p, T, T, T, T, P(i32), i64, P(AttentionOptions), E]),
    "slay_state_serialized_size": (i32, [c_void_p, P(size_t), E]),
    "slay_state_save": (i32, [c_void_p, c_void_p, size_t, P(size_t), E]),
    "slay_state_load": (i32, [c_void_p, c_void_p, size_t, i32, P(c_void_p), E]),
    "slay_state_restore": (i32, [c_void_p, c_void_p, size_t, E]),
    "slay_gauss_laguerre": (i32, [i32, P(f64), P(f64), E]),
    "slay_attention_backward_params_init": (i32, [P(AttentionBackwardParams)]),
    "slay_linear_attention_backward": (i32, [c_void_p, T, T, T, T, P(AttentionOptions), P(AttentionBackwardParams), E]),
}


def _bind(library):
    """Checks the ABI version first, then declares every function (a missing one is an ImportError)."""
    try:
        abi = library.slay_abi_version
    except AttributeError as error:
        raise SlayImportError("%s is not libslay (no slay_abi_version)" % library._name) from error
    abi.restype, abi.argtypes = i32, []
    found = abi()
    if found != ABI_VERSION:
        raise SlayImportError("%s has ABI version %d, this binding expects %d; rebuild libslay "
                          "(bash scripts/build.sh) or reinstall the package" % (library._name, found, ABI_VERSION))
    for name, (restype, argtypes) in SIGNATURES.items():
        try:
            function = getattr(library, name)
        except AttributeError as error:
            raise SlayImportError("%s does not export %s; it is older than this binding" % (library._name, name)) from error
        function.restype = restype
        function.argtypes = argtypes
    return library


lib = _bind(_load())
