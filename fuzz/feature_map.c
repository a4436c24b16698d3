/* feature_map — libFuzzer target for feature-map creation and parameters
 * (slay_feature_map_create, _get_param, _set_param, _param_shape, _apply): fuzzed params fields
 * (kinds, dims, polynomials, ε and clamp as raw doubles, flags, seeds), parameter names and
 * counts, and parameter values (NaN, ±inf, out-of-domain sketch entries). Dims are mostly small
 * so one execution stays fast; raw 64-bit values reach the range checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "slay.h"

static const char* const names[] = {"anchors", "omega", "bias", "maclaurin", "sketch", "", "omega2", NULL};

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_input in = {data, size, 0};
    slay_feature_map_params p;
    if (slay_feature_map_params_init(&p) != SLAY_OK) abort();
    p.kind = (int32_t)take_range(&in, 0, 13);
    p.head_dim = take_dim(&in, 12);
    p.num_heads = take_dim(&in, 3);
    p.nodes = (int32_t)take_range(&in, -1, 5);
    p.poly = (int32_t)take_range(&in, 0, 8);
    p.poly_dim = take_dim(&in, 12);
    p.prf_dim = take_dim(&in, 12);
    uint8_t flags = take_u8(&in);
    if (flags & 1) p.eps = take_f64(&in);
    if (flags & 2) p.prf_clamp = take_f64(&in);
    p.seed = (uint64_t)take_i64(&in);
    p.max_length = take_dim(&in, 40);
    p.prf_orthogonal = (int32_t)take_range(&in, 0, 2);
    p.prf_shared = (int32_t)take_range(&in, 0, 2);
    p.expansion = (int32_t)take_range(&in, 0, 2);
    p.degree = (int32_t)take_range(&in, 0, 4);
    if (flags & 4) p.struct_size = take_u32(&in);
    /* Keep one execution fast: Taylor features grow as head_dim^degree. */
    if (p.expansion == SLAY_EXPANSION_TAYLOR && p.head_dim > 12 && p.head_dim < 4096) p.head_dim = 12;

    slay_feature_map* fm = NULL;
    slay_error err;
    if (slay_feature_map_create(&p, &fm, &err) != SLAY_OK) {
        if (fm != NULL) abort();
        return 0;
    }
    int64_t dim = 0;
    if (slay_feature_map_dim(fm, &dim, NULL) != SLAY_OK || dim < 1) abort();
    uint64_t identity = 0;
    if (slay_feature_map_identity(fm, &identity, NULL) != SLAY_OK) abort();
    for (int round = 0; round < 3; round++) {
        const char* name = names[take_range(&in, 0, 6)];
        int32_t ndim = 0;
        int64_t shape[4] = {0, 0, 0, 0}, count = 1;
        int known = slay_feature_map_param_shape(fm, name, &ndim, shape, NULL) == SLAY_OK;
        for (int a = 0; a < ndim && known; a++) count *= shape[a];
        if (!known) count = take_range(&in, 0, 64);
        if (count > (1 << 20)) break;
        int64_t passed = count + (take_u8(&in) >= 240 ? take_range(&in, -2, 2) : 0);
        size_t floats = (size_t)(count > passed ? count : passed) + 1;
        float* values = malloc(floats * sizeof(float));
        if (!values) abort();
        if (slay_feature_map_get_param(fm, name, values, passed, NULL) == SLAY_OK) {
            /* Edit some entries: valid edits, raw bits, or small integers (sketch buckets / signs). */
            int edits = (int)take_range(&in, 0, 6);
            for (int e = 0; e < edits && count > 0; e++) {
                size_t at = (size_t)(take_u32(&in) % (uint64_t)count);
                uint8_t how = take_u8(&in);
                values[at] = how < 128 ? values[at] * 0.5f : how < 200 ? (float)((int)(how % 9) - 4) : take_f32(&in);
            }
        } else {
            take_floats(&in, values, floats - 1);
        }
        int32_t status = slay_feature_map_set_param(fm, name, values, passed, &err);
        uint64_t after = 0;
        if (slay_feature_map_identity(fm, &after, NULL) != SLAY_OK) abort();
        if (status != SLAY_OK && after != identity) abort();   /* a refused set_param changes nothing */
        identity = after;
        free(values);
    }
    /* Features of a small input, with the map as it now is. */
    int64_t t = take_range(&in, 1, 5), h = p.num_heads, d = p.head_dim;
    if (h <= 4 && d <= 64 && dim <= 1 << 16) {
        float* x = malloc(sizeof(float) * (size_t)(t * h * d));
        float* f = malloc(sizeof(float) * (size_t)(t * h * dim));
        if (!x || !f) abort();
        fill_floats(&in, x, (size_t)(t * h * d));
        slay_tensor tx = slay_tensor_4d(x, 1, t, h, d), tf = slay_tensor_4d(f, 1, t, h, dim);
        (void)slay_feature_map_apply(fm, (int32_t)take_range(&in, 0, 1), &tx, &tf, &err);
        free(x);
        free(f);
    }
    slay_feature_map_free(fm);
    return 0;
}
