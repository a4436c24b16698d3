/* memcheck.c — every feature map and attention option through every entry point on valid inputs
 * (whole-sequence causal and bidirectional attention with 1 and 2 threads, prefill with strided
 * views, save / load / restore, decode steps with threads), so that build_and_run.sh can run it
 * under valgrind: an out-of-bounds read or write or an uninitialised value anywhere in these
 * paths fails the tests. Outputs must also be finite. Uses only slay.h and libslay.so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slay.h"
#define B 2
#define T 37
#define HQ 4
#define H 2
#define D 8
#define DV 6
static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }
static void fill(float* x, size_t n, float s) { for (size_t i = 0; i < n; i++) x[i] = s * frand(); }
static int run(slay_feature_map_params p, int gla, int gates, const char* name) {
    slay_feature_map* fm = NULL; slay_error e;
    if (slay_feature_map_create(&p, &fm, &e) != SLAY_OK) { printf("%s create: %s\n", name, e.message); return 1; }
    int64_t m = 0; if (slay_feature_map_dim(fm, &m, &e)) return 1;
    float *q = malloc(sizeof(float) * B * T * HQ * D), *k = malloc(sizeof(float) * B * T * H * D),
          *v = malloc(sizeof(float) * B * T * H * DV), *y = malloc(sizeof(float) * B * T * HQ * DV),
          *ld = malloc(sizeof(float) * B * T * H * m), *gq = malloc(sizeof(float) * B * T * HQ), *gk = malloc(sizeof(float) * B * T * H);
    fill(q, B * T * HQ * D, 3); fill(k, B * T * H * D, 3); fill(v, B * T * H * DV, 1); fill(gq, B * T * HQ, 2); fill(gk, B * T * H, 2);
    for (int64_t i = 0; i < B * T * H * m; i++) ld[i] = -0.3f * (frand() + 1);
    slay_tensor tq = slay_tensor_4d(q, B, T, HQ, D), tk = slay_tensor_4d(k, B, T, H, D), tv = slay_tensor_4d(v, B, T, H, DV),
                ty = slay_tensor_4d(y, B, T, HQ, DV), tld = slay_tensor_4d(ld, B, T, H, m);
    slay_tensor tgq = {gq, SLAY_DTYPE_F32, 3, {B, T, HQ, 0}, {T * HQ, HQ, 1, 0}}, tgk = {gk, SLAY_DTYPE_F32, 3, {B, T, H, 0}, {T * H, H, 1, 0}};
    slay_attention_options o; if (slay_attention_options_init(&o)) return 1;
    if (gla) { o.log_decay = &tld; o.normalize = 0; }
    if (gates) { o.query_gate_logits = &tgq; o.key_gate_logits = &tgk; o.normalize = 0; }
    if (p.poly == SLAY_POLY_TENSORSKETCH || p.poly == SLAY_POLY_NYSTROM) o.denominator = SLAY_DENOMINATOR_CLAMP;
    int rc = 0;
    for (int threads = 1; threads <= 2; threads++) {
        o.n_threads = threads;
        if (slay_linear_attention(fm, &tq, &tk, &tv, &ty, &o, &e)) { printf("%s attn: %s\n", name, e.message); rc = 1; }
        o.causal = 0;
        if (!gla && slay_linear_attention(fm, &tq, &tk, &tv, &ty, &o, &e)) { printf("%s bidir: %s\n", name, e.message); rc = 1; }
        o.causal = 1;
    }
    slay_state* st = NULL; if (slay_state_create(fm, B, DV, 2, &st, &e)) { printf("state: %s\n", e.message); return 1; }
    slay_tensor pq = slay_tensor_4d(q, B, T - 1, HQ, D), pk = slay_tensor_4d(k, B, T - 1, H, D), pv = slay_tensor_4d(v, B, T - 1, H, DV),
                py = slay_tensor_4d(y, B, T - 1, HQ, DV);
    pq.strides[0] = T * HQ * D; pk.strides[0] = T * H * D; pv.strides[0] = T * H * DV; py.strides[0] = T * HQ * DV;
    slay_tensor pld = tld; pld.shape[1] = T - 1; slay_tensor pgq = tgq; pgq.shape[1] = T - 1; slay_tensor pgk = tgk; pgk.shape[1] = T - 1;
    slay_attention_options po = o; po.n_threads = 1;
    if (gla) po.log_decay = &pld;
    if (gates) { po.query_gate_logits = &pgq; po.key_gate_logits = &pgk; }
    if (slay_state_prefill(st, &pq, &pk, &pv, &py, NULL, NULL, B, &po, &e)) { printf("%s prefill: %s\n", name, e.message); rc = 1; }
    size_t size = 0; if (slay_state_serialized_size(st, &size, &e)) rc = 1;
    void* blob = malloc(size); if (slay_state_save(st, blob, size, NULL, &e)) rc = 1;
    slay_state* st2 = NULL; if (slay_state_load(fm, blob, size, 1, &st2, &e)) { printf("%s load: %s\n", name, e.message); rc = 1; }
    /* one step: the last token, strided [N, H, D] views */
    slay_tensor sq = {q + (T - 1) * HQ * D, SLAY_DTYPE_F32, 3, {B, HQ, D, 0}, {T * HQ * D, D, 1, 0}};
    slay_tensor sk = {k + (T - 1) * H * D, SLAY_DTYPE_F32, 3, {B, H, D, 0}, {T * H * D, D, 1, 0}};
    slay_tensor sv = {v + (T - 1) * H * DV, SLAY_DTYPE_F32, 3, {B, H, DV, 0}, {T * H * DV, DV, 1, 0}};
    float* so = malloc(sizeof(float) * B * HQ * DV);
    slay_tensor sy = {so, SLAY_DTYPE_F32, 3, {B, HQ, DV, 0}, {HQ * DV, DV, 1, 0}};
    slay_tensor sld = {ld + (T - 1) * H * m, SLAY_DTYPE_F32, 3, {B, H, m, 0}, {T * H * m, m, 1, 0}};
    slay_tensor sgq = {gq + (T - 1) * HQ, SLAY_DTYPE_F32, 2, {B, HQ, 0, 0}, {T * HQ, 1, 0, 0}};
    slay_tensor sgk = {gk + (T - 1) * H, SLAY_DTYPE_F32, 2, {B, H, 0, 0}, {T * H, 1, 0, 0}};
    slay_attention_options so_ = o; so_.n_threads = 2;
    if (gla) so_.log_decay = &sld;
    if (gates) { so_.query_gate_logits = &sgq; so_.key_gate_logits = &sgk; }
    if (slay_state_step(st, &sq, &sk, &sv, &sy, NULL, B, &so_, &e)) { printf("%s step: %s\n", name, e.message); rc = 1; }
    if (slay_state_step(st2, &sq, &sk, &sv, &sy, NULL, B, &so_, &e)) { printf("%s step2: %s\n", name, e.message); rc = 1; }
    if (slay_state_restore(st, blob, size, &e)) rc = 1;
    slay_state_free(st); slay_state_free(st2); slay_feature_map_free(fm);
    free(q); free(k); free(v); free(y); free(ld); free(gq); free(gk); free(blob);
    for (size_t i = 0; i < (size_t)B * HQ * DV; i++) {
        if (!isfinite(so[i])) { printf("%s: step output %zu is not finite\n", name, i); rc = 1; break; }
    }
    printf("%s: %s\n", name, rc ? "FAIL" : "ok");
    free(so);
    return rc;
}
int main(void) {
    slay_feature_map_params p; int rc = 0;
    if (slay_feature_map_params_init(&p) != SLAY_OK) return 1;
    p.head_dim = D; p.num_heads = H;
    rc |= run(p, 0, 0, "slay anchor");
    p.expansion = SLAY_EXPANSION_TAYLOR; p.degree = 3; rc |= run(p, 0, 0, "taylor3"); rc |= run(p, 1, 1, "taylor3 gla gates");
    p.expansion = SLAY_EXPANSION_QUADRATURE; p.poly = SLAY_POLY_TENSORSKETCH; rc |= run(p, 0, 0, "tensorsketch");
    p.poly = SLAY_POLY_NYSTROM; rc |= run(p, 0, 0, "nystrom");
    if (slay_feature_map_params_init(&p) != SLAY_OK) return 1;
    p.head_dim = D; p.num_heads = H;
    p.kind = SLAY_KIND_HADAMARD_EXP; rc |= run(p, 0, 0, "hadamard exp");
    p.kind = SLAY_KIND_IDENTITY; rc |= run(p, 1, 0, "identity gla"); rc |= run(p, 0, 1, "identity gates"); rc |= run(p, 1, 1, "identity gla gates");
    p.kind = SLAY_KIND_ELU_PLUS_ONE; rc |= run(p, 0, 0, "elu+1"); rc |= run(p, 1, 1, "elu+1 gla gates");
    p.kind = SLAY_KIND_FAVOR_PLUS; p.prf_dim = 16; rc |= run(p, 0, 0, "favor+");
    printf("memcheck paths: %s\n", rc ? "FAILED" : "all ran");
    return rc;
}
