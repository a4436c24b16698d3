#!/usr/bin/env bash
# What a new user does, checked end to end (slow: it builds the Swift library from scratch):
# clone the repository (the committed HEAD) into a temporary folder, create a fresh virtual
# environment, `pip install` the package from the clone, then from another folder, with no
# environment variables, import slay (it must come from the venv, with libslay.so inside it) and
# run attention. Then the same with the sdist made from the clone (`pip install libslay-<v>.tar.gz`:
# it carries the Swift sources) in a second fresh venv. The venvs reuse the system's numpy
# (--system-site-packages); pip fetches the build backend (setuptools) from PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git clone -q "$ROOT" "$WORK/libslay"
echo "cloned $(git -C "$WORK/libslay" log -1 --format='%h %s')"
check_venv() {  # $1: the venv; imports slay from an empty folder with no environment variables
    rm -rf "$WORK/elsewhere" && mkdir "$WORK/elsewhere"
    (cd "$WORK/elsewhere" && env -i HOME="$WORK" PATH=/usr/bin:/bin "$1/bin/python" - "$1" <<'PY'
import importlib.metadata
import pathlib
import sys

import numpy as np

import slay

venv = pathlib.Path(sys.argv[1]).resolve()
package = pathlib.Path(slay.__file__).resolve().parent
assert venv in package.parents, "slay imported from %s, not from the venv" % package
assert (package / "libslay.so").is_file() and (package / "py.typed").is_file()
assert importlib.metadata.version("libslay") == slay.__version__, (importlib.metadata.version("libslay"), slay.__version__)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 64, 2, 16)).astype(np.float32) for _ in range(3))
with slay.FeatureMap("slay", head_dim=16, num_heads=2, poly="exact", prf_dim=4) as fm:
    y = slay.linear_attention(q, k, v, fm, causal=True)
reference = slay.exact_attention(q, k, v, kernel="yat-spherical", causal=True)
error = float(np.linalg.norm(y - reference) / np.linalg.norm(reference))
assert y.shape == (1, 64, 2, 16) and np.isfinite(y).all() and error < 1.0, error
print("libslay %s from %s: attention runs (relative error vs exact %.3f)" % (slay.__version__, package, error))
PY
    )
}

"$PYTHON" -m venv --system-site-packages "$WORK/venv"
started=$SECONDS
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "$WORK/libslay/bindings/python"
echo "pip install ./bindings/python of the clone (swift build included): $((SECONDS - started)) s"
check_venv "$WORK/venv"

started=$SECONDS
(cd "$WORK/libslay/bindings/python" && "$PYTHON" setup.py -q sdist -d "$WORK/dist" >/dev/null)
SDIST="$(ls "$WORK"/dist/libslay-*.tar.gz)"
"$PYTHON" -m venv --system-site-packages "$WORK/venv-sdist"
"$WORK/venv-sdist/bin/python" -m pip install -q --disable-pip-version-check "$SDIST"
echo "pip install $(basename "$SDIST") (swift build included): $((SECONDS - started)) s"
check_venv "$WORK/venv-sdist"
