"""float64 naive twins of GLA decay and SLA head gates (docs/math.md §3), written from the recurrence
token by token: S_t = Diag(α_t) S_{t−1} + g^K_t φ(k_t) v_tᵀ, z_t = Diag(α_t) z_{t−1} + g^K_t φ(k_t),
y_t = g^Q_t φ(q_t)ᵀ S_t [/ (g^Q_t φ(q_t)ᵀ z_t + δ)], with g = softmax over the heads."""
import numpy as np


def elu_plus_one(x):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


# Feature maps whose features are trivial to write from their definition.
FEATURES = {"identity": lambda x: np.asarray(x, np.float64), "elu+1": elu_plus_one}


def softmax_gates(logits):
    """softmax over the last axis (the heads of one token), in float64."""
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def recurrence(phi_q, phi_k, v, log_decay=None, gammas=None, query_gates=None, key_gates=None, normalize=True,
               delta=1e-6, state=None):
    """One sequence: phi_q (T, Hq, m), phi_k (T, Hk, m), v (T, Hk, dv); log_decay (T, Hk, m) log α;
    gammas (Hk,) RetNet γ; query_gates (T, Hq) / key_gates (T, Hk) gate values (not logits).
    Query head h uses key head h // (Hq / Hk). state: (S (Hk, m, dv), z (Hk, m)) to start from.
    Returns y (T, Hq, dv) and the final (S, z)."""
    phi_q, phi_k, v = (np.asarray(a, np.float64) for a in (phi_q, phi_k, v))
    T, Hq, m = phi_q.shape
    Hk, dv = v.shape[1], v.shape[2]
    group = Hq // Hk
    if state is None:
        S, z = np.zeros((Hk, m, dv)), np.zeros((Hk, m))
    else:
        S, z = (np.array(a, np.float64) for a in state)
    y = np.zeros((T, Hq, dv))
    for t in range(T):
        alpha = np.ones((Hk, m))
        if log_decay is not None:
            alpha = alpha * np.exp(np.asarray(log_decay[t], np.float64))
        if gammas is not None:
            alpha = alpha * np.asarray(gammas, np.float64)[:, None]
        keys = phi_k[t] * (1.0 if key_gates is None else np.asarray(key_gates[t], np.float64)[:, None])
        S = alpha[:, :, None] * S + keys[:, :, None] * v[t][:, None, :]
        z = alpha * z + keys
        for h in range(Hq):
            query = phi_q[t, h] * (1.0 if query_gates is None else float(query_gates[t, h]))
            numerator = query @ S[h // group]
            y[t, h] = numerator / (query @ z[h // group] + delta) if normalize else numerator
    return y, (S, z)


def batched(phi_q, phi_k, v, log_decay=None, query_gates=None, key_gates=None, **kwargs):
    """recurrence over a padded batch (B, T, …); returns y (B, T, Hq, dv)."""
    pick = lambda a, b: None if a is None else a[b]
    return np.stack([recurrence(phi_q[b], phi_k[b], v[b], pick(log_decay, b), query_gates=pick(query_gates, b),
                                key_gates=pick(key_gates, b), **kwargs)[0] for b in range(v.shape[0])])
