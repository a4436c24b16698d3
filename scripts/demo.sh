#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds libslay.so, runs the C example and
# the Python quickstart.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install_deps.sh
bash scripts/build.sh
bash bindings/c-example/build_and_run.sh
PYTHONPATH="$ROOT/bindings/python" python3 bindings/python/examples/quickstart.py
