"""float64 token-loop twin of the delta rule (DeltaNet / Gated DeltaNet, flash-linear-attention's
convention), written from the recurrence itself, not from the chunked algorithm:
S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t, with k = g^K φ(k), q = g^Q φ(q)
(L2-normalised first with qk_l2norm) and α_t = e^{g_t} (times γ)."""
import numpy as np


def l2norm(x):
    x = np.asarray(x, np.float64)
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)


def recurrence(phi_q, phi_k, v, beta=None, g=None, gammas=None, query_gates=None, key_gates=None, qk_l2norm=False,
               state=None):
    """One sequence: phi_q (T, Hq, m), phi_k (T, Hk, m), v (T, Hk, dv), beta (T, Hk) (None: 1),
    g (T, Hk) log decay, gammas (Hk,), gate values (T, Hq) / (T, Hk). state: S (Hk, m, dv) to start
    from. Returns y (T, Hq, dv) and the final S."""
    phi_q, phi_k, v = (np.asarray(a, np.float64) for a in (phi_q, phi_k, v))
    if qk_l2norm:
        phi_q, phi_k = l2norm(phi_q), l2norm(phi_k)
    T, Hq, m = phi_q.shape
    Hk, dv = v.shape[1], v.shape[2]
    group = Hq // Hk
    S = np.zeros((Hk, m, dv)) if state is None else np.array(state, np.float64)
    y = np.zeros((T, Hq, dv))
    for t in range(T):
        for h in range(Hk):
            k = phi_k[t, h] * (1.0 if key_gates is None else float(key_gates[t, h]))
            b = 1.0 if beta is None else float(beta[t, h])
            alpha = 1.0 if g is None else float(np.exp(np.float64(g[t, h])))
            if gammas is not None:
                alpha *= float(gammas[h])
            S[h] = alpha * (S[h] - b * np.outer(k, k @ S[h])) + b * np.outer(k, v[t, h])
        for h in range(Hq):
            q = phi_q[t, h] * (1.0 if query_gates is None else float(query_gates[t, h]))
            y[t, h] = q @ S[h // group]
    return y, S


def batched(phi_q, phi_k, v, beta=None, g=None, query_gates=None, key_gates=None, **kwargs):
    """recurrence over a padded batch (B, T, …); returns y (B, T, Hq, dv)."""
    pick = lambda a, b: None if a is None else a[b]
    return np.stack([recurrence(phi_q[b], phi_k[b], v[b], pick(beta, b), pick(g, b), query_gates=pick(query_gates, b),
                                key_gates=pick(key_gates, b), **kwargs)[0] for b in range(v.shape[0])])
