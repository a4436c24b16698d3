"""Whole-sequence attention: linear (with optional initial / final state) and exact."""
import ctypes

import numpy as np

from ._lib import lib, Error, ExactAttentionOptions
from ._tensor import as_input, as_output, descriptor
from .errors import check, error_for, translated, INVALID_ARGUMENT, STATE_MISMATCH
from .feature_map import require_map
from .options import attention_options, check_int, resolve_gates, DENOMINATORS  # noqa: F401 (DENOMINATORS re-exported)
from .state import State

EXACT_KERNELS = {"softmax": 1, "yat-spherical": 2, "yat": 3}


@translated
def linear_attention(q, k, v, fm, causal=True, delta=1e-6, chunk_size=0, n_threads=1, out=None,
                     initial_state=None, output_final_state=False, cu_seqlens=None, denominator="add",
                     normalize=True, decay=None, log_decay=None, query_gate_logits=None, key_gate_logits=None,
                     gate_input=None, query_gate_weights=None, key_gate_weights=None, update="add", beta=None,
                     qk_l2norm=False, check_finite=False):
    """y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ), q (B, T, Hq, d), k (B, T, Hk, d), v (B, T, Hk, dv),
    φ the slay.FeatureMap fm (Hk = fm.num_heads, d = fm.head_dim).

    Returns y (B, T, Hq, dv) with the dtype of v, or (y, final_state) when output_final_state is
    true; out: an optional (B, T, Hq, dv) array to write y into (its dtype decides the output's).
    q, k, v, out and the token tensors (log_decay, gate logits, beta) may each be float32, float16
    or bfloat16 (ml_dtypes): converted in libslay's loads and stores, fp32 arithmetic. causal: y_i sees keys j <= i (default)
    or all keys. delta: δ >= 0 of the denominator. n_threads: threads for this call (1..256).
    initial_state (a slay.State with one slot per sequence, an S array [N, H, m, dv], or an (S, z)
    tuple with z [N, H, m]) starts each sequence from that state (it is not modified). cu_seqlens (N + 1 offsets) treats B = 1 tensors as N packed sequences.
    denominator: "add" divides by den + δ; "clamp" by max(den, δ), for signed maps.
    normalize=False drops the normaliser (y = φ(q)ᵀS); decay: one γ ∈ (0, 1] per key head (RetNet),
    causal only. chunk_size: rows per causal chunk (1..4096), or 0 (default) for the form's
    choice (docs/attention-forms.md); it changes only fp32 rounding.

    GLA: log_decay float32, log α ≤ 0 per token and key head, (B, T, Hk) (per head) or
    (B, T, Hk, m) (per channel): S_t = Diag(α_t) S_{t−1} + φ(k_t) v_tᵀ (causal only; multiplies
    with `decay`).
    SLA gates: query_gate_logits (B, T, Hq) and key_gate_logits (B, T, Hk) float32; the softmax
    over heads of each token scales φ(q) / φ(k). Or pass gate_input x (B, T, D) with
    query_gate_weights W_GQ (D, Hq) / key_gate_weights W_GK (D, Hk): logits = x @ W, computed with
    numpy in float32 (not both logits and weights). With normalize=True the query gate cancels
    (except for δ): SLA uses normalize=False.
    Delta rule (DeltaNet / Gated DeltaNet): update="delta" with normalize=False, beta (B, T, Hk)
    float32 in [0, 2] (None: 1) and optionally log_decay = g (B, T, Hk), g <= 0:
    S_t = e^{g_t} (I − β_t φ(k_t) φ(k_t)ᵀ) S_{t−1} + β_t φ(k_t) v_tᵀ, o_t = S_tᵀ φ(q_t); causal only.
    qk_l2norm=True L2-normalises φ(q) and φ(k) in the kernel (after the map, before the gates).
    check_finite=True refuses NaN / ±inf in q, k, v with slay.NonFiniteError before writing anything.
    """
    handle = require_map(fm)
    q = as_input(q, "q", 4, half=True)
    k = as_input(k, "k", 4, half=True)
    v = as_input(v, "v", 4, half=True)
    shape = (q.shape[0], q.shape[1], q.shape[2], v.shape[3])
    out = np.empty(shape, v.dtype) if out is None else as_output(out, "out", shape, half=True)
    query_gate_logits, key_gate_logits = resolve_gates(query_gate_logits, key_gate_logits, gate_input,
                                                       query_gate_weights, key_gate_weights)
    if initial_state is None and not output_final_state and cu_seqlens is None:
        options = attention_options(causal, delta, chunk_size, n_threads, denominator, normalize, decay, log_decay,
                                    query_gate_logits, key_gate_logits, update=update, beta=beta, qk_l2norm=qk_l2norm,
                                    check_finite=check_finite)
        err = Error()
        with fm._reading() as handle:
            check(lib.slay_linear_attention(handle, descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                            ctypes.byref(options), ctypes.byref(err)), err)
        return out
    if initial_state is not None:
        from ._state_arrays import as_initial_state
        initial_state = as_initial_state(State, fm, initial_state)
        if initial_state.fm is not fm and initial_state.fm.identity != fm.identity:
            raise error_for(STATE_MISMATCH, "initial_state belongs to a different feature map than fm")
        state = initial_state.copy()
    else:
        sequences = q.shape[0] if cu_seqlens is None else max(len(cu_seqlens) - 1, 1)
        state = State(fm, num_seqs=sequences, value_dim=v.shape[3])
    state.prefill(q, k, v, causal=causal, delta=delta, chunk_size=chunk_size, n_threads=n_threads, out=out,
                  cu_seqlens=cu_seqlens, denominator=denominator, normalize=normalize, decay=decay,
                  log_decay=log_decay, query_gate_logits=query_gate_logits, key_gate_logits=key_gate_logits,
                  update=update, beta=beta, qk_l2norm=qk_l2norm, check_finite=check_finite)
    return (out, state) if output_final_state else out


