/*
 * slay.h — the public C interface of libslay: linear attention with SLAY feature maps.
 *
 * libslay computes kernel-normalised linear attention
 *
 *     y_i = φ(q_i)ᵀ S / (φ(q_i)ᵀ z + δ),   S = Σ_j φ(k_j) v_jᵀ,   z = Σ_j φ(k_j)
 *
 * (prefix sums over j ≤ i when causal) for feature maps φ such as SLAY, the spherical Yat
 * kernel linearised by Gauss–Laguerre quadrature and random features (arXiv 2602.04915),
 * and exact quadratic attention to compare against.
 *
 * Conventions used by every function in this header
 * -------------------------------------------------
 * - Status codes. Every fallible function returns int32_t: SLAY_OK (0) or a negative
 *   SLAY_ERR_* code. Codes are stable and never renumbered. slay_status_string() turns a code
 *   into a static English string.
 * - Error details. Fallible functions take a last argument `slay_error* err` that may be NULL.
 *   When it is not NULL it is always written: err->code = the returned status and
 *   err->message = a NUL-terminated explanation ("k has head_dim 32, feature map expects 64"),
 *   or "" on success. There is no hidden global error state.
 * - No side effects on error. When a function fails, its outputs (tensors, handles, counters)
 *   are left untouched, except `*out` handle pointers, which are set to NULL.
 * - Bad input never aborts the process: pointers, enums, dimensions, strides, sizes and
 *   floating-point parameters are validated and reported as errors. (A pointer that is not NULL
 *   but points to too little memory cannot be detected; shapes and strides describe it.)
 * - Tensors are caller-owned memory described by slay_tensor: data pointer (aligned to its element
 *   size, else SLAY_ERR_LAYOUT), dtype, shape and strides in ELEMENTS (not bytes). libslay never
 *   keeps a pointer after a call returns.
 * - Attention tensors have the logical layout [B, T, H, D] (batch, time, head, feature), the
 *   order of flash-attention and flash-linear-attention. A head-first buffer [B, H, T, D] is
 *   passed as the same logical tensor with permuted strides; no copy is made.
 * - Input strides may be any value >= 0 (0 broadcasts). Output tensors must have strides >= 1
 *   in every dimension of extent > 1, must not overlap themselves, and must not overlap any input
 *   of the same call; otherwise SLAY_ERR_LAYOUT. Both checks are conservative: an output whose
 *   strides, sorted, do not each clear the extent of the smaller ones, or whose address range
 *   [first, last element] intersects an input's range, is rejected even if no element is shared
 *   (e.g. q and out interleaved in one packed buffer): give outputs their own buffer.
 * - Parameter structs begin with `uint32_t struct_size`; fill them with the matching
 *   *_init() function, then change the fields you need. Fields are only ever appended; a struct
 *   smaller than the first published version gives SLAY_ERR_INVALID_ARGUMENT, one larger than
 *   this library knows gives SLAY_ERR_VERSION_MISMATCH. Passing NULL options means defaults.
 * - Threads. slay_feature_map handles are immutable after creation (except through
 *   slay_feature_map_set_param) and may be used from many threads at once. Every compute call
 *   uses at most `n_threads` threads of its own (default 1), never "all cores".
 * - Handles. A slay_feature_map* or slay_state* is an opaque token, not an address: never
 *   dereference it. libslay keeps a table of live handles and checks every handle argument
 *   against it before using it. A handle that was freed, freed twice, never created, or is of
 *   the other type (a state passed as a map) gives SLAY_ERR_INVALID_ARGUMENT with a message, and
 *   slay_*_free of such a value is a no-op. A freed handle never acts on an object created later:
 *   each table slot carries a generation that grows at every free, and a slot whose generation
 *   would wrap (after 2^32 − 1 frees) is retired, so no handle value is ever issued twice in a
 *   process. A call that was handed a live handle keeps its object alive until it returns, even
 *   if another thread frees the handle meanwhile (that free only stops later calls). At most
 *   2^28 handles of each type may be live at once (then SLAY_ERR_OUT_OF_MEMORY).
 * - CPUs: the library runs on any x86-64 (SSE2) CPU. Its compute kernels exist twice, for the
 *   baseline and for AVX2/FMA, and the AVX2 ones run only when CPUID reports AVX2 and FMA
 *   (slay_kernel_variant), so no instruction the CPU lacks is ever executed.
 */
#ifndef SLAY_H
#define SLAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define SLAY_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#  define SLAY_API __attribute__((visibility("default")))
#else
#  define SLAY_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SLAY_NODISCARD __attribute__((warn_unused_result))
#else
#  define SLAY_NODISCARD
#endif

/* ======================================================================================= */
/* Versions                                                                                 */
/* ======================================================================================= */

#define SLAY_VERSION_MAJOR 0
#define SLAY_VERSION_MINOR 1
#define SLAY_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define SLAY_VERSION_NUMBER (SLAY_VERSION_MAJOR * 10000 + SLAY_VERSION_MINOR * 100 + SLAY_VERSION_PATCH)
/* Bumped whenever a struct layout, a function signature or the meaning of a value changes.
 * Bindings must refuse a library whose slay_abi_version() differs from the one they expect. */
#define SLAY_ABI_VERSION 1

/* slay_version_string — the library version as "MAJOR.MINOR.PATCH"; a static string. */
SLAY_API const char* slay_version_string(void);
/* slay_version_number — the library version as SLAY_VERSION_NUMBER of the built library. */
SLAY_API int32_t slay_version_number(void);
/* slay_abi_version — SLAY_ABI_VERSION of the built library; compare it with the header's. */
SLAY_API int32_t slay_abi_version(void);

/* slay_kernel_variant — the compute kernels this process uses: "avx2-fma" when the CPU has AVX2
 * and FMA, "portable" (x86-64 baseline) otherwise or when the environment variable
 * SLAY_KERNELS=portable was set before the first call. Chosen once per process; a static string. */
SLAY_API const char* slay_kernel_variant(void);

/* ======================================================================================= */
/* Status codes and errors                                                                  */
/* ======================================================================================= */

#define SLAY_OK                       0
#define SLAY_ERR_INVALID_ARGUMENT    -1  /* NULL pointer, unknown enum, bad numeric parameter  */
#define SLAY_ERR_SHAPE               -2  /* dimensions that are zero, negative or disagree     */
#define SLAY_ERR_LAYOUT              -3  /* unsupported strides, overlapping outputs           */
#define SLAY_ERR_DTYPE               -4  /* element type not supported by this function        */
#define SLAY_ERR_OVERFLOW            -5  /* a size or offset does not fit in 64-bit arithmetic  */
#define SLAY_ERR_OUT_OF_MEMORY       -6  /* the library could not allocate its workspace        */
#define SLAY_ERR_CORRUPT_DATA        -7  /* a serialized blob failed its checks                 */
#define SLAY_ERR_VERSION_MISMATCH    -8  /* struct or blob from an incompatible version         */
#define SLAY_ERR_UNSUPPORTED         -9  /* valid request this build cannot perform             */
#define SLAY_ERR_BUFFER_TOO_SMALL   -10  /* caller buffer smaller than required                 */
#define SLAY_ERR_INTERNAL           -11  /* a bug in libslay; please report it                  */
#define SLAY_ERR_STATE_MISMATCH     -12  /* state or blob belongs to another map or dimensions  */
#define SLAY_ERR_NON_FINITE         -13  /* a NaN or ±inf input refused by check_finite         */

/* slay_status_string — a static, NUL-terminated English name for a status code
 * ("invalid argument"); "unknown status" for codes this version does not define. Never NULL. */
SLAY_API const char* slay_status_string(int32_t status);

#define SLAY_ERROR_MESSAGE_SIZE 256

/* Error details of one call; see "Error details" above. `message` is truncated to fit. */
typedef struct slay_error {
    int32_t code;
    char message[SLAY_ERROR_MESSAGE_SIZE];
} slay_error;

/* ======================================================================================= */
/* Tensors                                                                                  */
/* ======================================================================================= */

#define SLAY_MAX_DIMS 4

#define SLAY_DTYPE_F32  0   /* IEEE-754 binary32 */
#define SLAY_DTYPE_F64  1   /* reserved: refused with SLAY_ERR_DTYPE (convert to F32 first) */
#define SLAY_DTYPE_F16  2   /* IEEE-754 binary16: attention tensors and state storage */
#define SLAY_DTYPE_BF16 3   /* bfloat16 (the high 16 bits of a binary32): as F16 */

/* Element types of tensors. Every tensor may be SLAY_DTYPE_F32. The attention tensors may also be
 * SLAY_DTYPE_F16 or SLAY_DTYPE_BF16, each independently of the others (e.g. q F16, k BF16, v F32,
 * out BF16): q, k, v and out of slay_linear_attention, slay_exact_attention, slay_state_prefill,
 * slay_state_query and slay_state_step, the options' log_decay, query_gate_logits,
 * key_gate_logits and beta, and x and out of slay_feature_map_apply. Arithmetic is fp32 whatever
 * the dtypes: half elements are widened exactly as they are loaded (no whole-tensor copy) and
 * outputs are the fp32 results rounded once to nearest-even as they are stored, so F16 inputs give
 * bit for bit the results of their F32 values, and a half out is the F32 out rounded. Half data
 * must be 2-byte aligned. slay_linear_attention_backward takes q, k, v, dout and writes dq, dk,
 * dv in any of the three dtypes too (each gradient rounded once from fp32). options->decay
 * (float*), state arrays (slay_state_read / write), map parameters and the backward's other
 * tensors (initial / final states, the options' tensors and their gradients) are fp32 only;
 * another dtype gives SLAY_ERR_DTYPE. */

