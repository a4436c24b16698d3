/* example.c — libslay from C, the program to read first.
 *
 * 1. Check that the library we loaded speaks the ABI this file was compiled against.
 * 2. Create a SLAY feature map and run causal linear attention over a [B, T, H, D] batch.
 * 3. Recompute the same attention naively (O(T^2), double precision, plain loops), building the
 *    SLAY features ourselves from the map's parameters, and compare. This doubles as the
 *    definition of what libslay computes (see docs/math.md §1 and §5).
 * 4. Show that errors are values: a bad call returns a status plus a message and writes nothing.
 * 5. Pass a head-first [B, H, T, D] buffer through strides (no copy) and get the same result.
 * 6. The engine loop: prefill a recurrent state with a prompt, then decode one token at a time.
 *
 * Uses only slay.h and libslay.so; compiles as strict C99 (see build_and_run.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slay.h"

enum { B = 2, T = 100, H = 2, D = 16, DV = 8, R = 2, P = 8, M = 8, PROMPT = 90 };
#define N_QK (B * T * H * D)
#define N_V  (B * T * H * DV)

/* A small deterministic generator (LCG), uniform in [-1, 1): the same inputs on every run. */
static float uniform(uint64_t* s) {
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (float)((double)(*s >> 40) / 8388608.0 - 1.0);   /* top 24 bits */
}

