#!/usr/bin/env bash
# Builds libslay.so in release mode (Swift runtime linked statically) and places a copy inside the
# Python package, so `import slay` from bindings/python finds it. The library's SONAME is
# libslay.so.<ABI> (Package.swift), so a symlink of that name sits next to it in the build folder:
# programs linked there with -lslay find it at run time through their rpath.
# The swift build arguments are the ones bindings/python/setup.py uses for `pip install` (a test
# compares them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
swift build -c release --product slay -Xswiftc -static-stdlib "$@"
BIN="$(swift build -c release --show-bin-path)"
ABI="$(sed -n 's/^#define SLAY_ABI_VERSION \([0-9][0-9]*\).*/\1/p' include/slay.h)"
ln -sf libslay.so "$BIN/libslay.so.$ABI"
cp "$BIN/libslay.so" bindings/python/slay/libslay.so
echo "built $BIN/libslay.so (SONAME libslay.so.$ABI)"