/* A strided view of caller-owned memory. Element (i0, i1, ..) lives at
 * data + Σ i_k * strides[k] elements. Entries at index >= ndim are ignored. */
typedef struct slay_tensor {
    void* data;
    int32_t dtype;                     /* SLAY_DTYPE_* */
    int32_t ndim;                      /* 1..SLAY_MAX_DIMS, as each function requires */
    int64_t shape[SLAY_MAX_DIMS];      /* extents, each >= 1 */
    int64_t strides[SLAY_MAX_DIMS];    /* in elements, each >= 0 */
} slay_tensor;

/* slay_tensor_4d — convenience: a contiguous (row-major) float32 tensor [d0, d1, d2, d3]. */
static inline slay_tensor slay_tensor_4d(float* data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    slay_tensor t;
    t.data = data;
    t.dtype = SLAY_DTYPE_F32;
    t.ndim = 4;
    t.shape[0] = d0; t.shape[1] = d1; t.shape[2] = d2; t.shape[3] = d3;
    t.strides[3] = 1; t.strides[2] = d3; t.strides[1] = d2 * d3; t.strides[0] = d1 * d2 * d3;
    return t;
}

/* slay_tensor_4d_const — slay_tensor_4d for read-only buffers (const float*), so const inputs need
 * no cast. slay_tensor has one data pointer for inputs and outputs; pass the result ONLY where a
 * function reads the tensor (q, k, v, decay, log_decay, gate logits, x of slay_feature_map_apply):
 * libslay never writes through an input. Used as an output it would write to const memory. */
static inline slay_tensor slay_tensor_4d_const(const float* data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
#ifdef __cplusplus
    return slay_tensor_4d(const_cast<float*>(data), d0, d1, d2, d3);
#else
    return slay_tensor_4d((float*)(uintptr_t)data, d0, d1, d2, d3);
#endif
}

/* ======================================================================================= */
/* Feature maps                                                                             */
/* ======================================================================================= */

/* Feature-map kinds. "m" is the feature dimension per head; d = head_dim; fields a kind does not
 * list are ignored (and returned unchanged by slay_feature_map_config). */
#define SLAY_KIND_SLAY 1   /* spherical Yat kernel x²/(2 + ε − 2x) of q̂·k̂, linearised as
                              `expansion` says (SLAY_EXPANSION_*): Gauss–Laguerre ⊗ (polynomial ⊗
                              PRF), positive for SLAY_POLY_ANCHOR and signed otherwise, or the
                              deterministic Taylor series */
#define SLAY_KIND_ELU_PLUS_ONE 2  /* φ(x) = elu(x) + 1 elementwise; m = d; no parameters; positive.
                                     Reads head_dim, num_heads */
#define SLAY_KIND_RELU 3          /* φ(x) = max(x, 0) elementwise; m = d; no parameters; ≥ 0 (a query
                                     with no positive entry gives output 0, also with δ = 0: whenever
                                     the denominator is exactly 0 the output is 0, not 0/0 = NaN).
                                     Reads head_dim, num_heads */
#define SLAY_KIND_FAVOR_PLUS 4    /* FAVOR+ softmax-kernel features φ(x) = exp(ωᵀx' − ‖x'‖²/2)/√m,
                                     x' = x·d^(−1/4), so φ(q)·φ(k) ≈ exp(q·k/√d); m = prf_dim; "omega"
                                     (H, d, m) block-orthogonal (stream 3); positive. QUERY rows are
                                     scaled by exp(−max_j exponent_j) of their own row for stability:
                                     the factor cancels between numerator and denominator (only δ
                                     sees it). KEY features are plain; exponents are clamped to
                                     [−88, 88], so a key whose exponent exceeds 88 saturates at
                                     e^88/√m (wrong, but finite) instead of overflowing to inf.
                                     Reads head_dim, num_heads, prf_dim, seed */
#define SLAY_KIND_RELU_RANDOM 5   /* ReLU random features φ(x) = max(ωᵀx, 0)/√m, ω i.i.d. N(0, 1)
                                     "omega" (H, d, m) (stream 4); m = prf_dim; ≥ 0 (the arc-cosine
                                     kernel). Reads head_dim, num_heads, prf_dim, seed */
#define SLAY_KIND_RANDOM_FOURIER 6 /* random Fourier features φ(x) = √(2/m) cos(ωᵀx + b), ω ~ N(0, I)
                                     "omega" (H, d, m) (stream 5), b ~ U(0, 2π) "bias" (H, m)
                                     (stream 6), so φ(q)·φ(k) ≈ exp(−‖q − k‖²/2); m = prf_dim. SIGNED:
                                     the denominator φ(q)·Σφ(k) + δ can be ≤ 0 or near 0, and outputs
                                     can then be very large or change sign; no safeguard is applied.
                                     Reads head_dim, num_heads, prf_dim, seed */
#define SLAY_KIND_COSFORMER 7     /* cosFormer φ(x_i) = [relu(x_i) cos θ_i, relu(x_i) sin θ_i],
                                     θ_i = π i / (2L), i = the token's position in its sequence (from
                                     0; in state calls it continues from the slot's position, and
                                     slay_state_query puts its queries at slot position + t, as if
                                     they were the next tokens), L = max_length (>= 1,
                                     required); m = 2d; no parameters; ≥ 0. Positions >= L are
                                     CLAMPED to L − 1 (not an error): keep sequences within L tokens.
                                     Partitioned state calls (nth > 1) are refused with
                                     SLAY_ERR_UNSUPPORTED (shares cannot agree on slot positions).
                                     slay_feature_map_apply maps row t at position t.
                                     Reads head_dim, num_heads, max_length */
/* ELA kernels (Exact Linear Attention, arXiv 2605.18848): finite EXACT factorisations, no
 * randomness and no parameters; φ(q)·ψ(k) equals the kernel up to fp32 rounding. Kinds 8–10 have
 * signed features although each kernel is ≥ 0, so the normaliser φ(q)·Σψ(k) is ≥ 0 and > 0 except
 * in degenerate cases; the attention denominator adds δ as usual (no other safeguard). Kind 11
 * (Hadamard Exp) is positive and evaluated in a rescaled frame (see there). */
#define SLAY_KIND_SUM_SQ_EUCLIDEAN 8 /* k(q, k) = ‖q + k‖²; m = d + 2; ASYMMETRIC (role matters):
                                     query φ(q) = [q; ‖q‖²; 1], key ψ(k) = [2k; 1; ‖k‖²]. The
                                     normaliser is 0 only if every key is −q.
                                     Reads head_dim, num_heads */
#define SLAY_KIND_SUB_SQ_EUCLIDEAN 9 /* k(q, k) = ‖q − k‖²; m = d + 2; ASYMMETRIC (role matters):
                                     query φ(q) = [q; ‖q‖²; 1], key ψ(k) = [−2k; 1; ‖k‖²]. The
                                     expansion cancels when k ≈ q: the fp32 error is relative to
                                     ‖q‖² + ‖k‖², so k(q, q) is a tiny value of either sign and a
                                     causal first token with k = q divides by ≈ δ.
                                     Reads head_dim, num_heads */
