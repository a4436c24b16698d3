#!/usr/bin/env bash
# The README's test command: installs what is missing, builds libslay.so once in release mode,
# then runs every suite (header drift check, Swift tests, C example and C contract test, the C
# programs under ASan + UBSan, the Swift tests under ASan + LSan, a fuzz smoke, pytest, and a pip
# install of a clean clone into a fresh venv).
# Runs all suites even when one fails, prints each runner's summary, exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
failures=()
step() {
    local name="$1"; shift
    echo
    echo "=== $name ==="
    local started=$SECONDS
    if "$@"; then
        echo "=== $name: ok ($((SECONDS - started)) s) ==="
    else
        echo "=== $name: FAILED ($((SECONDS - started)) s) ==="
        failures+=("$name")
    fi
}

bash scripts/install_deps.sh || exit 1
step "build libslay.so (release)" bash scripts/build.sh
if [[ " ${failures[*]-} " == *" build libslay.so (release) "* ]]; then
    echo "build failed; no tests can run" >&2
    exit 1
fi
step "header drift check" bash scripts/check_header_drift.sh
# XCTest only: the suites are XCTest, and swift-testing would add a "0 tests" closing line.
step "swift test" swift test --disable-swift-testing
step "C example and C ABI contract" bash bindings/c-example/build_and_run.sh
# The C programs again under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), against
# an ASan build of the library (.build-asan), and a few seconds of each libFuzzer target.
step "C programs under ASan + UBSan" bash -c "bash scripts/build_asan.sh && bash bindings/c-example/build_and_run.sh --sanitize"
# The Swift test suites under ASan + LSan (a debug build beside the ASan library in .build-asan;
# about 2.5 min on an idle two-core machine, build included).
step "swift test under ASan + LSan" bash scripts/swift_test_asan.sh
step "fuzz smoke (scripts/fuzz.sh 5)" bash scripts/fuzz.sh 5
step "pytest" python3 -m pytest bindings/python/tests -q -rs -p no:cacheprovider
# The same suite on the baseline kernels, so both builds of the compute kernels are checked.
step "pytest (SLAY_KERNELS=portable)" env SLAY_KERNELS=portable python3 -m pytest bindings/python/tests -q -p no:cacheprovider
# Slow (a Swift build from scratch): a fresh venv pip-installs the package from a clean clone of the
# committed HEAD and runs attention from another folder with no environment variables.
step "pip install from a clean clone into a fresh venv" bash scripts/test_pip_install.sh

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "FAILED suites: ${failures[*]}"
    exit 1
fi
echo "all suites passed"
