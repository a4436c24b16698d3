/* abi_contract.c — tests the C contract of every function in slay.h, from C, through libslay.so.
 *
 * For every failing call: the expected status, err->code equal to it, a non-empty message, the
 * same status with err == NULL, outputs untouched (all outputs of failing calls live in one
 * sentinel-filled struct compared byte for byte), `*out` handles set to NULL, and watched
 * handles unchanged (a state's serialized bytes, a map's identity and parameters).
 * Then the positive promises: versions, kernel variant, status strings, defaults, positive SLAY features,
 * identities, parameter round trips and the documented parameter generator, config round trip,
 * quadrature, partitions, state dims/save/load/copy, and the Hadamard Exp kind's rescaled engine.
 *
 * Prints one line per failure and finally "N passed, M failed"; exits 1 if M > 0. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slay.h"

/* ------------------------------------------------------------------------------------------ */
/* Harness                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int n_pass, n_fail;

static void check_(int ok, int line, const char* fmt, ...) {
    va_list ap;
    if (ok) { n_pass++; return; }
    n_fail++;
    printf("FAIL abi_contract.c:%d: ", line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}
#define CHECK(cond, ...) check_((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

/* A successful call: SLAY_OK, err->code 0 and an empty message. */
#define OK(call)                                                                                 \
    do {                                                                                         \
        slay_error e_;                                                                           \
        int32_t rc_;                                                                             \
        memset(&e_, 0x5A, sizeof e_);                                                            \
        rc_ = (call);                                                                            \
        CHECK(rc_ == SLAY_OK && e_.code == SLAY_OK && e_.message[0] == 0,                        \
              "%s -> %d (err.code %d, \"%.200s\"), expected SLAY_OK and \"\"", #call, (int)rc_,  \
              (int)e_.code, e_.message);                                                          \
    } while (0)
#define E (&e_)   /* the err argument inside OK(...) */

enum { B = 2, T = 5, H = 2, HQ = 4, D = 4, DV = 3, R = 2, P = 4, M = 3, MF = R * P * M, NS = 3 };
#define REGION 1024   /* floats per tensor region in the output arena */
#define RG(i) (O.f + ((i) + 1) * REGION)   /* region i; region -1 is padding before it */
#define BLOB_MAX 16384

/* Everything a failing call could write to. Filled with 0xA5 before each case, compared after. */
static struct outputs {
    float f[6 * REGION];
    int64_t i64[SLAY_MAX_DIMS + 4];
    int32_t i32;
    uint64_t u64;
    const char* name;
    size_t size;
    double nodes[80], weights[80];
    slay_feature_map_params params;
    unsigned char bytes[BLOB_MAX];
} O, O_before;

static void arm(void) { memset(&O, 0xA5, sizeof O); }

/* Handles that a case may change by mistake: compared before and after every failing call. */
static slay_state* w_state;
static slay_feature_map* w_fm;
static unsigned char w_blob[2][BLOB_MAX];
static size_t w_blob_size[2];
static uint64_t w_id[2];
static float w_par[2][4096];

static void watch_snapshot(int which) {
    size_t written = 0;
    int32_t count = 0, i;
    int64_t offset = 0;
    w_blob_size[which] = 0;
    if (w_state && slay_state_save(w_state, w_blob[which], BLOB_MAX, &written, NULL) == SLAY_OK)
        w_blob_size[which] = written;
    w_id[which] = 0;
    memset(w_par[which], 0, sizeof w_par[which]);
    if (!w_fm) return;
    if (slay_feature_map_identity(w_fm, &w_id[which], NULL) != SLAY_OK) w_id[which] = 1;
    if (slay_feature_map_param_count(w_fm, &count, NULL) != SLAY_OK) return;
    for (i = 0; i < count; i++) {
        const char* name = NULL;
        int32_t ndim = 0, a;
        int64_t shape[SLAY_MAX_DIMS], n = 1;
        if (slay_feature_map_param_name(w_fm, i, &name, NULL) != SLAY_OK) return;
        if (slay_feature_map_param_shape(w_fm, name, &ndim, shape, NULL) != SLAY_OK) return;
        for (a = 0; a < ndim; a++) n *= shape[a];
        if (offset + n > 4096) return;
        if (slay_feature_map_get_param(w_fm, name, w_par[which] + offset, n, NULL) != SLAY_OK) return;
        offset += n;
    }
}

/* `*out` handles of create-like calls: set to a dummy before, must be NULL after a failure. */
static char dummy_storage[2];
#define DUMMY_FM ((slay_feature_map*)(void*)&dummy_storage[0])
#define DUMMY_ST ((slay_state*)(void*)&dummy_storage[1])
static slay_feature_map* out_fm;
static slay_state* out_st;
enum { NO_OUT, OUT_FM, OUT_ST };

static void begin_case(void) {
    O_before = O;
    watch_snapshot(0);
    out_fm = DUMMY_FM;
    out_st = DUMMY_ST;
}

static void end_case(const char* label, int line, int32_t want, int expect_null_out, int32_t rc1,
                     int32_t rc2, const slay_error* e, slay_feature_map* fm1, slay_state* st1) {
    char why[1024] = "";
    size_t n = 0;
#define WHY(...) (n += (size_t)snprintf(why + n, n < sizeof why ? sizeof why - n : 0, __VA_ARGS__))
    if (rc1 != want) WHY(" returned %d (%s), expected %d (%s);", (int)rc1, slay_status_string(rc1), (int)want, slay_status_string(want));
    if (e->code != rc1) WHY(" err.code %d != returned %d;", (int)e->code, (int)rc1);
    if (!memchr(e->message, 0, SLAY_ERROR_MESSAGE_SIZE)) WHY(" err.message not NUL-terminated;");
    else if (e->message[0] == 0 || (unsigned char)e->message[0] == 0x5A) WHY(" err.message empty or unwritten;");
    if (rc2 != want) WHY(" with err == NULL returned %d;", (int)rc2);
    if (memcmp(&O, &O_before, sizeof O) != 0) WHY(" an output was modified;");
    watch_snapshot(1);
    if (w_state && (w_blob_size[0] != w_blob_size[1] || memcmp(w_blob[0], w_blob[1], w_blob_size[0]) != 0))
        WHY(" the state was modified;");
    if (w_fm && (w_id[0] != w_id[1] || memcmp(w_par[0], w_par[1], sizeof w_par[0]) != 0))
        WHY(" the feature map was modified;");
    if (expect_null_out == OUT_FM && (fm1 != NULL || out_fm != NULL)) WHY(" *out not set to NULL;");
    if (expect_null_out == OUT_ST && (st1 != NULL || out_st != NULL)) WHY(" *out not set to NULL;");
    if (expect_null_out == NO_OUT && (out_fm != DUMMY_FM || out_st != DUMMY_ST)) WHY(" a handle was written;");
    /* a call that wrongly succeeded may have created a handle */
    if (fm1 && fm1 != DUMMY_FM) slay_feature_map_free(fm1);
    if (out_fm && out_fm != DUMMY_FM) slay_feature_map_free(out_fm);
    if (st1 && st1 != DUMMY_ST) slay_state_free(st1);
    if (out_st && out_st != DUMMY_ST) slay_state_free(out_st);
    check_(why[0] == 0, line, "%s:%s (message: \"%.160s\")", label, why, e->message);
    arm();
#undef WHY
}

/* ERRCASE(label, want, call): `call` uses E as its err argument; it is run with E pointing to a
 * slay_error and again with E == NULL. ERRCASE_OUT also requires *out (out_fm / out_st) == NULL. */
#define ERRCASE_(label, want, nullout, call)                                                     \
    do {                                                                                         \
        slay_error e_, *E_;                                                                      \
        int32_t rc1_, rc2_;                                                                      \
        slay_feature_map* fm1_;                                                                  \
        slay_state* st1_;                                                                        \
        begin_case();                                                                            \
        memset(&e_, 0x5A, sizeof e_);                                                            \
        E_ = &e_;                                                                                \
        rc1_ = (call);                                                                           \
        fm1_ = out_fm; st1_ = out_st;                                                            \
        out_fm = DUMMY_FM; out_st = DUMMY_ST;                                                    \
        E_ = NULL;                                                                               \
        rc2_ = (call);                                                                           \
        end_case(label, __LINE__, want, nullout, rc1_, rc2_, &e_, fm1_, st1_);                   \
    } while (0)
#define ERRCASE(label, want, call) ERRCASE_(label, want, NO_OUT, call)
#define ERRCASE_OUT(label, want, which, call) ERRCASE_(label, want, which, call)
#define EE E_   /* the err argument inside ERRCASE(...) */

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

static uint64_t rng_state = 12345;
static float frand(void) {   /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (float)((double)(rng_state >> 40) / 8388608.0 - 1.0);
}
static void fill(float* x, size_t n) { size_t i; for (i = 0; i < n; i++) x[i] = frand(); }

static slay_tensor t3(float* data, int64_t a, int64_t b, int64_t c) {
    slay_tensor t = slay_tensor_4d(data, a, b, c, 1);
    t.ndim = 3;
    t.strides[0] = b * c; t.strides[1] = c; t.strides[2] = 1;
    t.shape[3] = 0; t.strides[3] = 0;   /* ignored beyond ndim */
    return t;
}

static slay_feature_map_params map_params(int32_t poly, uint64_t seed) {
    slay_feature_map_params p;
    if (slay_feature_map_params_init(&p) != SLAY_OK) memset(&p, 0, sizeof p);
    p.head_dim = D; p.num_heads = H; p.nodes = R; p.poly = poly; p.poly_dim = P; p.prf_dim = M; p.seed = seed;
    return p;
}

static slay_feature_map* new_map(int32_t poly, uint64_t seed) {
    slay_feature_map_params p = map_params(poly, seed);
    slay_feature_map* fm = NULL;
    if (slay_feature_map_create(&p, &fm, NULL) != SLAY_OK) return NULL;
    return fm;
}

static uint64_t identity_of(const slay_feature_map* fm) {
    uint64_t id = 0;
    if (slay_feature_map_identity(fm, &id, NULL) != SLAY_OK) return 0;
    return id;
}

/* ------------------------------------------------------------------------------------------ */
/* Table-driven tensor cases, shared by every function that takes tensors                       */
/* ------------------------------------------------------------------------------------------ */

typedef int32_t (*tensor_call)(slay_tensor* const* tp, slay_error* err);
enum { F_NULLPTR, F_DATA, F_DTYPE, F_NDIM, F_SHAPE, F_STRIDE, F_ALIAS, F_BIG, F_ODD_HALF };
typedef struct { int t, axis; int64_t value; } shape_edit;   /* t = -1: none */
typedef struct { shape_edit a, b; const char* what; } shape_case;

static slay_tensor BASE[4];                 /* valid arguments of the function under test */
static const char* TNAME[4];
static slay_feature_map* g_fm;
static slay_state* g_st;
static int32_t g_role;
static int64_t g_nseq = B;
static const int64_t* g_cu;
static const int32_t* g_slots;
static slay_attention_options g_opts;
static slay_exact_attention_options g_xopts;

static void run_tensor_case(const char* fn, tensor_call call, int nt, int field, int t, int axis,
                            int64_t value, int32_t want) {
    slay_tensor ts[4];
    slay_tensor* tp[4];
    char label[200];
    int i;
    memcpy(ts, BASE, sizeof ts);
    for (i = 0; i < 4; i++) tp[i] = i < nt ? &ts[i] : NULL;
    switch (field) {
    case F_NULLPTR: tp[t] = NULL; sprintf(label, "%s: %s == NULL", fn, TNAME[t]); break;
    case F_DATA: ts[t].data = NULL; sprintf(label, "%s: %s.data == NULL", fn, TNAME[t]); break;
    case F_DTYPE: ts[t].dtype = (int32_t)value; sprintf(label, "%s: %s.dtype = %d", fn, TNAME[t], (int)value); break;
    case F_ODD_HALF:    /* a half-precision tensor whose data is not 2-byte aligned */
        ts[t].dtype = (int32_t)value;
        ts[t].data = (char*)ts[t].data + 1;
        sprintf(label, "%s: %s.dtype = %d at an odd address", fn, TNAME[t], (int)value);
        break;
    case F_NDIM: ts[t].ndim = (int32_t)value; sprintf(label, "%s: %s.ndim = %d", fn, TNAME[t], (int)value); break;
    case F_SHAPE: ts[t].shape[axis] = value; sprintf(label, "%s: %s.shape[%d] = %lld", fn, TNAME[t], axis, (long long)value); break;
    case F_STRIDE: ts[t].strides[axis] = value; sprintf(label, "%s: %s.strides[%d] = %lld", fn, TNAME[t], axis, (long long)value); break;
    case F_ALIAS:   /* output t placed over input `axis`, shifted by `value` floats */
        ts[t].data = (float*)ts[axis].data + value;
        sprintf(label, "%s: %s overlaps %s (offset %lld)", fn, TNAME[t], TNAME[axis], (long long)value);
        break;
    case F_BIG:     /* every tensor: extent 2^40 with stride 2^40 on `axis` */
        for (i = 0; i < nt; i++) { ts[i].shape[axis] = value; ts[i].strides[axis] = value; }
        sprintf(label, "%s: shape[%d] = strides[%d] = %lld on every tensor", fn, axis, axis, (long long)value);
        break;
    }
    ERRCASE(label, want, call(tp, EE));
}

