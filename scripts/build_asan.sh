#!/usr/bin/env bash
# Builds libslay.so with AddressSanitizer and SanitizerCoverage (for libFuzzer) in .build-asan,
# apart from the release build. Used by scripts/fuzz.sh and the sanitizer run of the C programs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
swift build -c release --product slay --scratch-path .build-asan -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,pc-table,inline-8bit-counters "$@"
# The library's SONAME is libslay.so.<ABI> (Package.swift): programs linked against it look for that name.
BIN="$(swift build -c release --scratch-path .build-asan --show-bin-path)"
ABI="$(sed -n 's/^#define SLAY_ABI_VERSION \([0-9][0-9]*\).*/\1/p' include/slay.h)"
ln -sf libslay.so "$BIN/libslay.so.$ABI"
