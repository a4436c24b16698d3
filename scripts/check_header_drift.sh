#!/usr/bin/env bash
# The compiler does not compare @_cdecl exports with the prototypes in slay.h, so a signature that
# drifts (int32_t vs int64_t) would compile silently. Emit the C header Swift derives from the
# exports and compile it after slay.h: any disagreement is a "conflicting types" error.
# Needs the release build (for the SlayCore module).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODULES="$(swift build -c release --show-bin-path)/Modules"
swiftc -parse-as-library -module-name SlayCABI -emit-module -o "$WORK/SlayCABI.swiftmodule" \
    -emit-clang-header-path "$WORK/slay_swift_exports.h" \
    -Xcc -fmodule-map-file=include/module.modulemap -I include -I "$MODULES" \
    -Xcc -fmodule-map-file="$(dirname "$MODULES")/CSlayCPU.build/module.modulemap" \
    Sources/SlayCABI/*.swift
# The generated declarations sit inside an Objective-C-only block; lift them out into plain C.
# Swift sees pointers to opaque handles as OpaquePointer (void *), so the comparison treats every
# handle pointer as void * on both sides (constness of an opaque pointee is invisible to Swift).
sed -E 's/(const )?slay_(feature_map|state)\*/void*/g' include/slay.h > "$WORK/slay.h"
{
    printf '#include "slay.h"\n#define SWIFT_EXTERN extern\n#define SWIFT_NOEXCEPT\n#define SWIFT_WARN_UNUSED_RESULT\n#define NSUInteger size_t\n#define NSInteger ptrdiff_t\n'
    awk '/^SWIFT_EXTERN .*slay_/,/;/' "$WORK/slay_swift_exports.h"
} > "$WORK/check.c"
CLANG="$(command -v clang || echo /opt/swift/usr/bin/clang)"
"$CLANG" -fsyntax-only -Wno-nullability-completeness -I "$WORK" "$WORK/check.c"
EXPORTS=$(grep -c '^SWIFT_EXTERN .*slay_' "$WORK/slay_swift_exports.h")
DECLARED=$(grep -c '^SLAY_API ' include/slay.h)
if [ "$EXPORTS" != "$DECLARED" ]; then
    echo "header drift: slay.h declares $DECLARED functions, the Swift layer exports $EXPORTS" >&2
    exit 1
fi
echo "header drift check: $EXPORTS exports agree with slay.h"
