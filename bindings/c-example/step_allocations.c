/* Decode steps allocate nothing once warm: runs `steps` slay_state_step calls of one configuration.
 * build_and_run.sh runs it under valgrind for 100 and for 200 steps and fails when the heap
 * allocation counts differ (every configuration: additive; per-head log decay with key and query
 * gate logits; the gated delta rule with β, qk_l2norm and per-head log decay; that delta rule with
 * a grouped-query group of 512 query heads per key head; additive steps over 300 slots listed in
 * reverse order, whose distinctness check once copied them to the heap).
 * Usage: slay_step_allocations STEPS CONFIG   (CONFIG 0 to 4) */
#include <stdio.h>
#include <stdlib.h>
#include "slay.h"

enum { H = 2, D = 16, DV = 16 };

int main(int argc, char** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s STEPS CONFIG\n", argv[0]); return 2; }
    int steps = atoi(argv[1]), config = atoi(argv[2]);
    const int N = config == 4 ? 300 : 2, HQ = config == 3 ? 512 * H : H;
    slay_error err;
    slay_feature_map_params p;
    if (slay_feature_map_params_init(&p) != SLAY_OK) return 1;
    p.kind = config == 2 || config == 3 ? SLAY_KIND_IDENTITY : SLAY_KIND_SLAY;
    p.head_dim = D;
    p.num_heads = H;
    p.prf_dim = 4;
    p.poly_dim = 4;
    slay_feature_map* fm = NULL;
    slay_state* st = NULL;
    if (slay_feature_map_create(&p, &fm, &err) != SLAY_OK || slay_state_create(fm, N, DV, 1, &st, &err) != SLAY_OK) {
        printf("setup failed: %s\n", err.message);
        return 1;
    }
    float *q = malloc(sizeof(float) * N * HQ * D), *k = malloc(sizeof(float) * N * H * D),
          *v = malloc(sizeof(float) * N * H * DV), *y = malloc(sizeof(float) * N * HQ * DV), *g = malloc(sizeof(float) * N * H),
          *gates = malloc(sizeof(float) * N * H), *beta = malloc(sizeof(float) * N * H);
    int32_t* slots = malloc(sizeof(int32_t) * N);
    if (!q || !k || !v || !y || !g || !gates || !beta || !slots) return 1;
    for (int j = 0; j < N * HQ * D; j++) q[j] = 0.1f * (float)(j % 7);
    for (int j = 0; j < N * H * D; j++) k[j] = 0.05f * (float)(j % 5);
    for (int j = 0; j < N; j++) slots[j] = N - 1 - j;
    for (int j = 0; j < N * H * DV; j++) v[j] = 0.01f * (float)j;
    for (int j = 0; j < N * H; j++) { g[j] = -0.05f; gates[j] = 0.1f * (float)j; beta[j] = 0.5f; }
    slay_attention_options o;
    if (slay_attention_options_init(&o) != SLAY_OK) return 1;
    slay_tensor tg = slay_tensor_4d(g, N, H, 1, 1), tgates = slay_tensor_4d(gates, N, H, 1, 1),
                tbeta = slay_tensor_4d(beta, N, H, 1, 1);
    tg.ndim = tgates.ndim = tbeta.ndim = 2;
    if (config >= 1) o.log_decay = &tg;
    if (config == 1) {
        o.normalize = 0;
        o.key_gate_logits = &tgates;
        o.query_gate_logits = &tgates;
    }
    if (config == 2 || config == 3) {
        o.update = SLAY_UPDATE_DELTA;
        o.normalize = 0;
        o.qk_l2norm = 1;
        o.beta = &tbeta;
    }
    for (int s = 0; s < steps; s++) {
        slay_tensor tq = slay_tensor_4d(q, N, HQ, D, 1), tk = slay_tensor_4d(k, N, H, D, 1),
                    tv = slay_tensor_4d(v, N, H, DV, 1), ty = slay_tensor_4d(y, N, HQ, DV, 1);
        tq.ndim = tk.ndim = tv.ndim = ty.ndim = 3;
        if (slay_state_step(st, &tq, &tk, &tv, &ty, config == 4 ? slots : NULL, N, &o, &err) != SLAY_OK) {
            printf("step %d failed: %s\n", s, err.message);
            return 1;
        }
    }
    slay_state_free(st);
    slay_feature_map_free(fm);
    free(q); free(k); free(v); free(y); free(g); free(gates); free(beta); free(slots);
    return 0;
}
