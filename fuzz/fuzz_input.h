/* fuzz_input.h — reads typed values from a libFuzzer input, shared by the fuzz targets. Reading
 * past the end yields zeros, so every input is a complete case. */
#ifndef SLAY_FUZZ_INPUT_H
#define SLAY_FUZZ_INPUT_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct fuzz_input {
    const uint8_t* data;
    size_t size;
    size_t at;
} fuzz_input;

static inline void take(fuzz_input* in, void* out, size_t bytes) {
    size_t n = in->at < in->size ? in->size - in->at : 0;
    if (n > bytes) n = bytes;
    memset(out, 0, bytes);
    if (n) memcpy(out, in->data + in->at, n);
    in->at += bytes;
}

static inline uint8_t take_u8(fuzz_input* in) { uint8_t v; take(in, &v, 1); return v; }
static inline uint32_t take_u32(fuzz_input* in) { uint32_t v; take(in, &v, 4); return v; }
static inline int64_t take_i64(fuzz_input* in) { int64_t v; take(in, &v, 8); return v; }
static inline double take_f64(fuzz_input* in) { double v; take(in, &v, 8); return v; }
static inline float take_f32(fuzz_input* in) { float v; take(in, &v, 4); return v; }

/* A value in lo..hi, from one byte. */
static inline int64_t take_range(fuzz_input* in, int64_t lo, int64_t hi) {
    return lo + (int64_t)(take_u8(in) % (uint64_t)(hi - lo + 1));
}

/* Mostly small, sometimes any 64-bit value (to reach the range checks). */
static inline int64_t take_dim(fuzz_input* in, int64_t hi) {
    uint8_t mode = take_u8(in);
    if (mode < 240) return 1 + (int64_t)(mode % (uint64_t)hi);
    return take_i64(in);
}

/* Floats: the input's bits, so NaN, ±inf, subnormals and huge values all occur. */
static inline void take_floats(fuzz_input* in, float* out, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = take_f32(in);
}

/* Fills a float buffer with a mix of ordinary values and the input's raw bits. */
static inline void fill_floats(fuzz_input* in, float* out, size_t count) {
    uint8_t raw = take_u8(in);
    for (size_t i = 0; i < count; i++) {
        if (raw & 1) out[i] = take_f32(in);
        else out[i] = (float)((int)take_u8(in) - 128) / 32.0f;
    }
}
#endif
