/* Internal: CPU feature detection for choosing the kernel variant. Not part of the public API
 * (the symbol has no slay_ prefix, so the version script keeps it local to libslay.so). */
#ifndef SLAY_CPU_H
#define SLAY_CPU_H
int slaycpu_has_avx2_fma(void);
/* A read prefetch of the cache line at p into all cache levels (a hint: never faults). */
static inline void slaycpu_prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }
#endif