#define SLAY_KIND_BLUEPRINT 10      /* safe unit-direction blueprint kernel
                                     k(q, k) = (q̂·k̂ + 1)(‖q‖² + 1)(‖k‖² + 1) ∈ [0, 2(‖q‖²+1)(‖k‖²+1)],
                                     x̂ = x/‖x‖ and x̂ = 0 for x = 0 (the paper's (q·k + 1)(…)(…)
                                     goes negative for q·k < −1; this form cannot). Symmetric:
                                     φ(x) = (‖x‖² + 1)·[x̂; 1] for both roles; m = d + 1. Features
                                     overflow to inf once ‖x‖ > ~1.8e19 (as do the squared-Euclidean
                                     kinds'). Reads head_dim, num_heads */
#define SLAY_KIND_HADAMARD_EXP 11   /* Hadamard Exp kernel (the ELA paper's default)
                                     k(q, k) = Σ_f e^{q_f + k_f}; m = d; symmetric φ(x) = exp(x);
                                     positive. slay_feature_map_apply returns these RAW features,
                                     which overflow to inf once an entry exceeds ~88.7. Attention
                                     and states never form them: they evaluate the kernel in a
                                     rescaled frame (per query row the largest exponent r_i it
                                     meets, per feature dimension f the running maximum μ_f of the
                                     keys' k_f), so every exponential is ≤ 1 and outputs are finite
                                     for any finite inputs (e.g. ×50), exact up to the fp32
                                     rounding of the exponents q_f + k_f (≈ |q_f + k_f|·6e-8
                                     relative per weight). δ is applied in the same frame:
                                     y = num/(den + δ·e^{−r_i}) (clamp: max(den, δ·e^{−r_i})), i.e.
                                     the usual Σk·v/(Σk + δ); there den ≥ 1, so δ only matters
                                     when every score is tiny. Cost: c·d exponentials per query row
                                     (c = chunk_size) on top of the usual work; the automatic
                                     chunk_size (0, the default) picks 8. normalize = 0, decay,
                                     log_decay and gate logits are refused with
                                     SLAY_ERR_UNSUPPORTED by every entry point. States also keep μ
                                     (H·m floats per slot; see slay_state_read, slay_state_save).
                                     NaN inputs propagate to the outputs they reach; ±inf inputs
                                     give NaN or meaningless values there; never a trap.
                                     Reads head_dim, num_heads */
#define SLAY_KIND_IDENTITY 12      /* φ(x) = x for both roles; m = d; no parameters; SIGNED (the
                                     normaliser q·Σk can be ≤ 0: with normalize = 1 use
                                     SLAY_DENOMINATOR_CLAMP). The map of RetNet / GLA / SLA
                                     backbones (normalize = 0, decay / log_decay, gates).
                                     Reads head_dim, num_heads */

/* Polynomial part of SLAY, the estimator of (q̂·k̂)². */
#define SLAY_POLY_ANCHOR      1  /* [(a_p·û)²]_p / √P, P anchors (the paper's default; biased) */
#define SLAY_POLY_EXACT       2  /* vec(ûûᵀ) with symmetric packing: d(d+1)/2 features, exact */
#define SLAY_POLY_EXACT_FULL  3  /* vec(ûûᵀ) unpacked: d² features, exact */
#define SLAY_POLY_LAPLACE     4  /* no polynomial factor (P' = 1): PRF only, estimates
                                    Σ_r w_r e^{2 s_r x} ∝ C/(C − 2x), not the Yat kernel */
#define SLAY_POLY_RANDOM_MACLAURIN 5 /* [(r1_p·û)(r2_p·û)]_p / √P, r1, r2 i.i.d. N(0, I) (parameter
                                    "maclaurin" (2, P, d), stream 8): unbiased for x² but SIGNED —
                                    the normaliser can be ≤ 0; use SLAY_DENOMINATOR_CLAMP */
#define SLAY_POLY_TENSORSKETCH 6 /* TensorSketch of û ⊗ û: two CountSketches h1, h2: [d] → [P] with
                                    signs s1, s2 ∈ {±1} (parameter "sketch" (2, 2, d), stream 9),
                                    feature b = Σ_{i,j: (h1(i) + h2(j)) mod P = b} s1(i) s2(j) û_i û_j
                                    (the circular convolution of the two count sketches); P features.
                                    E over the hashes of φ_poly(q̂)·φ_poly(k̂) is exactly x², so with
                                    the PRF part the estimator converges to Σ_r w_r x² e^{2 s_r x}
                                    (unbiased), but it is SIGNED — the normaliser can be ≤ 0; use
                                    SLAY_DENOMINATOR_CLAMP */
#define SLAY_POLY_NYSTROM      7 /* Nyström features W [(a_p·û)²]_p, W = (K_AA + λI)^{−1/2},
                                    K_AA = (A Aᵀ)∘(A Aᵀ), λ = 1e-3, with the P unit anchors of
                                    SLAY_POLY_ANCHOR (parameter "anchors" (P, d), stream 1); W is
                                    recomputed in double (Jacobi eigen-decomposition) at create and
                                    on set_param. P features, 1 <= P <= 256. Deterministic given
                                    the anchors and biased: φ_poly(q̂)·φ_poly(k̂) = k_qᵀ(K_AA + λI)^{−1}k_k
                                    is x² projected onto the anchors' quadratic forms, close to x²
                                    (shrunk by λ) once P >= d(d+1)/2 anchors span them. SIGNED —
                                    the normaliser can be ≤ 0; use SLAY_DENOMINATOR_CLAMP */

/* How SLAY linearises the spherical Yat kernel E(x) = x²/(C − 2x), x = q̂·k̂, C = 2 + ε. */
#define SLAY_EXPANSION_QUADRATURE 0 /* the paper's: Gauss–Laguerre nodes ⊗ (SLAY_POLY_* ⊗ PRF);
                                     reads nodes, poly, poly_dim, prf_dim, prf_clamp, seed,
                                     prf_orthogonal, prf_shared */
#define SLAY_EXPANSION_TAYLOR     1 /* deterministic Maclaurin series E(x) = Σ_n 2ⁿ x^{n+2}/C^{n+1}
                                     truncated after x^N (N = degree): features are the symmetric
                                     tensor powers of û of degree 2..N scaled so that
                                     φ(q)·φ(k) = Σ_{k=2..N} 2^{k−2} x^k / C^{k−1} exactly (fp32),
                                     m = Σ_{k=2..N} C(d + k − 1, k) (d = 16: 136 for N = 2, 952
                                     for N = 3; d = 64, N = 2: 2080), at most 2^22. No random
                                     parameters (seed is ignored). Signed features, but the
                                     truncated series is ≥ 0 for every x ∈ [−1, 1], so the
                                     normaliser is ≥ 0. Underestimates aligned pairs (x → 1).
                                     Reads head_dim, num_heads, eps, degree. Feature order: degree
                                     2 first, multisets i₁ ≤ … ≤ i_k in lexicographic order. */

/* Which side of the kernel a row is mapped for. SLAY is symmetric (both give the same features);
 * asymmetric maps (ELA kernels) differ. */
#define SLAY_ROLE_QUERY 0
#define SLAY_ROLE_KEY   1

typedef struct slay_feature_map_params {
    uint32_t struct_size;  /* sizeof(slay_feature_map_params) */
    int32_t kind;          /* SLAY_KIND_*; default SLAY_KIND_SLAY */
    int64_t head_dim;      /* d, input features per head, 1..65536; default 0 (must be set) */
    int64_t num_heads;     /* H, heads with their own random features (the KEY heads under
                              grouped-query attention), 1..65536; default 1 */
    int32_t nodes;         /* R, Gauss–Laguerre nodes, 1..64; default 2 */
    int32_t poly;          /* SLAY_POLY_*; default SLAY_POLY_ANCHOR */
    int64_t poly_dim;      /* P: anchors (SLAY_POLY_ANCHOR, SLAY_POLY_NYSTROM), Maclaurin pairs
                              (SLAY_POLY_RANDOM_MACLAURIN) or sketch buckets
                              (SLAY_POLY_TENSORSKETCH), ignored otherwise; default 8 */
    int64_t prf_dim;       /* M, positive random features per node; default 8 */
    double eps;            /* ε > 0 of the Yat kernel x²/(2 + ε − 2x); default 1e-6 */
    double prf_clamp;      /* PRF exponents are clamped to [−c, c], c > 0; default 20 */
    uint64_t seed;         /* seed of the parameter generator; default 0 */
    int64_t max_length;    /* L, SLAY_KIND_COSFORMER's fixed maximum sequence length, >= 1;
                              default 0 (must be set for cosFormer; ignored by other kinds) */
    int32_t prf_orthogonal; /* SLAY only: 1 = block-orthogonal ω per (node, head) (lower
                              variance, same expectation), 0 = i.i.d. Gaussian; default 0 */
    int32_t prf_shared;    /* SLAY only: 1 = one ω for every quadrature node (the "hadamard"
                              variant; "omega" then has shape (1, H, d, M) and node r uses
                              √(2 s_r)·ω), 0 = independent ω per node; default 0 */
    int32_t expansion;     /* SLAY only: SLAY_EXPANSION_*, how the kernel is linearised; default
                              SLAY_EXPANSION_QUADRATURE (the paper's map, all fields above) */
    int32_t degree;        /* SLAY_EXPANSION_TAYLOR only: N, the highest power of x kept, 2..8;
                              default 2 */
} slay_feature_map_params;

typedef struct slay_feature_map slay_feature_map;   /* opaque */

/* slay_feature_map_params_init — fill `params` with the defaults listed above
 * (struct_size included). Returns SLAY_ERR_INVALID_ARGUMENT if params is NULL. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_params_init(slay_feature_map_params* params);

/* slay_feature_map_create — create a feature map.
 *   params: filled by slay_feature_map_params_init, then edited.
 *   out:    receives the new handle (NULL on failure). Free it with slay_feature_map_free.
 * The random parameters are drawn from the documented generator (see "Parameter generator"
 * below) keyed by params->seed, so the same seed gives the same map in every binding.
 * The SLAY feature dimension per head is m = R · P' · M, with P' = P (anchor,
 * random_maclaurin, tensorsketch, nystrom), d(d+1)/2 (exact), d² (exact_full) or 1 (laplace).
 * The other kinds' m is listed with SLAY_KIND_*.
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL, unknown kind, poly or expansion, ε or clamp not
 * finite and > 0, R outside 1..64, max_length < 1 for cosFormer, Taylor degree outside 2..8),
 * SLAY_ERR_SHAPE (dims out of range, Nyström P > 256), SLAY_ERR_OVERFLOW
 * (m or the parameter count too large: m must be <= 2^24, <= 2^22 for SLAY_EXPANSION_TAYLOR), SLAY_ERR_VERSION_MISMATCH,
 * SLAY_ERR_OUT_OF_MEMORY. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_create(const slay_feature_map_params* params,
                                                       slay_feature_map** out, slay_error* err);

/* slay_feature_map_free — release a feature map. NULL, an already freed handle or a value that
 * is not a live feature map is a no-op (see "Handles"). States created from the map keep what
 * they need of it, so they stay usable. */