/* The cases every tensor function shares. Tensor nt-1 is the output; `rank` the required ndim. */
static void tensor_cases(const char* fn, tensor_call call, int nt, int rank) {
    int i, j, out = nt - 1, big_axis = rank == 4 ? 1 : 0;
    for (i = 0; i < nt; i++) {
        run_tensor_case(fn, call, nt, F_NULLPTR, i, 0, 0, SLAY_ERR_INVALID_ARGUMENT);
        run_tensor_case(fn, call, nt, F_DATA, i, 0, 0, SLAY_ERR_INVALID_ARGUMENT);
        run_tensor_case(fn, call, nt, F_DTYPE, i, 0, SLAY_DTYPE_F64, SLAY_ERR_DTYPE);
        /* F16 and BF16 are accepted by every function here; their data must be 2-byte aligned. */
        run_tensor_case(fn, call, nt, F_ODD_HALF, i, 0, SLAY_DTYPE_F16, SLAY_ERR_LAYOUT);
        run_tensor_case(fn, call, nt, F_ODD_HALF, i, 0, SLAY_DTYPE_BF16, SLAY_ERR_LAYOUT);
        run_tensor_case(fn, call, nt, F_DTYPE, i, 0, 4, SLAY_ERR_DTYPE);
        run_tensor_case(fn, call, nt, F_DTYPE, i, 0, 99, SLAY_ERR_DTYPE);
        run_tensor_case(fn, call, nt, F_DTYPE, i, 0, -1, SLAY_ERR_DTYPE);
        run_tensor_case(fn, call, nt, F_NDIM, i, 0, rank - 1, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_NDIM, i, 0, rank + 1, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_NDIM, i, 0, 0, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_NDIM, i, 0, -1, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_NDIM, i, 0, 99, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_SHAPE, i, 0, 0, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_SHAPE, i, rank - 1, 0, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_SHAPE, i, 1, -1, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_SHAPE, i, rank - 1, INT64_MIN, SLAY_ERR_SHAPE);
        run_tensor_case(fn, call, nt, F_STRIDE, i, rank - 1, -1, SLAY_ERR_LAYOUT);
        run_tensor_case(fn, call, nt, F_STRIDE, i, 0, INT64_MIN, SLAY_ERR_LAYOUT);
    }
    /* outputs must not overlap themselves: stride 0 on an extent > 1, or interleaved axes */
    run_tensor_case(fn, call, nt, F_STRIDE, out, 1, 0, SLAY_ERR_LAYOUT);
    run_tensor_case(fn, call, nt, F_STRIDE, out, rank - 1, 0, SLAY_ERR_LAYOUT);
    run_tensor_case(fn, call, nt, F_STRIDE, out, rank - 2, 1, SLAY_ERR_LAYOUT);
    /* ... nor any input */
    for (j = 0; j < out; j++) {
        run_tensor_case(fn, call, nt, F_ALIAS, out, j, 0, SLAY_ERR_LAYOUT);
        run_tensor_case(fn, call, nt, F_ALIAS, out, j, 2, SLAY_ERR_LAYOUT);
        run_tensor_case(fn, call, nt, F_ALIAS, out, j, -5, SLAY_ERR_LAYOUT);
    }
    run_tensor_case(fn, call, nt, F_BIG, -1, big_axis, (int64_t)1 << 40, SLAY_ERR_OVERFLOW);
}

/* Dimensions that disagree (each edit keeps every tensor well-formed on its own). */
static void shape_cases(const char* fn, tensor_call call, int nt, const shape_case* cases, int n) {
    int c, i;
    for (c = 0; c < n; c++) {
        slay_tensor ts[4];
        slay_tensor* tp[4];
        char label[200];
        memcpy(ts, BASE, sizeof ts);
        for (i = 0; i < 4; i++) tp[i] = i < nt ? &ts[i] : NULL;
        ts[cases[c].a.t].shape[cases[c].a.axis] = cases[c].a.value;
        if (cases[c].b.t >= 0) ts[cases[c].b.t].shape[cases[c].b.axis] = cases[c].b.value;
        sprintf(label, "%s: %s", fn, cases[c].what);
        ERRCASE(label, SLAY_ERR_SHAPE, call(tp, EE));
    }
}

/* slay_attention_options fields out of range, for every function that takes them. */
enum { O_SIZE, O_CAUSAL, O_DELTA, O_CHUNK, O_THREADS, O_ITH, O_NTH };
static const struct { int field; double value; int32_t want; const char* what; } OPTION_CASES[] = {
    {O_SIZE, 4, SLAY_ERR_INVALID_ARGUMENT, "struct_size 4"},
    {O_SIZE, -8, SLAY_ERR_INVALID_ARGUMENT, "struct_size sizeof - 8"},
    {O_SIZE, 64, SLAY_ERR_VERSION_MISMATCH, "struct_size sizeof + 64"},
    {O_CAUSAL, 2, SLAY_ERR_INVALID_ARGUMENT, "causal 2"},
    {O_CAUSAL, -1, SLAY_ERR_INVALID_ARGUMENT, "causal -1"},
    {O_DELTA, -1e-6, SLAY_ERR_INVALID_ARGUMENT, "delta -1e-6"},
    {O_DELTA, NAN, SLAY_ERR_INVALID_ARGUMENT, "delta NaN"},
    {O_DELTA, INFINITY, SLAY_ERR_INVALID_ARGUMENT, "delta +inf"},
    {O_CHUNK, -1, SLAY_ERR_INVALID_ARGUMENT, "chunk_size -1"},
    {O_CHUNK, 5000, SLAY_ERR_INVALID_ARGUMENT, "chunk_size 5000"},
    {O_THREADS, 0, SLAY_ERR_INVALID_ARGUMENT, "n_threads 0"},
    {O_THREADS, -1, SLAY_ERR_INVALID_ARGUMENT, "n_threads -1"},
    {O_THREADS, 1000, SLAY_ERR_INVALID_ARGUMENT, "n_threads 1000"},
    {O_ITH, -1, SLAY_ERR_INVALID_ARGUMENT, "ith -1"},
    {O_ITH, 1, SLAY_ERR_INVALID_ARGUMENT, "ith 1 with nth 1"},
    {O_NTH, 0, SLAY_ERR_INVALID_ARGUMENT, "nth 0"},
    {O_NTH, 65537, SLAY_ERR_INVALID_ARGUMENT, "nth 65537"},
};

static void option_cases(const char* fn, tensor_call call, int nt) {
    size_t c;
    int i;
    for (c = 0; c < sizeof OPTION_CASES / sizeof OPTION_CASES[0]; c++) {
        slay_tensor ts[4];
        slay_tensor* tp[4];
        char label[200];
        double v = OPTION_CASES[c].value;
        memcpy(ts, BASE, sizeof ts);
        for (i = 0; i < 4; i++) tp[i] = i < nt ? &ts[i] : NULL;
        if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
        switch (OPTION_CASES[c].field) {
        case O_SIZE: g_opts.struct_size = v == 4 ? 4u : (uint32_t)((int)sizeof g_opts + (int)v); break;
        case O_CAUSAL: g_opts.causal = (int32_t)v; break;
        case O_DELTA: g_opts.delta = v; break;
        case O_CHUNK: g_opts.chunk_size = (int64_t)v; break;
        case O_THREADS: g_opts.n_threads = (int32_t)v; break;
        case O_ITH: g_opts.ith = (int32_t)v; break;
        case O_NTH: g_opts.nth = (int32_t)v; break;
        }
        sprintf(label, "%s: options %s", fn, OPTION_CASES[c].what);
        ERRCASE(label, OPTION_CASES[c].want, call(tp, EE));
    }
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
}

/* The calls under test, with the tensors in tp[] and everything else from the globals. */
static int32_t call_apply(slay_tensor* const* tp, slay_error* err) {
    return slay_feature_map_apply(g_fm, g_role, tp[0], tp[1], err);
}
static int32_t call_linear(slay_tensor* const* tp, slay_error* err) {
    return slay_linear_attention(g_fm, tp[0], tp[1], tp[2], tp[3], &g_opts, err);
}
static int32_t call_exact(slay_tensor* const* tp, slay_error* err) {
    return slay_exact_attention(tp[0], tp[1], tp[2], tp[3], &g_xopts, err);
}
static int32_t call_prefill(slay_tensor* const* tp, slay_error* err) {
    return slay_state_prefill(g_st, tp[0], tp[1], tp[2], tp[3], g_cu, g_slots, g_nseq, &g_opts, err);
}
static int32_t call_query(slay_tensor* const* tp, slay_error* err) {
    return slay_state_query(g_st, tp[0], tp[1], g_cu, g_slots, g_nseq, &g_opts, err);
}
static int32_t call_step(slay_tensor* const* tp, slay_error* err) {
    return slay_state_step(g_st, tp[0], tp[1], tp[2], tp[3], g_slots, g_nseq, &g_opts, err);
}

/* q [B,T,HQ,D], k [B,T,H,D], v [B,T,H,DV], out [B,T,HQ,DV] in the arena (grouped-query: HQ = 2H). */
static void base_attention(int for_query) {
    memset(BASE, 0, sizeof BASE);
    BASE[0] = slay_tensor_4d(RG(0), B, T, HQ, D);
    BASE[1] = slay_tensor_4d(RG(1), B, T, H, D);
    BASE[2] = slay_tensor_4d(RG(2), B, T, H, DV);
    BASE[3] = slay_tensor_4d(RG(3), B, T, HQ, DV);
    TNAME[0] = "q"; TNAME[1] = "k"; TNAME[2] = "v"; TNAME[3] = "out";
    if (for_query) { BASE[1] = BASE[3]; TNAME[1] = "out"; }   /* state_query: q, out */
}

static const shape_case ATTENTION_SHAPES[] = {
    {{0, 3, D + 1}, {-1, 0, 0}, "q head_dim differs from k"},
    {{1, 3, D - 1}, {-1, 0, 0}, "k head_dim differs from q"},
    {{0, 2, 3}, {-1, 0, 0}, "q heads 3, not a multiple of k heads 2"},
    {{0, 0, 1}, {-1, 0, 0}, "q batch 1, k batch 2"},
    {{1, 1, T + 1}, {-1, 0, 0}, "k length differs from q"},
    {{2, 0, 1}, {-1, 0, 0}, "v batch differs"},
    {{2, 1, T - 1}, {-1, 0, 0}, "v length differs"},
    {{2, 2, 1}, {-1, 0, 0}, "v heads differ from k"},
    {{3, 3, DV - 1}, {-1, 0, 0}, "out value dim differs from v"},
    {{3, 2, H}, {-1, 0, 0}, "out heads differ from q"},
    {{3, 1, T - 1}, {-1, 0, 0}, "out length differs"},
    {{3, 0, 1}, {-1, 0, 0}, "out batch differs"},
};
static const shape_case MAP_SHAPES[] = {   /* against the feature map */
    {{0, 3, D - 1}, {1, 3, D - 1}, "q and k head_dim differ from the map"},
    {{1, 2, 1}, {2, 2, 1}, "k and v have 1 head, the map 2"},
    {{1, 2, HQ}, {2, 2, HQ}, "k and v have 4 heads, the map 2"},
};

/* ------------------------------------------------------------------------------------------ */
/* Sections                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_versions_and_status(void) {
    char expect[64];
    int32_t a, b;
    sprintf(expect, "%d.%d.%d", SLAY_VERSION_MAJOR, SLAY_VERSION_MINOR, SLAY_VERSION_PATCH);
    CHECK(slay_version_string() != NULL && strcmp(slay_version_string(), expect) == 0,
          "slay_version_string() is \"%s\", header says %s", slay_version_string() ? slay_version_string() : "(null)", expect);
    CHECK(slay_version_number() == SLAY_VERSION_NUMBER, "slay_version_number() %d != %d", (int)slay_version_number(), SLAY_VERSION_NUMBER);
    CHECK(slay_abi_version() == SLAY_ABI_VERSION, "slay_abi_version() %d != %d", (int)slay_abi_version(), SLAY_ABI_VERSION);
    {
        const char *kv = slay_kernel_variant(), *env = getenv("SLAY_KERNELS");
        CHECK(kv != NULL && (strcmp(kv, "avx2-fma") == 0 || strcmp(kv, "portable") == 0),
              "slay_kernel_variant() is \"%s\"", kv ? kv : "(null)");
        CHECK(kv != NULL && slay_kernel_variant() != NULL && strcmp(kv, slay_kernel_variant()) == 0, "slay_kernel_variant() changes");
        if (env && strcmp(env, "portable") == 0)
            CHECK(kv != NULL && strcmp(kv, "portable") == 0, "SLAY_KERNELS=portable but slay_kernel_variant() is \"%s\"", kv ? kv : "(null)");
    }
    for (a = 0; a >= -13; a--) {
        const char* s = slay_status_string(a);
        CHECK(s != NULL && s[0] != 0 && strcmp(s, "unknown status") != 0, "slay_status_string(%d) is \"%s\"", (int)a, s ? s : "(null)");
        for (b = a - 1; b >= -13; b--)
            CHECK(s && slay_status_string(b) && strcmp(s, slay_status_string(b)) != 0,
                  "slay_status_string(%d) == slay_status_string(%d) == \"%s\"", (int)a, (int)b, s ? s : "(null)");
    }
    {
        static const int32_t unknown[] = {12345, -14, 1, -100, INT32_MIN, INT32_MAX};
        size_t i;
        for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
            const char* s = slay_status_string(unknown[i]);
            CHECK(s != NULL && strcmp(s, "unknown status") == 0, "slay_status_string(%ld) is \"%s\", expected \"unknown status\"",
                  (long)unknown[i], s ? s : "(null)");
        }
    }
}

static void test_inits(void) {
    slay_feature_map_params p;
    slay_attention_options o;
    slay_exact_attention_options x;
    CHECK(slay_feature_map_params_init(NULL) == SLAY_ERR_INVALID_ARGUMENT, "slay_feature_map_params_init(NULL)");
    CHECK(slay_attention_options_init(NULL) == SLAY_ERR_INVALID_ARGUMENT, "slay_attention_options_init(NULL)");
    CHECK(slay_exact_attention_options_init(NULL) == SLAY_ERR_INVALID_ARGUMENT, "slay_exact_attention_options_init(NULL)");
    memset(&p, 0x5A, sizeof p);
    CHECK(slay_feature_map_params_init(&p) == SLAY_OK && p.struct_size == sizeof p && p.kind == SLAY_KIND_SLAY &&
          p.head_dim == 0 && p.num_heads == 1 && p.nodes == 2 && p.poly == SLAY_POLY_ANCHOR && p.poly_dim == 8 &&
          p.prf_dim == 8 && p.eps == 1e-6 && p.prf_clamp == 20 && p.seed == 0 && p.max_length == 0 &&
          p.prf_orthogonal == 0 && p.prf_shared == 0 && p.expansion == SLAY_EXPANSION_QUADRATURE && p.degree == 2,
          "slay_feature_map_params_init defaults differ from slay.h");
    memset(&o, 0x5A, sizeof o);
    CHECK(slay_attention_options_init(&o) == SLAY_OK && o.struct_size == sizeof o && o.causal == 1 && o.delta == 1e-6 &&
          o.chunk_size == 0 && o.n_threads == 1 && o.ith == 0 && o.nth == 1 && o.denominator == SLAY_DENOMINATOR_ADD &&
          o.normalize == 1 && o.decay == NULL && o.log_decay == NULL && o.query_gate_logits == NULL &&
          o.key_gate_logits == NULL,
          "slay_attention_options_init defaults differ from slay.h");
    memset(&x, 0x5A, sizeof x);
    CHECK(slay_exact_attention_options_init(&x) == SLAY_OK && x.struct_size == sizeof x && x.kernel == SLAY_EXACT_SOFTMAX &&
          x.causal == 1 && x.scale == 0 && x.eps == 1e-6 && x.delta == 1e-6 && x.n_threads == 1,
          "slay_exact_attention_options_init defaults differ from slay.h");
}

/* slay_feature_map_params fields out of range. */
enum { P_SIZE, P_KIND, P_HEAD_DIM, P_HEADS, P_NODES, P_POLY, P_POLY_DIM, P_PRF_DIM, P_EPS, P_CLAMP, P_BIG, P_EXPANSION,
       P_DEGREE };
