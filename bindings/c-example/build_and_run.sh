#!/usr/bin/env bash
# Compiles the C programs (example, engine loop, ABI contract test, memcheck) with strict C99 flags
# against slay.h and libslay.so only and runs each under both kernel variants; memcheck runs under
# valgrind when it is installed (scripts/install_deps.sh tries to install it). Exits non-zero if any
# fails to build or run, or valgrind reports a memory error.
# Binaries: bindings/c-example/slay_* (git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bindings/c-example"
LIBDIR="${SLAY_LIB_DIR:-$ROOT/.build/release}"
LIBDIR="$(cd "$LIBDIR" && pwd)"
if [ ! -f "$LIBDIR/libslay.so" ]; then
    echo "no $LIBDIR/libslay.so; run scripts/build.sh first (or set SLAY_LIB_DIR)" >&2
    exit 1
fi
CC="${CC:-cc}"
FLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -O2 -I "$ROOT/include")
LINK=(-L "$LIBDIR" -lslay -lm "-Wl,-rpath,$LIBDIR")

status=0
for program in example:slay_example engine_loop:slay_engine_loop abi_contract:slay_abi_contract handle_contract:slay_handle_contract memcheck:slay_memcheck; do
    src="$HERE/${program%%:*}.c"
    bin="$HERE/${program##*:}"
    echo "--- $CC ${FLAGS[*]} $(basename "$src")"
    if ! "$CC" "${FLAGS[@]}" "$src" "${LINK[@]}" -o "$bin"; then
        echo "--- build of $(basename "$src") FAILED" >&2
        status=1
        continue
    fi
    # once with the kernels this CPU selects, once with the x86-64 baseline kernels
    for variant in default portable; do
        echo "--- run $(basename "$bin") (kernels: $variant)"
        run=("$bin")
        if [ "${program%%:*}" = memcheck ]; then
            if command -v valgrind >/dev/null 2>&1; then
                run=(valgrind -q --error-exitcode=3 "$bin")
            else
                echo "--- valgrind is not installed: memcheck runs without it"
            fi
        fi
        if [ "$variant" = portable ]; then run=(env SLAY_KERNELS=portable "${run[@]}"); fi
        if ! "${run[@]}"; then
            echo "--- $(basename "$bin") (kernels: $variant) FAILED" >&2
            status=1
        fi
    done
done
exit $status