SLAY_API void slay_feature_map_free(slay_feature_map* fm);

/* slay_feature_map_dim — features per head, m. Writes *out_dim.
 * Returns SLAY_OK, or SLAY_ERR_INVALID_ARGUMENT for a NULL/freed fm or NULL out_dim. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_dim(const slay_feature_map* fm, int64_t* out_dim,
                                                    slay_error* err);

/* slay_feature_map_config — copy the parameters the map was created with into *out
 * (out->struct_size must be set by the caller, e.g. with slay_feature_map_params_init).
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL, struct_size too small) or
 * SLAY_ERR_VERSION_MISMATCH (struct_size larger than this library knows). */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_config(const slay_feature_map* fm,
                                                       slay_feature_map_params* out, slay_error* err);

/* slay_feature_map_identity — a 64-bit hash of the map's kind, dimensions, parameters and
 * current random matrices. Two maps with equal identity compute the same features.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL fm or out_identity). */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_identity(const slay_feature_map* fm,
                                                         uint64_t* out_identity, slay_error* err);

/* slay_feature_map_apply — compute features for a block of rows.
 *   role: SLAY_ROLE_QUERY or SLAY_ROLE_KEY.
 *   x:    [B, T, H, d], H = num_heads of the map, d = head_dim; any strides.
 *   out:  [B, T, H, m], written in full; non-overlapping strides.
 *   x and out each F32, F16 or BF16 (features computed in fp32, rounded in the store).
 * SLAY feature order within a head: index = (r · P' + p) · M + j for node r, polynomial
 * feature p and PRF j. Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_DTYPE,
 * SLAY_ERR_SHAPE, SLAY_ERR_LAYOUT, SLAY_ERR_OVERFLOW, SLAY_ERR_OUT_OF_MEMORY. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_apply(const slay_feature_map* fm, int32_t role,
                                                      const slay_tensor* x, const slay_tensor* out,
                                                      slay_error* err);

/* Random matrices of a map, by name. SLAY: "anchors" float32 (P, d) (SLAY_POLY_ANCHOR and
 * SLAY_POLY_NYSTROM; rows are used as given, the map does not renormalise them; Nyström recomputes
 * its whitening from them), "maclaurin" float32 (2, P, d) (SLAY_POLY_RANDOM_MACLAURIN: r1, r2),
 * "sketch" float32 (2, 2, d) (SLAY_POLY_TENSORSKETCH: sketch[k][0][i] = h_{k+1}(i) as a float, an
 * integer in 0..P−1, sketch[k][1][i] = s_{k+1}(i) = ±1 exactly; anything else gives
 * SLAY_ERR_INVALID_ARGUMENT) and "omega" float32 (R, H, d, M), or (1, H, d, M) with prf_shared.
 * FAVOR+ and ReLU random: "omega" (H, d, m), feature j of head h uses column ω[h, :, j] (used as
 * given after set_param: no re-orthogonalisation). Random Fourier: "omega" (H, d, m) and "bias"
 * (H, m). ELU+1, ReLU, cosFormer and the ELA kinds have none. All are contiguous row-major arrays. */

/* slay_feature_map_param_count — number of named parameter arrays the map has.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL fm or out_count). */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_param_count(const slay_feature_map* fm,
                                                            int32_t* out_count, slay_error* err);

/* slay_feature_map_param_name — name of parameter `index` (0 <= index < count); *out_name
 * points to a static string. Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL pointer, index
 * out of range). */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_param_name(const slay_feature_map* fm, int32_t index,
                                                           const char** out_name, slay_error* err);

/* slay_feature_map_param_shape — shape of parameter `name`: writes *out_ndim and
 * out_shape[0..ndim) (out_shape must hold SLAY_MAX_DIMS entries). Unknown name:
 * SLAY_ERR_INVALID_ARGUMENT. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_param_shape(const slay_feature_map* fm, const char* name,
                                                            int32_t* out_ndim, int64_t* out_shape,
                                                            slay_error* err);

/* slay_feature_map_get_param — copy parameter `name` into dst, which holds `count` floats;
 * count must equal the product of its shape (else SLAY_ERR_SHAPE). */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_get_param(const slay_feature_map* fm, const char* name,
                                                          float* dst, int64_t count, slay_error* err);

/* slay_feature_map_set_param — replace parameter `name` with `count` floats from src (all must
 * be finite, else SLAY_ERR_INVALID_ARGUMENT, as are "sketch" values that are not buckets / signs
 * and Nyström anchors whose whitening cannot be computed; wrong count: SLAY_ERR_SHAPE). On error
 * the map is unchanged. Changes the map's
 * identity. NOT thread-safe: no other thread may use the map during this call. */
SLAY_API SLAY_NODISCARD int32_t slay_feature_map_set_param(slay_feature_map* fm, const char* name,
                                                          const float* src, int64_t count, slay_error* err);

/* Parameter generator (reproducible across bindings).
 *   splitmix64(x): z = x + 0x9E3779B97F4A7C15; z = (z ^ z>>30) · 0xBF58476D1CE4E5B9;
 *                  z = (z ^ z>>27) · 0x94D049BB133111EB; return z ^ z>>31   (mod 2^64)
 *   key(stream)   = splitmix64(seed ^ splitmix64(stream)); streams: SLAY anchors 1, SLAY omega 2,
 *                   FAVOR+ 3, ReLU random 4, random Fourier omega 5, random Fourier bias 6,
 *                   SLAY orthogonal omega 7 (built exactly like FAVOR+ omega with R·H heads,
 *                   head index r·H + h, m = M), SLAY random Maclaurin 8 (element i of (2, P, d)),
 *                   SLAY TensorSketch 9 (uniform(i) for element i of "sketch" (2, 2, d), below)
 *   normal(i)     = √(−2 ln u1) · cos(2π u2), u1 = ((a >> 11) + 1) · 2^−53,
 *                   u2 = (b >> 11) · 2^−53, a = splitmix64(key + 2i), b = splitmix64(key + 2i + 1)
 *   Element i (row-major) of a matrix is normal(i), computed in double and rounded to float;
 *   anchors: each row of float values is divided by its Euclidean norm (both computed in
 *   double from the float values) and rounded to float again.
 *   uniform(i)    = (splitmix64(key + i) >> 11) · 2^−53; random Fourier bias[h, j] =
 *                   2π · uniform(h·m + j) in double, rounded to float.
 *   TensorSketch (stream 9): element i = (2k + c)·d + j of "sketch" (2, 2, d) is, for c = 0 (the
 *   bucket h_{k+1}(j)), min(⌊P · uniform(i)⌋, P − 1) computed in double, and for c = 1 (the sign
 *   s_{k+1}(j)), +1 if uniform(i) < 1/2, else −1.
 *   FAVOR+ omega (stream 3, everything in double, rounded to float at the end): head h has
 *   B = ⌈m/d⌉ blocks; block b is the d × d matrix G[r, c] = normal(((h·B + b)·d + r)·d + c) whose
 *   rows are orthonormalised in order r = 0, 1, .. by modified Gram–Schmidt; feature j = b·d + r
 *   (j < m) is ω[h, :, j] = χ_{h,j} · row r, with χ_{h,j} = ‖(normal(H·B·d² + (h·m + j)·d + c))_c‖
 *   (c < d), the norm a Gaussian column would have. ReLU random and random Fourier omega:
 *   element i of (H, d, m) is normal(i). */

/* ======================================================================================= */
/* Attention                                                                                */
/* ======================================================================================= */

/* Denominator modes of normalised linear attention. With positive feature maps den > 0 and both
 * modes agree up to δ. Signed maps (random Fourier features) can make den ≤ 0 or tiny: ADD then
 * divides by a value near zero or of the wrong sign (huge or flipped outputs); CLAMP divides by
 * max(den, δ), which bounds every output by |num| / δ and keeps the sign of num. */
#define SLAY_DENOMINATOR_ADD   0   /* y = num / (den + δ) */
#define SLAY_DENOMINATOR_CLAMP 1   /* y = num / max(den, δ) */

/* Update rules (slay_attention_options.update): the recurrence keys enter the state with. */
#define SLAY_UPDATE_ADD   0   /* S_t = decay_t S_{t−1} + φ(k_t) v_tᵀ (and z alike) */
#define SLAY_UPDATE_DELTA 1   /* the delta rule, see "Delta rule" below */