static const struct { int field; double value; int32_t want; const char* what; } PARAM_CASES[] = {
    {P_SIZE, 4, SLAY_ERR_INVALID_ARGUMENT, "struct_size 4"},
    {P_SIZE, 0, SLAY_ERR_INVALID_ARGUMENT, "struct_size 0"},
    {P_SIZE, -8, SLAY_ERR_INVALID_ARGUMENT, "struct_size sizeof - 8"},
    {P_SIZE, 64, SLAY_ERR_VERSION_MISMATCH, "struct_size sizeof + 64"},
    {P_KIND, 0, SLAY_ERR_INVALID_ARGUMENT, "kind 0"},
    {P_KIND, 13, SLAY_ERR_INVALID_ARGUMENT, "kind 13"},
    {P_KIND, -1, SLAY_ERR_INVALID_ARGUMENT, "kind -1"},
    {P_POLY, 0, SLAY_ERR_INVALID_ARGUMENT, "poly 0"},
    {P_POLY, 8, SLAY_ERR_INVALID_ARGUMENT, "poly 8"},
    {P_POLY, -1, SLAY_ERR_INVALID_ARGUMENT, "poly -1"},
    {P_NODES, 0, SLAY_ERR_INVALID_ARGUMENT, "nodes 0"},
    {P_NODES, 65, SLAY_ERR_INVALID_ARGUMENT, "nodes 65"},
    {P_NODES, -2, SLAY_ERR_INVALID_ARGUMENT, "nodes -2"},
    {P_EPS, 0, SLAY_ERR_INVALID_ARGUMENT, "eps 0"},
    {P_EPS, -1e-6, SLAY_ERR_INVALID_ARGUMENT, "eps -1e-6"},
    {P_EPS, NAN, SLAY_ERR_INVALID_ARGUMENT, "eps NaN"},
    {P_EPS, INFINITY, SLAY_ERR_INVALID_ARGUMENT, "eps +inf"},
    {P_EPS, -INFINITY, SLAY_ERR_INVALID_ARGUMENT, "eps -inf"},
    {P_CLAMP, 0, SLAY_ERR_INVALID_ARGUMENT, "prf_clamp 0"},
    {P_CLAMP, -20, SLAY_ERR_INVALID_ARGUMENT, "prf_clamp -20"},
    {P_CLAMP, NAN, SLAY_ERR_INVALID_ARGUMENT, "prf_clamp NaN"},
    {P_CLAMP, INFINITY, SLAY_ERR_INVALID_ARGUMENT, "prf_clamp +inf"},
    {P_HEAD_DIM, 0, SLAY_ERR_SHAPE, "head_dim 0 (the default: must be set)"},
    {P_HEAD_DIM, -16, SLAY_ERR_SHAPE, "head_dim -16"},
    {P_HEAD_DIM, 65537, SLAY_ERR_SHAPE, "head_dim 65537"},
    {P_HEADS, 0, SLAY_ERR_SHAPE, "num_heads 0"},
    {P_HEADS, -1, SLAY_ERR_SHAPE, "num_heads -1"},
    {P_HEADS, 65537, SLAY_ERR_SHAPE, "num_heads 65537"},
    {P_POLY_DIM, 0, SLAY_ERR_SHAPE, "poly_dim 0 (anchor)"},
    {P_POLY_DIM, -8, SLAY_ERR_SHAPE, "poly_dim -8 (anchor)"},
    {P_PRF_DIM, 0, SLAY_ERR_SHAPE, "prf_dim 0"},
    {P_PRF_DIM, -8, SLAY_ERR_SHAPE, "prf_dim -8"},
    {P_BIG, 1, SLAY_ERR_OVERFLOW, "m = R*P*M = 64*512*1024 > 2^24"},
    {P_BIG, 2, SLAY_ERR_OVERFLOW, "exact_full with head_dim 65536: P' = 2^32"},
    {P_BIG, 3, SLAY_ERR_OVERFLOW, "omega R*H*d*M = 64*65536*65536*1 floats"},
    {P_BIG, 4, SLAY_ERR_OVERFLOW, "Taylor degree 8 of head_dim 65536"},
    {P_BIG, 5, SLAY_ERR_OVERFLOW, "Taylor degree 2 of head_dim 4096: m > 2^22"},
    {P_EXPANSION, 2, SLAY_ERR_INVALID_ARGUMENT, "expansion 2"},
    {P_EXPANSION, -1, SLAY_ERR_INVALID_ARGUMENT, "expansion -1"},
    {P_DEGREE, 1, SLAY_ERR_INVALID_ARGUMENT, "Taylor degree 1"},
    {P_DEGREE, 9, SLAY_ERR_INVALID_ARGUMENT, "Taylor degree 9"},
    {P_DEGREE, -2147483648.0, SLAY_ERR_INVALID_ARGUMENT, "Taylor degree INT32_MIN"},
};

