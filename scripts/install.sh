#!/usr/bin/env bash
# Installs libslay for C and C++ users under a prefix:
#   PREFIX/lib/libslay.so.MAJOR.MINOR.PATCH   (SONAME libslay.so.ABI)
#   PREFIX/lib/libslay.so.ABI -> libslay.so.MAJOR.MINOR.PATCH, PREFIX/lib/libslay.so -> libslay.so.ABI
#   PREFIX/include/slay.h
#   PREFIX/lib/pkgconfig/libslay.pc                      (pkg-config --cflags --libs libslay)
#   PREFIX/lib/cmake/libslay/libslayConfig.cmake         (find_package(libslay): target libslay::slay)
#   PREFIX/lib/cmake/libslay/libslayConfigVersion.cmake
# Versions come from include/slay.h (SLAY_VERSION_*, SLAY_ABI_VERSION). Builds first (scripts/build.sh)
# unless --no-build is given. Usage: scripts/install.sh --prefix DIR [--no-build]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/usr/local
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (usage: scripts/install.sh --prefix DIR [--no-build])" >&2; exit 2 ;;
    esac
done
cd "$ROOT"
macro() { sed -n "s/^#define $1 \([0-9][0-9]*\).*/\1/p" include/slay.h; }
MAJOR="$(macro SLAY_VERSION_MAJOR)"; MINOR="$(macro SLAY_VERSION_MINOR)"; PATCH="$(macro SLAY_VERSION_PATCH)"
ABI="$(macro SLAY_ABI_VERSION)"
VERSION="$MAJOR.$MINOR.$PATCH"
if [ "$BUILD" = 1 ]; then
    bash scripts/build.sh >/dev/null
fi
LIB="$(swift build -c release --show-bin-path)/libslay.so"
[ -f "$LIB" ] || { echo "install.sh: no $LIB; run scripts/build.sh (or drop --no-build)" >&2; exit 1; }
SONAME="$(readelf -d "$LIB" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
if [ "$SONAME" != "libslay.so.$ABI" ]; then
    echo "install.sh: $LIB has SONAME '$SONAME', slay.h says ABI $ABI (libslay.so.$ABI); rebuild" >&2
    exit 1
fi

mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake/libslay" "$PREFIX/include"
PREFIX="$(cd "$PREFIX" && pwd)"
install -m 0755 "$LIB" "$PREFIX/lib/libslay.so.$VERSION"
ln -sfn "libslay.so.$VERSION" "$PREFIX/lib/libslay.so.$ABI"
ln -sfn "libslay.so.$ABI" "$PREFIX/lib/libslay.so"
install -m 0644 include/slay.h "$PREFIX/include/slay.h"
fill() { sed -e "s/@VERSION@/$VERSION/g" -e "s/@MAJOR@/$MAJOR/g" -e "s/@ABI@/$ABI/g" "$1" > "$2"; chmod 0644 "$2"; }
fill cmake/libslay.pc.in "$PREFIX/lib/pkgconfig/libslay.pc"
fill cmake/libslayConfig.cmake.in "$PREFIX/lib/cmake/libslay/libslayConfig.cmake"
fill cmake/libslayConfigVersion.cmake.in "$PREFIX/lib/cmake/libslay/libslayConfigVersion.cmake"
echo "installed libslay $VERSION (SONAME libslay.so.$ABI) under $PREFIX"
