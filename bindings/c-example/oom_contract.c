/* oom_contract.c — absurd but valid sizes give SLAY_ERR_OUT_OF_MEMORY, never an abort. The
 * process caps its own address space (RLIMIT_AS) a few MiB above what it uses before each call, so
 * the library's caller-sized allocations cannot succeed; each call must return
 * SLAY_ERR_OUT_OF_MEMORY with a message, leave its outputs and the state untouched, and the same
 * call must work once the cap is lifted. The sizes stay within every documented limit:
 *   - linear attention over B = 2^24 sequences of one token (inputs broadcast with stride 0);
 *   - a state of 2^20 slots (the maximum);
 *   - a packed prefill of 2^20 sequences with cu_seqlens and a permuted slot list;
 * and a decode step over 2^20 slots (in reverse order) still works under the cap: it allocates nothing.
 * Uses only slay.h and libslay.so. Not run under valgrind or ASan (both reserve address space). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "slay.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static struct rlimit original;

/* Caps the address space at what the process maps now plus `headroom` bytes. */
static void cap(size_t headroom) {
    FILE* status = fopen("/proc/self/status", "r");
    char line[256];
    size_t used = 0;
    while (status && fgets(line, sizeof line, status)) {
        if (strncmp(line, "VmSize:", 7) == 0) used = (size_t)strtoull(line + 7, NULL, 10) * 1024;
    }
    if (status) fclose(status);
    struct rlimit limit = {used + headroom, original.rlim_max};
    if (setrlimit(RLIMIT_AS, &limit) != 0) { printf("setrlimit failed\n"); exit(2); }
}

static void uncap(void) { setrlimit(RLIMIT_AS, &original); }

static int all_equal(const float* x, size_t n, float value) {
    for (size_t i = 0; i < n; i++) if (x[i] != value) return 0;
    return 1;
}

static void expect_oom(int32_t status, const slay_error* e, const char* what) {
    CHECK(status == SLAY_ERR_OUT_OF_MEMORY, "%s: status %d (%s), expected SLAY_ERR_OUT_OF_MEMORY", what, status, e->message);
    CHECK(e->code == status && e->message[0] != 0, "%s: no error message", what);
    if (status == SLAY_ERR_OUT_OF_MEMORY) printf("%s: out of memory as expected (%s)\n", what, e->message);
}

static slay_feature_map* identity_map(void) {
    slay_feature_map_params p;
    if (slay_feature_map_params_init(&p)) exit(2);
    p.kind = SLAY_KIND_IDENTITY;
    p.head_dim = 1;
    slay_feature_map* fm = NULL;
    slay_error e;
    if (slay_feature_map_create(&p, &fm, &e) != SLAY_OK) { printf("create: %s\n", e.message); exit(2); }
    return fm;
}

/* Linear attention over 2^24 one-token sequences: its per-sequence spans need 384 MiB. */
static void attention(slay_feature_map* fm) {
    const int64_t n = (int64_t)1 << 24;
    float one = 0.5f;
    float* out = malloc(sizeof(float) * (size_t)n);
    if (!out) { printf("no memory for the test itself\n"); exit(2); }
    for (int64_t i = 0; i < n; i++) out[i] = -7;
    slay_tensor tq = {&one, SLAY_DTYPE_F32, 4, {n, 1, 1, 1}, {0, 0, 0, 0}};
    slay_tensor ty = {out, SLAY_DTYPE_F32, 4, {n, 1, 1, 1}, {1, 1, 1, 1}};
    slay_error e;
    cap(64u << 20);
    int32_t status = slay_linear_attention(fm, &tq, &tq, &tq, &ty, NULL, &e);
    uncap();
    expect_oom(status, &e, "linear attention, B = 2^24");
    CHECK(all_equal(out, (size_t)n, -7), "linear attention wrote its output although it failed");
    free(out);
}

