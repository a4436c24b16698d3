"""float64 twins for the gradient tests: the token-loop definition of every form the backward
covers, as ONE function of every differentiable input (q, k, v, log α, gate logits, the initial
state, the map's parameters), so that central differences of it give reference gradients.

S_t = Diag(α_t) S_{t−1} + g^K_t φ(k_t) v_tᵀ, z_t alike (α_t = γ·e^{log α_t}; 1 without decay);
y_t = g^Q_t φ(q_t)ᵀ S_t / D(g^Q_t φ(q_t)ᵀ z_t) with D(x) = x + δ ("add") or max(x, δ) ("clamp"),
or y_t = g^Q_t φ(q_t)ᵀ S_t unnormalised; bidirectional: S = S0 + Σ_t φ(k_t) v_tᵀ for every t.
With qk_l2norm, φ ← φ / sqrt(Σ φ² + 1e-6) before the gates. The delta rule (update="delta") is
naive_delta.recurrence.
Loss L = Σ dout∘y + Σ dS_T∘S_T + Σ dz_T∘z_T."""
import math

import numpy as np

import naive
from naive_gla import softmax_gates


def unit(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)


def features64(fm, params, x, role, head, positions):
    """φ of one head for rows x (T, d) at token positions `positions`, float64, from the
    definitions (naive.py), with the parameters `params` (a dict like fm.get_params())."""
    x = np.asarray(x, np.float64)
    kind = fm.kind
    if kind == "identity":
        return x.copy()
    if kind == "ela-hadamard-exp":
        return np.exp(x)
    if kind in ("elu+1", "relu", "cosformer", "favor+", "relu-random", "random-fourier"):
        return naive.classic_features(kind, x, head, params, role, positions=positions,
                                      max_length=fm.config["max_length"])
    if kind in ("ela-sum-sqeuclid", "ela-sub-sqeuclid"):
        sq = (x ** 2).sum(-1, keepdims=True)
        one = np.ones_like(sq)
        if role == "query":
            return np.concatenate([x, sq, one], -1)
        return np.concatenate([(2.0 if kind == "ela-sum-sqeuclid" else -2.0) * x, one, sq], -1)
    if kind == "ela-blueprint":
        sq = (x ** 2).sum(-1, keepdims=True)
        return (sq + 1) * np.concatenate([unit(x), np.ones_like(sq)], -1)
    if kind == "slay" and fm.config.get("expansion") == "taylor":
        return taylor_features64(unit(x), fm.config["degree"], fm.config["eps"])
    if kind == "slay":
        c = fm.config
        poly = c["poly"]
        extra = {"anchor": "anchors", "nystrom": "anchors", "random_maclaurin": "maclaurin",
                 "tensorsketch": "sketch"}.get(poly)
        omega = np.asarray(params["omega"], np.float64)
        if c["shared_omega"]:
            omega = np.repeat(omega, c["nodes"], axis=0)
        return naive.slay_features(x, head, poly, omega, None if extra is None else np.asarray(params[extra]),
                                   eps=c["eps"], clamp=c["prf_clamp"], P=c["poly_dim"])
    raise ValueError(kind)


def taylor_features64(u, degree, eps):
    """SLAY_EXPANSION_TAYLOR in float64 and in the library's order: degree by degree, each multiset
    i₁ ≤ … ≤ i_k extending its parent by an index no smaller than its last, feature
    √(c_k · k!/Π counts!) · Π û_i with c_k = 2^{k−2} / (2 + ε)^{k−1}."""
    d = u.shape[-1]
    level = [((i,), u[..., i]) for i in range(d)]
    columns = []
    for k in range(2, degree + 1):
        ck = 2.0 ** (k - 2) / (2 + eps) ** (k - 1)
        nxt = []
        for index, value in level:
            for i in range(index[-1], d):
                child = index + (i,)
                counts = np.bincount(np.array(child), minlength=d)
                multinomial = math.factorial(k) / np.prod([math.factorial(c) for c in counts])
                nxt.append((child, value * u[..., i]))
                columns.append(np.sqrt(ck * multinomial) * nxt[-1][1])
        level = nxt
    return np.stack(columns, -1)


def l2norm64(x):
    """qk_l2norm: x / sqrt(Σ x² + 1e-6) per row (fla's use_qk_l2norm_in_kernel)."""
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)


