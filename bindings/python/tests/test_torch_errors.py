"""Every exception slay.torch raises is a slay.SlayError (and still the builtin type callers of the
mirrored APIs catch): checked in the source, and by raising them."""
import ast
import pathlib

import pytest
import torch

import slay
import slay.torch as st
import slay.torch.fla as fla

SOURCES = sorted((pathlib.Path(slay.__file__).parent / "torch").glob("*.py"))


def test_no_builtin_exception_is_raised_in_the_source():
    """No `raise ValueError(...)`-style statement (a builtin exception class called directly) in
    slay/torch: errors come from slay.errors.error_for or slay.torch._errors."""
    import builtins
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                cls = getattr(builtins, node.exc.func.id, None)
                if isinstance(cls, type) and issubclass(cls, BaseException):
                    offenders.append("%s:%d %s" % (path.name, node.lineno, node.exc.func.id))
    assert SOURCES and not offenders, offenders


def test_errors_are_slay_errors_and_builtin_types():
    fm = slay.FeatureMap("elu+1", head_dim=4, num_heads=1)
    q = torch.randn(1, 3, 1, 4)
    cases = [
        (ValueError, lambda: st.linear_attention(q.to("meta"), q, q, fm)),
        (TypeError, lambda: st.linear_attention(q.double(), q, q, fm)),
        (ValueError, lambda: st.linear_attention(q, q, q, fm, denominator="nope")),
        (ValueError, lambda: st.linear_attention(q[0], q[0], q[0], fm)),
        (ValueError, lambda: fla.chunk_gla(q, q, q, torch.zeros(1, 3, 1, 2))),
        (NotImplementedError, lambda: fla.fused_recurrent_gla(q, q, q, gv=torch.zeros(1, 3, 1, 4))),
        (NotImplementedError, lambda: fla.chunk_gated_delta_rule(q, q, q, None, None, cp_context=object())),
        (ValueError, lambda: st.State.from_arrays(fm, torch.zeros(1, 1, 4, 4, device="meta"))),
    ]
    for builtin, call in cases:
        with pytest.raises(slay.SlayError) as caught:
            call()
        assert isinstance(caught.value, builtin), (builtin, caught.value)


def test_errors_keep_their_type_through_the_registered_op():
    """Under a dispatch mode (the registered op's path) the forward's SlayError reaches the caller
    as itself, not wrapped by torch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    fm = slay.FeatureMap("elu+1", head_dim=4, num_heads=1)
    q, v = torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4)
    with Passthrough(), pytest.raises(slay.SlayError, match="shape"):
        st.linear_attention(q, torch.randn(1, 3, 1, 5), v, fm)
