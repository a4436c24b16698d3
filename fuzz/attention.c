/* attention — libFuzzer target for the attention entry points (slay_linear_attention,
 * slay_linear_attention_backward, slay_exact_attention, slay_feature_map_apply): fuzzed shapes, strides (contiguous, head-first,
 * broadcast, padded), dtypes, options (causal, δ, chunk size, threads, partitions, denominator,
 * normalize, RetNet decay, GLA log decay, SLA gates, the delta rule with β, qk_l2norm, the
 * check_finite guard) and tensor values (NaN, ±inf, huge). The
 * harness sizes every buffer for the strides it passes, so any out-of-bounds access is the
 * library's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "slay.h"

enum { MAPS = 6 };
static slay_feature_map* maps[MAPS];
static int64_t map_dim[MAPS];

static void setup(void) {
    static const int32_t kinds[MAPS] = {SLAY_KIND_SLAY, SLAY_KIND_SLAY, SLAY_KIND_ELU_PLUS_ONE, SLAY_KIND_HADAMARD_EXP,
                                        SLAY_KIND_IDENTITY, SLAY_KIND_FAVOR_PLUS};
    for (int i = 0; i < MAPS; i++) {
        slay_feature_map_params p;
        if (slay_feature_map_params_init(&p) != SLAY_OK) abort();
        p.kind = kinds[i];
        p.head_dim = 4;
        p.num_heads = 2;
        p.prf_dim = 3;
        p.poly_dim = 2;
        if (i == 1) p.poly = SLAY_POLY_TENSORSKETCH;
        if (slay_feature_map_create(&p, &maps[i], NULL) != SLAY_OK) abort();
        if (slay_feature_map_dim(maps[i], &map_dim[i], NULL) != SLAY_OK) abort();
    }
}

/* A 4-d (or ndim-d) tensor over a fresh buffer that covers every element its strides reach. */
typedef struct owned_tensor {
    slay_tensor t;
    float* buffer;
    size_t count;   /* floats in buffer */
} owned_tensor;

