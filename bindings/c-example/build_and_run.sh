#!/usr/bin/env bash
# Compiles the C example and the C ABI contract test with strict C99 flags against slay.h and
# libslay.so only, then runs both. Exits non-zero if either fails to build or run.
# Binaries: bindings/c-example/slay_example and bindings/c-example/slay_abi_contract (git-ignored).
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
for program in example:slay_example engine_loop:slay_engine_loop abi_contract:slay_abi_contract; do
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
        if [ "$variant" = portable ]; then run=(env SLAY_KERNELS=portable "$bin"); else run=("$bin"); fi
        if ! "${run[@]}"; then
            echo "--- $(basename "$bin") (kernels: $variant) FAILED" >&2
            status=1
        fi
    done
done
exit $status
