"""Every exception the binding raises is a SlayError (and still the matching built-in class, so
`except ValueError` keeps working): arguments of every public function are fed values of the wrong
type, shape and range."""
import inspect
import warnings

import numpy as np
import pytest

import slay
from slay.errors import SlayImportError

BAD = [None, "x", object(), 1.5, -1, 2**70, [1, "a"], np.zeros((1, 1, 1, 4), np.complex64), np.zeros(3),
       {"a": 1}, float("nan"), True, b"\0" * 3]


def _calls():
    fm = slay.FeatureMap("slay", head_dim=4, num_heads=1)
    state = slay.State(fm, num_seqs=1, value_dim=4)
    x = np.zeros((1, 2, 1, 4), np.float32)
    token = x[:, 0]
    return {
        "FeatureMap kind": lambda b: slay.FeatureMap(b, head_dim=4),
        "FeatureMap head_dim": lambda b: slay.FeatureMap("slay", head_dim=b),
        "FeatureMap eps": lambda b: slay.FeatureMap("slay", head_dim=4, eps=b),
        "FeatureMap prf_clamp": lambda b: slay.FeatureMap("slay", head_dim=4, prf_clamp=b),
        "FeatureMap seed": lambda b: slay.FeatureMap("slay", head_dim=4, seed=b),
        "FeatureMap poly": lambda b: slay.FeatureMap("slay", head_dim=4, poly=b),
        "fm(x)": lambda b: fm(b),
        "fm(role)": lambda b: fm(x, role=b),
        "set_params": lambda b: fm.set_params(omega=b),
        "linear_attention q": lambda b: slay.linear_attention(b, x, x, fm),
        "linear_attention fm": lambda b: slay.linear_attention(x, x, x, b),
        "linear_attention delta": lambda b: slay.linear_attention(x, x, x, fm, delta=b),
        "linear_attention chunk_size": lambda b: slay.linear_attention(x, x, x, fm, chunk_size=b),
        "linear_attention n_threads": lambda b: slay.linear_attention(x, x, x, fm, n_threads=b),
        "linear_attention causal": lambda b: slay.linear_attention(x, x, x, fm, causal=b),
        "linear_attention decay": lambda b: slay.linear_attention(x, x, x, fm, decay=b),
        "linear_attention denominator": lambda b: slay.linear_attention(x, x, x, fm, denominator=b),
        "linear_attention cu_seqlens": lambda b: slay.linear_attention(x, x, x, fm, cu_seqlens=b),
        "linear_attention initial_state": lambda b: slay.linear_attention(x, x, x, fm, initial_state=b),
        "State num_seqs": lambda b: slay.State(fm, num_seqs=b),
        "State value_dim": lambda b: slay.State(fm, value_dim=b),
        "State fm": lambda b: slay.State(b),
        "step q": lambda b: state.step(b, token, token),
        "step slots": lambda b: state.step(token, token, token, slots=b),
        "step delta": lambda b: state.step(token, token, token, delta=b),
        "prefill": lambda b: state.prefill(x, b, x),
        "query": lambda b: state.query(b),
        "load": lambda b: slay.State.load(b, fm),
        "restore": lambda b: state.restore(b),
        "read": lambda b: state.read(b),
        "reset": lambda b: state.reset(b),
        "position": lambda b: state.position(b),
        "copy_slot": lambda b: state.copy_slot(b, state, 0),
        "copy_slot src": lambda b: state.copy_slot(0, b, 0),
        "exact_attention kernel": lambda b: slay.exact_attention(x, x, x, kernel=b),
        "exact_attention scale": lambda b: slay.exact_attention(x, x, x, scale=b),
        "from_arrays": lambda b: slay.State.from_arrays(fm, b),
        "gauss_laguerre": lambda b: slay.gauss_laguerre(b),
    }


def test_bad_arguments_raise_only_slay_errors():
    leaks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, call in _calls().items():
            for value in BAD:
                try:
                    call(value)
                except slay.SlayError as error:
                    assert str(error), name
                except Exception as error:   # noqa: BLE001 - collected for the message
                    leaks.append("%s(%r): %s: %s" % (name, value, type(error).__name__, error))
    assert not leaks, "\n".join(leaks)


def test_translated_errors_keep_the_builtin_class_and_cause():
    fm = slay.FeatureMap("slay", head_dim=4)
    with pytest.raises(slay.SlayError) as info:
        slay.FeatureMap("slay", head_dim=4, eps="x")
    assert isinstance(info.value, ValueError) and isinstance(info.value.__cause__, ValueError)
    with pytest.raises(TypeError) as info:
        slay.linear_attention(*(np.zeros((1, 2, 1, 4), np.float32),) * 3, fm, delta=None)
    assert isinstance(info.value, slay.SlayError)


def test_public_signatures_stay_explicit():
    """The decorator keeps the explicit keyword parameters visible to tools."""
    for function in (slay.linear_attention, slay.State.step, slay.State.prefill, slay.FeatureMap.__init__):
        parameters = inspect.signature(function).parameters.values()
        assert all(p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters), function


def test_import_errors_are_slay_errors():
    assert issubclass(SlayImportError, slay.SlayError) and issubclass(SlayImportError, ImportError)


def test_non_integer_cu_seqlens_are_refused_not_truncated():
    fm = slay.FeatureMap("elu+1", head_dim=4)
    x = np.zeros((1, 4, 1, 4), np.float32)
    with pytest.raises(slay.SlayValueError, match="integers"):
        slay.linear_attention(x, x, x, fm, cu_seqlens=[0, 1.7, 4])
    out = slay.linear_attention(x, x, x, fm, cu_seqlens=np.array([0, 2, 4], np.int32))
    assert out.shape == (1, 4, 1, 4)
