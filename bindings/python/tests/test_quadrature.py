"""slay_gauss_laguerre: the R-point rule for R = 1..64 against high-precision values (mpmath), to 1e-12."""
import math

import mpmath
import numpy as np
import pytest

import slay

DIGITS = 40


def laguerre(n, x):
    """L_n(x) and L_{n-1}(x) by the three-term recurrence, in mpmath precision."""
    previous, current = mpmath.mpf(0), mpmath.mpf(1)
    for j in range(n):
        previous, current = current, ((2 * j + 1 - x) * current - j * previous) / (j + 1)
    return current, previous


def reference_rule(R):
    """Roots of L_R by Newton at 40 digits from numpy's guesses (distinct roots: checked);
    weights α = t / ((R + 1)² L_{R+1}(t)²)."""
    with mpmath.workdps(DIGITS):
        guesses, _ = np.polynomial.laguerre.laggauss(R)
        nodes, weights = [], []
        for g in guesses:
            t = mpmath.mpf(float(g))
            for _ in range(100):
                value, previous = laguerre(R, t)
                step = value / (R * (value - previous) / t)  # L_R' = R (L_R − L_{R−1}) / t
                t -= step
                if abs(step) < mpmath.mpf(10) ** (5 - DIGITS) * max(1, abs(t)):
                    break
            next_value = ((2 * R + 1 - t) * laguerre(R, t)[0] - R * laguerre(R, t)[1]) / (R + 1)
            nodes.append(t)
            weights.append(t / ((R + 1) ** 2 * next_value ** 2))
        assert all(b - a > mpmath.mpf(10) ** -8 for a, b in zip(nodes, nodes[1:])), "Newton found a root twice"
        return [float(t) for t in nodes], [float(a) for a in weights]


@pytest.mark.parametrize("R", range(1, 65))
def test_matches_high_precision(R):
    """slay.h: the R-point Gauss–Laguerre rule in double, ascending nodes; |node error| <= 1e-12·max(1, t)
    and |weight error| <= 1e-12·w (relative)."""
    nodes, weights = slay.gauss_laguerre(R)
    assert nodes.dtype == weights.dtype == np.float64 and nodes.shape == weights.shape == (R,)
    assert np.all(np.diff(nodes) > 0) and np.all(weights > 0)
    ref_nodes, ref_weights = reference_rule(R)
    node_error = np.abs(nodes - ref_nodes) / np.maximum(1.0, ref_nodes)
    weight_error = np.abs(weights - ref_weights) / np.array(ref_weights)
    assert node_error.max() <= 1e-12, "node %d off by %.3g (relative)" % (node_error.argmax(), node_error.max())
    assert weight_error.max() <= 1e-12, "weight %d off by %.3g (relative)" % (weight_error.argmax(), weight_error.max())


@pytest.mark.parametrize("R", [1, 2, 5, 10])
def test_exact_for_polynomials(R):
    """A Gauss rule integrates t^k e^{−t} exactly (= k!) for k <= 2R − 1."""
    nodes, weights = slay.gauss_laguerre(R)
    for k in range(2 * R):
        assert np.dot(weights, nodes ** k) == pytest.approx(math.factorial(k), rel=1e-11)


def test_r2_tabulated():
    """docs/math.md §1: R=2: t = (0.5857864376, 3.4142135624) = 2 ∓ √2, α = (0.8535533906, 0.1464466094) = (2 ± √2)/4."""
    nodes, weights = slay.gauss_laguerre(2)
    np.testing.assert_allclose(nodes, [0.5857864376, 3.4142135624], atol=1e-10)
    np.testing.assert_allclose(weights, [0.8535533906, 0.1464466094], atol=1e-10)
    np.testing.assert_allclose(nodes, [2 - np.sqrt(2), 2 + np.sqrt(2)], rtol=1e-15)
    np.testing.assert_allclose(weights, [(2 + np.sqrt(2)) / 4, (2 - np.sqrt(2)) / 4], rtol=1e-15)


@pytest.mark.parametrize("R", [0, -1, 65, 1000])
def test_out_of_range(R):
    """1 <= R <= 64, else SLAY_ERR_INVALID_ARGUMENT with a message."""
    with pytest.raises(slay.SlayValueError, match="R must be in") as info:
        slay.gauss_laguerre(R)
    assert info.value.code == -1