def sequence64(phi_q, phi_k, v, causal, normalize, denominator, delta, alpha, query_gates, key_gates, S0, z0):
    """One sequence, token by token: phi_q (T, Hq, m), phi_k (T, Hk, m), v (T, Hk, dv), alpha
    (T, Hk, m) or None, gates (T, H) or None, S0 (Hk, m, dv), z0 (Hk, m) → y, S_T, z_T."""
    T, Hq, m = phi_q.shape
    Hk, dv = v.shape[1], v.shape[2]
    group = Hq // Hk
    if query_gates is not None:
        phi_q = phi_q * query_gates[:, :, None]
    if key_gates is not None:
        phi_k = phi_k * key_gates[:, :, None]
    S, z = S0.copy(), z0.copy()

    def read(query, h):
        num = query @ S[h // group]
        if not normalize:
            return num
        den = query @ z[h // group]
        return num / (den + delta) if denominator == "add" else num / max(den, delta)

    y = np.zeros((T, Hq, dv))
    if not causal:
        S = S + np.einsum("thm,thv->hmv", phi_k, v)
        z = z + phi_k.sum(0)
        for t in range(T):
            for h in range(Hq):
                y[t, h] = read(phi_q[t, h], h)
        return y, S, z
    for t in range(T):
        a = np.ones((Hk, m)) if alpha is None else alpha[t]
        S = a[:, :, None] * S + phi_k[t][:, :, None] * v[t][:, None, :]
        z = a * z + phi_k[t]
        for h in range(Hq):
            y[t, h] = read(phi_q[t, h], h)
    return y, S, z


def forward64(fm, q, k, v, params=None, causal=True, normalize=True, denominator="add", delta=1e-6, decay=None,
              log_decay=None, query_gate_logits=None, key_gate_logits=None, initial_state=None, cu_seqlens=None,
              positions=None, update="add", beta=None, qk_l2norm=False):
    """The whole call in float64 → (y (B, T, Hq, dv), S_T (N, Hk, m, dv), z_T (N, Hk, m)).
    update="delta": the delta rule's token loop (naive_delta.recurrence), z_T = z0."""
    params = fm.get_params() if params is None else params
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, T, Hq, _ = q.shape
    Hk, dv = k.shape[2], v.shape[3]
    group = Hq // Hk
    m = fm.dim
    if cu_seqlens is None:
        spans = [(b, 0, T) for b in range(B)]
    else:
        spans = [(0, cu_seqlens[i], cu_seqlens[i + 1] - cu_seqlens[i]) for i in range(len(cu_seqlens) - 1)]
    N = len(spans)
    S0 = np.zeros((N, Hk, m, dv)) if initial_state is None else np.asarray(initial_state[0], np.float64)
    z0 = np.zeros((N, Hk, m)) if initial_state is None or initial_state[1] is None else np.asarray(initial_state[1], np.float64)
    qg = None if query_gate_logits is None else softmax_gates(query_gate_logits)
    kg = None if key_gate_logits is None else softmax_gates(key_gate_logits)
    y = np.zeros((B, T, Hq, dv))
    ST, zT = np.zeros((N, Hk, m, dv)), np.zeros((N, Hk, m))
    for n, (b, start, length) in enumerate(spans):
        rows = slice(start, start + length)
        first = 0 if positions is None else positions[n]
        pos = np.arange(first, first + length)
        phi_q = np.stack([features64(fm, params, q[b, rows, h], "query", h // group, pos) for h in range(Hq)], 1)
        phi_k = np.stack([features64(fm, params, k[b, rows, h], "key", h, pos) for h in range(Hk)], 1)
        if qk_l2norm:
            phi_q, phi_k = l2norm64(phi_q), l2norm64(phi_k)
        if update == "delta":
            import naive_delta
            y[b, rows], ST[n] = naive_delta.recurrence(
                phi_q, phi_k, v[b, rows], beta=None if beta is None else np.asarray(beta, np.float64)[b, rows],
                g=None if log_decay is None else np.asarray(log_decay, np.float64)[b, rows],
                gammas=None if decay is None else np.asarray(decay, np.float64),
                query_gates=None if qg is None else qg[b, rows], key_gates=None if kg is None else kg[b, rows],
                state=S0[n])
            zT[n] = z0[n]
            continue
        alpha = None
        if log_decay is not None or decay is not None:
            alpha = np.ones((length, Hk, m))
            if log_decay is not None:
                ld = np.asarray(log_decay, np.float64)[b, rows]
                alpha = alpha * np.exp(ld if ld.ndim == 3 else ld[..., None])  # per channel, or per head
            if decay is not None:
                alpha = alpha * np.asarray(decay, np.float64)[None, :, None]
        y[b, rows], ST[n], zT[n] = sequence64(
            phi_q, phi_k, v[b, rows], causal, normalize, denominator, delta, alpha,
            None if qg is None else qg[b, rows], None if kg is None else kg[b, rows], S0[n], z0[n])
    return y, ST, zT


def loss64(fm, inputs, dout, d_final=None, **settings):
    """L = Σ dout∘y (+ Σ dS_T∘S_T + Σ dz_T∘z_T) with `inputs` a dict of q, k, v, params, log_decay,
    query_gate_logits, key_gate_logits, initial_state."""
    y, ST, zT = forward64(fm, **inputs, **settings)
    total = float((np.asarray(dout, np.float64) * y).sum())
    if d_final is not None:
        total += float((np.asarray(d_final[0], np.float64) * ST).sum())
        if d_final[1] is not None:
            total += float((np.asarray(d_final[1], np.float64) * zT).sum())
    return total


def perturbed(inputs, name, direction, h):
    """A copy of `inputs` with input `name` (or ("params", key), ("initial_state", 0/1)) moved by h·direction."""
    out = dict(inputs)
    if isinstance(name, tuple):
        group, key = name
        if group == "params":
            out["params"] = dict(inputs["params"])
            out["params"][key] = np.asarray(inputs["params"][key], np.float64) + h * direction
        else:
            state = list(inputs["initial_state"])
            state[key] = np.asarray(state[key], np.float64) + h * direction
            out["initial_state"] = tuple(state)
    else:
        out[name] = np.asarray(inputs[name], np.float64) + h * direction
    return out


def directional64(fm, inputs, name, direction, dout, d_final=None, h=1e-5, **settings):
    """(L(x + h u) − L(x − h u)) / 2h for input `name` along u, in float64."""
    plus = loss64(fm, perturbed(inputs, name, direction, h), dout, d_final, **settings)
    minus = loss64(fm, perturbed(inputs, name, direction, -h), dout, d_final, **settings)
    return (plus - minus) / (2 * h)