typedef struct slay_attention_options {
    uint32_t struct_size;  /* sizeof(slay_attention_options) */
    int32_t causal;        /* 1: y_i uses keys j <= i; 0: all keys. Default 1 */
    double delta;          /* δ >= 0 added to the denominator, finite as a float (it is applied
                              in fp32: 1e39 is INVALID_ARGUMENT); default 1e-6 */
    int64_t chunk_size;    /* causal chunk length, 1..4096, or 0 (the default): automatic,
                              the form's choice: 8 for the gated and rescaled-exp forms (their
                              intra-chunk block takes an exp per pair and channel, so shorter
                              chunks are faster), 16 for the delta rule and 64 otherwise. Does not change the result beyond fp32
                              rounding. */
    int32_t n_threads;     /* threads to use, 1..256; default 1 */
    int32_t ith;           /* partitioned call: run share ith of nth (0 <= ith < nth); default 0 */
    int32_t nth;           /* 1..65536; default 1 (the whole call). An engine with its own thread
                              pool calls the same function nth times, concurrently, with ith =
                              0..nth−1 and identical arguments; the shares touch disjoint outputs
                              and state slots, and the result equals one whole call. Not for
                              slay_state_prefill / slay_state_step with a map that reads token
                              positions (SLAY_KIND_COSFORMER): SLAY_ERR_UNSUPPORTED. */
    int32_t denominator;   /* SLAY_DENOMINATOR_*: how y = num / den is guarded; default ADD */
    int32_t normalize;     /* 1 (default): y = num / den (kernel-normalised); 0: y = φ(q)ᵀS, no
                              normaliser (unnormalised linear attention, as in RetNet / GLA) */
    const float* decay;    /* NULL (default), or one γ_h ∈ (0, 1] per KEY head (RetNet decay):
                              S_t = γ S_{t−1} + φ(k_t) v_tᵀ and z_t = γ z_t−1 + φ(k_t), so key j
                              weighs γ^(i−j) for query i. Causal attention and states only
                              (causal = 0 with decay: SLAY_ERR_INVALID_ARGUMENT); read during
                              the call, not retained. Values outside (0, 1]: INVALID_ARGUMENT. */
    /* The tensors below are F32, F16 or BF16 slay_tensors, NULL by default, validated like q/k/v
     * (dtype, layout, size; outputs must not overlap them) and read in place during the call. */
    const slay_tensor* log_decay; /* GLA data-dependent decay: log α_t ≤ 0 per token, KEY head and
                              feature channel, [B, T, Hk, m] for slay_linear_attention and
                              slay_state_prefill (B, T as k, also when packed), [N, Hk, m] for
                              slay_state_step; m = the map's feature dim. Or per head: [B, T, Hk]
                              ([N, Hk] for steps), one α for every channel (the g of the delta
                              rule). S_t = Diag(α_t) S_{t−1}
                              + φ(k_t) v_tᵀ, z_t = Diag(α_t) z_{t−1} + φ(k_t). Every value finite
                              and <= 0, else INVALID_ARGUMENT naming the index (α → 0 is fine:
                              exponents are only ever sums of log α, never e^(−Σ log α)). Causal
                              and states only (causal = 0: INVALID_ARGUMENT); not read by
                              slay_state_query. With `decay` as well, α_eff = α · γ. */
    const slay_tensor* query_gate_logits; /* SLA head gates: logits [B, T, Hq] ([N, Hq] for steps),
                              finite. φ(q_{t,h}) ← softmax_h(logits_t)_h · φ(q_{t,h}). With
                              normalize = 1 the query gate cancels (it scales numerator and
                              denominator alike; only δ sees it), so SLA uses normalize = 0,
                              optionally with decay / log_decay. Read by slay_state_query. */
    const slay_tensor* key_gate_logits; /* logits [B, T, Hk] ([N, Hk] for steps), finite:
                              φ(k_{t,h}) ← softmax_h(logits_t)_h · φ(k_{t,h}). Any mode (also
                              causal = 0); not read by slay_state_query. */
    /* Fields below were appended later (struct_size versioning: a caller built against the
     * earlier header passes the smaller size and gets the defaults). */
    int32_t update;        /* SLAY_UPDATE_*: how a key enters the state; default SLAY_UPDATE_ADD */
    int32_t qk_l2norm;     /* 1: φ(q), φ(k) are L2-normalised in the kernel, after the map and
                              before the gates (flash-linear-attention's use_qk_l2norm_in_kernel,
                              ‖x‖ = sqrt(Σ x² + 1e-6)); default 0 */
    const slay_tensor* beta; /* SLAY_UPDATE_DELTA only: β_t ∈ [0, 2] per token and KEY head,
                              [B, T, Hk] ([N, Hk] for steps), F32/F16/BF16; NULL means β = 1. Values
                              outside [0, 2] or NaN: INVALID_ARGUMENT naming the index; with
                              SLAY_UPDATE_ADD: INVALID_ARGUMENT. */
    int32_t check_finite;  /* 1: q, k and v must be finite, else SLAY_ERR_NON_FINITE (naming the
                              first offending element) before anything is written: outputs and
                              state untouched. Costs one pass over the inputs. Default 0: NaN
                              and ±inf propagate to the outputs (and state) they reach, never to
                              earlier tokens of the call; a non-finite key or value poisons its
                              slot's state until slay_state_reset. */
} slay_attention_options;

/* Recurrence forms and the form × option table.
 * One driver evaluates every call; the map and the options select the recurrence form:
 *   SLAY_KIND_HADAMARD_EXP        → rescaled-exp (the kernel kept in a per-feature rescaled frame)
 *   update = SLAY_UPDATE_DELTA    → delta rule
 *   log_decay [.., Hk, m]         → gated (GLA, per channel)
 *   otherwise                     → additive (plain, RetNet γ, per-head log_decay [.., Hk])
 * Every option composes with every form except the cells marked UNSUPPORTED (SLAY_ERR_UNSUPPORTED)
 * or INVALID (SLAY_ERR_INVALID_ARGUMENT). This table is the complete list of refusals.
 *
 *   option                     additive     gated        rescaled-exp   delta rule
 *   causal = 0                 yes          INVALID(a)   yes            UNSUPPORTED
 *   causal = 0 + decay         INVALID(a)   INVALID(a)   INVALID(a)     UNSUPPORTED
 *   normalize = 0              yes          yes          yes (b)        required; 1: UNSUPPORTED
 *   decay (γ)                  yes          yes          yes            yes (α·γ)
 *   log_decay [.., Hk]         yes          -            yes            yes (g)
 *   log_decay [.., Hk, m]      (gated)      yes          yes            UNSUPPORTED
 *   query/key gate logits      yes          yes          yes            yes
 *   qk_l2norm = 1              yes          yes          UNSUPPORTED    yes
 *   beta                       INVALID(c)   INVALID(c)   INVALID(c)     yes
 *   update = DELTA             (delta)      (delta)      UNSUPPORTED    -
 *   denominator = CLAMP        yes          yes          yes            unused
 * (a) decay and log_decay need causal = 1. (b) y = e^{r}·num in the frame's scale: it overflows to
 * inf exactly where the true unnormalised value does. (c) beta needs update = SLAY_UPDATE_DELTA.
 * States are not bound to a form: additive, gated and delta updates share one state layout (S, z),
 * so a slot prefilled with one update rule may be stepped with another; Hadamard Exp states also
 * keep their running maxima μ.
 *
 * Delta rule (SLAY_UPDATE_DELTA): DeltaNet and Gated DeltaNet in flash-linear-attention's
 * convention, per key head with S [m, dv]:
 *     S_t = α_t (I − β_t φ(k_t) φ(k_t)ᵀ) S_{t−1} + β_t φ(k_t) v_tᵀ,   o_t = S_tᵀ φ(q_t)
 * α_t = e^{g_t} with g = log_decay [B, T, Hk] ([N, Hk] for steps), g ≤ 0 (absent: α = 1, DeltaNet;
 * times γ with `decay`); β = options.beta [B, T, Hk] in [0, 2] (absent: 1). Unnormalised
 * (normalize = 0 required), causal only; z is neither read nor written. φ(k) and φ(q) are the
 * map's features, L2-normalised first when qk_l2norm = 1, then scaled by the SLA gates. The update
 * is stable (a contraction) when β‖φ(k)‖² ≤ 2: with qk_l2norm = 1 any β ∈ [0, 2] is; with other
 * maps and qk_l2norm = 0 that bound is the caller's. Prefill uses the chunked WY / UT form
 * (forward substitution per chunk): O(T·c·m + T·m·dv) work, O(c·m + c·dv + c²) floats of workspace
 * per thread. slay_state_step makes two passes over S (one read, one read-modify-write) and
 * allocates nothing. cu_seqlens, slots, GQA, initial and final states work as for every form. */

/* slay_attention_options_init — defaults as listed above. Returns SLAY_OK, or
 * SLAY_ERR_INVALID_ARGUMENT when options is NULL. */
SLAY_API SLAY_NODISCARD int32_t slay_attention_options_init(slay_attention_options* options);

/* slay_linear_attention — kernel-normalised linear attention with feature map fm:
 *     y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ)       (prefix sums when causal)
 *   q:   [B, T, Hq, d]
 *   k:   [B, T, Hk, d]      Hk = fm num_heads, Hq a multiple of Hk (grouped-query:
 *                            query head h uses key head h / (Hq / Hk)); d = fm head_dim
 *   v:   [B, T, Hk, dv]     dv >= 1 may differ from d
 *   out: [B, T, Hq, dv]     written in full on success, untouched on error
 *   each F32, F16 or BF16 (see "Element types" above); options: NULL for defaults.
 * Memory: O(chunk_size · m + m · dv) floats of workspace per thread, independent of T; the
 * T × m feature matrix is never formed. Time O(B · Hq · T · m · (d + dv + chunk_size)).
 * Thread-safe for distinct outputs. Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_DTYPE,
 * SLAY_ERR_SHAPE, SLAY_ERR_LAYOUT (also an out overlapping options->decay or the options'
 * tensors), SLAY_ERR_OVERFLOW, SLAY_ERR_OUT_OF_MEMORY, SLAY_ERR_UNSUPPORTED (the form × option
 * table above), SLAY_ERR_NON_FINITE (options->check_finite). */
