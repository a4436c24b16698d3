/* state_load — libFuzzer target for the state blob loader and restore (slay_state_load,
 * slay_state_restore). Byte 0 picks the feature map and whether the harness re-seals the
 * checksum after libFuzzer's mutation (so the checks behind the checksum, dims, layout, dtype,
 * positions and finite values, are reached too); the rest is the blob. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slay.h"

static slay_feature_map* maps[3];
static slay_state* states[3];

static void setup(void) {
    static const int32_t kinds[3] = {SLAY_KIND_SLAY, SLAY_KIND_ELU_PLUS_ONE, SLAY_KIND_HADAMARD_EXP};
    for (int i = 0; i < 3; i++) {
        slay_feature_map_params p;
        if (slay_feature_map_params_init(&p) != SLAY_OK) abort();
        p.kind = kinds[i];
        p.head_dim = 4;
        p.num_heads = 2;
        p.prf_dim = 2;
        p.poly_dim = 2;
        if (slay_feature_map_create(&p, &maps[i], NULL) != SLAY_OK) abort();
        if (slay_state_create(maps[i], 2, 3, 1, &states[i], NULL) != SLAY_OK) abort();
    }
}

static uint64_t fnv1a(const uint8_t* data, size_t size) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < size; i++) { h ^= data[i]; h *= 0x100000001B3ull; }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!maps[0]) setup();
    if (size < 1) return 0;
    int which = data[0] % 3;
    int reseal = (data[0] >> 2) & 1;
    size_t n = size - 1;
    uint8_t* blob = malloc(n ? n : 1);
    if (!blob) return 0;
    if (n) memcpy(blob, data + 1, n);
    if (reseal && n >= 16) {
        uint64_t sum = fnv1a(blob, n - 8);
        memcpy(blob + n - 8, &sum, 8);
    }
    slay_state* loaded = NULL;
    slay_error err;
    if (slay_state_load(maps[which], blob, n, 1, &loaded, &err) == SLAY_OK) {
        /* A current (version 2) blob that loads must save back byte for byte. */
        uint32_t version;
        memcpy(&version, blob + 8, 4);
        size_t bytes = 0, written = 0;
        if (slay_state_serialized_size(loaded, &bytes, NULL) != SLAY_OK) abort();
        if (version == 2) {
            uint8_t* again = malloc(bytes);
            if (bytes != n || !again) abort();
            if (slay_state_save(loaded, again, bytes, &written, NULL) != SLAY_OK || written != n ||
                memcmp(again, blob, n) != 0) abort();
            free(again);
        }
        slay_state_free(loaded);
    } else if (loaded != NULL) {
        abort();   /* *out must be NULL on failure */
    }
    (void)slay_state_restore(states[which], blob, n, &err);
    free(blob);
    return 0;
}
