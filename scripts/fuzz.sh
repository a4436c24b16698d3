#!/usr/bin/env bash
# Fuzzing: builds libslay.so with AddressSanitizer and libFuzzer coverage (in .build-asan, apart
# from the release build), builds the libFuzzer targets in fuzz/ (C harnesses, clang
# -fsanitize=fuzzer,address,undefined) and runs each for the given number of seconds (default 60)
# from its checked-in seed corpus (fuzz/corpus/<target>; new inputs go to a scratch copy).
#   bash scripts/fuzz.sh [seconds] [target ...]     targets: state_load attention feature_map state_step
# Prints "NAME: N execs, 0 crashes" per target; exits non-zero when a target crashes (the crashing
# input is kept in .build-asan/fuzz/crashes/<target>/) or fails to build.
# Environment: SLAY_FUZZ_JOBS (default 1) parallel processes per target; SLAY_FUZZ_KEEP_CORPUS=1
# keeps the grown corpus in .build-asan/fuzz/corpus.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(state_load attention feature_map state_step)
SCRATCH="$ROOT/.build-asan"
OUT="$SCRATCH/fuzz"
mkdir -p "$OUT/bin" "$OUT/crashes"

bash scripts/build_asan.sh || { echo "fuzz: the ASan build of libslay.so failed" >&2; exit 1; }
LIBDIR="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)"

CC="${CC:-clang}"
PARALLEL=()
if [ "${SLAY_FUZZ_JOBS:-1}" -gt 1 ]; then PARALLEL=(-jobs="$SLAY_FUZZ_JOBS" -workers="$SLAY_FUZZ_JOBS"); fi
# The shared ASan runtime (the library and the target must share one) lives with clang.
RUNTIME="$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)"
RUNTIME_DIR="$(dirname "$RUNTIME")"
status=0
for target in "${TARGETS[@]}"; do
    src="fuzz/$target.c"
    bin="$OUT/bin/$target"
    if [ ! -f "$src" ]; then echo "fuzz: no target $target" >&2; exit 2; fi
    if ! "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -shared-libasan \
            -I include -I fuzz "$src" -L "$LIBDIR" -lslay -lm "-Wl,-rpath,$LIBDIR" "-Wl,-rpath,$RUNTIME_DIR" -o "$bin"; then
        echo "$target: build FAILED"
        status=1
        continue
    fi
    corpus="$OUT/corpus/$target"
    rm -rf "$corpus" "$OUT/crashes/$target" && mkdir -p "$corpus" "$OUT/crashes/$target"
    cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
    log="$OUT/$target.log"
    # The ASan runtime is the shared one (the library and the target must use the same; it must
    # be loaded first, hence LD_PRELOAD). Single huge requests are allowed (the library must turn
    # their failure into SLAY_ERR_OUT_OF_MEMORY), but resident memory is capped at 4 GiB; huge
    # requests return NULL so the library's out-of-memory paths run instead of aborting.
    LD_PRELOAD="$RUNTIME" ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$bin" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -rss_limit_mb=4096 -malloc_limit_mb=1048576 -timeout=30 \
            -print_final_stats=1 -artifact_prefix="$OUT/crashes/$target/" "${PARALLEL[@]}" >"$log" 2>&1
    code=$?
    # With parallel jobs each worker reports its own count in fuzz-N.log.
    if [ ${#PARALLEL[@]} -gt 0 ]; then stats=(fuzz-*.log); else stats=("$log"); fi
    execs=$(grep -h "stat::number_of_executed_units" "${stats[@]}" 2>/dev/null | awk '{s += $2} END {print s + 0}')
    crashes=$(ls "$OUT/crashes/$target" 2>/dev/null | wc -l)
    if [ $code -ne 0 ] || [ "$crashes" -gt 0 ]; then
        echo "$target: $execs execs, $((crashes > 0 ? crashes : 1)) crashes (log: $log)"
        grep -m 20 -E "ERROR|SUMMARY|runtime error|#[0-9]+ 0x" "$log" | head -20
        status=1
    else
        echo "$target: $execs execs, 0 crashes"
    fi
    rm -f fuzz-*.log
    if [ "${SLAY_FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$corpus"; fi
done
exit $status