SLAY_API SLAY_NODISCARD int32_t slay_linear_attention(const slay_feature_map* fm, const slay_tensor* q,
                                                     const slay_tensor* k, const slay_tensor* v,
                                                     const slay_tensor* out,
                                                     const slay_attention_options* options,
                                                     slay_error* err);

/* Exact (quadratic) attention kernels, the references linear attention is measured against. */
#define SLAY_EXACT_SOFTMAX        1  /* softmax(scale · q·k) */
#define SLAY_EXACT_YAT_SPHERICAL  2  /* x²/(2 + ε − 2x), x = q̂·k̂, kernel-normalised */
#define SLAY_EXACT_YAT            3  /* (q·k)²/(‖q − k‖² + ε), kernel-normalised */

typedef struct slay_exact_attention_options {
    uint32_t struct_size;  /* sizeof(slay_exact_attention_options) */
    int32_t kernel;        /* SLAY_EXACT_*; default SLAY_EXACT_SOFTMAX */
    int32_t causal;        /* default 1 */
    double scale;          /* softmax logit scale, finite; 0 means 1/√d (default 0) */
    double eps;            /* Yat ε > 0, finite; default 1e-6 */
    double delta;          /* Yat: y = Σ K v / (Σ K + δ), δ >= 0 finite; default 1e-6 */
    int32_t n_threads;     /* 1..256; default 1 */
} slay_exact_attention_options;

/* slay_exact_attention_options_init — defaults as listed above. Returns SLAY_OK, or
 * SLAY_ERR_INVALID_ARGUMENT when options is NULL. */
SLAY_API SLAY_NODISCARD int32_t slay_exact_attention_options_init(slay_exact_attention_options* options);

/* slay_exact_attention — quadratic attention, accumulated in double; O(B · Hq · T² · (d + dv)).
 *   q [B, T, Hq, d], k [B, T, Hk, d], v [B, T, Hk, dv], out [B, T, Hq, dv], each F32, F16 or BF16
 *   (out: the double result rounded to fp32, then to out's dtype); Hq a multiple of Hk. Returns
 *   as slay_linear_attention. */
SLAY_API SLAY_NODISCARD int32_t slay_exact_attention(const slay_tensor* q, const slay_tensor* k,
                                                    const slay_tensor* v, const slay_tensor* out,
                                                    const slay_exact_attention_options* options,
                                                    slay_error* err);

/* ======================================================================================= */
/* Recurrent states: prefill, decode, save / restore / fork                                 */
/* ======================================================================================= */

/* A slay_state holds the recurrent states of `num_seqs` sequences ("slots") for one feature map:
 * per slot S [H, m, dv] and the normaliser z [H, m] in fp32 (H = the map's key heads), plus the
 * number of tokens each slot has absorbed. One object per cache, many slots, because an engine
 * with a slot-indexed cache batches whichever sequences are active: every call takes an optional
 * `slots` array (int32, `num_seqs` entries, distinct) naming the slot of each sequence in the
 * call; NULL means slots 0..num_seqs−1.
 * Equivalences (tested): prefill(T) then k steps == prefill(T + k) == slay_linear_attention over
 * the whole sequence, within fp32 rounding; a partitioned call (options ith/nth) equals one call.
 * The state keeps its feature map alive (slay_feature_map_free may come first) and records its
 * identity: after slay_feature_map_set_param the calls that compute with the map
 * (slay_state_prefill, slay_state_query, slay_state_step) fail with SLAY_ERR_STATE_MISMATCH, and
 * blobs saved before it no longer load into a state of the changed map.
 * Thread safety: one call at a time per state, except the nth concurrent shares of a partitioned
 * call. Distinct states may be used concurrently, also when they share a feature map.
 * On error a state is left unchanged. */
typedef struct slay_state slay_state;   /* opaque */

/* slay_state_create — zeroed states for `num_seqs` slots (1..2^20) of value width value_dim
 * (1..65536). max_threads (1..256) workspaces for decode steps are allocated here, so that
 * slay_state_step never allocates; partitioned steps need ith < max_threads.
 * Memory: num_seqs · H · m · (dv + 1) floats (+ num_seqs · H · m running maxima for
 * SLAY_KIND_HADAMARD_EXP) + max_threads decode workspaces.
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_SHAPE, SLAY_ERR_OVERFLOW, SLAY_ERR_OUT_OF_MEMORY. */
SLAY_API SLAY_NODISCARD int32_t slay_state_create(const slay_feature_map* fm, int64_t num_seqs, int64_t value_dim,
                                                 int32_t max_threads, slay_state** out, slay_error* err);

/* slay_state_create_v2 — slay_state_create with the element type S and z are stored in:
 * storage_dtype SLAY_DTYPE_F32 (what slay_state_create makes), SLAY_DTYPE_BF16 or SLAY_DTYPE_F16.
 * A half-precision state takes half the memory and halves the traffic of a decode step, which is
 * bound by it; every computation stays fp32 (elements are widened when read and rounded to
 * nearest-even when written back), at an accuracy cost measured in docs/half-precision.md.
 * slay_state_prefill / _query load each (slot, head) state into fp32 workspace, run the chunks in
 * fp32 and (prefill) round the result back once.
 * BF16 keeps fp32's range; F16 overflows to infinity above 65504, so use it only for states whose
 * values stay bounded (decay). slay_state_read / _write convert to and from fp32 exactly as
 * stored; blobs record the dtype, and a blob loads only into a state of its own dtype
 * (slay_state_load creates one). Returns as slay_state_create, and SLAY_ERR_DTYPE for another
 * storage_dtype. */
SLAY_API SLAY_NODISCARD int32_t slay_state_create_v2(const slay_feature_map* fm, int64_t num_seqs, int64_t value_dim,
                                                    int32_t max_threads, int32_t storage_dtype, slay_state** out,
                                                    slay_error* err);

/* slay_state_storage_dtype — the SLAY_DTYPE_* S and z are stored in.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL/freed state, NULL out_dtype). */
SLAY_API SLAY_NODISCARD int32_t slay_state_storage_dtype(const slay_state* state, int32_t* out_dtype, slay_error* err);

/* slay_state_free — release a state. NULL, an already freed handle or a value that is not a
 * live state is a no-op (see "Handles"). */
SLAY_API void slay_state_free(slay_state* state);

/* slay_state_copy — a new, independent state with the same contents (fork every slot).
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL/freed src, NULL out) or
 * SLAY_ERR_OUT_OF_MEMORY; *out is NULL on failure. */
SLAY_API SLAY_NODISCARD int32_t slay_state_copy(const slay_state* src, slay_state** out, slay_error* err);

/* slay_state_copy_slot — copy slot src_slot of src into slot dst_slot of dst (fork one sequence,
 * or roll back to a snapshot kept in another state). src and dst may be the same state; they must
 * share the feature map and value_dim (else SLAY_ERR_STATE_MISMATCH). Returns SLAY_OK,
 * SLAY_ERR_INVALID_ARGUMENT (NULL handle, slot out of range) or SLAY_ERR_STATE_MISMATCH. */
SLAY_API SLAY_NODISCARD int32_t slay_state_copy_slot(slay_state* dst, int64_t dst_slot, const slay_state* src,
                                                    int64_t src_slot, slay_error* err);

/* slay_state_reset — zero slot `slot`, or every slot when slot == −1 (SLAY_KIND_HADAMARD_EXP:
 * also empties its running maxima).
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL state, slot out of range). */
SLAY_API SLAY_NODISCARD int32_t slay_state_reset(slay_state* state, int64_t slot, slay_error* err);

/* slay_state_dims — the state's dimensions; each out pointer may be NULL.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL/freed state). */
SLAY_API SLAY_NODISCARD int32_t slay_state_dims(const slay_state* state, int64_t* num_seqs, int64_t* num_heads,
                                               int64_t* feature_dim, int64_t* value_dim, slay_error* err);

/* slay_state_position — tokens absorbed by slot `slot` since creation or reset.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (NULL pointer, slot out of range). */
SLAY_API SLAY_NODISCARD int32_t slay_state_position(const slay_state* state, int64_t slot, int64_t* out_position,
                                                   slay_error* err);

/* slay_state_read — copy slot `slot` out: matrix [H, m, dv] (matrix_count = H·m·dv floats) and
 * normaliser [H, m] (normaliser_count = H·m). Either pointer may be NULL to skip it.
 * SLAY_KIND_HADAMARD_EXP stores these rows RESCALED: row f of head h is Σ_j e^{k_jf − μ_f} v_j
 * (and Σ_j e^{k_jf − μ_f}), μ_f the running maximum of k_jf over the slot's keys (rows of
 * dimensions no key has reached are 0); multiply row f by e^{μ_f} for the plain S and z (which
 * may overflow). μ itself is in the saved blob (see slay_state_save).
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL state, slot out of range) or SLAY_ERR_SHAPE
 * (a count that does not match). */
SLAY_API SLAY_NODISCARD int32_t slay_state_read(const slay_state* state, int64_t slot, float* matrix,
                                               int64_t matrix_count, float* normaliser, int64_t normaliser_count,
                                               slay_error* err);

