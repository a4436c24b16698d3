#!/usr/bin/env bash
# Compiles the C programs (example, engine loop, ABI contract test, handle contract test, soak,
# memcheck, decode timing) with strict C99 flags against slay.h and libslay.so only and runs each under both
# kernel variants; then the out-of-memory contract and the step allocation count (plain build).
# The example, engine loop, contract tests and memcheck also run under valgrind (when installed;
# scripts/install_deps.sh tries to install it) with --leak-check=full: a memory error or a
# definite leak fails. Exits non-zero if any fails to build or run.
#   --sanitize   instead: build the programs with clang -fsanitize=address,undefined against the
#                ASan build of libslay.so (scripts/build_asan.sh, .build-asan) and run them once,
#                with LeakSanitizer on.
# Binaries: bindings/c-example/slay_* (git-ignored; slay_*_asan for --sanitize).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bindings/c-example"
SANITIZE=0
if [ "${1:-}" = "--sanitize" ]; then SANITIZE=1; fi
if [ $SANITIZE = 1 ]; then
    LIBDIR="${SLAY_LIB_DIR:-$(cd "$ROOT" && swift build -c release --scratch-path .build-asan --show-bin-path)}"
else
    LIBDIR="${SLAY_LIB_DIR:-$ROOT/.build/release}"
fi
LIBDIR="$(cd "$LIBDIR" && pwd)"
if [ ! -f "$LIBDIR/libslay.so" ]; then
    echo "no $LIBDIR/libslay.so; run scripts/build.sh (or scripts/build_asan.sh for --sanitize) first" >&2
    exit 1
fi
CC="${CC:-cc}"
FLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -O2 -I "$ROOT/include")
if [ $SANITIZE = 1 ]; then
    CC=clang
    FLAGS+=(-g -fsanitize=address,undefined -fno-sanitize-recover=undefined -shared-libasan -fno-omit-frame-pointer)
    # allocator_may_return_null: the contract test asks for huge sizes to check SLAY_ERR_OUT_OF_MEMORY.
    export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
fi
LINK=(-L "$LIBDIR" -lslay -lm "-Wl,-rpath,$LIBDIR")
if [ $SANITIZE = 1 ]; then LINK+=("-Wl,-rpath,$(dirname "$(clang -print-file-name=libclang_rt.asan-x86_64.so)")"); fi
# valgrind: any memory error, and any definitely lost block, is an error (exit code 3).
VALGRIND=(valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)

status=0
for program in example:slay_example engine_loop:slay_engine_loop abi_contract:slay_abi_contract \
               handle_contract:slay_handle_contract soak:slay_soak memcheck:slay_memcheck \
               decode_timing:slay_decode_timing; do
    src="$HERE/${program%%:*}.c"
    bin="$HERE/${program##*:}"
    if [ $SANITIZE = 1 ]; then bin="${bin}_asan"; fi
    echo "--- $CC ${FLAGS[*]} $(basename "$src")"
    if ! "$CC" "${FLAGS[@]}" "$src" "${LINK[@]}" -o "$bin"; then
        echo "--- build of $(basename "$src") FAILED" >&2
        status=1
        continue
    fi
    if [ $SANITIZE = 1 ]; then
        # The soak measures resident memory, which ASan's quarantine of freed blocks inflates; it
        # runs in the plain build (and under valgrind's eye through memcheck's paths).
        if [ "${program%%:*}" = soak ]; then continue; fi
        echo "--- run $(basename "$bin") (ASan + UBSan)"
        if ! LD_PRELOAD="$(clang -print-file-name=libclang_rt.asan-x86_64.so)" "$bin"; then
            echo "--- $(basename "$bin") (ASan + UBSan) FAILED" >&2
            status=1
        fi
        continue
    fi
    # once with the kernels this CPU selects, once with the x86-64 baseline kernels
    for variant in default portable; do
        echo "--- run $(basename "$bin") (kernels: $variant)"
        run=("$bin")
        if [ "$variant" = portable ]; then run=(env SLAY_KERNELS=portable "${run[@]}"); fi
        if ! "${run[@]}"; then
            echo "--- $(basename "$bin") (kernels: $variant) FAILED" >&2
            status=1
        fi
    done
    if [ "${program%%:*}" != soak ]; then
        if command -v valgrind >/dev/null 2>&1; then
            echo "--- valgrind --leak-check=full $(basename "$bin")"
            if ! "${VALGRIND[@]}" "$bin" >/dev/null; then
                echo "--- $(basename "$bin") under valgrind FAILED (memory error or definite leak)" >&2
                status=1
            fi
        else
            echo "--- valgrind is not installed: $(basename "$bin") runs without it"
        fi
    fi
done

# Absurd but valid sizes under a capped address space are SLAY_ERR_OUT_OF_MEMORY, never an abort
# (plain build only: ASan and valgrind reserve more address space than the cap leaves).
if [ $SANITIZE = 0 ]; then
    bin="$HERE/slay_oom_contract"
    echo "--- $CC ${FLAGS[*]} oom_contract.c"
    if ! "$CC" "${FLAGS[@]}" "$HERE/oom_contract.c" "${LINK[@]}" -o "$bin"; then
        echo "--- build of oom_contract.c FAILED" >&2
        status=1
    elif ! "$bin"; then
        echo "--- slay_oom_contract FAILED" >&2
        status=1
    fi
fi

# Decode steps allocate nothing once warm: the heap allocation count under valgrind must not grow
# from 100 to 200 steps (additive; log decay + gates; the gated delta rule, also with a GQA group
# of 512; additive over 300 listed slots).
if [ $SANITIZE = 0 ]; then
    bin="$HERE/slay_step_allocations"
    echo "--- $CC ${FLAGS[*]} step_allocations.c"
    if ! "$CC" "${FLAGS[@]}" "$HERE/step_allocations.c" "${LINK[@]}" -o "$bin"; then
        echo "--- build of step_allocations.c FAILED" >&2
        status=1
    elif command -v valgrind >/dev/null 2>&1; then
        for config in 0 1 2 3 4; do
            counts=()
            for steps in 100 200; do
                counts+=("$(valgrind "$bin" "$steps" "$config" 2>&1 | sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p')")
            done
            echo "--- step allocations, configuration $config: ${counts[0]} allocs after 100 steps, ${counts[1]} after 200"
            if [ -z "${counts[0]}" ] || [ "${counts[0]}" != "${counts[1]}" ]; then
                echo "--- decode steps allocate (configuration $config) FAILED" >&2
                status=1
            fi
        done
    else
        echo "--- valgrind is not installed: the step allocation check is skipped"
    fi
fi
exit $status
