/* soak.c — 1M decoded tokens per configuration (SLAY, ELU+1, Hadamard Exp, and Gated DeltaNet: the
 * identity map with the delta rule, qk_l2norm and a per-head gate) at constant memory: a
 * decode loop of 4 sequences × 250k steps, with a save / restore every 50k steps and a slot
 * reset every 100k, must not grow the process (resident set measured from /proc/self/statm after
 * the first 50k steps and at the end; at most 1 MiB of growth), must stay finite, and must fit
 * the time budget. Uses only slay.h (and /proc on Linux; elsewhere memory is not measured). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slay.h"

enum { N = 4, H = 2, D = 16, DV = 16, STEPS = 250000 };

static long resident_kib(void) {
    long pages = -1, resident = -1;
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * 4;
}

static float next_value(unsigned* seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)((*seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static int soak(int32_t kind, int gated_delta, const char* name) {
    slay_error err;
    slay_feature_map_params p;
    if (slay_feature_map_params_init(&p) != SLAY_OK) return 1;
    p.kind = kind;
    p.head_dim = D;
    p.num_heads = H;
    p.prf_dim = 4;
    p.poly_dim = 4;
    slay_feature_map* fm = NULL;
    slay_state* st = NULL;
    if (slay_feature_map_create(&p, &fm, &err) != SLAY_OK || slay_state_create(fm, N, DV, 1, &st, &err) != SLAY_OK) {
        printf("%s: setup failed: %s\n", name, err.message);
        return 1;
    }
    size_t bytes = 0;
    if (slay_state_serialized_size(st, &bytes, &err) != SLAY_OK) return 1;
    unsigned char* blob = malloc(bytes);
    /* A pool of token inputs, cycled: the values change every step without generating 1M rows. */
    enum { POOL = 64 };
    static float q[POOL][N * H * D], k[POOL][N * H * D], v[POOL][N * H * DV], y[N * H * DV];
    unsigned seed = 7;
    for (int i = 0; i < POOL; i++)
        for (int j = 0; j < N * H * D; j++) { q[i][j] = 3 * next_value(&seed); k[i][j] = 3 * next_value(&seed); }
    for (int i = 0; i < POOL; i++) for (int j = 0; j < N * H * DV; j++) v[i][j] = next_value(&seed);
    slay_attention_options o;
    if (!blob || slay_attention_options_init(&o) != SLAY_OK) return 1;
    /* Gated DeltaNet: S_t = α_t (I − β φ(k)φ(k)ᵀ) S_{t−1} + β φ(k) vᵀ, unnormalised, α = e^{−0.05}. */
    static float gate[N * H];
    slay_tensor tgate = slay_tensor_4d(gate, N, H, 1, 1);
    tgate.ndim = 2;
    if (gated_delta) {
        for (int j = 0; j < N * H; j++) gate[j] = -0.05f;
        o.update = SLAY_UPDATE_DELTA;
        o.normalize = 0;
        o.qk_l2norm = 1;
        o.log_decay = &tgate;
    }
    long after_warmup = -1;
    clock_t start = clock();
    for (int s = 0; s < STEPS; s++) {
        slay_tensor tq = slay_tensor_4d(q[s % POOL], N, H, D, 1), tk = slay_tensor_4d(k[s % POOL], N, H, D, 1),
                    tv = slay_tensor_4d(v[s % POOL], N, H, DV, 1), ty = slay_tensor_4d(y, N, H, DV, 1);
        tq.ndim = tk.ndim = tv.ndim = ty.ndim = 3;
        if (slay_state_step(st, &tq, &tk, &tv, &ty, NULL, N, &o, &err) != SLAY_OK) {
            printf("%s: step %d failed: %s\n", name, s, err.message);
            return 1;
        }
        if (s % 50000 == 49999) {
            size_t written = 0;
            if (slay_state_save(st, blob, bytes, &written, &err) != SLAY_OK ||
                slay_state_restore(st, blob, written, &err) != SLAY_OK) {
                printf("%s: save/restore at step %d failed: %s\n", name, s, err.message);
                return 1;
            }
            if (after_warmup < 0) after_warmup = resident_kib();
        }
        if (s % 100000 == 99999 && slay_state_reset(st, s / 100000 % N, &err) != SLAY_OK) return 1;
    }
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    for (int j = 0; j < N * H * DV; j++) {
        if (!isfinite(y[j])) { printf("%s: output %d is not finite\n", name, j); return 1; }
    }
    long end = resident_kib();
    free(blob);
    slay_state_free(st);
    slay_feature_map_free(fm);
    printf("%s: %d tokens in %.1f s, resident %ld KiB after 200k tokens, %ld KiB at the end\n", name, N * STEPS,
           seconds, after_warmup, end);
    if (after_warmup >= 0 && end - after_warmup > 1024) {
        printf("%s: memory grew by %ld KiB\n", name, end - after_warmup);
        return 1;
    }
    return 0;
}

int main(void) {
    int failures = soak(SLAY_KIND_SLAY, 0, "slay") + soak(SLAY_KIND_ELU_PLUS_ONE, 0, "elu+1") +
                   soak(SLAY_KIND_HADAMARD_EXP, 0, "ela-hadamard-exp") + soak(SLAY_KIND_IDENTITY, 1, "gated-deltanet");
    printf(failures ? "soak: FAILED\n" : "soak: constant memory\n");
    return failures ? 1 : 0;
}