/* slay_state_write — the inverse of slay_state_read: replace slot `slot`'s matrix [H, m, dv]
 * (matrix_count = H·m·dv floats, row-major, caller-owned, only read during the call) and
 * normaliser [H, m] (normaliser_count = H·m), and set its position (tokens absorbed, 0..2^62;
 * cosFormer reads it). Either array may be NULL to keep that part. Builds a state from plain
 * arrays (flash-linear-attention's initial_state [N, H, m, dv], a checkpoint).
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL state, slot out of range, position out of
 * range, a non-finite value), SLAY_ERR_SHAPE (a count that does not match) or
 * SLAY_ERR_UNSUPPORTED (SLAY_KIND_HADAMARD_EXP: its rows are relative to running maxima that
 * plain arrays do not carry; use slay_state_restore). On error the state is unchanged.
 * Thread safety: as every call that changes a state. */
SLAY_API SLAY_NODISCARD int32_t slay_state_write(slay_state* state, int64_t slot, const float* matrix,
                                                int64_t matrix_count, const float* normaliser,
                                                int64_t normaliser_count, int64_t position, slay_error* err);

/* slay_state_prefill — run prompts through their slots, starting from the slots' current states
 * and leaving them at the end (flash-linear-attention's initial_state / output_final_state).
 *   k: [B, T, H, d], v: [B, T, H, dv]; q: [B, T, Hq, d], out: [B, T, Hq, dv] (Hq a multiple of H),
 *   each F32, F16 or BF16 (independently of the state's storage dtype).
 *   q and out may both be NULL: keys and values are only absorbed (building a state to query).
 *   options->causal = 1: causal outputs (== slay_linear_attention with an initial state);
 *   causal = 0: every query sees the slot's previous state plus all keys of its sequence.
 *   cu_seqlens: NULL for a padded batch (B == num_seqs sequences of length T), or num_seqs + 1
 *   monotone offsets with cu_seqlens[0] = 0 and cu_seqlens[num_seqs] = T for a packed batch
 *   (B == 1). slots: NULL or num_seqs distinct slot indices.
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_DTYPE, SLAY_ERR_SHAPE, SLAY_ERR_LAYOUT,
 * SLAY_ERR_OVERFLOW, SLAY_ERR_OUT_OF_MEMORY, SLAY_ERR_STATE_MISMATCH, SLAY_ERR_UNSUPPORTED
 * (partitioned call with a map that reads positions; the form × option table above),
 * SLAY_ERR_NON_FINITE (options->check_finite; the state is then unchanged). */
SLAY_API SLAY_NODISCARD int32_t slay_state_prefill(slay_state* state, const slay_tensor* q, const slay_tensor* k,
                                                  const slay_tensor* v, const slay_tensor* out,
                                                  const int64_t* cu_seqlens, const int32_t* slots, int64_t num_seqs,
                                                  const slay_attention_options* options, slay_error* err);

/* slay_state_query — read-only queries: out = φ(q)ᵀS / (φ(q)ᵀz + δ) against each slot's state
 * (bidirectional / encoder use, the Memory Lobe pattern). q [B, T, Hq, d], out [B, T, Hq, dv]
 * (F32, F16 or BF16 each);
 * cu_seqlens, slots, num_seqs as in slay_state_prefill. The state is not modified; options->causal
 * is ignored (queries always see the whole state); options->log_decay and key_gate_logits are
 * not read (they describe keys, which a query does not add); query_gate_logits [B, T, Hq] apply. Returns as slay_state_prefill. */
SLAY_API SLAY_NODISCARD int32_t slay_state_query(const slay_state* state, const slay_tensor* q, const slay_tensor* out,
                                                const int64_t* cu_seqlens, const int32_t* slots, int64_t num_seqs,
                                                const slay_attention_options* options, slay_error* err);

/* slay_state_step — one decode token for num_seqs sequences, in place:
 *   q [N, Hq, d], k [N, H, d], v [N, H, dv], out [N, Hq, dv] (3-d tensors, N = num_seqs; each
 *   F32, F16 or BF16);
 *   S += φ(k) vᵀ, z += φ(k), out = φ(q)ᵀS / (φ(q)ᵀz + δ) (with options->decay / log_decay
 *   [N, Hk, m] or [N, Hk]: S = γ·Diag(α) S + φ(k) vᵀ, z alike; gate logits [N, Hq] / [N, Hk] scale
 *   φ(q), φ(k)); with update = SLAY_UPDATE_DELTA the delta rule's step (beta [N, Hk], g = log_decay
 *   [N, Hk]; two passes over S).
 * No allocation (uses the state's workspaces); threads are started only when n_threads > 1 —
 * an engine with its own pool uses options ith/nth instead (ith < max_threads; not with a map
 * that reads positions, SLAY_ERR_UNSUPPORTED). The token's position (cosFormer) is the slot's
 * position before the step. options->chunk_size and causal are ignored. slots are read in
 * place: out must not overlap them (SLAY_ERR_LAYOUT). Returns as slay_state_prefill; on error
 * the state is unchanged. */
SLAY_API SLAY_NODISCARD int32_t slay_state_step(slay_state* state, const slay_tensor* q, const slay_tensor* k,
                                               const slay_tensor* v, const slay_tensor* out, const int32_t* slots,
                                               int64_t num_seqs, const slay_attention_options* options,
                                               slay_error* err);

/* slay_state_serialized_size — bytes slay_state_save writes.
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL pointer) or SLAY_ERR_OVERFLOW. */
SLAY_API SLAY_NODISCARD int32_t slay_state_serialized_size(const slay_state* state, size_t* out_bytes,
                                                          slay_error* err);

/* slay_state_save — serialize the whole state into dst (capacity bytes; SLAY_ERR_BUFFER_TOO_SMALL
 * if smaller than slay_state_serialized_size). *written may be NULL. Blob format version 2, in the
 * writer's byte order:
 *     offset  0  magic "SLAYSTAT"                      8 bytes
 *             8  format version                        u32 = 2
 *            12  byte-order mark                       u32 = 0x01020304
 *            16  feature-map identity                  u64
 *            24  num_seqs, num_heads, feature_dim, value_dim   u64 each
 *            56  layout flags                          u32: bit 0 = running maxima present; other bits 0
 *            60  storage dtype of S and z              u32: SLAY_DTYPE_F32 (0), SLAY_DTYPE_F16 (2) or
 *                                                      SLAY_DTYPE_BF16 (3): the state's storage dtype
 *            64  payload bytes                         u64 (everything between header and checksum)
 *            72  positions                             num_seqs × i64
 *                state: per slot S [H, m, dv] then z [H, m], in the storage dtype
 *                running maxima μ [num_seqs, H, m] f32 (−inf = no key yet), when layout bit 0 is set
 *                (SLAY_KIND_HADAMARD_EXP states)
 *                checksum                              u64, FNV-1a-64 of every byte before it
 * Returns SLAY_OK, SLAY_ERR_INVALID_ARGUMENT (NULL pointer) or SLAY_ERR_BUFFER_TOO_SMALL. */
SLAY_API SLAY_NODISCARD int32_t slay_state_save(const slay_state* state, void* dst, size_t capacity, size_t* written,
                                               slay_error* err);

/* slay_state_load — a new state for fm from a blob of exactly `size` bytes. A blob is refused
 * with SLAY_ERR_CORRUPT_DATA when it is truncated, has trailing bytes, fails its checksum, has
 * unknown layout bits or storage dtype, a payload size that does not match its dims and layout,
 * positions outside 0..2^62, a non-finite S or z value, or a running maximum that is NaN or +inf
 * (even with a valid checksum: such contents would silently poison every later output);
 * with SLAY_ERR_VERSION_MISMATCH for a format version other than 1 or 2 (version 1 blobs, with
 * the 64-byte header of earlier releases, still load); SLAY_ERR_UNSUPPORTED for another byte
 * order; SLAY_ERR_STATE_MISMATCH for another feature map or dims; SLAY_ERR_DTYPE when its storage
 * dtype differs from the state's (slay_state_restore; slay_state_load creates a state of the
 * blob's dtype). A blob whose layout does not
 * match its map's kind (running maxima present or missing) is corrupt data. A state that holds
 * non-finite values saves, but its blob does not load: reset the poisoned slot first.
 * max_threads (1..256) as in slay_state_create. *out is NULL on failure. */
SLAY_API SLAY_NODISCARD int32_t slay_state_load(const slay_feature_map* fm, const void* src, size_t size,
                                               int32_t max_threads, slay_state** out, slay_error* err);

/* slay_state_restore — replace an existing state's contents from a blob (rollback without
 * allocation); the blob must match its map and dims. Errors as slay_state_load; unchanged on error. */
SLAY_API SLAY_NODISCARD int32_t slay_state_restore(slay_state* state, const void* src, size_t size, slay_error* err);

/* slay_gauss_laguerre — the R-point Gauss–Laguerre rule ∫₀^∞ e^{−t} f(t) dt ≈ Σ α_r f(t_r),
 *   1 <= R <= 64, computed in double (Newton on Laguerre polynomials), ascending nodes.
 *   nodes, weights: caller arrays of R doubles. Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT (R out
 *   of range, NULL array); the arrays are untouched on error. */
SLAY_API SLAY_NODISCARD int32_t slay_gauss_laguerre(int32_t R, double* nodes, double* weights,
                                                   slay_error* err);

