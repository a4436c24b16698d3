"""What the SLAY estimators converge to (docs/math.md §1), and the paper's accuracy protocol.

These tests document the estimators rather than a line of slay.h: the header says the anchor
polynomial is "the paper's default; biased" and the exact ones are "exact"; here is what that means.
Run with -s to see the measured numbers.
"""
import numpy as np
import pytest

import slay
import naive


def kernel_values(fm, x, y):
    """φ(x_i)·φ(y_i) for a handful of row pairs (x as query, y as key), in float64."""
    fx = fm(x[None, :, None, :]).astype(np.float64)[0, :, 0]
    fy = fm(y[None, :, None, :], role="key").astype(np.float64)[0, :, 0]
    return (fx * fy).sum(-1)


def pairs(d, cosines, seed=0):
    """Unit vector pairs (x_i, y_i) with x_i·y_i = cosines[i]."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in cosines:
        a = rng.standard_normal(d)
        a /= np.linalg.norm(a)
        b = rng.standard_normal(d)
        b -= (b @ a) * a
        b /= np.linalg.norm(b)
        xs.append(a)
        ys.append(c * a + np.sqrt(1 - c * c) * b)
    return np.array(xs, np.float32), np.array(ys, np.float32)


def quadrature_kernel(R, cosines, eps=1e-6):
    """Σ_r w_r x² e^{2 s_r x}: what exact-poly ⊗ PRF estimates without bias."""
    s, w = naive.quadrature(R, eps)
    return np.array([sum(w[r] * c * c * np.exp(2 * s[r] * c) for r in range(R)) for c in cosines])


def anchor_limit(R, cosines, d, eps=1e-6):
    """Σ_r w_r (1 + 2x²) e^{2 s_r x} / (d(d+2)): the P, M → ∞ limit of anchor ⊗ PRF
    (E[(a·u)²(a·w)²] = (1 + 2x²)/(d(d+2)) for a uniform on the sphere)."""
    s, w = naive.quadrature(R, eps)
    return np.array([sum(w[r] * (1 + 2 * c * c) * np.exp(2 * s[r] * c) for r in range(R)) / (d * (d + 2))
                     for c in cosines])


# The PRF estimate of e^{2sx} has relative variance e^{4s(1+x)} − 1. For R = 1 (s ≈ 0.5) that is
# small for every x; the far node of R = 2 (s ≈ 1.71) makes it ≈ e^{6.8(1+x)}, so at x > 0.3 the
# estimate is heavy-tailed at any test-sized M. R = 2 is therefore checked at x <= 0.2.
@pytest.mark.parametrize("R,cosines", [(1, [0.0, 0.3, 0.6, 0.9]), (2, [-0.6, -0.3, 0.0, 0.2])])
def test_exact_poly_converges_to_quadrature_kernel(R, cosines):
    """exact ⊗ PRF: φ(q)·φ(k) → Σ_r w_r x² e^{2 s_r x}, error shrinking like 1/√M (256× M → ~16× smaller)."""
    d = 8
    x, y = pairs(d, cosines)
    target = quadrature_kernel(R, cosines)
    errors = []
    for M in (64, 1024, 16384):
        values = np.array([kernel_values(slay.FeatureMap("slay", head_dim=d, nodes=R, poly="exact", prf_dim=M,
                                                         seed=seed), x, y) for seed in range(4)])
        errors.append(float(np.abs(values - target).mean() / np.abs(target).max()))
    print("\nexact-poly R=%d: mean relative kernel error for M = 64, 1024, 16384: %s"
          % (R, ", ".join("%.4f" % e for e in errors)))
    assert errors[2] < 0.03
    assert errors[2] < errors[0] / 4 and errors[1] < errors[0]
    # The polynomial part is exact: an orthogonal pair gets exactly zero weight at any M.
    assert np.all(np.abs(kernel_values(slay.FeatureMap("slay", head_dim=d, nodes=2, poly="exact", prf_dim=64),
                                       x, y)[np.array(cosines) == 0]) < 1e-7)


def test_anchor_polynomial_limit_without_prf_noise():
    """anchor polynomial alone (ω set to 0, so every PRF is e^{−s}/√M, no randomness): with many anchors
    φ(q)·φ(k) → Σ_r w_r e^{−2 s_r} (1 + 2x²)/(d(d+2)), while exact-poly gives Σ_r w_r e^{−2 s_r} x²."""
    d, R, P, cosines = 8, 2, 65536, [0.0, 0.3, 0.6, 0.9, 1.0]
    x, y = pairs(d, cosines)
    s, w = naive.quadrature(R, 1e-6)
    scale = float((w * np.exp(-2 * s)).sum())
    anchor = slay.FeatureMap("slay", head_dim=d, nodes=R, poly="anchor", poly_dim=P, prf_dim=1, seed=1)
    anchor.set_params(omega=np.zeros((R, 1, d, 1), np.float32))
    exact = slay.FeatureMap("slay", head_dim=d, nodes=R, poly="exact", prf_dim=1, seed=1)
    exact.set_params(omega=np.zeros((R, 1, d, 1), np.float32))
    c = np.array(cosines)
    got = kernel_values(anchor, x, y)
    print("\nanchor polynomial (P=%d) / limit:" % P, np.round(got / (scale * (1 + 2 * c * c) / (d * (d + 2))), 4))
    np.testing.assert_allclose(got, scale * (1 + 2 * c * c) / (d * (d + 2)), rtol=0.03)
    np.testing.assert_allclose(kernel_values(exact, x, y), scale * c * c, rtol=1e-5, atol=1e-7)


def test_anchor_converges_to_biased_limit():
    """anchor ⊗ PRF (the paper's default) → Σ_r w_r (1 + 2x²) e^{2 s_r x}/(d(d+2)), not the Yat kernel:
    an orthogonal pair (x = 0) keeps weight 1/(d(d+2))·Σ w_r instead of 0."""
    d, R, cosines = 8, 1, [0.0, 0.3, 0.6]
    x, y = pairs(d, cosines)
    limit = anchor_limit(R, cosines, d)
    got = np.mean([kernel_values(slay.FeatureMap("slay", head_dim=d, nodes=R, poly="anchor", poly_dim=1024,
                                                 prf_dim=1024, seed=seed), x, y) for seed in range(3)], axis=0)
    print("\nanchor kernel", np.round(got, 5), "limit", np.round(limit, 5), "Yat-quadrature",
          np.round(quadrature_kernel(R, cosines), 5))
    np.testing.assert_allclose(got, limit, rtol=0.1)
    assert got[0] > 0.5 * limit[0] > 0  # the bias: orthogonal keys keep weight, unlike the Yat kernel


# ---- docs/math.md "Accuracy protocol" -----------------------------------------------------------------

def plain_protocol_error(poly, seeds=(0, 1, 2, 3), B=4, T=128, width=64, H=4, M=8, P=8):
    """x ~ N(0, 1) [B, T, 64]; q, k, v = x @ W with W ~ U(−1/8, 1/8) (three 64×64 matrices, no bias),
    heads H = 4 of d = 16; error of the attention output vs exact spherical Yat attention."""
    errors = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((B, T, width))
        q, k, v = ((x @ rng.uniform(-1 / 8, 1 / 8, (width, width))).reshape(B, T, H, width // H).astype(np.float32)
                   for _ in range(3))
        fm = slay.FeatureMap("slay", head_dim=width // H, num_heads=H, nodes=2, poly=poly, poly_dim=P, prf_dim=M,
                             eps=1e-6, seed=seed)
        y = slay.linear_attention(q, k, v, fm, causal=True)
        ref = slay.exact_attention(q, k, v, kernel="yat-spherical", eps=1e-6, causal=True)
        errors.append(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    return float(np.mean(errors))


def module_protocol_error(poly, seeds=(0, 1, 2, 3), B=4, T=128, width=64, H=4, M=8, P=8):
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
        q, k, v = (qkv[..., i * width:(i + 1) * width].reshape(B, T, H, width // H).astype(np.float32)
                   for i in range(3))
        fm = slay.FeatureMap("slay", head_dim=width // H, num_heads=H, nodes=2, poly=poly, poly_dim=P, prf_dim=M,
                             eps=1e-6, seed=seed)
        y = slay.linear_attention(q, k, v, fm, causal=True).reshape(B, T, width) @ w_out + b_out
        ref = slay.exact_attention(q, k, v, kernel="yat-spherical", eps=1e-6,
                                   causal=True).reshape(B, T, width) @ w_out + b_out
        errors.append(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    return float(np.mean(errors))


def test_paper_accuracy_protocol():
    """B=4, T=128, width 64, H=4 (d=16), causal, R=2, ε=1e-6, M=P=8, relative L2 error vs exact
    spherical Yat attention, mean of 4 seeds. Published anchor error: 0.65.

    Measured with this library (seed spread of single runs ≈ ±0.015):
      plain  (q, k, v = x @ W, W ~ U(±1/8), error of the attention output): anchor ≈ 0.82, exact ≈ 0.42
      module (qkv/out Linear layers with bias, error of the module output):  anchor ≈ 0.65, exact ≈ 0.34
    Bands: plain anchor 0.72..0.92, module anchor 0.55..0.75 (the published 0.65 within seed spread);
    exact-poly at most 0.75 × anchor in both.
    """
    rows = [(name, fn("anchor"), fn("exact")) for name, fn in
            (("plain x @ W", plain_protocol_error), ("reference module", module_protocol_error))]
    print("\naccuracy protocol: relative L2 error vs exact spherical Yat (mean of 4 seeds)")
    print("  %-18s %8s %11s %10s" % ("setup", "anchor", "exact-poly", "published"))
    for name, anchor, exact in rows:
        print("  %-18s %8.3f %11.3f %10s" % (name, anchor, exact, "0.65"))
    (_, plain_anchor, plain_exact), (_, module_anchor, module_exact) = rows
    assert 0.72 <= plain_anchor <= 0.92
    assert 0.55 <= module_anchor <= 0.75
    assert plain_exact <= 0.75 * plain_anchor
    assert module_exact <= 0.75 * module_anchor
