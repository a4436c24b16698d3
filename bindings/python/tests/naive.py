"""float64 naive twins of libslay's math (docs/math.md §1, §5), written from the definitions."""
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


def normals64(seed, stream, count, start=0):
    """normal(i), start <= i < start + count, of slay.h's parameter generator, in double."""
    with np.errstate(over="ignore"):
        key = splitmix64(U64(seed) ^ splitmix64(U64(stream)))
        i = np.arange(start, start + count, dtype=U64)
        a = splitmix64(key + U64(2) * i)
        b = splitmix64(key + U64(2) * i + U64(1))
    u1 = ((a >> U64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (b >> U64(11)).astype(np.float64) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def normals(seed, stream, count):
    """normal(i), i < count, of slay.h's parameter generator: computed in double, rounded to float."""
    return normals64(seed, stream, count).astype(np.float32)


def uniforms64(seed, stream, count):
    """uniform(i) = (splitmix64(key + i) >> 11) · 2^−53 of slay.h, in double."""
    with np.errstate(over="ignore"):
        key = splitmix64(U64(seed) ^ splitmix64(U64(stream)))
        z = splitmix64(key + np.arange(count, dtype=U64))
    return (z >> U64(11)).astype(np.float64) * 2.0 ** -53


def params(seed, d, H, R, M, P=None):
    """(anchors (P, d) or None, omega (R, H, d, M)) as float32, from the documented generator."""
    omega = normals(seed, 2, R * H * d * M).reshape(R, H, d, M)
    anchors = None
    if P is not None:
        raw = normals(seed, 1, P * d).reshape(P, d).astype(np.float64)
        anchors = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    return anchors, omega


def sketch_params(seed, d, P):
    """TensorSketch "sketch" (2, 2, d) of slay.h: element i = (2k + c)·d + j from uniform(i) of stream 9;
    c = 0: bucket min(⌊P·uniform(i)⌋, P − 1), c = 1: sign +1 if uniform(i) < 1/2 else −1."""
    u = uniforms64(seed, 9, 4 * d).reshape(2, 2, d)
    out = np.empty((2, 2, d), np.float32)
    out[:, 0] = np.minimum(np.floor(P * u[:, 0]), P - 1)
    out[:, 1] = np.where(u[:, 1] < 0.5, 1.0, -1.0)
    return out


NYSTROM_LAMBDA = 1e-3


def nystrom_whitening(anchors, lam=NYSTROM_LAMBDA):
    """(K_AA + λI)^{−1/2}, K_AA = (A Aᵀ)∘(A Aᵀ), in float64 (numpy's symmetric eigensolver)."""
    A = anchors.astype(np.float64)
    K = (A @ A.T) ** 2 + lam * np.eye(A.shape[0])
    mu, V = np.linalg.eigh(K)
    return (V / np.sqrt(mu)) @ V.T


def poly_dim(poly, d, P=None):
    """P' of slay.h: P (anchor, random_maclaurin, tensorsketch, nystrom), d(d+1)/2 (exact), d² (exact_full),
    1 (laplace)."""
    if poly == "laplace":
        return 1
    if poly in ("random_maclaurin", "tensorsketch", "nystrom"):
        return P
    return {"anchor": P, "exact": d * (d + 1) // 2, "exact_full": d * d}[poly]


def quadrature(R, eps):
    t, alpha = laggauss(R)
    C = 2 + eps
    return t / C, alpha / C


def poly_features(u, poly, anchors=None, P=None):
    """`anchors` holds the (P, d) anchors (anchor, nystrom), the (2, P, d) Maclaurin directions, or the
    (2, 2, d) TensorSketch hashes and signs (then P is the bucket count)."""
    d = u.shape[-1]
    if poly == "laplace":
        return np.ones(u.shape[:-1] + (1,))
    if poly == "tensorsketch":
        # The definition pair by pair: û_i û_j s1(i) s2(j) lands in bucket (h1(i) + h2(j)) mod P.
        h1, s1, h2, s2 = anchors[0, 0], anchors[0, 1], anchors[1, 0], anchors[1, 1]
        bucket = (h1[:, None].astype(np.int64) + h2[None, :].astype(np.int64)) % P
        onehot = np.zeros((d, d, P))
        onehot[np.arange(d)[:, None], np.arange(d)[None, :], bucket] = 1
        pairs = u[..., :, None] * u[..., None, :] * (s1[:, None] * s2[None, :]).astype(np.float64)
        return np.einsum("...ij,ijb->...b", pairs, onehot)
    if poly == "nystrom":
        return ((u @ anchors.T.astype(np.float64)) ** 2) @ nystrom_whitening(anchors)
    if poly == "random_maclaurin":
        r = anchors.astype(np.float64)
        return (u @ r[0].T) * (u @ r[1].T) / np.sqrt(r.shape[1])
    if poly == "anchor":
        return (u @ anchors.T.astype(np.float64)) ** 2 / np.sqrt(anchors.shape[0])
    outer = u[..., :, None] * u[..., None, :]
    if poly == "exact_full":
        return outer.reshape(*u.shape[:-1], d * d)
    i, j = np.triu_indices(d)
    scale = np.where(i == j, 1.0, np.sqrt(2.0))
    return outer[..., i, j] * scale


def slay_features(x, head, poly, omega, anchors=None, eps=1e-6, clamp=20.0, P=None):
    """x (..., d) of one head → (..., R·P'·M), index (r·P' + p)·M + j."""
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    u = np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)
    R, _, _, M = omega.shape
    s, w = quadrature(R, eps)
    phi_poly = poly_features(u, poly, anchors, P)
    blocks = []
    for r in range(R):
        z = np.sqrt(2 * s[r]) * (u @ omega[r, head].astype(np.float64)) - s[r]
        prf = np.exp(np.clip(z, -clamp, clamp)) / np.sqrt(M)
        blocks.append(np.sqrt(w[r]) * (phi_poly[..., :, None] * prf[..., None, :]).reshape(*u.shape[:-1], -1))
    return np.concatenate(blocks, axis=-1)


def features_bthd(x, poly, omega, anchors=None, eps=1e-6, P=None):
    """(B, T, H, d) → (B, T, H, m); query head h of a grouped-query group uses key head h // group."""
    group = x.shape[2] // omega.shape[1]
    return np.stack([slay_features(x[:, :, h], h // group, poly, omega, anchors, eps, P=P)
                     for h in range(x.shape[2])], axis=2)


def linear_attention(phi_q, phi_k, v, causal, delta=1e-6, denominator="add"):
    """Quadratic form of kernel-normalised linear attention from features; GQA by head repeat.
    denominator "add" divides by den + δ, "clamp" by max(den, δ) (slay.h SLAY_DENOMINATOR_*)."""
    group = phi_q.shape[2] // phi_k.shape[2]
    phi_k = np.repeat(phi_k.astype(np.float64), group, axis=2)
    v = np.repeat(v.astype(np.float64), group, axis=2)
    A = np.einsum("bthm,bshm->bhts", phi_q.astype(np.float64), phi_k)
    if causal:
        A = A * np.tril(np.ones(A.shape[-2:]))
    num = np.einsum("bhts,bshv->bthv", A, v)
    den = A.sum(-1).transpose(0, 2, 1)[..., None]
    return num / (den + delta) if denominator == "add" else num / np.maximum(den, delta)


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


# ---- classic maps (docs/math.md §4, slay.h SLAY_KIND_*) -----------------------------------------------

def favor_omega(seed, d, H, m, stream=3):
    """FAVOR+ ω (H, d, m) as slay.h documents it: per head ⌈m/d⌉ Gaussian d × d blocks (stream 3),
    rows orthonormalised by modified Gram–Schmidt in double, scaled by chi norms drawn after them.
    SLAY's orthogonal ω is the same construction on stream 7 with R·H heads."""
    blocks = -(-m // d)
    omega = np.zeros((H, d, m))
    norm_base = H * blocks * d * d
    for h in range(H):
        for b in range(blocks):
            G = normals64(seed, stream, d * d, start=(h * blocks + b) * d * d).reshape(d, d)
            for r in range(min(d, m - b * d)):
                v = G[r].copy()
                for p in range(r):
                    v -= (G[p] @ v) * G[p]
                G[r] = v / np.linalg.norm(v)
                j = b * d + r
                chi = np.linalg.norm(normals64(seed, stream, d, start=norm_base + (h * m + j) * d))
                omega[h, :, j] = chi * G[r]
    return omega.astype(np.float32)


def classic_params(kind, seed, d, H, m):
    """The named arrays of a classic map, from the documented generator."""
    if kind == "favor+":
        return {"omega": favor_omega(seed, d, H, m)}
    if kind == "relu-random":
        return {"omega": normals(seed, 4, H * d * m).reshape(H, d, m)}
    if kind == "random-fourier":
        return {"omega": normals(seed, 5, H * d * m).reshape(H, d, m),
                "bias": (2 * np.pi * uniforms64(seed, 6, H * m)).astype(np.float32).reshape(H, m)}
    return {}


def classic_features(kind, x, head, params, role="query", positions=None, max_length=None):
    """φ of one head for x (..., T, d) in float64, from the definitions in slay.h."""
    x = x.astype(np.float64)
    d = x.shape[-1]
    if kind == "elu+1":
        return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "cosformer":
        T = x.shape[-2]
        positions = np.arange(T) if positions is None else np.asarray(positions)
        theta = np.pi * np.minimum(positions, max_length - 1) / (2 * max_length)
        r = np.maximum(x, 0)
        return np.concatenate([r * np.cos(theta)[:, None], r * np.sin(theta)[:, None]], axis=-1)
    omega = params["omega"][head].astype(np.float64)
    m = omega.shape[-1]
    if kind == "favor+":
        xs = x * d ** -0.25
        e = xs @ omega - (xs ** 2).sum(-1, keepdims=True) / 2
        if role == "query":
            e = e - e.max(-1, keepdims=True)
        return np.exp(e) / np.sqrt(m)
    if kind == "relu-random":
        return np.maximum(x @ omega, 0) / np.sqrt(m)
    if kind == "random-fourier":
        return np.sqrt(2 / m) * np.cos(x @ omega + params["bias"][head].astype(np.float64))
    raise ValueError(kind)


def classic_features_bthd(kind, x, params, num_heads, role="query", max_length=None):
    """(B, T, Hx, d) → (B, T, Hx, m); head h of a grouped-query group uses key head h // group."""
    group = x.shape[2] // num_heads
    return np.stack([classic_features(kind, x[:, :, h], h // group, params, role, max_length=max_length)
                     for h in range(x.shape[2])], axis=2)


# ---- ELA kernels (docs/math.md §2, slay.h SLAY_KIND_SUM_SQ_EUCLIDEAN … SLAY_KIND_BLUEPRINT) -----------

def _unit(x):
    """x/‖x‖ per row, 0 for zero rows (the blueprint kernel's x̂)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)


def ela_kernel(kind, q, k):
    """Kernel matrix (B, H, T, S) from the DEFINITION (not from features), q (B, T, H, d) and
    k (B, S, H, d) in float64, same head count."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    if kind in ("ela-sum-sqeuclid", "ela-sub-sqeuclid"):
        sign = 1.0 if kind == "ela-sum-sqeuclid" else -1.0
        diff = q.transpose(0, 2, 1, 3)[:, :, :, None, :] + sign * k.transpose(0, 2, 1, 3)[:, :, None, :, :]
        return (diff ** 2).sum(-1)
    if kind == "ela-blueprint":
        cosine = np.einsum("bthd,bshd->bhts", _unit(q), _unit(k))
        mq = ((q ** 2).sum(-1) + 1).transpose(0, 2, 1)[..., :, None]
        mk = ((k ** 2).sum(-1) + 1).transpose(0, 2, 1)[..., None, :]
        return (cosine + 1) * mq * mk
    raise ValueError(kind)


def ela_attention(kind, q, k, v, causal, delta=1e-6):
    """Kernel-normalised attention y_i = Σ_j K_ij v_j / (Σ_j K_ij + δ) with K from the definition;
    grouped-query heads share key head h // group."""
    group = q.shape[2] // k.shape[2]
    k = np.repeat(k, group, axis=2)
    v = np.repeat(v.astype(np.float64), group, axis=2)
    K = ela_kernel(kind, q, k)
    if causal:
        K = K * np.tril(np.ones(K.shape[-2:]))
    return np.einsum("bhts,bshv->bthv", K, v) / (K.sum(-1).transpose(0, 2, 1)[..., None] + delta)


def hadamard_exp_log_kernel(q, k):
    """log k(q_t, k_s) = logsumexp_f (q_tf + k_sf), (B, H, T, S) in float64, from the DEFINITION
    k(a, b) = Σ_f e^{a_f + b_f} (never from features, which overflow)."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    exponents = q.transpose(0, 2, 1, 3)[:, :, :, None, :] + k.transpose(0, 2, 1, 3)[:, :, None, :, :]
    return np.logaddexp.reduce(exponents, axis=-1)


def hadamard_exp_attention(q, k, v, causal, delta=1e-6, denominator="add"):
    """y_i = Σ_j k_ij v_j / (Σ_j k_ij + δ) for the Hadamard Exp kernel, evaluated with log-sum-exp:
    per query row R_i = max_j log k_ij, weights e^{log k_ij − R_i}, δ scaled to δ·e^{−R_i}
    (clamp: max(den, δ·e^{−R_i})). Grouped-query heads share key head h // group."""
    group = q.shape[2] // k.shape[2]
    k = np.repeat(k, group, axis=2)
    v = np.repeat(v.astype(np.float64), group, axis=2)
    L = hadamard_exp_log_kernel(q, k)
    if causal:
        L = np.where(np.tril(np.ones(L.shape[-2:])) > 0, L, -np.inf)
    R = L.max(-1, keepdims=True)
    W = np.exp(L - R)
    num = np.einsum("bhts,bshv->bthv", W, v)
    den = W.sum(-1, keepdims=True).transpose(0, 2, 1, 3)
    with np.errstate(over="ignore"):
        scaled = delta * np.exp(-R.transpose(0, 2, 1, 3)) if delta else 0.0
    return num / (den + scaled if denominator == "add" else np.maximum(den, scaled))
