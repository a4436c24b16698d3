#!/usr/bin/env bash
# Builds libslay.so in release mode (Swift runtime linked statically) and places a copy inside the
# Python package, so `import slay` from bindings/python and `pip install ./bindings/python` find it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
swift build -c release --product slay -Xswiftc -static-stdlib "$@"
LIB="$(swift build -c release --show-bin-path)/libslay.so"
cp "$LIB" bindings/python/slay/libslay.so
echo "built $LIB"