static void make_tensor(fuzz_input* in, owned_tensor* o, int ndim, const int64_t* shape, int fill) {
    memset(o, 0, sizeof *o);
    o->t.ndim = ndim;
    o->t.dtype = SLAY_DTYPE_F32;
    uint8_t mode = take_u8(in);
    if (mode >= 250) o->t.dtype = (int32_t)take_range(in, -1, 4);   /* other dtypes: refused or read as such */
    if (mode >= 252) o->t.ndim = (int32_t)take_range(in, 0, 6);
    int layout = mode % 4;    /* 0 contiguous, 1 head-first (axes 1 and 2 swapped), 2 broadcast axis, 3 padded */
    int64_t stride = 1;
    int64_t extent[SLAY_MAX_DIMS];
    for (int a = 0; a < SLAY_MAX_DIMS; a++) extent[a] = a < ndim ? shape[a] : 1;
    int order[SLAY_MAX_DIMS] = {0, 1, 2, 3};
    if (layout == 1 && ndim == 4) { order[1] = 2; order[2] = 1; }
    for (int r = ndim - 1; r >= 0; r--) {
        int a = order[r];
        o->t.shape[a] = extent[a];
        o->t.strides[a] = stride;
        stride *= extent[a] + (layout == 3 ? 1 : 0);
    }
    if (layout == 2 && ndim >= 2) o->t.strides[take_range(in, 0, ndim - 1)] = 0;
    int64_t last = 0;
    for (int a = 0; a < ndim; a++) last += (extent[a] - 1) * o->t.strides[a];
    size_t count = (size_t)last + 1;
    o->count = count;
    o->buffer = malloc(count * sizeof(float) + 16);
    if (!o->buffer) abort();
    if (fill) fill_floats(in, o->buffer, count);
    else for (size_t i = 0; i < count; i++) o->buffer[i] = -7.0f;
    o->t.data = o->buffer;
    if (o->t.dtype != SLAY_DTYPE_F32 && o->t.dtype != SLAY_DTYPE_F16 && o->t.dtype != SLAY_DTYPE_BF16) o->t.dtype = -3;
    /* Half-precision tensors read 2 bytes per element: the float buffer covers them. */
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!maps[0]) setup();
    fuzz_input in = {data, size, 0};
    int which = (int)take_range(&in, 0, MAPS - 1);
    int entry = (int)take_range(&in, 0, 3);
    int64_t b = take_range(&in, 1, 3), t = take_range(&in, 1, 20);
    int64_t hk = 2, hq = take_u8(&in) & 1 ? 4 : 2, d = 4, dv = take_range(&in, 1, 4);
    if (take_u8(&in) >= 250) d = take_range(&in, 1, 8);      /* wrong head_dim now and then */
    if (take_u8(&in) >= 250) hk = take_range(&in, 1, 3);
    int64_t sq[4] = {b, t, hq, d}, sk[4] = {b, t, hk, d}, sv[4] = {b, t, hk, dv}, so[4] = {b, t, hq, dv};
    owned_tensor q, k, v, out, ld, gq, gk;
    make_tensor(&in, &q, 4, sq, 1);
    make_tensor(&in, &k, 4, sk, 1);
    make_tensor(&in, &v, 4, sv, 1);
    make_tensor(&in, &out, 4, so, 0);
    int64_t sl[4] = {b, t, hk, map_dim[which]}, sgq[3] = {b, t, hq}, sgk[3] = {b, t, hk};
    uint8_t extras = take_u8(&in);
    make_tensor(&in, &ld, 4, sl, 1);
    for (size_t i = 0; i < ld.count; i++)
        if (!(extras & 16)) ld.buffer[i] = -ld.buffer[i] * ld.buffer[i];   /* mostly valid (≤ 0) log decays */
    make_tensor(&in, &gq, 3, sgq, 1);
    make_tensor(&in, &gk, 3, sgk, 1);

    slay_attention_options o;
    if (slay_attention_options_init(&o) != SLAY_OK) abort();
    uint8_t flags = take_u8(&in);
    o.causal = flags & 1 ? 0 : 1;
    if (flags & 2) o.causal = (int32_t)take_range(&in, -1, 2);
    o.delta = flags & 4 ? take_f64(&in) : 1e-6;
    o.chunk_size = flags & 8 ? take_dim(&in, 70) : 0;
    o.n_threads = flags & 16 ? (int32_t)take_range(&in, 0, 3) : 1;
    o.denominator = (int32_t)take_range(&in, 0, 2) == 2 ? (int32_t)take_u32(&in) : (int32_t)take_range(&in, 0, 1);
    o.normalize = extras & 1 ? 0 : 1;
    if (flags & 32) { o.nth = (int32_t)take_range(&in, 0, 3); o.ith = (int32_t)take_range(&in, -1, 3); }
    float gammas[4];
    for (int i = 0; i < 4; i++) gammas[i] = flags & 64 ? take_f32(&in) : 0.9f;
    if (extras & 2) o.decay = gammas;
    if (extras & 4) o.log_decay = &ld.t;
    if (extras & 8) { o.query_gate_logits = &gq.t; o.key_gate_logits = &gk.t; }
    /* The delta rule (β per token and key head), qk_l2norm and the check_finite guard. */
    owned_tensor beta;
    int64_t sb[3] = {b, t, hk};
    make_tensor(&in, &beta, 3, sb, 1);
    for (size_t i = 0; i < beta.count; i++)
        if (!(extras & 32)) beta.buffer[i] = (float)(take_u8(&in) % 9) / 4.0f;   /* mostly in [0, 2] */
    uint8_t more = take_u8(&in);
    o.update = more & 1 ? (int32_t)take_range(&in, 0, 2) : 0;
    if (more & 2) o.beta = &beta.t;
    o.qk_l2norm = more & 4 ? (int32_t)take_range(&in, 0, 2) : 0;
    o.check_finite = more & 8 ? (int32_t)take_range(&in, 0, 2) : 0;

    slay_error err;
    switch (entry) {
    case 0:
        (void)slay_linear_attention(maps[which], &q.t, &k.t, &v.t, &out.t, &o, &err);
        break;
    case 1: {
        slay_exact_attention_options e;
        if (slay_exact_attention_options_init(&e) != SLAY_OK) abort();
        e.kernel = (int32_t)take_range(&in, 0, 3);
        e.causal = o.causal;
        e.delta = o.delta;
        e.eps = flags & 128 ? take_f64(&in) : 1e-6;
        e.n_threads = o.n_threads;
        (void)slay_exact_attention(&q.t, &k.t, &v.t, &out.t, &e, &err);
        break;
    }
    case 3: {   /* backward: gradients of q, k, v (and sometimes of the map's parameters) */
        owned_tensor dout, dq, dk, dvv;
        make_tensor(&in, &dout, 4, so, 1);
        make_tensor(&in, &dq, 4, sq, 0);
        make_tensor(&in, &dk, 4, sk, 0);
        make_tensor(&in, &dvv, 4, sv, 0);
        slay_attention_backward_params bp;
        if (slay_attention_backward_params_init(&bp) != SLAY_OK) abort();
        uint8_t wanted = take_u8(&in);
        if (wanted & 1) bp.dq = &dq.t;
        if (wanted & 2) bp.dk = &dk.t;
        if (wanted & 4) bp.dv = &dvv.t;
        float* dparams = NULL;
        if (wanted & 8) {
            int64_t count = take_range(&in, 0, 255);
            dparams = malloc(sizeof(float) * (size_t)(count + 1));
            if (!dparams) abort();
            bp.d_params = dparams;
            bp.d_params_count = count;
        }
        (void)slay_linear_attention_backward(maps[which], &q.t, &k.t, &v.t, &dout.t, &o, &bp, &err);
        free(dparams);
        free(dout.buffer); free(dq.buffer); free(dk.buffer); free(dvv.buffer);
        break;
    }
    default: {
        int64_t sf[4] = {b, t, hk, map_dim[which]};
        owned_tensor f;
        make_tensor(&in, &f, 4, sf, 0);
        (void)slay_feature_map_apply(maps[which], (int32_t)take_range(&in, -1, 2), &k.t, &f.t, &err);
        free(f.buffer);
        break;
    }
    }
    free(q.buffer); free(k.buffer); free(v.buffer); free(out.buffer); free(ld.buffer); free(gq.buffer); free(gk.buffer);
    free(beta.buffer);
    return 0;
}