static void test_create(void) {
    size_t c;
    slay_feature_map_params p = map_params(SLAY_POLY_ANCHOR, 7);
    ERRCASE_OUT("create: params == NULL", SLAY_ERR_INVALID_ARGUMENT, OUT_FM, slay_feature_map_create(NULL, &out_fm, EE));
    ERRCASE("create: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_create(&p, NULL, EE));
    for (c = 0; c < sizeof PARAM_CASES / sizeof PARAM_CASES[0]; c++) {
        double v = PARAM_CASES[c].value;
        char label[200];
        p = map_params(SLAY_POLY_ANCHOR, 7);
        switch (PARAM_CASES[c].field) {
        case P_SIZE: p.struct_size = v == 4 || v == 0 ? (uint32_t)v : (uint32_t)((int)sizeof p + (int)v); break;
        case P_KIND: p.kind = (int32_t)v; break;
        case P_HEAD_DIM: p.head_dim = (int64_t)v; break;
        case P_HEADS: p.num_heads = (int64_t)v; break;
        case P_NODES: p.nodes = (int32_t)v; break;
        case P_POLY: p.poly = (int32_t)v; break;
        case P_POLY_DIM: p.poly_dim = (int64_t)v; break;
        case P_PRF_DIM: p.prf_dim = (int64_t)v; break;
        case P_EPS: p.eps = v; break;
        case P_CLAMP: p.prf_clamp = v; break;
        case P_BIG:
            if (v == 1) { p.nodes = 64; p.poly_dim = 512; p.prf_dim = 1024; }
            if (v == 2) { p.poly = SLAY_POLY_EXACT_FULL; p.head_dim = 65536; p.prf_dim = 1; p.nodes = 1; }
            if (v == 3) { p.nodes = 64; p.num_heads = 65536; p.head_dim = 65536; p.poly_dim = 1; p.prf_dim = 1; }
            if (v == 4) { p.expansion = SLAY_EXPANSION_TAYLOR; p.degree = 8; p.head_dim = 65536; }
            if (v == 5) { p.expansion = SLAY_EXPANSION_TAYLOR; p.degree = 2; p.head_dim = 4096; }
            break;
        case P_EXPANSION: p.expansion = (int32_t)v; break;
        case P_DEGREE: p.expansion = SLAY_EXPANSION_TAYLOR; p.degree = (int32_t)v; break;
        }
        sprintf(label, "create: %s", PARAM_CASES[c].what);
        ERRCASE_OUT(label, PARAM_CASES[c].want, OUT_FM, slay_feature_map_create(&p, &out_fm, EE));
    }
    {   /* the edges of the documented ranges are accepted */
        static const struct { int64_t d, h; int32_t nodes; int64_t pd, md; } edge[] = {
            {65536, 1, 1, 1, 1}, {1, 65536, 1, 1, 1}, {4, 1, 64, 1, 1}, {4, 1, 1, 65536, 1}, {4, 1, 1, 1, 65536},
        };
        for (c = 0; c < sizeof edge / sizeof edge[0]; c++) {
            p = map_params(SLAY_POLY_ANCHOR, 7);
            p.head_dim = edge[c].d; p.num_heads = edge[c].h; p.nodes = edge[c].nodes; p.poly_dim = edge[c].pd; p.prf_dim = edge[c].md;
            out_fm = NULL;
            OK(slay_feature_map_create(&p, &out_fm, E));
            slay_feature_map_free(out_fm);
        }
    }
    /* the Taylor expansion ignores the quadrature fields and the seed */
    p = map_params(SLAY_POLY_ANCHOR, 7);
    p.expansion = SLAY_EXPANSION_TAYLOR; p.degree = 3; p.head_dim = 5; p.nodes = 0; p.poly = 0; p.prf_dim = 0;
    out_fm = NULL;
    OK(slay_feature_map_create(&p, &out_fm, E));
    {
        int64_t m = 0;
        OK(slay_feature_map_dim(out_fm, &m, E));
        CHECK(m == 15 + 35, "Taylor degree 3 of head_dim 5 has C(6,2) + C(7,3) = 50 features, got %lld", (long long)m);
    }
    slay_feature_map_free(out_fm);
    /* poly_dim is ignored unless poly is SLAY_POLY_ANCHOR */
    p = map_params(SLAY_POLY_EXACT, 7);
    p.poly_dim = 0;
    out_fm = NULL;
    OK(slay_feature_map_create(&p, &out_fm, E));
    slay_feature_map_free(out_fm);
    out_fm = NULL;
    slay_feature_map_free(NULL);   /* a no-op */
    slay_state_free(NULL);
    CHECK(1, "free(NULL)");
}

static void test_map_queries(slay_feature_map* fm, slay_feature_map* fx) {
    float* dst = RG(0);
    static float src[R * H * D * M];
    int64_t omega_n = R * H * D * M, anchors_n = P * D;
    int i;
    ERRCASE("dim: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_dim(NULL, &O.i64[0], EE));
    ERRCASE("dim: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_dim(fm, NULL, EE));
    ERRCASE("identity: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_identity(NULL, &O.u64, EE));
    ERRCASE("identity: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_identity(fm, NULL, EE));
    O.params.struct_size = sizeof O.params;
    ERRCASE("config: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_config(NULL, &O.params, EE));
    ERRCASE("config: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_config(fm, NULL, EE));
    O.params.struct_size = 4;
    ERRCASE("config: out->struct_size 4", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_config(fm, &O.params, EE));
    O.params.struct_size = sizeof O.params - 8;
    ERRCASE("config: out->struct_size sizeof - 8", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_config(fm, &O.params, EE));
    O.params.struct_size = sizeof O.params + 64;
    ERRCASE("config: out->struct_size sizeof + 64", SLAY_ERR_VERSION_MISMATCH, slay_feature_map_config(fm, &O.params, EE));

    ERRCASE("param_count: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_count(NULL, &O.i32, EE));
    ERRCASE("param_count: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_count(fm, NULL, EE));
    ERRCASE("param_name: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(NULL, 0, &O.name, EE));
    ERRCASE("param_name: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(fm, 0, NULL, EE));
    ERRCASE("param_name: index -1", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(fm, -1, &O.name, EE));
    ERRCASE("param_name: index == count", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(fm, 2, &O.name, EE));
    ERRCASE("param_name: index INT32_MAX", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(fm, INT32_MAX, &O.name, EE));
    ERRCASE("param_name: index 1 of a 1-parameter map", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_name(fx, 1, &O.name, EE));

    ERRCASE("param_shape: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(NULL, "omega", &O.i32, O.i64, EE));
    ERRCASE("param_shape: name == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(fm, NULL, &O.i32, O.i64, EE));
    ERRCASE("param_shape: out_ndim == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(fm, "omega", NULL, O.i64, EE));
    ERRCASE("param_shape: out_shape == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(fm, "omega", &O.i32, NULL, EE));
    ERRCASE("param_shape: unknown name", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(fm, "nope", &O.i32, O.i64, EE));
    {   /* a message longer than SLAY_ERROR_MESSAGE_SIZE is truncated, still NUL-terminated */
        static char long_name[1000];
        memset(long_name, 'x', sizeof long_name - 1);
        ERRCASE("param_shape: 999-character unknown name", SLAY_ERR_INVALID_ARGUMENT,
                slay_feature_map_param_shape(fm, long_name, &O.i32, O.i64, EE));
    }
    ERRCASE("param_shape: empty name", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_param_shape(fm, "", &O.i32, O.i64, EE));
    ERRCASE("param_shape: \"anchors\" of an exact-poly map", SLAY_ERR_INVALID_ARGUMENT,
            slay_feature_map_param_shape(fx, "anchors", &O.i32, O.i64, EE));

    ERRCASE("get_param: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_get_param(NULL, "omega", dst, omega_n, EE));
    ERRCASE("get_param: name == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_get_param(fm, NULL, dst, omega_n, EE));
    ERRCASE("get_param: dst == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_get_param(fm, "omega", NULL, omega_n, EE));
    ERRCASE("get_param: unknown name", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_get_param(fm, "nope", dst, omega_n, EE));
    ERRCASE("get_param: count - 1", SLAY_ERR_SHAPE, slay_feature_map_get_param(fm, "omega", dst, omega_n - 1, EE));
    ERRCASE("get_param: count + 1", SLAY_ERR_SHAPE, slay_feature_map_get_param(fm, "anchors", dst, anchors_n + 1, EE));
    ERRCASE("get_param: count 0", SLAY_ERR_SHAPE, slay_feature_map_get_param(fm, "omega", dst, 0, EE));
    ERRCASE("get_param: count -1", SLAY_ERR_SHAPE, slay_feature_map_get_param(fm, "omega", dst, -1, EE));

    /* set_param: the map must be unchanged after each failure */
    if (slay_feature_map_get_param(fm, "omega", src, omega_n, NULL) != SLAY_OK) CHECK(0, "get_param omega");
    w_fm = fm;
    ERRCASE("set_param: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(NULL, "omega", src, omega_n, EE));
    ERRCASE("set_param: name == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, NULL, src, omega_n, EE));
    ERRCASE("set_param: src == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, "omega", NULL, omega_n, EE));
    ERRCASE("set_param: unknown name", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, "nope", src, omega_n, EE));
    ERRCASE("set_param: count - 1", SLAY_ERR_SHAPE, slay_feature_map_set_param(fm, "omega", src, omega_n - 1, EE));
    ERRCASE("set_param: count + 1", SLAY_ERR_SHAPE, slay_feature_map_set_param(fm, "omega", src, omega_n + 1, EE));
    ERRCASE("set_param: count 0", SLAY_ERR_SHAPE, slay_feature_map_set_param(fm, "omega", src, 0, EE));
    for (i = 0; i < omega_n; i++) src[i] += 0.25f;   /* a valid change, so a partial write would show */
    src[omega_n - 1] = NAN;
    ERRCASE("set_param: last value NaN", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, "omega", src, omega_n, EE));
    src[omega_n - 1] = 0;
    src[0] = INFINITY;
    ERRCASE("set_param: first value +inf", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, "omega", src, omega_n, EE));
    src[0] = -INFINITY;
    ERRCASE("set_param: first value -inf", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(fm, "omega", src, omega_n, EE));
    w_fm = NULL;
}

/* SLAY_POLY_TENSORSKETCH and SLAY_POLY_NYSTROM: create, m = R·P·M, their parameters, P out of
 * range, and set_param values the polynomial refuses (the map unchanged after each). */
static void test_sketch_polys(void) {
    static float sketch[2 * 2 * D], anchors[P * D], x[H * D], feats[H * MF];
    slay_feature_map_params p;
    slay_feature_map *ts = NULL, *ny = NULL;
    slay_tensor tx = slay_tensor_4d(x, 1, 1, H, D), tf = slay_tensor_4d(feats, 1, 1, H, MF);
    int32_t ndim = 0;
    int64_t shape[SLAY_MAX_DIMS], dim = 0;
    uint64_t before;
    int i;
    p = map_params(SLAY_POLY_TENSORSKETCH, 7);
    OK(slay_feature_map_create(&p, &ts, E));
    p = map_params(SLAY_POLY_NYSTROM, 7);
    OK(slay_feature_map_create(&p, &ny, E));
    if (!ts || !ny) { CHECK(0, "create of the sketch-poly maps failed"); slay_feature_map_free(ts); slay_feature_map_free(ny); return; }
    OK(slay_feature_map_dim(ts, &dim, E));
    CHECK(dim == MF, "tensorsketch m = %ld, expected R*P*M = %d", (long)dim, MF);
    OK(slay_feature_map_dim(ny, &dim, E));
    CHECK(dim == MF, "nystrom m = %ld, expected R*P*M = %d", (long)dim, MF);
    OK(slay_feature_map_param_shape(ts, "sketch", &ndim, shape, E));
    CHECK(ndim == 3 && shape[0] == 2 && shape[1] == 2 && shape[2] == D, "tensorsketch \"sketch\" shape");
    OK(slay_feature_map_param_shape(ny, "anchors", &ndim, shape, E));
    CHECK(ndim == 2 && shape[0] == P && shape[1] == D, "nystrom \"anchors\" shape");
    for (i = 0; i < H * D; i++) x[i] = (float)(i + 1) * (i % 2 ? -1.0f : 1.0f);
    OK(slay_feature_map_apply(ts, SLAY_ROLE_QUERY, &tx, &tf, E));
    OK(slay_feature_map_apply(ny, SLAY_ROLE_KEY, &tx, &tf, E));

    p = map_params(SLAY_POLY_NYSTROM, 7);
    p.poly_dim = 257;
    ERRCASE_OUT("create: nystrom poly_dim 257", SLAY_ERR_SHAPE, OUT_FM, slay_feature_map_create(&p, &out_fm, EE));
    p.poly_dim = 0;
    ERRCASE_OUT("create: nystrom poly_dim 0", SLAY_ERR_SHAPE, OUT_FM, slay_feature_map_create(&p, &out_fm, EE));
    p = map_params(SLAY_POLY_TENSORSKETCH, 7);
    p.poly_dim = 65537;
    ERRCASE_OUT("create: tensorsketch poly_dim 65537", SLAY_ERR_SHAPE, OUT_FM, slay_feature_map_create(&p, &out_fm, EE));

    if (slay_feature_map_get_param(ts, "sketch", sketch, 4 * D, NULL) != SLAY_OK) CHECK(0, "get_param sketch");
    w_fm = ts;
    ERRCASE("set_param sketch: count - 1", SLAY_ERR_SHAPE, slay_feature_map_set_param(ts, "sketch", sketch, 4 * D - 1, EE));
    ERRCASE("set_param anchors of a tensorsketch map", SLAY_ERR_INVALID_ARGUMENT,
            slay_feature_map_set_param(ts, "anchors", anchors, P * D, EE));
    {
        static const struct { int index; float value; const char* what; } bad[] = {
            {0, 0.5f, "set_param sketch: bucket 0.5"}, {1, (float)P, "set_param sketch: bucket P"},
            {2 * D + 1, -1.0f, "set_param sketch: bucket -1"}, {D, 0.0f, "set_param sketch: sign 0"},
            {3 * D + 1, 2.0f, "set_param sketch: sign 2"}, {D + 1, NAN, "set_param sketch: sign NaN"},
        };
        size_t c;
        for (c = 0; c < sizeof bad / sizeof bad[0]; c++) {
            float saved = sketch[bad[c].index];
            sketch[bad[c].index] = bad[c].value;
            ERRCASE(bad[c].what, SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(ts, "sketch", sketch, 4 * D, EE));
            sketch[bad[c].index] = saved;
        }
    }
    w_fm = NULL;
    before = identity_of(ts);
    sketch[0] = (float)((int)sketch[0] + 1) == (float)P ? 0.0f : sketch[0] + 1.0f;   /* a valid change */
    OK(slay_feature_map_set_param(ts, "sketch", sketch, 4 * D, E));
    CHECK(identity_of(ts) != before, "set_param sketch changes the identity");

    if (slay_feature_map_get_param(ny, "anchors", anchors, P * D, NULL) != SLAY_OK) CHECK(0, "get_param anchors");
    w_fm = ny;
    ERRCASE("set_param nystrom anchors: count + 1", SLAY_ERR_SHAPE, slay_feature_map_set_param(ny, "anchors", anchors, P * D + 1, EE));
    anchors[3] = INFINITY;
    ERRCASE("set_param nystrom anchors: +inf", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(ny, "anchors", anchors, P * D, EE));
    ERRCASE("set_param sketch of a nystrom map", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_set_param(ny, "sketch", sketch, 4 * D, EE));
    w_fm = NULL;
    anchors[3] = 0.5f;
    before = identity_of(ny);
    OK(slay_feature_map_set_param(ny, "anchors", anchors, P * D, E));
    CHECK(identity_of(ny) != before, "set_param nystrom anchors changes the identity");
    OK(slay_feature_map_apply(ny, SLAY_ROLE_QUERY, &tx, &tf, E));
    slay_feature_map_free(ts);
    slay_feature_map_free(ny);
}

static void test_apply_errors(slay_feature_map* fm) {
    static const shape_case shapes[] = {
        {{0, 3, D - 1}, {-1, 0, 0}, "x head_dim differs from the map"},
        {{0, 2, 1}, {-1, 0, 0}, "x has 1 head, the map 2"},
        {{0, 2, 3}, {-1, 0, 0}, "x has 3 heads, the map 2"},
        {{1, 3, MF - 1}, {-1, 0, 0}, "out feature dim m - 1"},
        {{1, 2, 1}, {-1, 0, 0}, "out heads differ"},
        {{1, 1, T - 1}, {-1, 0, 0}, "out length differs"},
        {{1, 0, 1}, {-1, 0, 0}, "out batch differs"},
    };
    slay_tensor x = slay_tensor_4d(RG(0), B, T, H, D), out = slay_tensor_4d(RG(2), B, T, H, MF);
    g_fm = fm;
    g_role = SLAY_ROLE_QUERY;
    memset(BASE, 0, sizeof BASE);
    BASE[0] = x; BASE[1] = out;
    TNAME[0] = "x"; TNAME[1] = "out";
    ERRCASE("apply: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_apply(NULL, SLAY_ROLE_QUERY, &x, &out, EE));
    ERRCASE("apply: role 2", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_apply(fm, 2, &x, &out, EE));
    ERRCASE("apply: role -1", SLAY_ERR_INVALID_ARGUMENT, slay_feature_map_apply(fm, -1, &x, &out, EE));
    tensor_cases("apply", call_apply, 2, 4);
    g_role = SLAY_ROLE_KEY;
    shape_cases("apply", call_apply, 2, shapes, (int)(sizeof shapes / sizeof shapes[0]));
}

static void test_attention_errors(slay_feature_map* fm) {
    static const struct { int field; double value; const char* what; } exact_cases[] = {
        {0, 4, "struct_size 4"}, {0, 64, "struct_size sizeof + 64"}, {1, 0, "kernel 0"}, {1, 4, "kernel 4"},
        {1, -1, "kernel -1"}, {2, 2, "causal 2"}, {3, NAN, "scale NaN"}, {3, INFINITY, "scale +inf"},
        {4, 0, "eps 0"}, {4, -1e-6, "eps -1e-6"}, {4, NAN, "eps NaN"}, {4, INFINITY, "eps +inf"},
        {5, -1e-6, "delta -1e-6"}, {5, NAN, "delta NaN"}, {5, INFINITY, "delta +inf"},
        {6, 0, "n_threads 0"}, {6, 1000, "n_threads 1000"}, {6, -1, "n_threads -1"},
    };
    size_t c;
    slay_tensor* tp[4];
    g_fm = fm;
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
    if (slay_exact_attention_options_init(&g_xopts) != SLAY_OK) return;
    base_attention(0);
    tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
    ERRCASE("linear_attention: fm == NULL", SLAY_ERR_INVALID_ARGUMENT,
            slay_linear_attention(NULL, tp[0], tp[1], tp[2], tp[3], &g_opts, EE));
    tensor_cases("linear_attention", call_linear, 4, 4);
    shape_cases("linear_attention", call_linear, 4, ATTENTION_SHAPES, (int)(sizeof ATTENTION_SHAPES / sizeof ATTENTION_SHAPES[0]));
    shape_cases("linear_attention", call_linear, 4, MAP_SHAPES, (int)(sizeof MAP_SHAPES / sizeof MAP_SHAPES[0]));
    option_cases("linear_attention", call_linear, 4);

    tensor_cases("exact_attention", call_exact, 4, 4);
    shape_cases("exact_attention", call_exact, 4, ATTENTION_SHAPES, (int)(sizeof ATTENTION_SHAPES / sizeof ATTENTION_SHAPES[0]));
    for (c = 0; c < sizeof exact_cases / sizeof exact_cases[0]; c++) {
        char label[200];
        double v = exact_cases[c].value;
        if (slay_exact_attention_options_init(&g_xopts) != SLAY_OK) return;
        switch (exact_cases[c].field) {
        case 0: g_xopts.struct_size = v == 4 ? 4u : (uint32_t)(sizeof g_xopts + 64); break;
        case 1: g_xopts.kernel = (int32_t)v; break;
        case 2: g_xopts.causal = (int32_t)v; break;
        case 3: g_xopts.scale = v; break;
        case 4: g_xopts.kernel = SLAY_EXACT_YAT_SPHERICAL; g_xopts.eps = v; break;
        case 5: g_xopts.kernel = SLAY_EXACT_YAT; g_xopts.delta = v; break;
        case 6: g_xopts.n_threads = (int32_t)v; break;
        }
        sprintf(label, "exact_attention: options %s", exact_cases[c].what);
        ERRCASE(label, c == 1 ? SLAY_ERR_VERSION_MISMATCH : SLAY_ERR_INVALID_ARGUMENT, call_exact(tp, EE));
    }
    if (slay_exact_attention_options_init(&g_xopts) != SLAY_OK) return;
}

static void test_state_errors(slay_feature_map* fm, slay_feature_map* other) {
    static const struct { int64_t nseq, vdim; int32_t threads; int32_t want; const char* what; } create_cases[] = {
        {0, DV, 1, SLAY_ERR_SHAPE, "num_seqs 0"},
        {-1, DV, 1, SLAY_ERR_SHAPE, "num_seqs -1"},
        {(1 << 20) + 1, DV, 1, SLAY_ERR_SHAPE, "num_seqs 2^20 + 1"},
        {1, 0, 1, SLAY_ERR_SHAPE, "value_dim 0"},
        {1, -1, 1, SLAY_ERR_SHAPE, "value_dim -1"},
        {1, 65537, 1, SLAY_ERR_SHAPE, "value_dim 65537"},
        {1, DV, 0, SLAY_ERR_INVALID_ARGUMENT, "max_threads 0"},
        {1, DV, -1, SLAY_ERR_INVALID_ARGUMENT, "max_threads -1"},
        {1, DV, 257, SLAY_ERR_INVALID_ARGUMENT, "max_threads 257"},
    };
    static const shape_case query_shapes[] = {
        {{0, 3, D - 1}, {-1, 0, 0}, "q head_dim differs from the map"},
        {{0, 2, 3}, {-1, 0, 0}, "q heads 3, not a multiple of the state's 2"},
        {{1, 3, DV - 1}, {-1, 0, 0}, "out value dim differs from the state's"},
        {{1, 2, H}, {-1, 0, 0}, "out heads differ from q"},
        {{1, 1, T - 1}, {-1, 0, 0}, "out length differs"},
        {{1, 0, 1}, {-1, 0, 0}, "out batch differs"},
    };
    static const shape_case step_shapes[] = {
        {{0, 2, D - 1}, {-1, 0, 0}, "q head_dim differs"},
        {{1, 2, D - 1}, {-1, 0, 0}, "k head_dim differs"},
        {{0, 2, D - 1}, {1, 2, D - 1}, "q and k head_dim differ from the map"},
        {{1, 1, 1}, {2, 1, 1}, "k and v have 1 head, the map 2"},
        {{0, 1, 3}, {-1, 0, 0}, "q heads 3, not a multiple of 2"},
        {{2, 2, DV - 1}, {3, 2, DV - 1}, "v and out value dim differ from the state's"},
        {{3, 2, DV - 1}, {-1, 0, 0}, "out value dim differs"},
        {{3, 1, H}, {-1, 0, 0}, "out heads differ from q"},
        {{0, 0, 1}, {-1, 0, 0}, "q N 1, num_seqs 2"},
        {{1, 0, 1}, {-1, 0, 0}, "k N 1"},
        {{3, 0, 1}, {-1, 0, 0}, "out N 1"},
    };
    static float kb[B * T * H * D], vb[B * T * H * DV];
    static unsigned char blob[BLOB_MAX], bad[BLOB_MAX], blob_other[BLOB_MAX], blob_small[BLOB_MAX];
    size_t c, size = 0, size_other = 0, size_small = 0;
    slay_state *st = NULL, *st_dv = NULL, *st_other = NULL, *st_small = NULL;
    slay_tensor* tp[4];
    int32_t dup[2] = {1, 1}, far[2] = {0, NS}, neg[2] = {-1, 0}, slots20[2] = {2, 0};
    int64_t cu_bad0[3] = {1, 2, T}, cu_nonmono[4] = {0, 3, 2, T}, cu_short[3] = {0, 2, T - 1},
            cu_long[3] = {0, 2, T + 1}, cu_ok[3] = {0, 2, T}, cu_many[5] = {0, 1, 2, 3, T};
    int i;

    if (slay_state_create(fm, NS, DV, 2, &st, NULL) != SLAY_OK || slay_state_create(fm, NS, DV + 1, 1, &st_dv, NULL) != SLAY_OK ||
        slay_state_create(other, NS, DV, 1, &st_other, NULL) != SLAY_OK || slay_state_create(fm, 1, DV, 1, &st_small, NULL) != SLAY_OK) {
        CHECK(0, "slay_state_create of the test states failed");
        return;
    }
    {   /* give the states contents, so "unchanged" means something */
        slay_tensor tk = slay_tensor_4d(kb, B, T, H, D), tv = slay_tensor_4d(vb, B, T, H, DV);
        fill(kb, B * T * H * D);
        fill(vb, B * T * H * DV);
        OK(slay_state_prefill(st, NULL, &tk, &tv, NULL, NULL, slots20, 2, NULL, E));
        tk.shape[0] = tv.shape[0] = 1;
        OK(slay_state_prefill(st_other, NULL, &tk, &tv, NULL, NULL, NULL, 1, NULL, E));
        OK(slay_state_prefill(st_small, NULL, &tk, &tv, NULL, NULL, NULL, 1, NULL, E));
        OK(slay_state_save(st, blob, sizeof blob, &size, E));
        OK(slay_state_save(st_other, blob_other, sizeof blob_other, &size_other, E));
        OK(slay_state_save(st_small, blob_small, sizeof blob_small, &size_small, E));
    }

    ERRCASE_OUT("state_create: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_create(NULL, 1, DV, 1, &out_st, EE));
    ERRCASE("state_create: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_create(fm, 1, DV, 1, NULL, EE));
    for (c = 0; c < sizeof create_cases / sizeof create_cases[0]; c++) {
        char label[200];
        sprintf(label, "state_create: %s", create_cases[c].what);
        ERRCASE_OUT(label, create_cases[c].want, OUT_ST,
                    slay_state_create(fm, create_cases[c].nseq, create_cases[c].vdim, create_cases[c].threads, &out_st, EE));
    }

    {   /* 2^20 slots x 2 heads x m 1024 x (65536 + 1) floats: more than a 47-bit address space */
        slay_feature_map_params big = map_params(SLAY_POLY_ANCHOR, 7);
        slay_feature_map* wide = NULL;
        big.poly_dim = 8; big.prf_dim = 64;
        if (slay_feature_map_create(&big, &wide, NULL) == SLAY_OK)
            ERRCASE_OUT("state_create: 5.6e14 bytes", SLAY_ERR_OUT_OF_MEMORY, OUT_ST,
                        slay_state_create(wide, 1 << 20, 65536, 1, &out_st, EE));
        else
            CHECK(0, "create of the wide map failed");
        slay_feature_map_free(wide);
    }

    w_state = st;
    ERRCASE_OUT("state_copy: src == NULL", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_copy(NULL, &out_st, EE));
    ERRCASE("state_copy: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy(st, NULL, EE));
    ERRCASE("state_copy_slot: dst == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(NULL, 0, st, 0, EE));
    ERRCASE("state_copy_slot: src == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, 0, NULL, 0, EE));
    ERRCASE("state_copy_slot: dst_slot -1", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, -1, st, 0, EE));
    ERRCASE("state_copy_slot: dst_slot num_seqs", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, NS, st, 0, EE));
    ERRCASE("state_copy_slot: dst_slot 2^40", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, (int64_t)1 << 40, st, 0, EE));
    ERRCASE("state_copy_slot: src_slot -1", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, 0, st, -1, EE));
    ERRCASE("state_copy_slot: src_slot num_seqs", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, 0, st, NS, EE));
    ERRCASE("state_copy_slot: src_slot INT64_MIN", SLAY_ERR_INVALID_ARGUMENT, slay_state_copy_slot(st, 0, st, INT64_MIN, EE));
    ERRCASE("state_copy_slot: other value_dim", SLAY_ERR_STATE_MISMATCH, slay_state_copy_slot(st, 0, st_dv, 0, EE));
    ERRCASE("state_copy_slot: other feature map", SLAY_ERR_STATE_MISMATCH, slay_state_copy_slot(st, 0, st_other, 0, EE));
    ERRCASE("state_reset: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_reset(NULL, 0, EE));
    ERRCASE("state_reset: slot -2", SLAY_ERR_INVALID_ARGUMENT, slay_state_reset(st, -2, EE));
    ERRCASE("state_reset: slot num_seqs", SLAY_ERR_INVALID_ARGUMENT, slay_state_reset(st, NS, EE));
    ERRCASE("state_reset: slot INT64_MIN", SLAY_ERR_INVALID_ARGUMENT, slay_state_reset(st, INT64_MIN, EE));
    ERRCASE("state_reset: slot INT64_MAX", SLAY_ERR_INVALID_ARGUMENT, slay_state_reset(st, INT64_MAX, EE));
    ERRCASE("state_dims: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_dims(NULL, &O.i64[0], &O.i64[1], &O.i64[2], &O.i64[3], EE));
    ERRCASE("state_position: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_position(NULL, 0, &O.i64[0], EE));
    ERRCASE("state_position: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_position(st, 0, NULL, EE));
    ERRCASE("state_position: slot -1", SLAY_ERR_INVALID_ARGUMENT, slay_state_position(st, -1, &O.i64[0], EE));
    ERRCASE("state_position: slot num_seqs", SLAY_ERR_INVALID_ARGUMENT, slay_state_position(st, NS, &O.i64[0], EE));
    {
        float *mat = RG(0), *nrm = RG(3);
        int64_t mn = H * MF * DV, nn = H * MF;
        ERRCASE("state_read: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_read(NULL, 0, mat, mn, nrm, nn, EE));
        ERRCASE("state_read: slot -1", SLAY_ERR_INVALID_ARGUMENT, slay_state_read(st, -1, mat, mn, nrm, nn, EE));
        ERRCASE("state_read: slot num_seqs", SLAY_ERR_INVALID_ARGUMENT, slay_state_read(st, NS, mat, mn, nrm, nn, EE));
        ERRCASE("state_read: matrix_count - 1", SLAY_ERR_SHAPE, slay_state_read(st, 0, mat, mn - 1, nrm, nn, EE));
        ERRCASE("state_read: matrix_count + 1", SLAY_ERR_SHAPE, slay_state_read(st, 0, mat, mn + 1, NULL, 0, EE));
        ERRCASE("state_read: normaliser_count - 1", SLAY_ERR_SHAPE, slay_state_read(st, 0, mat, mn, nrm, nn - 1, EE));
        ERRCASE("state_read: normaliser_count 0", SLAY_ERR_SHAPE, slay_state_read(st, 0, NULL, 0, nrm, 0, EE));
    }

    /* prefill: the shared tensor cases, dimensions, options, sequences and slots */
    g_st = st; g_nseq = B; g_cu = NULL; g_slots = NULL;
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
    base_attention(0);
    tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
    ERRCASE("state_prefill: state == NULL", SLAY_ERR_INVALID_ARGUMENT,
            slay_state_prefill(NULL, tp[0], tp[1], tp[2], tp[3], NULL, NULL, B, NULL, EE));
    tensor_cases("state_prefill", call_prefill, 4, 4);
    shape_cases("state_prefill", call_prefill, 4, ATTENTION_SHAPES, (int)(sizeof ATTENTION_SHAPES / sizeof ATTENTION_SHAPES[0]));
    shape_cases("state_prefill", call_prefill, 4, MAP_SHAPES, (int)(sizeof MAP_SHAPES / sizeof MAP_SHAPES[0]));
    option_cases("state_prefill", call_prefill, 4);
    {
        static const int64_t nseqs[] = {0, -1, 1, 3, (int64_t)1 << 21};
        for (c = 0; c < sizeof nseqs / sizeof nseqs[0]; c++) {
            char label[200];
            sprintf(label, "state_prefill: num_seqs %lld with B = %d and no cu_seqlens", (long long)nseqs[c], B);
            g_nseq = nseqs[c];
            ERRCASE(label, SLAY_ERR_SHAPE, call_prefill(tp, EE));
        }
        g_nseq = B;
    }
    g_slots = dup;
    ERRCASE("state_prefill: slots {1, 1}", SLAY_ERR_INVALID_ARGUMENT, call_prefill(tp, EE));
    g_slots = far;
    ERRCASE("state_prefill: slots {0, num_seqs}", SLAY_ERR_INVALID_ARGUMENT, call_prefill(tp, EE));
    g_slots = neg;
    ERRCASE("state_prefill: slots {-1, 0}", SLAY_ERR_INVALID_ARGUMENT, call_prefill(tp, EE));
    g_slots = NULL;
    g_cu = cu_ok;
    ERRCASE("state_prefill: cu_seqlens with B = 2", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    for (i = 0; i < 4; i++) BASE[i].shape[0] = 1;   /* packed batches: [1, T_total, H, D] */
    g_cu = cu_bad0;
    ERRCASE("state_prefill: cu_seqlens[0] = 1", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    g_cu = cu_short;
    ERRCASE("state_prefill: cu_seqlens ends before T", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    g_cu = cu_long;
    ERRCASE("state_prefill: cu_seqlens ends after T", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    g_cu = cu_nonmono; g_nseq = 3;
    ERRCASE("state_prefill: cu_seqlens not monotone", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    g_cu = cu_many; g_nseq = 4;
    ERRCASE("state_prefill: 4 packed sequences, slots NULL, 3 slots", SLAY_ERR_SHAPE, call_prefill(tp, EE));
    g_cu = NULL; g_nseq = B;
    base_attention(0);
    ERRCASE("state_prefill: q without out", SLAY_ERR_INVALID_ARGUMENT,
            slay_state_prefill(st, tp[0], tp[1], tp[2], NULL, NULL, NULL, B, NULL, EE));
    ERRCASE("state_prefill: out without q", SLAY_ERR_INVALID_ARGUMENT,
            slay_state_prefill(st, NULL, tp[1], tp[2], tp[3], NULL, NULL, B, NULL, EE));

    /* query */
    base_attention(1);
    tp[0] = &BASE[0]; tp[1] = &BASE[1];
    ERRCASE("state_query: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_query(NULL, tp[0], tp[1], NULL, NULL, B, NULL, EE));
    tensor_cases("state_query", call_query, 2, 4);
    shape_cases("state_query", call_query, 2, query_shapes, (int)(sizeof query_shapes / sizeof query_shapes[0]));
    option_cases("state_query", call_query, 2);
    g_nseq = 1;
    ERRCASE("state_query: num_seqs 1 with B = 2", SLAY_ERR_SHAPE, call_query(tp, EE));
    g_nseq = 0;
    ERRCASE("state_query: num_seqs 0", SLAY_ERR_SHAPE, call_query(tp, EE));
    g_nseq = B; g_slots = dup;
    ERRCASE("state_query: slots {1, 1}", SLAY_ERR_INVALID_ARGUMENT, call_query(tp, EE));
    g_slots = far;
    ERRCASE("state_query: slots {0, num_seqs}", SLAY_ERR_INVALID_ARGUMENT, call_query(tp, EE));
    g_slots = NULL;

    /* step: [N, H, D] tensors */
    memset(BASE, 0, sizeof BASE);
    BASE[0] = t3(RG(0), B, HQ, D);
    BASE[1] = t3(RG(1), B, H, D);
    BASE[2] = t3(RG(2), B, H, DV);
    BASE[3] = t3(RG(3), B, HQ, DV);
    TNAME[0] = "q"; TNAME[1] = "k"; TNAME[2] = "v"; TNAME[3] = "out";
    tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
    ERRCASE("state_step: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_step(NULL, tp[0], tp[1], tp[2], tp[3], NULL, B, NULL, EE));
    tensor_cases("state_step", call_step, 4, 3);
    shape_cases("state_step", call_step, 4, step_shapes, (int)(sizeof step_shapes / sizeof step_shapes[0]));
    option_cases("state_step", call_step, 4);
    g_nseq = 1;
    ERRCASE("state_step: num_seqs 1 with N = 2", SLAY_ERR_SHAPE, call_step(tp, EE));
    g_nseq = 0;
    ERRCASE("state_step: num_seqs 0", SLAY_ERR_SHAPE, call_step(tp, EE));
    g_nseq = B; g_slots = dup;
    ERRCASE("state_step: slots {1, 1}", SLAY_ERR_INVALID_ARGUMENT, call_step(tp, EE));
    g_slots = far;
    ERRCASE("state_step: slots {0, num_seqs}", SLAY_ERR_INVALID_ARGUMENT, call_step(tp, EE));
    g_slots = NULL;
    g_opts.nth = 3; g_opts.ith = 2;
    ERRCASE("state_step: partition ith 2 of 3 on a state with max_threads 2", SLAY_ERR_INVALID_ARGUMENT, call_step(tp, EE));
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;

    /* serialization */
    ERRCASE("state_serialized_size: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_serialized_size(NULL, &O.size, EE));
    ERRCASE("state_serialized_size: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_serialized_size(st, NULL, EE));
    ERRCASE("state_save: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_save(NULL, O.bytes, sizeof O.bytes, &O.size, EE));
    ERRCASE("state_save: dst == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_save(st, NULL, sizeof O.bytes, &O.size, EE));
    ERRCASE("state_save: capacity size - 1", SLAY_ERR_BUFFER_TOO_SMALL, slay_state_save(st, O.bytes, size - 1, &O.size, EE));
    ERRCASE("state_save: capacity 0", SLAY_ERR_BUFFER_TOO_SMALL, slay_state_save(st, O.bytes, 0, &O.size, EE));
    ERRCASE("state_save: capacity 1, written NULL", SLAY_ERR_BUFFER_TOO_SMALL, slay_state_save(st, O.bytes, 1, NULL, EE));

    ERRCASE_OUT("state_load: fm == NULL", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_load(NULL, blob, size, 1, &out_st, EE));
    ERRCASE_OUT("state_load: src == NULL", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_load(fm, NULL, size, 1, &out_st, EE));
    ERRCASE("state_load: out == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_load(fm, blob, size, 1, NULL, EE));
    ERRCASE_OUT("state_load: max_threads 0", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_load(fm, blob, size, 0, &out_st, EE));
    ERRCASE_OUT("state_load: max_threads 257", SLAY_ERR_INVALID_ARGUMENT, OUT_ST, slay_state_load(fm, blob, size, 257, &out_st, EE));
    ERRCASE_OUT("state_load: another feature map", SLAY_ERR_STATE_MISMATCH, OUT_ST, slay_state_load(fm, blob_other, size_other, 1, &out_st, EE));
    ERRCASE("state_restore: state == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_restore(NULL, blob, size, EE));
    ERRCASE("state_restore: src == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_state_restore(st, NULL, size, EE));
    ERRCASE("state_restore: another feature map", SLAY_ERR_STATE_MISMATCH, slay_state_restore(st, blob_other, size_other, EE));
    ERRCASE("state_restore: other dims (1 slot)", SLAY_ERR_STATE_MISMATCH, slay_state_restore(st, blob_small, size_small, EE));
    {   /* altered blobs, for load and restore. The header gives the order magic "SLAYSTAT",
         * format version, byte-order mark; we assume 8 bytes of magic and a 32-bit version and
         * mark (bytes 8..11 and 12..15). */
        static const struct { int kind; size_t at; int32_t want; const char* what; } alter[] = {
            {0, 0, SLAY_ERR_CORRUPT_DATA, "size 0"},
            {0, 16, SLAY_ERR_CORRUPT_DATA, "truncated to 16 bytes"},
            {1, 1, SLAY_ERR_CORRUPT_DATA, "truncated by 1 byte"},
            {2, 0, SLAY_ERR_CORRUPT_DATA, "magic altered"},
            {2, 3, SLAY_ERR_CORRUPT_DATA, "magic altered (byte 3)"},
            {3, 0, SLAY_ERR_CORRUPT_DATA, "last payload byte flipped"},
            {4, 0, SLAY_ERR_CORRUPT_DATA, "checksum flipped"},
            {2, 8, SLAY_ERR_VERSION_MISMATCH, "format version changed"},
            {5, 12, SLAY_ERR_UNSUPPORTED, "byte-order mark reversed"},
        };
        for (c = 0; c < sizeof alter / sizeof alter[0]; c++) {
            char label[200];
            size_t n = size;
            memcpy(bad, blob, size);
            switch (alter[c].kind) {
            case 0: n = alter[c].at; break;
            case 1: n = size - alter[c].at; break;
            case 2: bad[alter[c].at] ^= 0x01; break;
            case 3: bad[size - 9] ^= 0x40; break;
            case 4: bad[size - 1] ^= 0x01; break;
            case 5: { unsigned char t0 = bad[12], t1 = bad[13]; bad[12] = bad[15]; bad[13] = bad[14]; bad[14] = t1; bad[15] = t0; } break;
            }
            sprintf(label, "state_load: %s", alter[c].what);
            ERRCASE_OUT(label, alter[c].want, OUT_ST, slay_state_load(fm, bad, n, 1, &out_st, EE));
            sprintf(label, "state_restore: %s", alter[c].what);
            ERRCASE(label, alter[c].want, slay_state_restore(st, bad, n, EE));
        }
    }
    w_state = NULL;

    /* After slay_feature_map_set_param, compute calls on states of that map fail. */
    {
        slay_feature_map* fm2 = new_map(SLAY_POLY_ANCHOR, 7);
        slay_state* st2 = NULL;
        static float omega[R * H * D * M];
        if (!fm2 || slay_state_create(fm2, NS, DV, 1, &st2, NULL) != SLAY_OK ||
            slay_feature_map_get_param(fm2, "omega", omega, R * H * D * M, NULL) != SLAY_OK) {
            CHECK(0, "setup of the set_param state test failed");
        } else {
            omega[0] += 1;
            OK(slay_feature_map_set_param(fm2, "omega", omega, R * H * D * M, E));
            w_state = st2;
            g_st = st2; g_nseq = B;
            base_attention(0);
            tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
            for (i = 0; i < 4; i++) fill((float*)BASE[i].data, REGION);   /* valid data this time */
            ERRCASE("state_prefill after set_param", SLAY_ERR_STATE_MISMATCH, call_prefill(tp, EE));
            ERRCASE("state_prefill (absorb) after set_param", SLAY_ERR_STATE_MISMATCH,
                    slay_state_prefill(st2, NULL, tp[1], tp[2], NULL, NULL, NULL, B, NULL, EE));
            tp[1] = &BASE[3];
            ERRCASE("state_query after set_param", SLAY_ERR_STATE_MISMATCH, call_query(tp, EE));
            BASE[0] = t3(RG(0), B, HQ, D);
            BASE[1] = t3(RG(1), B, H, D);
            BASE[2] = t3(RG(2), B, H, DV);
            BASE[3] = t3(RG(3), B, HQ, DV);
            for (i = 0; i < 4; i++) fill((float*)BASE[i].data, REGION);
            tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
            ERRCASE("state_step after set_param", SLAY_ERR_STATE_MISMATCH, call_step(tp, EE));
            w_state = NULL;
            ERRCASE_OUT("state_load: blob saved before set_param", SLAY_ERR_STATE_MISMATCH, OUT_ST,
                        slay_state_load(fm2, blob, size, 1, &out_st, EE));
        }
        slay_state_free(st2);
        slay_feature_map_free(fm2);
        arm();
    }
    g_st = NULL;
    slay_state_free(st);
    slay_state_free(st_dv);
    slay_state_free(st_other);
    slay_state_free(st_small);
}

static void test_quadrature_errors(void) {
    ERRCASE("gauss_laguerre: R 0", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(0, O.nodes, O.weights, EE));
    ERRCASE("gauss_laguerre: R -1", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(-1, O.nodes, O.weights, EE));
    ERRCASE("gauss_laguerre: R 65", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(65, O.nodes, O.weights, EE));
    ERRCASE("gauss_laguerre: R INT32_MIN", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(INT32_MIN, O.nodes, O.weights, EE));
    ERRCASE("gauss_laguerre: nodes == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(2, NULL, O.weights, EE));
    ERRCASE("gauss_laguerre: weights == NULL", SLAY_ERR_INVALID_ARGUMENT, slay_gauss_laguerre(2, O.nodes, NULL, EE));
}

/* ------------------------------------------------------------------------------------------ */
/* Positive promises                                                                            */
/* ------------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static double generator_normal(uint64_t seed, uint64_t stream, uint64_t i) {
    uint64_t key = splitmix64(seed ^ splitmix64(stream));
    uint64_t a = splitmix64(key + 2 * i), b = splitmix64(key + 2 * i + 1);
    double u1 = (double)((a >> 11) + 1) * 0x1p-53, u2 = (double)(b >> 11) * 0x1p-53;
    return sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979323846 * u2);
}

static void test_map_promises(slay_feature_map* fm, slay_feature_map* fx) {
    static float x[B * T * H * D], fq[B * T * H * MF], fk[B * T * H * MF], omega[R * H * D * M], anchors[P * D];
    slay_tensor tx = slay_tensor_4d(x, B, T, H, D), tq = slay_tensor_4d(fq, B, T, H, MF), tk = slay_tensor_4d(fk, B, T, H, MF);
    slay_feature_map_params p = map_params(SLAY_POLY_ANCHOR, 7), cfg;
    slay_feature_map *same = new_map(SLAY_POLY_ANCHOR, 7), *seed8 = new_map(SLAY_POLY_ANCHOR, 8), *copy = NULL;
    uint64_t id = identity_of(fm);
    int64_t m = 0, i, bad = 0;
    int32_t count = 0, ndim = 0, a;
    int64_t shape[SLAY_MAX_DIMS];
    const char* name = NULL;
    double worst = 0;

    /* features */
    fill(x, sizeof x / sizeof x[0]);
    OK(slay_feature_map_apply(fm, SLAY_ROLE_QUERY, &tx, &tq, E));
    OK(slay_feature_map_apply(fm, SLAY_ROLE_KEY, &tx, &tk, E));
    for (i = 0; i < B * T * H * MF; i++) bad += !(fq[i] > 0 && fq[i] < INFINITY);
    CHECK(bad == 0, "apply: %lld of %d SLAY features are not positive and finite", (long long)bad, B * T * H * MF);
    CHECK(memcmp(fq, fk, sizeof fq) == 0, "apply: SLAY is symmetric, but query and key features differ");

    /* dimensions */
    OK(slay_feature_map_dim(fm, &m, E));
    CHECK(m == R * P * M, "dim (anchor) %lld, expected R*P*M = %d", (long long)m, R * P * M);
    OK(slay_feature_map_dim(fx, &m, E));
    CHECK(m == R * (D * (D + 1) / 2) * M, "dim (exact) %lld, expected R*d(d+1)/2*M = %d", (long long)m, R * (D * (D + 1) / 2) * M);
    {
        slay_feature_map* ff = new_map(SLAY_POLY_EXACT_FULL, 7);
        CHECK(ff != NULL, "create exact_full");
        if (ff) {
            OK(slay_feature_map_dim(ff, &m, E));
            CHECK(m == R * D * D * M, "dim (exact_full) %lld, expected R*d*d*M = %d", (long long)m, R * D * D * M);
        }
        slay_feature_map_free(ff);
    }

    /* identity */
    CHECK(same && identity_of(same) == id && id != 0, "equal seeds give different identities");
    CHECK(seed8 && identity_of(seed8) != id, "different seeds give equal identities");
    CHECK(identity_of(fx) != id, "anchor and exact maps have equal identities");

    /* parameter names and shapes */
    OK(slay_feature_map_param_count(fm, &count, E));
    CHECK(count == 2, "param_count (anchor) %d, expected 2", (int)count);
    for (a = 0; a < count && a < 2; a++) {
        OK(slay_feature_map_param_name(fm, a, &name, E));
        CHECK(name && (strcmp(name, "anchors") == 0 || strcmp(name, "omega") == 0), "param_name(%d) is \"%s\"", (int)a, name ? name : "(null)");
    }
    OK(slay_feature_map_param_count(fx, &count, E));
    OK(slay_feature_map_param_name(fx, 0, &name, E));
    CHECK(count == 1 && name && strcmp(name, "omega") == 0, "exact map: %d params, first \"%s\"", (int)count, name ? name : "(null)");
    OK(slay_feature_map_param_shape(fm, "anchors", &ndim, shape, E));
    CHECK(ndim == 2 && shape[0] == P && shape[1] == D, "anchors shape: ndim %d [%lld, %lld]", (int)ndim, (long long)shape[0], (long long)shape[1]);
    OK(slay_feature_map_param_shape(fm, "omega", &ndim, shape, E));
    CHECK(ndim == 4 && shape[0] == R && shape[1] == H && shape[2] == D && shape[3] == M, "omega shape is not (R, H, d, M)");

    /* the documented parameter generator, reproduced here */
    OK(slay_feature_map_get_param(fm, "omega", omega, R * H * D * M, E));
    OK(slay_feature_map_get_param(fm, "anchors", anchors, P * D, E));
    for (i = 0; i < R * H * D * M; i++) {
        double want = (float)generator_normal(7, 2, (uint64_t)i);
        if (fabs(omega[i] - want) > worst) worst = fabs(omega[i] - want);
    }
    for (i = 0; i < P; i++) {
        double ss = 0, row[D];
        int j;
        for (j = 0; j < D; j++) { row[j] = (float)generator_normal(7, 1, (uint64_t)(i * D + j)); ss += row[j] * row[j]; }
        for (j = 0; j < D; j++) {
            double want = (float)(row[j] / sqrt(ss));
            if (fabs(anchors[i * D + j] - want) > worst) worst = fabs(anchors[i * D + j] - want);
        }
    }
    CHECK(worst <= 1e-6, "parameters differ from the documented generator by %.3g", worst);

    /* set_param changes the identity; setting the old values back restores it */
    {
        static float changed[R * H * D * M], back[R * H * D * M];
        for (i = 0; i < R * H * D * M; i++) changed[i] = omega[i] * 0.5f + 0.125f;
        OK(slay_feature_map_set_param(fm, "omega", changed, R * H * D * M, E));
        CHECK(identity_of(fm) != id, "set_param did not change the identity");
        OK(slay_feature_map_get_param(fm, "omega", back, R * H * D * M, E));
        CHECK(memcmp(back, changed, sizeof back) == 0, "get_param after set_param returns other values");
        OK(slay_feature_map_set_param(fm, "omega", omega, R * H * D * M, E));
        CHECK(identity_of(fm) == id, "setting the original omega back does not restore the identity");
        OK(slay_feature_map_set_param(fm, "anchors", anchors, P * D, E));
        CHECK(identity_of(fm) == id, "set_param with the same anchors changed the identity");
    }

    /* config round trip */
    if (slay_feature_map_params_init(&cfg) != SLAY_OK) CHECK(0, "params_init");
    OK(slay_feature_map_config(fm, &cfg, E));
    CHECK(cfg.struct_size == p.struct_size && cfg.kind == p.kind && cfg.head_dim == p.head_dim && cfg.num_heads == p.num_heads &&
          cfg.nodes == p.nodes && cfg.poly == p.poly && cfg.poly_dim == p.poly_dim && cfg.prf_dim == p.prf_dim &&
          cfg.eps == p.eps && cfg.prf_clamp == p.prf_clamp && cfg.seed == p.seed,
          "config does not return the creation params");
    OK(slay_feature_map_create(&cfg, &copy, E));
    CHECK(copy && identity_of(copy) == id, "a map created from config has another identity");
    slay_feature_map_free(copy);
    slay_feature_map_free(same);
    slay_feature_map_free(seed8);
}

static slay_attention_options whole_defaults(void) {
    slay_attention_options o;
    if (slay_attention_options_init(&o) != SLAY_OK) memset(&o, 0, sizeof o);
    return o;
}

static void test_compute_promises(slay_feature_map* fm) {
    static float q[B * T * HQ * D], k[B * T * H * D], v[B * T * H * DV], y1[B * T * HQ * DV], y2[B * T * HQ * DV];
    slay_tensor tq = slay_tensor_4d(q, B, T, HQ, D), tk = slay_tensor_4d(k, B, T, H, D), tv = slay_tensor_4d(v, B, T, H, DV);
    slay_tensor t1 = slay_tensor_4d(y1, B, T, HQ, DV), t2 = slay_tensor_4d(y2, B, T, HQ, DV);
    slay_attention_options o;
    double nodes[64], weights[64], sum;
    int i, r;
    double worst = 0;
    static const int rules[] = {1, 2, 8, 32, 64};

    /* quadrature: docs/math.md's R = 2 values, ascending nodes, weights summing to ∫e^{-t} = 1 */
    OK(slay_gauss_laguerre(2, nodes, weights, E));
    CHECK(fabs(nodes[0] - 0.5857864376) < 1e-9 && fabs(nodes[1] - 3.4142135624) < 1e-9 &&
          fabs(weights[0] - 0.8535533906) < 1e-9 && fabs(weights[1] - 0.1464466094) < 1e-9,
          "gauss_laguerre(2) = (%.10f, %.10f; %.10f, %.10f)", nodes[0], nodes[1], weights[0], weights[1]);
    for (i = 0; i < (int)(sizeof rules / sizeof rules[0]); i++) {
        int ascending = 1;
        OK(slay_gauss_laguerre(rules[i], nodes, weights, E));
        for (sum = 0, r = 0; r < rules[i]; r++) {
            sum += weights[r];
            if (r > 0 && !(nodes[r] > nodes[r - 1])) ascending = 0;
            if (!(weights[r] >= 0)) ascending = 0;
        }
        CHECK(ascending && fabs(sum - 1) < 1e-9, "gauss_laguerre(%d): ascending %d, weights sum %.15g", rules[i], ascending, sum);
    }

    fill(q, sizeof q / sizeof q[0]); fill(k, sizeof k / sizeof k[0]); fill(v, sizeof v / sizeof v[0]);
    if (slay_attention_options_init(&o) != SLAY_OK) return;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, NULL, E));
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
    CHECK(memcmp(y1, y2, sizeof y1) == 0, "linear_attention: options NULL differs from the defaults");
    o.chunk_size = 1;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
    for (i = 0; i < B * T * HQ * DV; i++) if (fabs((double)y1[i] - y2[i]) > worst) worst = fabs((double)y1[i] - y2[i]);
    CHECK(worst < 1e-5, "linear_attention: chunk_size 1 differs from 64 by %.3g", worst);
    o.chunk_size = 4096;
    o.n_threads = 2;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
    for (worst = 0, i = 0; i < B * T * HQ * DV; i++) if (fabs((double)y1[i] - y2[i]) > worst) worst = fabs((double)y1[i] - y2[i]);
    CHECK(worst < 1e-5, "linear_attention: chunk_size 4096 with 2 threads differs by %.3g", worst);
    {   /* a partitioned call, share by share, equals one whole call */
        slay_attention_options whole;
        if (slay_attention_options_init(&whole) != SLAY_OK) return;
        OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, &whole, E));
        memset(y2, 0, sizeof y2);
        for (i = 0; i < 3; i++) {
            o = whole;
            o.nth = 3;
            o.ith = i;
            OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
        }
        CHECK(memcmp(y1, y2, sizeof y1) == 0, "linear_attention: shares ith 0..2 of nth 3 differ from one whole call");
    }
    {   /* an output stride 0 is allowed on an axis of extent 1 */
        slay_tensor q1 = tq, k1 = tk, v1 = tv, o1 = t2;
        q1.shape[0] = k1.shape[0] = v1.shape[0] = o1.shape[0] = 1;
        o1.strides[0] = 0;
        OK(slay_linear_attention(fm, &q1, &k1, &v1, &o1, NULL, E));
        CHECK(memcmp(y1, y2, sizeof(float) * T * HQ * DV) == 0, "linear_attention: batch 1 with out stride 0 differs");
        OK(slay_exact_attention(&q1, &k1, &v1, &o1, NULL, E));
    }
    {   /* inputs may broadcast (stride 0) and share memory with each other */
        slay_tensor qb = tq, kq = tq;
        qb.strides[0] = 0;
        kq.shape[2] = H;   /* k = the first H heads of q's buffer */
        OK(slay_linear_attention(fm, &qb, &kq, &tv, &t1, NULL, E));
        o = whole_defaults();
        o.n_threads = 256;
        OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, &o, E));
        o = whole_defaults();
        o.nth = 65536; o.ith = 65535;
        OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, &o, E));
        o = whole_defaults();
        o.causal = 0;
        OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, &o, E));
    }
    {
        slay_exact_attention_options x;
        static const int32_t kernels[] = {SLAY_EXACT_SOFTMAX, SLAY_EXACT_YAT_SPHERICAL, SLAY_EXACT_YAT};
        for (i = 0; i < 3; i++) {
            if (slay_exact_attention_options_init(&x) != SLAY_OK) return;
            x.kernel = kernels[i];
            x.causal = i == 2 ? 0 : 1;
            x.n_threads = 256;
            OK(slay_exact_attention(&tq, &tk, &tv, &t1, &x, E));
        }
    }
    OK(slay_exact_attention(&tq, &tk, &tv, &t1, NULL, E));
}

static void test_state_promises(slay_feature_map* fm) {
    static float k[B * T * H * D], v[B * T * H * DV];
    static unsigned char b1[BLOB_MAX], b2[BLOB_MAX];
    slay_tensor tk = slay_tensor_4d(k, B, T, H, D), tv = slay_tensor_4d(v, B, T, H, DV);
    slay_state *st = NULL, *loaded = NULL, *copy = NULL, *orphan = NULL;
    slay_feature_map* temp = new_map(SLAY_POLY_ANCHOR, 9);
    int64_t ns = 0, nh = 0, fd = 0, vd = 0, pos = -1;
    size_t size = 0, w1 = 0, w2 = 0;
    int32_t slots[2] = {2, 0};

    fill(k, sizeof k / sizeof k[0]); fill(v, sizeof v / sizeof v[0]);
    OK(slay_state_create(fm, NS, DV, 1, &st, E));
    OK(slay_state_dims(st, NULL, NULL, NULL, NULL, E));
    OK(slay_state_dims(st, &ns, &nh, &fd, &vd, E));
    CHECK(ns == NS && nh == H && fd == MF && vd == DV, "state_dims (%lld, %lld, %lld, %lld)", (long long)ns, (long long)nh, (long long)fd, (long long)vd);
    OK(slay_state_prefill(st, NULL, &tk, &tv, NULL, NULL, slots, 2, NULL, E));
    OK(slay_state_position(st, 2, &pos, E));
    CHECK(pos == T, "position of slot 2 after prefill %lld, expected %d", (long long)pos, T);
    OK(slay_state_position(st, 1, &pos, E));
    CHECK(pos == 0, "position of untouched slot 1 is %lld", (long long)pos);
    OK(slay_state_read(st, 0, NULL, 0, NULL, 0, E));
    OK(slay_state_serialized_size(st, &size, E));
    OK(slay_state_save(st, b2, size, NULL, E));   /* written may be NULL */
    OK(slay_state_save(st, b1, size, &w1, E));
    CHECK(w1 == size && memcmp(b1, "SLAYSTAT", 8) == 0, "save wrote %lu of %lu bytes; magic \"%.8s\"", (unsigned long)w1, (unsigned long)size, (const char*)b1);
    OK(slay_state_load(fm, b1, size, 1, &loaded, E));
    if (loaded) OK(slay_state_save(loaded, b2, sizeof b2, &w2, E));
    CHECK(loaded && w2 == w1 && memcmp(b1, b2, w1) == 0, "save -> load -> save is not identical");
    OK(slay_state_copy(st, &copy, E));
    if (copy) OK(slay_state_save(copy, b2, sizeof b2, &w2, E));
    CHECK(copy && w2 == w1 && memcmp(b1, b2, w1) == 0, "state_copy is not identical");
    if (copy) {
        OK(slay_state_copy_slot(copy, 1, copy, 2, E));
        OK(slay_state_position(copy, 1, &pos, E));
        CHECK(pos == T, "copy_slot did not copy the position (%lld)", (long long)pos);
        OK(slay_state_reset(copy, -1, E));
        OK(slay_state_position(copy, 2, &pos, E));
        CHECK(pos == 0, "reset(-1) left position %lld", (long long)pos);
        OK(slay_state_restore(copy, b1, size, E));
        OK(slay_state_save(copy, b2, sizeof b2, &w2, E));
        CHECK(memcmp(b1, b2, w1) == 0, "restore did not bring back the saved state");
    }
    /* a state keeps its map alive */
    if (temp) {
        OK(slay_state_create(temp, 2, DV, 1, &orphan, E));
        slay_feature_map_free(temp);
        if (orphan) OK(slay_state_prefill(orphan, NULL, &tk, &tv, NULL, NULL, NULL, 2, NULL, E));
    }
    slay_state_free(orphan);
    slay_state_free(copy);
    slay_state_free(loaded);
    slay_state_free(st);
}

/* A failing call: status `want`, err->code equal to it and a message containing `needle`. */
static void expect_error(const char* what, int32_t rc, const slay_error* e, int32_t want, const char* needle) {
    CHECK(rc == want && e->code == want && e->message[0] != 0 && strstr(e->message, needle) != NULL,
          "%s -> %d (err.code %d, \"%.200s\"), expected %d mentioning \"%s\"", what, (int)rc, (int)e->code,
          e->message, (int)want, needle);
}

/* SLAY_KIND_HADAMARD_EXP: inputs ×50 (e^{q+k} overflows fp32) give finite outputs that are convex
 * combinations of v; threads and partitions change nothing; normalize = 0, decay, log_decay and
 * gates compose with it (decayed or gated, the outputs stay convex combinations of v); states carry H·m running maxima per slot after the payload, covered by the checksum. */
static void test_hadamard_exp(void) {
    static float q[B * T * HQ * D], k[B * T * H * D], v[B * T * H * DV], y1[B * T * HQ * DV], y2[B * T * HQ * DV];
    static float q1[B * HQ * D], k1[B * H * D], v1[B * H * DV], s1[B * HQ * DV];
    static unsigned char blob[BLOB_MAX], plain[BLOB_MAX];
    slay_tensor tq = slay_tensor_4d(q, B, T, HQ, D), tk = slay_tensor_4d(k, B, T, H, D), tv = slay_tensor_4d(v, B, T, H, DV);
    slay_tensor t1 = slay_tensor_4d(y1, B, T, HQ, DV), t2 = slay_tensor_4d(y2, B, T, HQ, DV);
    slay_tensor sq = t3(q1, B, HQ, D), sk = t3(k1, B, H, D), sv = t3(v1, B, H, DV), so = t3(s1, B, HQ, DV);
    slay_feature_map_params p;
    slay_feature_map *fm = NULL, *elu = NULL;
    slay_state *st = NULL, *other = NULL, *loaded = NULL;
    slay_attention_options o;
    slay_error e;
    float gammas[H] = {0.9f, 0.9f};
    size_t size = 0, plain_size = 0, i;
    int64_t m = 0;
    int inside = 1, finite = 1;

    if (slay_feature_map_params_init(&p) != SLAY_OK) return;
    p.kind = SLAY_KIND_HADAMARD_EXP; p.head_dim = D; p.num_heads = H;
    p.prf_dim = 0; p.poly_dim = 0;   /* ignored by this kind */
    OK(slay_feature_map_create(&p, &fm, E));
    p.kind = SLAY_KIND_ELU_PLUS_ONE;
    OK(slay_feature_map_create(&p, &elu, E));
    if (!fm || !elu) goto done;
    OK(slay_feature_map_dim(fm, &m, E));
    CHECK(m == D, "Hadamard Exp m = %lld, expected d = %d", (long long)m, D);

    fill(q, sizeof q / sizeof q[0]); fill(k, sizeof k / sizeof k[0]); fill(v, sizeof v / sizeof v[0]);
    for (i = 0; i < sizeof q / sizeof q[0]; i++) q[i] *= 50;
    for (i = 0; i < sizeof k / sizeof k[0]; i++) k[i] *= 50;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, NULL, E));
    for (i = 0; i < sizeof y1 / sizeof y1[0]; i++) {   /* v ∈ [-1, 1): a convex combination stays inside */
        if (!isfinite(y1[i])) finite = 0;
        if (!(y1[i] >= -1.0001f && y1[i] <= 1.0001f)) inside = 0;
    }
    CHECK(finite && inside, "Hadamard Exp ×50: outputs finite %d, within [-1, 1] %d", finite, inside);
    if (slay_attention_options_init(&o) != SLAY_OK) goto done;
    o.n_threads = 2;
    o.chunk_size = 2;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
    o.n_threads = 1;
    OK(slay_linear_attention(fm, &tq, &tk, &tv, &t1, &o, E));
    CHECK(memcmp(y1, y2, sizeof y1) == 0, "Hadamard Exp: 2 threads differ from 1");

    /* options that compose with the rescaled frame (refused before the recurrence forms) */
    {
        static float log_decay[B * T * H * D], gates[B * T * HQ];
        slay_tensor td = slay_tensor_4d(log_decay, B, T, H, D), tg = t3(gates, B, T, HQ);
        int variant, written;
        for (i = 0; i < sizeof log_decay / sizeof log_decay[0]; i++) log_decay[i] = -0.25f;
        fill(gates, sizeof gates / sizeof gates[0]);
        for (variant = 0; variant < 4; variant++) {
            if (slay_attention_options_init(&o) != SLAY_OK) goto done;
            if (variant == 0) o.normalize = 0;
            if (variant == 1) o.decay = gammas;
            if (variant == 2) o.log_decay = &td;
            if (variant == 3) o.query_gate_logits = &tg;
            memset(y2, 0x5A, sizeof y2);
            memcpy(y1, y2, sizeof y1);
            OK(slay_linear_attention(fm, &tq, &tk, &tv, &t2, &o, E));
            for (written = 1, inside = 1, i = 0; i < sizeof y2 / sizeof y2[0]; i++) {
                if (memcmp(&y1[i], &y2[i], sizeof y1[i]) == 0) written = 0;
                if (!(y2[i] >= -1.0001f && y2[i] <= 1.0001f)) inside = 0;
            }
            /* normalized (variants 1-3): convex combinations of v ∈ [-1, 1) */
            CHECK(written && (variant == 0 || inside), "Hadamard Exp option %d: written %d, within [-1, 1] %d",
                  variant, written, inside);
        }
    }

    /* states: maxima after the payload, in the checksum */
    OK(slay_state_create(fm, B, DV, 1, &st, E));
    OK(slay_state_create(elu, B, DV, 1, &other, E));
    if (!st || !other) goto done;
    OK(slay_state_prefill(st, &tq, &tk, &tv, &t1, NULL, NULL, B, NULL, E));
    memcpy(q1, q, sizeof q1); memcpy(k1, k, sizeof k1); memcpy(v1, v, sizeof v1);
    OK(slay_state_step(st, &sq, &sk, &sv, &so, NULL, B, NULL, E));
    for (finite = 1, i = 0; i < sizeof s1 / sizeof s1[0]; i++) if (!isfinite(s1[i])) finite = 0;
    CHECK(finite, "Hadamard Exp ×50: a decode step gave non-finite outputs");
    if (slay_attention_options_init(&o) != SLAY_OK) goto done;
    o.decay = gammas;   /* composes with the rescaled frame: still a convex combination of v */
    OK(slay_state_step(st, &sq, &sk, &sv, &so, NULL, B, &o, E));
    for (inside = 1, i = 0; i < sizeof s1 / sizeof s1[0]; i++) if (!(s1[i] >= -1.0001f && s1[i] <= 1.0001f)) inside = 0;
    CHECK(inside, "Hadamard Exp ×50: a decayed decode step left [-1, 1]");
    OK(slay_state_serialized_size(st, &size, E));
    OK(slay_state_serialized_size(other, &plain_size, E));
    CHECK(size == plain_size + (size_t)B * H * D * sizeof(float),
          "Hadamard Exp blob %lu bytes, ELU+1 blob of the same dims %lu: expected B·H·m floats more",
          (unsigned long)size, (unsigned long)plain_size);
    if (size > sizeof blob) goto done;
    OK(slay_state_save(st, blob, sizeof blob, NULL, E));
    OK(slay_state_save(other, plain, sizeof plain, NULL, E));
    OK(slay_state_load(fm, blob, size, 1, &loaded, E));
    blob[size - 9] ^= 0x01;   /* the last byte of the maxima */
    slay_state_free(loaded);
    loaded = DUMMY_ST;
    expect_error("state_load(flipped maxima)", slay_state_load(fm, blob, size, 1, &loaded, &e), &e,
                 SLAY_ERR_CORRUPT_DATA, "checksum");
    CHECK(loaded == NULL, "state_load failed but *out is not NULL");
    expect_error("state_restore(flipped maxima)", slay_state_restore(st, blob, size, &e), &e,
                 SLAY_ERR_CORRUPT_DATA, "checksum");
    expect_error("state_restore(ELU+1 blob)", slay_state_restore(st, plain, plain_size, &e), &e,
                 SLAY_ERR_STATE_MISMATCH, "feature map");
done:
    slay_state_free(st);
    slay_state_free(other);
    slay_feature_map_free(fm);
    slay_feature_map_free(elu);
}

/* GLA log_decay and SLA gate logits (slay_attention_options tensors): bad values, shapes, NULL data,
 * dtype, causal = 0 and outputs overlapping them are statuses with messages, nothing written. */
static void test_gla_sla_errors(slay_feature_map* fm) {
    static float log_decay[B * T * H * MF], gates[B * T * HQ], step_decay[B * H * MF];
    slay_tensor td = slay_tensor_4d(log_decay, B, T, H, MF), tg = t3(gates, B, T, HQ), ts = t3(step_decay, B, H, MF);
    slay_tensor bad;
    slay_tensor* tp[4];
    slay_state* st = NULL;
    size_t i;
    for (i = 0; i < sizeof log_decay / sizeof log_decay[0]; i++) log_decay[i] = -0.25f;
    for (i = 0; i < sizeof step_decay / sizeof step_decay[0]; i++) step_decay[i] = -0.25f;
    fill(gates, sizeof gates / sizeof gates[0]);
    {
        slay_attention_options o;
        memset(&o, 0x5A, sizeof o);
        CHECK(slay_attention_options_init(&o) == SLAY_OK && o.log_decay == NULL && o.query_gate_logits == NULL &&
              o.key_gate_logits == NULL, "slay_attention_options_init: log_decay and gate logits not NULL");
    }
    g_fm = fm;
    base_attention(0);
    tp[0] = &BASE[0]; tp[1] = &BASE[1]; tp[2] = &BASE[2]; tp[3] = &BASE[3];
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
    g_opts.log_decay = &td;
    g_opts.query_gate_logits = &tg;
    OK(call_linear(tp, E));
    arm();
    log_decay[7] = NAN;
    ERRCASE("linear_attention: log_decay NaN", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    log_decay[7] = INFINITY;
    ERRCASE("linear_attention: log_decay +inf", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    log_decay[7] = 0.5f;
    ERRCASE("linear_attention: log_decay > 0", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    log_decay[7] = -1e30f;   /* any finite α ≤ 1 is fine, however small */
    OK(call_linear(tp, E));
    arm();
    bad = td; bad.data = NULL; g_opts.log_decay = &bad;
    ERRCASE("linear_attention: log_decay.data == NULL", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    bad = td; bad.dtype = 4;
    ERRCASE("linear_attention: log_decay.dtype 4", SLAY_ERR_DTYPE, call_linear(tp, EE));
    bad = td; bad.dtype = SLAY_DTYPE_BF16; bad.data = (char*)td.data + 1;
    ERRCASE("linear_attention: log_decay BF16 at an odd address", SLAY_ERR_LAYOUT, call_linear(tp, EE));
    bad = td; bad.shape[3] = MF - 1;
    ERRCASE("linear_attention: log_decay m - 1 channels", SLAY_ERR_SHAPE, call_linear(tp, EE));
    bad = td; bad.data = BASE[3].data;
    ERRCASE("linear_attention: out overlaps log_decay", SLAY_ERR_LAYOUT, call_linear(tp, EE));
    g_opts.log_decay = &td;
    g_opts.causal = 0;
    ERRCASE("linear_attention: log_decay with causal 0", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    g_opts.causal = 1;
    gates[3] = NAN;
    ERRCASE("linear_attention: query gate logit NaN", SLAY_ERR_INVALID_ARGUMENT, call_linear(tp, EE));
    gates[3] = 0;
    bad = tg; bad.shape[2] = H; g_opts.query_gate_logits = &bad;
    ERRCASE("linear_attention: query gate logits with Hk heads", SLAY_ERR_SHAPE, call_linear(tp, EE));

    /* decode step: log_decay [N, Hk, m] */
    if (slay_state_create(fm, B, DV, 1, &st, NULL) != SLAY_OK) { CHECK(0, "slay_state_create"); return; }
    w_state = st;
    g_st = st; g_nseq = B; g_cu = NULL; g_slots = NULL;
    if (slay_attention_options_init(&g_opts) != SLAY_OK) return;
    g_opts.log_decay = &ts;
    BASE[0] = t3(RG(0), B, HQ, D);
    BASE[1] = t3(RG(1), B, H, D);
    BASE[2] = t3(RG(2), B, H, DV);
    BASE[3] = t3(RG(3), B, HQ, DV);
    step_decay[B * H * MF - 1] = NAN;
    ERRCASE("state_step: log_decay NaN", SLAY_ERR_INVALID_ARGUMENT, call_step(tp, EE));
    step_decay[B * H * MF - 1] = -0.25f;
    bad = slay_tensor_4d(log_decay, B, 1, H, MF); g_opts.log_decay = &bad;
    ERRCASE("state_step: log_decay of rank 4", SLAY_ERR_SHAPE, call_step(tp, EE));
    bad = ts; bad.data = BASE[3].data;
    ERRCASE("state_step: out overlaps log_decay", SLAY_ERR_LAYOUT, call_step(tp, EE));
    g_opts.log_decay = &ts;
    OK(call_step(tp, E));
    arm();
    w_state = NULL;
    slay_state_free(st);
}

int main(void) {
    slay_feature_map *fm, *fx, *other;
    arm();
    test_versions_and_status();
    test_inits();
    fm = new_map(SLAY_POLY_ANCHOR, 7);
    fx = new_map(SLAY_POLY_EXACT, 7);
    other = new_map(SLAY_POLY_ANCHOR, 8);
    if (!fm || !fx || !other) {
        printf("FAIL: cannot create the test feature maps\n");
        printf("%d passed, %d failed\n", n_pass, n_fail + 1);
        return 1;
    }
    test_create();
    test_map_queries(fm, fx);
    test_sketch_polys();
    test_apply_errors(fm);
    test_attention_errors(fm);
    test_state_errors(fm, other);
    test_quadrature_errors();
    test_gla_sla_errors(fm);
    test_map_promises(fm, fx);
    test_compute_promises(fm);
    test_state_promises(fm);
    test_hadamard_exp();
    slay_feature_map_free(fm);
    slay_feature_map_free(fx);
    slay_feature_map_free(other);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail > 0 ? 1 : 0;
}
