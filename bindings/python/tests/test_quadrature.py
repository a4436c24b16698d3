"""Gauss–Laguerre rule for R = 1..64 against high-precision values (mpmath), to 1e-12."""
import mpmath
import numpy as np
import pytest

import slay


def laguerre(n, x):
    """L_n(x) and L_{n-1}(x) by the three-term recurrence, in mpmath precision."""
    previous, current = mpmath.mpf(0), mpmath.mpf(1)
    for j in range(n):
        previous, current = current, ((2 * j + 1 - x) * current - j * previous) / (j + 1)
    return current, previous


def reference_rule(R):
    """Newton at 60 digits from numpy's guesses; α = 1 / (t · L_R'(t)²), t L_R' = R (L_R − L_{R−1})."""
    mpmath.mp.dps = 60
    guesses, _ = np.polynomial.laguerre.laggauss(R)
    nodes, weights = [], []
    for g in guesses:
        t = mpmath.mpf(float(g))
        for _ in range(60):
            value, previous = laguerre(R, t)
            derivative = R * (value - previous) / t
            step = value / derivative
            t -= step
            if abs(step) < mpmath.mpf(10) ** -50 * max(1, abs(t)):
                break
        value, previous = laguerre(R, t)
        derivative = R * (value - previous) / t
        nodes.append(t)
        weights.append(1 / (t * derivative ** 2))
    return nodes, weights


@pytest.mark.parametrize("R", [1, 2, 3, 5, 8, 16, 24, 32, 48, 64])
def test_matches_high_precision(R):
    nodes, weights = slay.gauss_laguerre(R)
    ref_nodes, ref_weights = reference_rule(R)
    for r in range(R):
        assert abs(nodes[r] - float(ref_nodes[r])) <= 1e-12 * max(1.0, float(ref_nodes[r]))
        assert abs(weights[r] - float(ref_weights[r])) <= 1e-12 * float(ref_weights[r])


def test_r2_tabulated():
    nodes, weights = slay.gauss_laguerre(2)
    np.testing.assert_allclose(nodes, [0.5857864376, 3.4142135624], atol=1e-10)
    np.testing.assert_allclose(weights, [0.8535533906, 0.1464466094], atol=1e-10)


@pytest.mark.parametrize("R", [0, -1, 65, 1000])
def test_out_of_range(R):
    with pytest.raises(slay.SlayValueError, match="R must be in"):
        slay.gauss_laguerre(R)