/* ======================================================================================= */
/* Gradients (backward pass)                                                                */
/* ======================================================================================= */

/* What slay_linear_attention_backward reads besides q, k, v, dout and the forward's options, and
 * where it writes. Fill with slay_attention_backward_params_init (everything NULL / 0), then set
 * what you need. Every tensor is float32 with any strides (as in the forward); N = the number of
 * sequences (B, or num_seqs with cu_seqlens), Hk = the map's key heads, m = its feature dim.
 * Inputs (read only):
 *   cu_seqlens, num_seqs: NULL for a padded batch, or num_seqs + 1 monotone offsets (B == 1), as
 *     in slay_state_prefill.
 *   positions: NULL, or num_seqs token positions of each sequence's first row (maps that read
 *     positions, SLAY_KIND_COSFORMER: the slot positions of a forward that started from a state).
 *   initial_state [N, Hk, m, dv], initial_normaliser [N, Hk, m]: the forward's initial state
 *     (slay_state_read gives them per slot), NULL for zeros.
 *   d_final_state [N, Hk, m, dv], d_final_normaliser [N, Hk, m]: ∂L/∂S_T and ∂L/∂z_T of the
 *     forward's final state (flash-linear-attention's dht), NULL for 0.
 * Outputs (each NULL to skip it; written in full on success, untouched on error):
 *   dq, dk, dv: shaped like q, k, v.
 *   d_log_decay [B, T, Hk, m], or [B, T, Hk] for a per-head options->log_decay: needs log_decay.
 *   d_query_gate_logits [B, T, Hq], d_key_gate_logits [B, T, Hk]: need the options' logits.
 *   d_initial_state [N, Hk, m, dv], d_initial_normaliser [N, Hk, m]: ∂L/∂S0, ∂L/∂z0.
 *   d_params, d_params_count: ∂L/∂(the map's parameters), the arrays of slay_feature_map_param_name
 *     0, 1, … concatenated in that order, each row-major in its slay_feature_map_param_shape
 *     (d_params_count must be their total). Zero for discrete parameters (SLAY_POLY_TENSORSKETCH
 *     "sketch").
 *   d_beta [B, T, Hk]: ∂L/∂β of the delta rule; needs options->beta (appended field: a struct
 *     whose struct_size ends at d_params_count is read with d_beta NULL). */
typedef struct slay_attention_backward_params {
    uint32_t struct_size;  /* sizeof(slay_attention_backward_params) */
    const int64_t* cu_seqlens;
    int64_t num_seqs;
    const int64_t* positions;
    const slay_tensor* initial_state;
    const slay_tensor* initial_normaliser;
    const slay_tensor* d_final_state;
    const slay_tensor* d_final_normaliser;
    const slay_tensor* dq;
    const slay_tensor* dk;
    const slay_tensor* dv;
    const slay_tensor* d_log_decay;
    const slay_tensor* d_query_gate_logits;
    const slay_tensor* d_key_gate_logits;
    const slay_tensor* d_initial_state;
    const slay_tensor* d_initial_normaliser;
    float* d_params;
    int64_t d_params_count;
    /* Fields below were appended later (struct_size versioning: a caller built against the
     * earlier header passes the smaller size, ending at d_params_count, and gets NULL). */
    const slay_tensor* d_beta; /* [B, T, Hk]: ∂L/∂β of the delta rule; needs options->beta */
} slay_attention_backward_params;

/* slay_attention_backward_params_init — every pointer NULL, counts 0. Returns SLAY_OK, or
 * SLAY_ERR_INVALID_ARGUMENT when params is NULL. */
SLAY_API SLAY_NODISCARD int32_t slay_attention_backward_params_init(slay_attention_backward_params* params);

/* slay_linear_attention_backward — the gradients of slay_linear_attention (and of
 * slay_state_prefill from an initial state to a final state) with respect to every
 * differentiable input, given dout = ∂L/∂out [B, T, Hq, dv] and the SAME q, k, v, fm and options
 * as the forward (options->chunk_size only sets the block of rows whose features are computed at
 * once; ith/nth must be 0/1: SLAY_ERR_UNSUPPORTED).
 * Covered: causal and bidirectional; normalised (SLAY_DENOMINATOR_ADD / CLAMP, δ) and
 * normalize = 0; RetNet decay γ (a constant: no gradient); GLA log_decay (per channel or per
 * head); SLA gate logits; grouped-query attention (dk, dv summed over the query heads of a key
 * head); cu_seqlens; initial and final states; options->check_finite; qk_l2norm (x̂ = x / sqrt(Σx²
 * + 1e-6) is smooth, its gradient at x = 0 is ∂L/∂x̂ · 1000); update = SLAY_UPDATE_DELTA (DeltaNet
 * and Gated DeltaNet: causal, normalize = 0, log_decay per head [B, T, Hk]; d_beta, d_log_decay;
 * z passes through the delta rule, so d_initial_normaliser = d_final_normaliser).
 * Maps: every kind, SLAY polynomial and SLAY_EXPANSION_TAYLOR (no parameters; x̂ = x/‖x‖ as
 * below). SLAY_KIND_HADAMARD_EXP is differentiated in the
 * forward's rescaled frame with every option the forward composes with it (γ, log_decay, gates,
 * normalize = 0, bidirectional): e^q, e^k are never formed; the running maxima μ, the query
 * references r and the backward's own running maxima of q − r are stop-gradient constants, which
 * is exact (the output does not depend on them); normalised, every exponent is <= 0, and
 * unnormalised a gradient overflows to inf only where the true one exceeds fp32. It keeps 3
 * floats per token and query head between its passes (not 2). SLAY_POLY_NYSTROM's anchors get
 * their gradient through the whitening W = (K_AA + λI)^(−1/2) too: ∂L/∂W is accumulated over the
 * call (P × P doubles per key head) and differentiated once at the end through the
 * eigen-decomposition (Daleckii–Krein, O(P³) per key head).
 * What is recomputed: nothing of size T × m is stored. For each (sequence, key head) a forward
 * pass over the chunks rebuilds the prefix states and the query features and writes dq; a
 * reverse pass recomputes the key and query features chunk by chunk and accumulates ∂L/∂S
 * backwards, writing dk and dv. So the map's features are computed about twice as often as in
 * the forward, and the state work is about 2.5 times the forward's (five m × dv products per
 * chunk against two).
 * The delta rule runs in the forward's chunked WY form (c = 16 by default) and keeps chunk
 * states, since its reverse pass needs each chunk's S_0 and I − β k kᵀ cannot be inverted: a first
 * pass stores the state before every k-th chunk, and the reverse pass recomputes a block's other
 * k − 1 chunk states from its checkpoint, then each chunk's WY factors. k = 1 (every chunk state
 * kept) while ⌈T/c⌉ · m · dv floats fit 16 MiB per thread, else the smallest k that fits: that
 * adds (⌈T/(k·c)⌉ + k) · m · dv floats per thread (at most 16 MiB plus k states; 16 MiB at
 * m = dv = 64, T = 16k) and O(c · (m + dv) + c²) for the chunk.
 * Memory: per thread O(G · c · (d + m + dv) + m · dv) floats (G = Hq / Hk, c = chunk), plus
 * 2 floats per token and query head (the normalised rows' 1/D and ∂L/∂den, kept between the
 * passes; none for the delta rule, 3 for SLAY_KIND_HADAMARD_EXP), plus, when d_params is requested, Hk · d_params_count doubles (plus Hk · P² for
 * SLAY_POLY_NYSTROM).
 * Numerics: exponents the forward clamps (SLAY PRF exponents to ±prf_clamp, FAVOR+ to ±88) are
 * constant where clamped and pass NO gradient; x̂ = x/‖x‖ is 0 at x = 0 and so is its gradient;
 * with SLAY_DENOMINATOR_CLAMP, rows whose den <= δ pass no gradient to den.
 * Threads: bitwise-identical results for any n_threads (pairs are independent, grouped-query sums
 * run in a fixed order, parameter gradients are summed per key head, then over heads in order).
 * Work is split over (sequence, key head) pairs, or over key heads when d_params is requested.
 * Thread-safe for distinct outputs; the map must not be changed during the call.
 * Validation: everything the forward checks, plus dout's shape [B, T, Hq, dv], every output's
 * shape, that outputs overlap neither themselves, each other nor any input (SLAY_ERR_LAYOUT), a
 * gradient output for an option the call does not have (SLAY_ERR_INVALID_ARGUMENT) and
 * d_params_count (SLAY_ERR_SHAPE).
 * Returns SLAY_OK or SLAY_ERR_INVALID_ARGUMENT, SLAY_ERR_DTYPE, SLAY_ERR_SHAPE, SLAY_ERR_LAYOUT,
 * SLAY_ERR_OVERFLOW, SLAY_ERR_OUT_OF_MEMORY, SLAY_ERR_UNSUPPORTED. */
SLAY_API SLAY_NODISCARD int32_t slay_linear_attention_backward(const slay_feature_map* fm, const slay_tensor* q,
                                                              const slay_tensor* k, const slay_tensor* v,
                                                              const slay_tensor* dout,
                                                              const slay_attention_options* options,
                                                              const slay_attention_backward_params* params,
                                                              slay_error* err);

#ifdef __cplusplus
}
#endif

#endif /* SLAY_H */
