/* Times slay_state_step as an engine calls it: a C loop over one prepared call, no binding in
 * between. `python -m slay.bench` compiles and runs it (when a C compiler and slay.h are at hand)
 * for its "via C" decode rows; the ctypes figure beside it includes the binding's call cost.
 *
 *   slay_decode_timing SECONDS BATCH STORAGE HEADS HEAD_DIM VALUE_DIM NODES POLY_DIM PRF_DIM THREADS
 *
 * Maps SLAY (anchor polynomial, seed 0), steps BATCH sequences per call with the state stored as
 * STORAGE (SLAY_DTYPE_F32 = 0, SLAY_DTYPE_BF16 = 3, SLAY_DTYPE_F16 = 2), and prints the best
 * microseconds per call over batches of calls that together run for about SECONDS. Without
 * arguments it times a small bf16 state briefly (build_and_run.sh runs it that way).
 * Uses only slay.h. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "slay.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char* what, const slay_error* err) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, slay_status_string(err->code), err->message);
    return 1;
}

static slay_tensor tokens(float* data, int64_t n, int64_t heads, int64_t width) {
    slay_tensor t = slay_tensor_4d(data, n, heads, width, 1);
    t.ndim = 3;
    return t;
}

int main(int argc, char** argv) {
    slay_error err;
    slay_feature_map_params params;
    slay_attention_options options;
    slay_feature_map* fm = NULL;
    slay_state* state = NULL;
    float *q, *k, *v, *out;
    slay_tensor tq, tk, tv, to;
    double seconds, best = 1e30, start;
    int64_t batch, heads, d, dv, i;
    int32_t storage;
    long calls = 1;
    unsigned seed = 1;
    static char* small[] = {"", "0.02", "2", "3", "2", "16", "16", "2", "4", "4", "1"};
    if (argc == 1) {
        argc = 11;
        argv = small;
    }
    if (argc != 11) {
        fprintf(stderr, "usage: %s SECONDS BATCH STORAGE HEADS HEAD_DIM VALUE_DIM NODES POLY_DIM PRF_DIM THREADS\n",
                argv[0]);
        return 2;
    }
    seconds = atof(argv[1]);
    batch = atol(argv[2]);
    storage = (int32_t)atoi(argv[3]);
    heads = atol(argv[4]);
    d = atol(argv[5]);
    dv = atol(argv[6]);
    if (slay_feature_map_params_init(&params) != SLAY_OK || slay_attention_options_init(&options) != SLAY_OK) return 1;
    params.head_dim = d;
    params.num_heads = heads;
    params.nodes = atoi(argv[7]);
    params.poly = SLAY_POLY_ANCHOR;
    params.poly_dim = atol(argv[8]);
    params.prf_dim = atol(argv[9]);
    options.n_threads = atoi(argv[10]);
    if (slay_feature_map_create(&params, &fm, &err) != SLAY_OK) return fail("slay_feature_map_create", &err);
    if (slay_state_create_v2(fm, batch, dv, options.n_threads, storage, &state, &err) != SLAY_OK) {
        return fail("slay_state_create_v2", &err);
    }
    q = malloc(sizeof(float) * (size_t)(batch * heads * d));
    k = malloc(sizeof(float) * (size_t)(batch * heads * d));
    v = malloc(sizeof(float) * (size_t)(batch * heads * dv));
    out = malloc(sizeof(float) * (size_t)(batch * heads * dv));
    if (!q || !k || !v || !out) return 1;
    for (i = 0; i < batch * heads * d; i++) {
        seed = seed * 1664525u + 1013904223u;
        q[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
        seed = seed * 1664525u + 1013904223u;
        k[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    for (i = 0; i < batch * heads * dv; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    tq = tokens(q, batch, heads, d);
    tk = tokens(k, batch, heads, d);
    tv = tokens(v, batch, heads, dv);
    to = tokens(out, batch, heads, dv);
    /* Calls per timed batch: enough for about 2 ms, so the clock's cost is negligible. */
    for (;;) {
        double t = now();
        for (i = 0; i < calls; i++) {
            if (slay_state_step(state, &tq, &tk, &tv, &to, NULL, batch, &options, &err) != SLAY_OK) {
                return fail("slay_state_step", &err);
            }
        }
        if (now() - t > 2e-3 || calls > (1L << 20)) break;
        calls *= 2;
    }
    start = now();
    while (now() - start < seconds) {
        double t = now(), per_call;
        for (i = 0; i < calls; i++) {
            if (slay_state_step(state, &tq, &tk, &tv, &to, NULL, batch, &options, &err) != SLAY_OK) {
                return fail("slay_state_step", &err);
            }
        }
        per_call = (now() - t) / (double)calls;
        if (per_call < best) best = per_call;
    }
    printf("%.3f\n", best * 1e6);
    slay_state_free(state);
    slay_feature_map_free(fm);
    free(q);
    free(k);
    free(v);
    free(out);
    return 0;
}
