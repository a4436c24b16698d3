"""States as plain arrays (slay.State.from_arrays / to_arrays, slay_state_write) and pickling of
slay.FeatureMap."""
import copy
import pickle

import numpy as np
import pytest

import slay

rng = np.random.default_rng(7)


def qkv(B=2, T=9, H=2, d=8, dv=4):
    return (rng.standard_normal((B, T, H, d)).astype(np.float32) * 0.5,
            rng.standard_normal((B, T, H, d)).astype(np.float32) * 0.5,
            rng.standard_normal((B, T, H, dv)).astype(np.float32))


@pytest.mark.parametrize("kind", ["slay", "elu+1", "identity", "cosformer"])
def test_to_arrays_from_arrays_round_trip(kind):
    """to_arrays gives [N, H, m, dv], [N, H, m] and positions; from_arrays rebuilds the same state
    (bitwise), and it continues a sequence exactly as the original state does."""
    fm = slay.FeatureMap(kind, head_dim=8, num_heads=2, max_length=64)
    q, k, v = qkv()
    _, state = slay.linear_attention(q, k, v, fm, output_final_state=True, normalize=kind != "identity")
    S, z, positions = state.to_arrays()
    assert S.shape == (2, 2, fm.dim, 4) and z.shape == (2, 2, fm.dim) and positions.tolist() == [9, 9]
    for slot in range(2):
        assert np.array_equal(S[slot], state.read(slot)[0]) and np.array_equal(z[slot], state.read(slot)[1])
    rebuilt = slay.State.from_arrays(fm, S, z, positions)
    for a, b in zip(rebuilt.to_arrays(), (S, z, positions)):
        assert np.array_equal(a, b)
    q2, k2, v2 = qkv(T=5)
    normalize = kind != "identity"
    expected = slay.linear_attention(q2, k2, v2, fm, initial_state=state, normalize=normalize)
    assert np.array_equal(slay.linear_attention(q2, k2, v2, fm, initial_state=rebuilt, normalize=normalize), expected)


def test_initial_state_accepts_arrays_and_tuples():
    """slay.linear_attention(initial_state=) takes a State, an (S, z) tuple or an S array (z = 0);
    one call over the whole sequence == two calls chained through plain arrays."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2)
    q, k, v = qkv(T=12)
    whole = slay.linear_attention(q, k, v, fm)
    first, state = slay.linear_attention(q[:, :7], k[:, :7], v[:, :7], fm, output_final_state=True)
    S, z, _ = state.to_arrays()
    second = slay.linear_attention(q[:, 7:], k[:, 7:], v[:, 7:], fm, initial_state=(S, z))
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=2e-5, atol=2e-6)
    identity = slay.FeatureMap("identity", head_dim=8, num_heads=2)
    S0 = rng.standard_normal((2, 2, 8, 4)).astype(np.float32)
    from_array = slay.linear_attention(q, k, v, identity, normalize=False, initial_state=S0)
    from_tuple = slay.linear_attention(q, k, v, identity, normalize=False,
                                       initial_state=(S0, np.zeros((2, 2, 8), np.float32)))
    assert np.array_equal(from_array, from_tuple)
    np.testing.assert_allclose(from_array - slay.linear_attention(q, k, v, identity, normalize=False),
                               np.einsum("bthd,bhde->bthe", q, S0), rtol=1e-4, atol=1e-5)


def test_from_arrays_errors_leave_nothing_behind():
    """Wrong shapes, non-finite values, negative positions and Hadamard Exp (rescaled rows) are
    refused with clear errors."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2)
    m = fm.dim
    with pytest.raises(slay.SlayValueError, match="key heads"):
        slay.State.from_arrays(fm, np.zeros((1, 3, m, 4), np.float32))
    with pytest.raises(slay.SlayValueError, match="z"):
        slay.State.from_arrays(fm, np.zeros((1, 2, m, 4), np.float32), np.zeros((1, 2, m + 1), np.float32))
    bad = np.zeros((1, 2, m, 4), np.float32)
    bad[0, 1, 3, 2] = np.nan
    with pytest.raises(slay.SlayValueError, match="finite"):
        slay.State.from_arrays(fm, bad)
    with pytest.raises(slay.SlayValueError, match="position"):
        slay.State.from_arrays(fm, np.zeros((1, 2, m, 4), np.float32), positions=[-1])
    with pytest.raises(slay.SlayValueError, match="positions"):
        slay.State.from_arrays(fm, np.zeros((2, 2, m, 4), np.float32), positions=[1])
    exp = slay.FeatureMap("ela-hadamard-exp", head_dim=8, num_heads=2)
    with pytest.raises(slay.SlayRuntimeError, match="rescaled"):
        slay.State.from_arrays(exp, np.zeros((1, 2, 8, 4), np.float32))
    with pytest.raises(slay.SlayValueError, match="initial_state"):
        slay.linear_attention(*qkv(), fm, initial_state=[1, 2])


def test_state_write_keeps_parts_given_as_null():
    """slay_state_write with a NULL normaliser keeps z and still sets S and the position."""
    import ctypes
    fm = slay.FeatureMap("elu+1", head_dim=8, num_heads=2)
    q, k, v = qkv(B=1)
    _, state = slay.linear_attention(q, k, v, fm, output_final_state=True)
    S, z, _ = state.to_arrays()
    S2 = (S + 1).astype(np.float32)
    err = slay._lib.Error()
    fp = ctypes.POINTER(ctypes.c_float)
    assert slay._lib.lib.slay_state_write(state.handle, 0, S2[0].ctypes.data_as(fp), S2[0].size, None, 0, 4,
                                          ctypes.byref(err)) == 0
    S3, z3, positions = state.to_arrays()
    assert np.array_equal(S3, S2) and np.array_equal(z3, z) and positions.tolist() == [4]


def test_feature_map_pickles_and_deep_copies_with_its_parameters():
    """pickle and copy.deepcopy re-create the C map from config and parameters (set_params kept)."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, seed=5, nodes=3)
    params = fm.get_params()
    params["anchors"] = params["anchors"] * 1.5
    fm.set_params(**params)
    q, k, v = qkv()
    expected = slay.linear_attention(q, k, v, fm)
    for clone in (pickle.loads(pickle.dumps(fm)), copy.deepcopy(fm)):
        assert clone.identity == fm.identity and clone.config == fm.config
        assert np.array_equal(slay.linear_attention(q, k, v, clone), expected)