@translated
def exact_attention(q, k, v, kernel="softmax", eps=1e-6, causal=True, scale=None, delta=1e-6, n_threads=1,
                    out=None):
    """Quadratic attention in double precision (slay.h slay_exact_attention), q (B, T, Hq, d),
    k (B, T, Hk, d), v (B, T, Hk, dv) → (B, T, Hq, dv) with the dtype of v (written into out when
    given; float32, float16 or bfloat16 each, as in linear_attention).

    kernel: "softmax" (softmax(scale · q·k); scale=None means 1/√d, 0 is refused),
    "yat-spherical" (x²/(2 + eps − 2x), x = q̂·k̂) or "yat" ((q·k)²/(‖q − k‖² + eps)), the Yat
    kernels normalised as Σ K v / (Σ K + delta); causal: keys j <= i only; n_threads: 1..256.
    """
    if not isinstance(kernel, str) or kernel not in EXACT_KERNELS:
        raise error_for(INVALID_ARGUMENT, "unknown kernel %r; known: %s" % (kernel, ", ".join(EXACT_KERNELS)))
    q = as_input(q, "q", 4, half=True)
    k = as_input(k, "k", 4, half=True)
    v = as_input(v, "v", 4, half=True)
    shape = (q.shape[0], q.shape[1], q.shape[2], v.shape[3])
    out = np.empty(shape, v.dtype) if out is None else as_output(out, "out", shape, half=True)
    options = ExactAttentionOptions()
    lib.slay_exact_attention_options_init(ctypes.byref(options))
    options.kernel = EXACT_KERNELS[kernel]
    options.causal = 1 if causal else 0
    if scale is not None:
        if float(scale) == 0.0:
            raise error_for(INVALID_ARGUMENT, "scale must be non-zero (None means 1/sqrt(d))")
        options.scale = float(scale)
    options.eps = float(eps)
    options.delta = float(delta)
    options.n_threads = check_int(n_threads, "n_threads", -2**31, 2**31 - 1)
    err = Error()
    check(lib.slay_exact_attention(descriptor(q), descriptor(k), descriptor(v), descriptor(out),
                                   ctypes.byref(options), ctypes.byref(err)), err)
    return out
