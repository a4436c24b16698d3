#!/usr/bin/env bash
# Compiles the C example with strict C99 flags against slay.h and libslay.so only, then runs it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBDIR="$(cd "$ROOT" && swift build -c release --show-bin-path)"
OUT="$ROOT/bindings/c-example/slay_example"
cc -std=c99 -Wall -Wextra -Werror -pedantic -I "$ROOT/include" "$ROOT/bindings/c-example/example.c" \
    -L "$LIBDIR" -lslay -lm -Wl,-rpath,"$LIBDIR" -o "$OUT"
"$OUT"
