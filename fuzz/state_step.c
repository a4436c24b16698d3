/* state_step — libFuzzer target for state prefill, step and query (slay_state_prefill,
 * slay_state_step, slay_state_query) and the slot operations around them (reset, copy_slot,
 * save / restore): a fuzzed sequence of operations on one state, with fuzzed slot lists,
 * cu_seqlens, options (also the delta rule, qk_l2norm and check_finite) and token values (NaN,
 * ±inf, huge); slots are also read and written as
 * plain arrays (slay_state_read / slay_state_write) with fuzzed counts and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "slay.h"

enum { MAPS = 5, SLOTS = 4, D = 4, DV = 3, H = 2, HQ = 4, TMAX = 12 };
static slay_feature_map* maps[MAPS];
static int64_t map_dim[MAPS];

static void setup(void) {
    static const int32_t kinds[MAPS] = {SLAY_KIND_SLAY, SLAY_KIND_ELU_PLUS_ONE, SLAY_KIND_HADAMARD_EXP,
                                        SLAY_KIND_IDENTITY, SLAY_KIND_COSFORMER};
    for (int i = 0; i < MAPS; i++) {
        slay_feature_map_params p;
        if (slay_feature_map_params_init(&p) != SLAY_OK) abort();
        p.kind = kinds[i];
        p.head_dim = D;
        p.num_heads = H;
        p.prf_dim = 2;
        p.poly_dim = 2;
        p.max_length = 64;
        if (slay_feature_map_create(&p, &maps[i], NULL) != SLAY_OK) abort();
        if (slay_feature_map_dim(maps[i], &map_dim[i], NULL) != SLAY_OK) abort();
    }
}

static void options(fuzz_input* in, slay_attention_options* o, float* gammas, slay_tensor* log_decay,
                    slay_tensor* gq, slay_tensor* gk) {
    if (slay_attention_options_init(o) != SLAY_OK) abort();
    uint8_t flags = take_u8(in);
    if (flags & 1) o->delta = take_f64(in);
    if (flags & 2) o->chunk_size = take_dim(in, 20);
    o->n_threads = flags & 4 ? (int32_t)take_range(in, 0, 3) : 1;
    o->normalize = flags & 8 ? 0 : 1;
    o->denominator = (int32_t)take_range(in, 0, 1);
    if (flags & 16) { o->decay = gammas; for (int i = 0; i < H; i++) gammas[i] = flags & 128 ? take_f32(in) : 0.8f; }
    if (flags & 32) o->log_decay = log_decay;
    if (flags & 64) { o->query_gate_logits = gq; o->key_gate_logits = gk; }
    if (take_u8(in) >= 250) { o->nth = (int32_t)take_range(in, 0, 3); o->ith = (int32_t)take_range(in, -1, 3); }
    uint8_t more = take_u8(in);
    if (more & 1) { o->update = SLAY_UPDATE_DELTA; o->normalize = more & 2 ? 1 : 0; }
    if (more & 4) o->update = (int32_t)take_range(in, -1, 2);
    o->qk_l2norm = more & 8 ? 1 : 0;
    o->check_finite = more & 16 ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!maps[0]) setup();
    fuzz_input in = {data, size, 0};
    int which = (int)take_range(&in, 0, MAPS - 1);
    int64_t m = map_dim[which];
    slay_state* st = NULL;
    slay_state* other = NULL;
    int32_t threads = (int32_t)take_range(&in, 1, 2);
    if (slay_state_create(maps[which], SLOTS, DV, threads, &st, NULL) != SLAY_OK) abort();
    if (slay_state_create(maps[which], SLOTS, DV, 1, &other, NULL) != SLAY_OK) abort();
    static float q[SLOTS * TMAX * HQ * D], k[SLOTS * TMAX * H * D], v[SLOTS * TMAX * H * DV], out[SLOTS * TMAX * HQ * DV];
    static float ld[SLOTS * TMAX * H * 64], gq[SLOTS * TMAX * HQ], gk[SLOTS * TMAX * H];
    static uint8_t blob[1 << 16];
    float gammas[H];
    int ops = (int)take_range(&in, 1, 8);
    for (int op = 0; op < ops; op++) {
        slay_attention_options o;
        slay_error err;
        int kind = (int)take_range(&in, 0, 6);
        int64_t n = take_range(&in, 1, SLOTS), t = take_range(&in, 1, TMAX);
        int32_t slots[SLOTS + 1];
        int use_slots = take_u8(&in) & 1;
        for (int i = 0; i <= SLOTS; i++) slots[i] = (int32_t)take_range(&in, -1, SLOTS);
        fill_floats(&in, q, (size_t)(n * t * HQ * D));
        fill_floats(&in, k, (size_t)(n * t * H * D));
        fill_floats(&in, v, (size_t)(n * t * H * DV));
        for (size_t i = 0; i < (size_t)(n * t * H * m) && m <= 64; i++) ld[i] = -(float)(take_u8(&in) % 7) / 8.0f;
        fill_floats(&in, gq, (size_t)(n * t * HQ));
        fill_floats(&in, gk, (size_t)(n * t * H));
        slay_tensor tld = slay_tensor_4d(ld, n, t, H, m), tgq = slay_tensor_4d(gq, n, t, HQ, 1), tgk = slay_tensor_4d(gk, n, t, H, 1);
        tgq.ndim = 3; tgk.ndim = 3;
        options(&in, &o, gammas, &tld, &tgq, &tgk);
        switch (kind) {
        case 0: {   /* padded prefill, with or without outputs */
            slay_tensor tq = slay_tensor_4d(q, n, t, HQ, D), tk = slay_tensor_4d(k, n, t, H, D),
                        tv = slay_tensor_4d(v, n, t, H, DV), to = slay_tensor_4d(out, n, t, HQ, DV);
            int with_q = take_u8(&in) & 1;
            (void)slay_state_prefill(st, with_q ? &tq : NULL, &tk, &tv, with_q ? &to : NULL, NULL,
                                     use_slots ? slots : NULL, n, &o, &err);
            break;
        }
        case 1: {   /* packed prefill with fuzzed cu_seqlens */
            int64_t cu[SLOTS + 1];
            cu[0] = take_u8(&in) >= 250 ? take_range(&in, -1, 2) : 0;
            for (int i = 1; i <= n; i++) cu[i] = cu[i - 1] + take_range(&in, -1, 4);
            int64_t total = n * t;
            slay_tensor tq = slay_tensor_4d(q, 1, total, HQ, D), tk = slay_tensor_4d(k, 1, total, H, D),
                        tv = slay_tensor_4d(v, 1, total, H, DV), to = slay_tensor_4d(out, 1, total, HQ, DV);
            (void)slay_state_prefill(st, &tq, &tk, &tv, &to, cu, use_slots ? slots : NULL, n, &o, &err);
            break;
        }
        case 2: {   /* one decode step per sequence */
            slay_tensor tq = slay_tensor_4d(q, n, HQ, D, 1), tk = slay_tensor_4d(k, n, H, D, 1),
                        tv = slay_tensor_4d(v, n, H, DV, 1), to = slay_tensor_4d(out, n, HQ, DV, 1);
            tq.ndim = tk.ndim = tv.ndim = to.ndim = 3;
            slay_tensor sld = slay_tensor_4d(ld, n, H, m, 1), sgq = slay_tensor_4d(gq, n, HQ, 1, 1), sgk = slay_tensor_4d(gk, n, H, 1, 1);
            sld.ndim = 3; sgq.ndim = 2; sgk.ndim = 2;
            if (o.log_decay) o.log_decay = &sld;
            if (o.query_gate_logits) { o.query_gate_logits = &sgq; o.key_gate_logits = &sgk; }
            (void)slay_state_step(st, &tq, &tk, &tv, &to, use_slots ? slots : NULL, n, &o, &err);
            break;
        }
        case 3: {   /* read-only queries */
            slay_tensor tq = slay_tensor_4d(q, n, t, HQ, D), to = slay_tensor_4d(out, n, t, HQ, DV);
            o.log_decay = NULL;
            o.key_gate_logits = NULL;
            (void)slay_state_query(st, &tq, &to, NULL, use_slots ? slots : NULL, n, &o, &err);
            break;
        }
        case 4:
            (void)slay_state_reset(st, take_range(&in, -2, SLOTS), &err);
            (void)slay_state_copy_slot(other, take_range(&in, -1, SLOTS), st, take_range(&in, -1, SLOTS), &err);
            (void)slay_state_copy_slot(st, take_range(&in, -1, SLOTS), other, take_range(&in, -1, SLOTS), &err);
            break;
        case 6: {   /* a slot as plain arrays: read, then write back edited values */
            static float matrix[H * 64 * DV + 8], normaliser[H * 64 + 8];
            int64_t slot = take_range(&in, -1, SLOTS);
            int64_t mc = H * m * DV + (take_u8(&in) >= 240 ? take_range(&in, -1, 1) : 0);
            int64_t nc = H * m + (take_u8(&in) >= 240 ? take_range(&in, -1, 1) : 0);
            if (m > 64) break;
            (void)slay_state_read(st, slot, matrix, mc, normaliser, nc, &err);
            int edits = (int)take_range(&in, 0, 4);
            for (int e = 0; e < edits; e++) matrix[take_u32(&in) % (uint32_t)(H * m * DV)] = take_f32(&in);
            (void)slay_state_write(st, slot, take_u8(&in) & 1 ? matrix : NULL, mc, take_u8(&in) & 1 ? normaliser : NULL, nc,
                                   take_u8(&in) >= 250 ? take_i64(&in) : (int64_t)take_u8(&in), &err);
            break;
        }
        default: {   /* save and restore: a state that saved must load back */
            size_t bytes = 0, written = 0;
            if (slay_state_serialized_size(st, &bytes, NULL) != SLAY_OK || bytes > sizeof blob) abort();
            if (slay_state_save(st, blob, sizeof blob, &written, NULL) != SLAY_OK || written != bytes) abort();
            (void)slay_state_restore(other, blob, written, &err);
            break;
        }
        }
    }
    slay_state_free(other);
    slay_state_free(st);
    return 0;
}