/* States of 2^20 slots: creation, a packed prefill of 2^20 sequences, and a step over all slots. */
static void states(slay_feature_map* fm) {
    const int64_t n = (int64_t)1 << 20;
    slay_state* state = (slay_state*)0x1;
    slay_error e;
    cap(4u << 20);
    int32_t status = slay_state_create(fm, n, 1, 1, &state, &e);
    uncap();
    expect_oom(status, &e, "state_create, 2^20 slots");
    CHECK(state == NULL, "state_create failed but *out is not NULL");
    if (slay_state_create(fm, n, 1, 1, &state, &e) != SLAY_OK) { printf("state_create: %s\n", e.message); failures++; return; }

    float* k = malloc(sizeof(float) * (size_t)n);
    float* y = malloc(sizeof(float) * (size_t)n);
    int64_t* cu = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int32_t* slots = malloc(sizeof(int32_t) * (size_t)n);
    if (!k || !y || !cu || !slots) { printf("no memory for the test itself\n"); exit(2); }
    for (int64_t i = 0; i < n; i++) { k[i] = 0.25f; cu[i] = i; slots[i] = (int32_t)((i * 7919) % n); }
    cu[n] = n;
    slay_tensor tk = {k, SLAY_DTYPE_F32, 4, {1, n, 1, 1}, {n, 1, 1, 1}};
    cap(4u << 20);
    status = slay_state_prefill(state, NULL, &tk, &tk, NULL, cu, slots, n, NULL, &e);
    uncap();
    expect_oom(status, &e, "packed prefill of 2^20 sequences");
    int64_t position = -1;
    CHECK(slay_state_position(state, 12345, &position, &e) == SLAY_OK && position == 0,
          "a failed prefill changed the positions (%lld)", (long long)position);
    CHECK(slay_state_prefill(state, NULL, &tk, &tk, NULL, cu, slots, n, NULL, &e) == SLAY_OK,
          "the same prefill without the cap: %s", e.message);
    CHECK(slay_state_position(state, 12345, &position, &e) == SLAY_OK && position == 1, "position %lld after the prefill",
          (long long)position);

    for (int64_t i = 0; i < n; i++) { slots[i] = (int32_t)(n - 1 - i); y[i] = -7; }
    float half = 0.5f;
    slay_tensor sq = {&half, SLAY_DTYPE_F32, 3, {n, 1, 1, 0}, {0, 0, 0, 0}};
    slay_tensor sy = {y, SLAY_DTYPE_F32, 3, {n, 1, 1, 0}, {1, 1, 1, 0}};
    slay_attention_options o;
    if (slay_attention_options_init(&o)) exit(2);
    /* A step allocates nothing, whatever its batch: it works under the cap. */
    cap(1u << 20);
    status = slay_state_step(state, &sq, &sq, &sq, &sy, slots, n, &o, &e);
    uncap();
    CHECK(status == SLAY_OK, "a step over 2^20 slots under the cap: %s", e.message);
    CHECK(!all_equal(y, (size_t)n, -7), "the step wrote no output");
    CHECK(slay_state_position(state, 7, &position, &e) == SLAY_OK && position == 2, "position %lld after the step",
          (long long)position);
    slots[5] = slots[6];
    CHECK(slay_state_step(state, &sq, &sq, &sq, &sy, slots, n, &o, &e) == SLAY_ERR_INVALID_ARGUMENT,
          "repeated slots among 2^20 were not refused");
    free(k); free(y); free(cu); free(slots);
    slay_state_free(state);
}

int main(void) {
    if (getrlimit(RLIMIT_AS, &original) != 0) { printf("getrlimit failed\n"); return 2; }
    slay_feature_map* fm = identity_map();
    attention(fm);
    states(fm);
    slay_feature_map_free(fm);
    if (failures) { printf("oom_contract: %d failure(s)\n", failures); return 1; }
    printf("oom_contract: every absurd size was SLAY_ERR_OUT_OF_MEMORY, and the calls work without the cap\n");
    return 0;
}
