"""What the SLAY estimators converge to (MATH.md §1), and the paper's accuracy protocol."""
import numpy as np
import pytest

import slay
import naive


def kernel_values(fm, x, y):
    fx = fm(x[None, :, None, :]).astype(np.float64)[0, :, 0]
    fy = fm(y[None, :, None, :], role="key").astype(np.float64)[0, :, 0]
    return (fx * fy).sum(-1)


def pairs(d, cosines, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in cosines:
        a = rng.standard_normal(d); a /= np.linalg.norm(a)
        b = rng.standard_normal(d); b -= (b @ a) * a; b /= np.linalg.norm(b)
        xs.append(a); ys.append(c * a + np.sqrt(1 - c * c) * b)
    return np.array(xs, np.float32), np.array(ys, np.float32)


def test_exact_poly_converges_to_quadrature_kernel():
    # R = 1 keeps the PRF variance e^{4s(1+x)} small enough to see convergence at test sizes; the
    # far node of R = 2 (s ≈ 1.7) makes the estimate heavy-tailed (that variance is what issue #6 attacks).
    d, R, cosines = 8, 1, [0.0, 0.3, 0.6, 0.9]
    x, y = pairs(d, cosines)
    s, w = naive.quadrature(R, 1e-6)
    target = np.array([sum(w[r] * c * c * np.exp(2 * s[r] * c) for r in range(R)) for c in cosines])
    errors = []
    for M in (16, 256, 4096, 32768):
        # Average |error| over seeds: the PRF estimate is unbiased, its spread shrinks like 1/√M.
        values = np.array([kernel_values(slay.FeatureMap("slay", head_dim=d, nodes=R, poly="exact", prf_dim=M,
                                                         seed=seed), x, y) for seed in range(4)])
        errors.append(float(np.abs(values - target).mean() / target.max()))
    print("exact-poly mean relative kernel error for M = 16, 256, 4096, 32768:", errors)
    assert errors[3] < 0.03 and errors[3] < errors[1] / 3 and errors[2] < errors[0] / 3
    fm = slay.FeatureMap("slay", head_dim=d, nodes=2, poly="exact", prf_dim=64)
    assert kernel_values(fm, x, y)[0] == pytest.approx(0.0, abs=1e-6)  # orthogonal keys get no weight


def test_anchor_converges_to_biased_limit():
    d, R, cosines = 8, 2, [0.0, 0.3, 0.6]
    x, y = pairs(d, cosines)
    s, w = naive.quadrature(R, 1e-6)
    limit = np.array([sum(w[r] * (1 + 2 * c * c) * np.exp(2 * s[r] * c) for r in range(R)) / (d * (d + 2))
                      for c in cosines])
    fm = slay.FeatureMap("slay", head_dim=d, nodes=R, poly="anchor", poly_dim=2048, prf_dim=2048, seed=2)
    got = kernel_values(fm, x, y)
    print("anchor kernel", got, "limit", limit)
    np.testing.assert_allclose(got, limit, rtol=0.15)
    assert got[0] > 0.3 * limit[0]  # the bias: orthogonal keys keep weight, unlike the Yat kernel


def protocol_error(poly, seeds=(0, 1, 2, 3), B=4, T=128, width=64, H=4, M=8, P=8):
    """The reference module: qkv = Linear(64, 192)(x), attention per head, out = Linear(64, 64);
    PyTorch's default init U(±1/√64) for weights and biases; error on the module output."""
    errors = []
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((B, T, width))
        bound = 1 / np.sqrt(width)
        w_qkv, b_qkv = rng.uniform(-bound, bound, (width, 3 * width)), rng.uniform(-bound, bound, 3 * width)
        w_out, b_out = rng.uniform(-bound, bound, (width, width)), rng.uniform(-bound, bound, width)
        qkv = x @ w_qkv + b_qkv
        q, k, v = (qkv[..., i * width:(i + 1) * width].reshape(B, T, H, width // H).astype(np.float32) for i in range(3))
        fm = slay.FeatureMap("slay", head_dim=width // H, num_heads=H, nodes=2, poly=poly, poly_dim=P, prf_dim=M,
                             eps=1e-6, seed=seed)
        y = slay.linear_attention(q, k, v, fm, causal=True).reshape(B, T, width) @ w_out + b_out
        ref = slay.exact_attention(q, k, v, kernel="yat-spherical", eps=1e-6, causal=True).reshape(B, T, width) @ w_out + b_out
        errors.append(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    return float(np.mean(errors))


def test_paper_accuracy_protocol():
    """B=4, T=128, width 64, H=4, causal, R=2, eps=1e-6, M=P=8 (published anchor error 0.65)."""
    anchor = protocol_error("anchor")
    exact = protocol_error("exact")
    print("\naccuracy protocol (relative L2 of the module output vs exact spherical Yat, mean of 4 seeds)")
    print("  anchor ⊗ PRF (paper default): %.3f   published: 0.65" % anchor)
    print("  exact  ⊗ PRF:                 %.3f   independent re-implementation: 0.34" % exact)
    assert 0.55 <= anchor <= 0.75  # the published 0.65, within seed spread
    assert exact <= 0.75 * anchor
