#!/usr/bin/env bash
# Installs what the build, the demo and the tests need on a fresh machine, and nothing when it is
# already there: a C compiler, a C++ compiler, cmake and pkg-config (Debian), numpy, pytest,
# hypothesis, mpmath, auditwheel, mypy (PyPI; the packaging tests use these two) and ml_dtypes (the
# bfloat16 numpy arrays of the half-precision tests; optional for users); valgrind
# (Debian) when it can, for the memcheck run (without it that program runs natively); torch and
# transformers (PyPI) for the PyTorch layer's tests.
set -euo pipefail
if ! command -v cc >/dev/null 2>&1; then
    echo "installing a C compiler (apt)"
    apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null
fi
# The C install test builds a C++17 program with pkg-config and a CMake project (scripts/install.sh).
apt_missing=()
command -v c++ >/dev/null 2>&1 || apt_missing+=(g++)
command -v cmake >/dev/null 2>&1 || apt_missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || apt_missing+=(pkg-config)
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "installing ${apt_missing[*]} (apt), for the C/C++ install test"
    apt-get update -qq && apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "installing valgrind (apt), for bindings/c-example/memcheck.c"
    (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null) \
        || echo "valgrind could not be installed; memcheck.c will run without it" >&2
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "swift is not on PATH; libslay needs Swift 6.x (https://www.swift.org/install)" >&2
    exit 1
fi
missing=()
for module in numpy pytest hypothesis mpmath auditwheel mypy ml_dtypes; do
    python3 -c "import $module" >/dev/null 2>&1 || missing+=("$module")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Python packages: ${missing[*]}"
    python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
fi
# The PyTorch layer (slay.torch, the extra `torch`) is tested when torch and transformers import.
# PyPI's torch is the CUDA build (about 5 GB; used on the CPU here): installed once, then reused.
# Should it fail, the numpy suite still runs and says in one line that the torch tests were skipped.
torch_missing=()
for module in torch transformers; do
    python3 -c "import $module" >/dev/null 2>&1 || torch_missing+=("$module")
done
if [ ${#torch_missing[@]} -gt 0 ]; then
    echo "installing Python packages for slay.torch: ${torch_missing[*]}"
    python3 -m pip install -q --disable-pip-version-check "${torch_missing[@]}" \
        || echo "could not install ${torch_missing[*]}; the torch tests will be skipped" >&2
fi
