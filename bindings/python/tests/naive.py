"""float64 naive twins of libslay's math (MATH.md §1, §5), written from the definitions."""
import numpy as np
from numpy.polynomial.laguerre import laggauss

U64 = np.uint64


def splitmix64(x):
    """splitmix64 of slay.h on numpy uint64 arrays (arithmetic mod 2^64 by wrap-around)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=U64) + U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        return z ^ (z >> U64(31))


def normals(seed, stream, count):
    """normal(i), i < count, of slay.h's parameter generator: computed in double, rounded to float."""
    with np.errstate(over="ignore"):
        key = splitmix64(U64(seed) ^ splitmix64(U64(stream)))
        i = np.arange(count, dtype=U64)
        a = splitmix64(key + U64(2) * i)
        b = splitmix64(key + U64(2) * i + U64(1))
    u1 = ((a >> U64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (b >> U64(11)).astype(np.float64) * 2.0 ** -53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def params(seed, d, H, R, M, P=None):
    """(anchors (P, d) or None, omega (R, H, d, M)) as float32, from the documented generator."""
    omega = normals(seed, 2, R * H * d * M).reshape(R, H, d, M)
    anchors = None
    if P is not None:
        raw = normals(seed, 1, P * d).reshape(P, d).astype(np.float64)
        anchors = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    return anchors, omega


def poly_dim(poly, d, P=None):
    """P' of slay.h: P (anchor), d(d+1)/2 (exact), d² (exact_full)."""
    return {"anchor": P, "exact": d * (d + 1) // 2, "exact_full": d * d}[poly]


def quadrature(R, eps):
    t, alpha = laggauss(R)
    C = 2 + eps
    return t / C, alpha / C


def poly_features(u, poly, anchors=None):
    d = u.shape[-1]
    if poly == "anchor":
        return (u @ anchors.T.astype(np.float64)) ** 2 / np.sqrt(anchors.shape[0])
    outer = u[..., :, None] * u[..., None, :]
    if poly == "exact_full":
        return outer.reshape(*u.shape[:-1], d * d)
    i, j = np.triu_indices(d)
    scale = np.where(i == j, 1.0, np.sqrt(2.0))
    return outer[..., i, j] * scale


def slay_features(x, head, poly, omega, anchors=None, eps=1e-6, clamp=20.0):
    """x (..., d) of one head → (..., R·P'·M), index (r·P' + p)·M + j."""
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    u = np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)
    R, _, _, M = omega.shape
    s, w = quadrature(R, eps)
    phi_poly = poly_features(u, poly, anchors)
    blocks = []
    for r in range(R):
        z = np.sqrt(2 * s[r]) * (u @ omega[r, head].astype(np.float64)) - s[r]
        prf = np.exp(np.clip(z, -clamp, clamp)) / np.sqrt(M)
        blocks.append(np.sqrt(w[r]) * (phi_poly[..., :, None] * prf[..., None, :]).reshape(*u.shape[:-1], -1))
    return np.concatenate(blocks, axis=-1)


def features_bthd(x, poly, omega, anchors=None, eps=1e-6):
    """(B, T, H, d) → (B, T, H, m); query head h of a grouped-query group uses key head h // group."""
    group = x.shape[2] // omega.shape[1]
    return np.stack([slay_features(x[:, :, h], h // group, poly, omega, anchors, eps) for h in range(x.shape[2])],
                    axis=2)


def linear_attention(phi_q, phi_k, v, causal, delta=1e-6):
    """Quadratic form of kernel-normalised linear attention from features; GQA by head repeat."""
    group = phi_q.shape[2] // phi_k.shape[2]
    phi_k = np.repeat(phi_k.astype(np.float64), group, axis=2)
    v = np.repeat(v.astype(np.float64), group, axis=2)
    A = np.einsum("bthm,bshm->bhts", phi_q.astype(np.float64), phi_k)
    if causal:
        A = A * np.tril(np.ones(A.shape[-2:]))
    num = np.einsum("bhts,bshv->bthv", A, v)
    den = A.sum(-1).transpose(0, 2, 1)[..., None]
    return num / (den + delta)


def exact_attention(q, k, v, kernel, causal, eps=1e-6, scale=None, delta=1e-6):
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[2] // k.shape[2]
    k = np.repeat(k, group, axis=2)
    v = np.repeat(v, group, axis=2)
    T = q.shape[1]
    mask = np.tril(np.ones((T, T))) if causal else np.ones((T, T))
    if kernel == "softmax":
        scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits = scale * np.einsum("bthd,bshd->bhts", q, k)
        logits = np.where(mask > 0, logits, -np.inf)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        return np.einsum("bhts,bshv->bthv", weights, v)
    if kernel == "yat-spherical":
        qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
        kn = k / np.linalg.norm(k, axis=-1, keepdims=True)
        x = np.einsum("bthd,bshd->bhts", qn, kn)
        K = x * x / (2 + eps - 2 * x)
    else:
        dot = np.einsum("bthd,bshd->bhts", q, k)
        dist = (q ** 2).sum(-1).transpose(0, 2, 1)[..., None] + (k ** 2).sum(-1).transpose(0, 2, 1)[..., None, :] - 2 * dot
        K = dot ** 2 / (dist + eps)
    K = K * mask
    return np.einsum("bhts,bshv->bthv", K, v) / (K.sum(-1).transpose(0, 2, 1)[..., None] + delta)


def rms_close(actual, expected, rtol=1e-4, atol=1e-6):
    """flash-linear-attention style comparison: RMS error ratio with an absolute floor; NaN fails."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert np.all(np.isfinite(actual)), "non-finite values in the result"
    error = np.sqrt(np.mean((actual - expected) ** 2))
    scale = np.sqrt(np.mean(expected ** 2))
    assert error <= rtol * scale + atol, "RMS error %.3g vs scale %.3g" % (error, scale)