/* Every fallible libslay call returns a status; err (optional) carries a readable message. */
#define TRY(call)                                                                              \
    do {                                                                                       \
        if ((call) != SLAY_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call,           \
                    slay_status_string(err.code), err.message);                                \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

/* φ(x) for one head, straight from docs/math.md §1, in double:
 *   u = x/‖x‖, C = 2 + ε, s_r = t_r/C, w_r = α_r/C,
 *   poly_p = (a_p·u)²/√P, prf_j = exp(clamp(√(2 s_r) ω[r,h,:,j]·u − s_r, −c, c))/√M,
 *   feature[(r·P + p)·M + j] = √w_r · poly_p · prf_j. */
static void slay_features(const float* x, int h, const float* anchors, const float* omega,
                          const double* t_nodes, const double* alpha, double eps, double clamp,
                          double* phi) {
    double u[D], norm = 0, c = 2.0 + eps, poly[P];
    int i, r, p, j;
    for (i = 0; i < D; i++) norm += (double)x[i] * x[i];
    norm = sqrt(norm);
    for (i = 0; i < D; i++) u[i] = x[i] / norm;
    for (p = 0; p < P; p++) {
        double dot = 0;
        for (i = 0; i < D; i++) dot += anchors[p * D + i] * u[i];
        poly[p] = dot * dot / sqrt((double)P);
    }
    for (r = 0; r < R; r++) {
        double s = t_nodes[r] / c, w = alpha[r] / c;
        for (j = 0; j < M; j++) {
            double e = 0, prf;
            for (i = 0; i < D; i++) e += omega[((r * H + h) * D + i) * M + j] * u[i]; /* ω is (R,H,D,M) */
            e = sqrt(2 * s) * e - s;
            e = e < -clamp ? -clamp : (e > clamp ? clamp : e);
            prf = exp(e) / sqrt((double)M);
            for (p = 0; p < P; p++) phi[(r * P + p) * M + j] = sqrt(w) * poly[p] * prf;
        }
    }
}

int main(void) {
    static float q[N_QK], k[N_QK], v[N_V], y[N_V];              /* logical [B, T, H, *]   */
    static float qh[N_QK], kh[N_QK], vh[N_V], yh[N_V];          /* head-first [B, H, T, *] */
    static float y_dec[N_V];
    static double phi_q[T][R * P * M], phi_k[T][R * P * M];
    float anchors[P * D], omega[R * H * D * M];
    double t_nodes[R], alpha[R], worst = 0;
    uint64_t seed = 42;
    int i, b, t, s, h, c, f;
    slay_error err = {0, {0}};      /* may be NULL in every call; here we want the messages */
    slay_feature_map_params params;
    slay_feature_map* fm = NULL;
    slay_state* state = NULL;
    slay_attention_options opts;
    int64_t m = 0;
    int32_t rc;

    /* 1. Versions. A binding must refuse a library with another ABI: struct layouts or the meaning
     *    of values may differ, and nothing would warn us. */
    printf("libslay %s (version number %d, ABI %d; header ABI %d), %s kernels\n", slay_version_string(),
           (int)slay_version_number(), (int)slay_abi_version(), SLAY_ABI_VERSION, slay_kernel_variant());
    if (slay_abi_version() != SLAY_ABI_VERSION) {
        fprintf(stderr, "ABI mismatch: refusing to run\n");
        return 1;
    }

    for (i = 0; i < N_QK; i++) q[i] = uniform(&seed);
    for (i = 0; i < N_QK; i++) k[i] = uniform(&seed);
    for (i = 0; i < N_V; i++) v[i] = uniform(&seed);

    /* 2. A SLAY feature map. params_init fills defaults and struct_size (the versioning field);
     *    then change only what you need. The seed makes the random matrices reproducible. */
    TRY(slay_feature_map_params_init(&params));
    params.head_dim = D;
    params.num_heads = H;
    params.nodes = R;
    params.poly = SLAY_POLY_ANCHOR;   /* the paper's default estimator */
    params.poly_dim = P;
    params.prf_dim = M;
    params.seed = 42;
    TRY(slay_feature_map_create(&params, &fm, &err));
    TRY(slay_feature_map_dim(fm, &m, &err));
    printf("feature map: head_dim %d, %d heads, %d features per head (R*P*M)\n", D, H, (int)m);

    {   /* Causal linear attention. Tensors are views of our memory: pointer, shape, strides. */
        slay_tensor tq = slay_tensor_4d(q, B, T, H, D), tk = slay_tensor_4d(k, B, T, H, D);
        slay_tensor tv = slay_tensor_4d(v, B, T, H, DV), ty = slay_tensor_4d(y, B, T, H, DV);
        TRY(slay_attention_options_init(&opts));   /* causal, δ = 1e-6, 1 thread */
        opts.chunk_size = 32;                      /* a speed knob; the result is the same */
        TRY(slay_linear_attention(fm, &tq, &tk, &tv, &ty, &opts, &err));
    }

    /* 3. The naive reference. Parameters come from the map itself; the quadrature nodes from
     *    slay_gauss_laguerre; everything else is the formula. */
    TRY(slay_feature_map_get_param(fm, "anchors", anchors, P * D, &err));
    TRY(slay_feature_map_get_param(fm, "omega", omega, R * H * D * M, &err));
    TRY(slay_gauss_laguerre(R, t_nodes, alpha, &err));
    for (b = 0; b < B; b++) {
        for (h = 0; h < H; h++) {
            for (t = 0; t < T; t++) {
                const float* row = &q[((b * T + t) * H + h) * D];
                slay_features(row, h, anchors, omega, t_nodes, alpha, params.eps, params.prf_clamp, phi_q[t]);
                row = &k[((b * T + t) * H + h) * D];
                slay_features(row, h, anchors, omega, t_nodes, alpha, params.eps, params.prf_clamp, phi_k[t]);
            }
            for (t = 0; t < T; t++) {
                /* y_t = Σ_{s≤t} (φ_t·φ_s) v_s / (Σ_{s≤t} φ_t·φ_s + δ) */
                double num[DV] = {0}, den = 0, err_max = 0, ref_max = 0;
                for (s = 0; s <= t; s++) {
                    double a = 0;
                    for (f = 0; f < R * P * M; f++) a += phi_q[t][f] * phi_k[s][f];
                    den += a;
                    for (c = 0; c < DV; c++) num[c] += a * v[((b * T + s) * H + h) * DV + c];
                }
                /* Relative to the size of the output vector: single entries of a weighted
                 * average can sit near zero, where an entry-wise ratio means nothing. */
                for (c = 0; c < DV; c++) {
                    double ref = num[c] / (den + opts.delta);
                    double got = y[((b * T + t) * H + h) * DV + c];
                    if (fabs(got - ref) > err_max) err_max = fabs(got - ref);
                    if (fabs(ref) > ref_max) ref_max = fabs(ref);
                }
                if (err_max / ref_max > worst) worst = err_max / ref_max;
            }
        }
    }
    printf("causal linear attention vs naive O(T^2) loop in double: max relative error %.2e\n", worst);
    if (!(worst <= 1e-4)) {   /* written so that NaN fails too */
        fprintf(stderr, "error above 1e-4\n");
        return 1;
    }

    {   /* 4. Errors are values. View q and k with head_dim 8 (the first 8 features of each row:
         *    same pointer and strides, smaller extent) while the map expects 16. Nothing is written
         *    to y on error, nothing is printed by the library, the process is never aborted. */
        slay_tensor tq = slay_tensor_4d(q, B, T, H, D), tk = slay_tensor_4d(k, B, T, H, D);
        slay_tensor tv = slay_tensor_4d(v, B, T, H, DV), ty = slay_tensor_4d(y, B, T, H, DV);
        tq.shape[3] = 8;
        tk.shape[3] = 8;
        rc = slay_linear_attention(fm, &tq, &tk, &tv, &ty, &opts, &err);
        printf("mismatched head_dim -> %d \"%s\": %s\n", (int)rc, slay_status_string(rc), err.message);
        if (rc != SLAY_ERR_SHAPE || err.code != rc) return 1;
    }

    {   /* 5. Head-first buffers [B, H, T, D] (the layout of many engines) are the same logical
         *    [B, T, H, D] tensor with permuted strides: strides[1] (time) = D, strides[2] (head) = T*D. */
        slay_tensor tq = slay_tensor_4d(qh, B, T, H, D), tk = slay_tensor_4d(kh, B, T, H, D);
        slay_tensor tv = slay_tensor_4d(vh, B, T, H, DV), ty = slay_tensor_4d(yh, B, T, H, DV);
        slay_tensor* all[4];
        int n;
        all[0] = &tq; all[1] = &tk; all[2] = &tv; all[3] = &ty;
        for (n = 0; n < 4; n++) {
            int64_t width = all[n]->shape[3];
            all[n]->strides[1] = width;
            all[n]->strides[2] = T * width;
        }
        for (b = 0; b < B; b++)
            for (t = 0; t < T; t++)
                for (h = 0; h < H; h++) {
                    memcpy(&qh[((b * H + h) * T + t) * D], &q[((b * T + t) * H + h) * D], D * sizeof(float));
                    memcpy(&kh[((b * H + h) * T + t) * D], &k[((b * T + t) * H + h) * D], D * sizeof(float));
                    memcpy(&vh[((b * H + h) * T + t) * DV], &v[((b * T + t) * H + h) * DV], DV * sizeof(float));
                }
        TRY(slay_linear_attention(fm, &tq, &tk, &tv, &ty, &opts, &err));
        for (b = 0; b < B; b++)
            for (t = 0; t < T; t++)
                for (h = 0; h < H; h++)
                    for (c = 0; c < DV; c++)
                        if (yh[((b * H + h) * T + t) * DV + c] != y[((b * T + t) * H + h) * DV + c]) {
                            fprintf(stderr, "head-first result differs at b=%d t=%d h=%d c=%d\n", b, t, h, c);
                            return 1;
                        }
        printf("head-first [B, H, T, D] through strides: identical output\n");
    }

    {   /* 6. The engine loop. A slay_state holds, per sequence slot, S = Σ φ(k) vᵀ and z = Σ φ(k):
         *    O(m · dv) floats per head whatever the length. Prefill the prompt (both sequences at
         *    once), then decode token by token; the outputs match whole-sequence attention. */
        slay_tensor tq = slay_tensor_4d(q, B, T, H, D), tk = slay_tensor_4d(k, B, T, H, D);
        slay_tensor tv = slay_tensor_4d(v, B, T, H, DV), ty = slay_tensor_4d(y_dec, B, T, H, DV);
        double dec_err = 0;
        tq.shape[1] = tk.shape[1] = tv.shape[1] = ty.shape[1] = PROMPT;  /* the first PROMPT tokens */
        TRY(slay_state_create(fm, B, DV, 1, &state, &err));
        TRY(slay_state_prefill(state, &tq, &tk, &tv, &ty, NULL, NULL, B, &opts, &err));
        for (t = PROMPT; t < T; t++) {
            /* One token of each sequence: drop the time axis, giving [N, H, D] (N = B). */
            slay_tensor sq = tq, sk = tk, sv = tv, so = ty;
            slay_tensor* all[4];
            int n, a;
            all[0] = &sq; all[1] = &sk; all[2] = &sv; all[3] = &so;
            for (n = 0; n < 4; n++) {
                all[n]->ndim = 3;
                for (a = 1; a < 3; a++) {
                    all[n]->shape[a] = all[n]->shape[a + 1];
                    all[n]->strides[a] = all[n]->strides[a + 1];
                }
            }
            sq.data = &q[t * H * D]; sk.data = &k[t * H * D];
            sv.data = &v[t * H * DV]; so.data = &y_dec[t * H * DV];
            TRY(slay_state_step(state, &sq, &sk, &sv, &so, NULL, B, NULL, &err));
        }
        for (i = 0; i < N_V; i++)
            if (fabs((double)y_dec[i] - y[i]) > dec_err) dec_err = fabs((double)y_dec[i] - y[i]);
        printf("prefill %d tokens + decode %d steps vs whole-sequence attention: max abs difference %.2e\n",
               PROMPT, T - PROMPT, dec_err);
        if (!(dec_err <= 1e-5)) return 1;
    }

    slay_state_free(state);   /* a state keeps its map alive; the order of the frees is free */
    slay_feature_map_free(fm);
    printf("example: ok\n");
    return 0;
}
