/* A minimal inference-engine loop with libslay: prefill a prompt into a recurrent state, decode
 * tokens one at a time, snapshot the state, decode more, roll back to the snapshot, decode the same
 * tokens again and check the outputs repeat exactly; the decoded outputs must also equal
 * whole-sequence causal attention. Uses only slay.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slay.h"

enum { B = 1, T = 40, H = 2, D = 8, DV = 4, PROMPT = 24 };

static float next_value(unsigned* seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)((*seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static int fail(const char* what, const slay_error* err) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, slay_status_string(err->code), err->message);
    return 1;
}

int main(void) {
    static float q[B * T * H * D], k[B * T * H * D], v[B * T * H * DV], y[B * T * H * DV];
    unsigned seed = 42;
    int i, t;
    for (i = 0; i < B * T * H * D; i++) { q[i] = next_value(&seed); k[i] = next_value(&seed); }
    for (i = 0; i < B * T * H * DV; i++) v[i] = next_value(&seed);

    printf("libslay %s (ABI %d)\n", slay_version_string(), (int)slay_abi_version());
    if (slay_abi_version() != SLAY_ABI_VERSION) { fprintf(stderr, "ABI mismatch\n"); return 1; }

    slay_error err;
    slay_feature_map_params params;
    if (slay_feature_map_params_init(&params) != SLAY_OK) return 1;
    params.head_dim = D;
    params.num_heads = H;
    params.poly = SLAY_POLY_EXACT;
    params.seed = 42;
    slay_feature_map* fm = NULL;
    if (slay_feature_map_create(&params, &fm, &err) != SLAY_OK) return fail("create", &err);

    /* Whole-sequence causal attention. */
    slay_tensor tq = slay_tensor_4d(q, B, T, H, D), tk = slay_tensor_4d(k, B, T, H, D);
    slay_tensor tv = slay_tensor_4d(v, B, T, H, DV), ty = slay_tensor_4d(y, B, T, H, DV);
    slay_attention_options opts;
    if (slay_attention_options_init(&opts) != SLAY_OK) return 1;
    opts.chunk_size = 16;
    if (slay_linear_attention(fm, &tq, &tk, &tv, &ty, &opts, &err) != SLAY_OK) return fail("attention", &err);
    static float whole[B * T * H * DV];
    memcpy(whole, y, sizeof whole);

    /* Engine loop: prefill the prompt, decode, snapshot, decode more, roll back, decode again. */
    slay_state* state = NULL;
    if (slay_state_create(fm, 1, DV, 1, &state, &err) != SLAY_OK) return fail("state_create", &err);
    slay_tensor pq = slay_tensor_4d(q, 1, PROMPT, H, D), pk = slay_tensor_4d(k, 1, PROMPT, H, D);
    slay_tensor pv = slay_tensor_4d(v, 1, PROMPT, H, DV), py = slay_tensor_4d(y, 1, PROMPT, H, DV);
    if (slay_state_prefill(state, &pq, &pk, &pv, &py, NULL, NULL, 1, &opts, &err) != SLAY_OK) return fail("prefill", &err);
    size_t size = 0;
    if (slay_state_serialized_size(state, &size, &err) != SLAY_OK) return fail("size", &err);
    void* snapshot = malloc(size);
    float first[T][H * DV], second[T][H * DV];
    int pass;
    if (!snapshot) return 1;
    if (slay_state_save(state, snapshot, size, NULL, &err) != SLAY_OK) return fail("save", &err);
    for (pass = 0; pass < 2; pass++) {
        for (t = PROMPT; t < T; t++) {
            slay_tensor sq = slay_tensor_4d(q + t * H * D, 1, 1, H, D), sk = slay_tensor_4d(k + t * H * D, 1, 1, H, D);
            slay_tensor sv = slay_tensor_4d(v + t * H * DV, 1, 1, H, DV);
            slay_tensor so = slay_tensor_4d(pass ? second[t] : first[t], 1, 1, H, DV);
            /* a step takes [N, H, D] tensors: drop the unit time axis */
            sq.ndim = sk.ndim = sv.ndim = so.ndim = 3;
            sq.shape[1] = H; sq.shape[2] = D; sq.strides[0] = H * D; sq.strides[1] = D; sq.strides[2] = 1;
            sk.shape[1] = H; sk.shape[2] = D; sk.strides[0] = H * D; sk.strides[1] = D; sk.strides[2] = 1;
            sv.shape[1] = H; sv.shape[2] = DV; sv.strides[0] = H * DV; sv.strides[1] = DV; sv.strides[2] = 1;
            so.shape[1] = H; so.shape[2] = DV; so.strides[0] = H * DV; so.strides[1] = DV; so.strides[2] = 1;
            if (slay_state_step(state, &sq, &sk, &sv, &so, NULL, 1, NULL, &err) != SLAY_OK) return fail("step", &err);
        }
        if (slay_state_restore(state, snapshot, size, &err) != SLAY_OK) return fail("restore", &err);
    }
    if (memcmp(first[PROMPT], second[PROMPT], sizeof(float) * (T - PROMPT) * H * DV) != 0) {
        fprintf(stderr, "rollback did not repeat the decode exactly\n");
        return 1;
    }
    {
        double worst = 0;
        for (t = PROMPT; t < T; t++)
            for (i = 0; i < H * DV; i++) {
                double e = fabs((double)first[t][i] - whole[t * H * DV + i]);
                if (e > worst) worst = e;
            }
        printf("decode vs whole-sequence attention: max abs difference %.2e\n", worst);
        if (worst > 1e-4) return 1;
    }
    printf("prefill %d tokens, decode %d, roll back, decode again: identical outputs\n", PROMPT, T - PROMPT);

    /* Errors are values: a head_dim mismatch is reported, nothing is written. */
    slay_tensor bad = slay_tensor_4d(q, B, T, H, D - 1);
    int32_t rc = slay_linear_attention(fm, &bad, &tk, &tv, &ty, &opts, &err);
    printf("bad input -> %s: %s\n", slay_status_string(rc), err.message);
    if (rc != SLAY_ERR_SHAPE) return 1;

    free(snapshot);
    slay_state_free(state);
    slay_feature_map_free(fm);
    printf("engine loop: ok\n");
    return 0;
}
