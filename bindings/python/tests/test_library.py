"""Library hygiene: exports, self-containment, versions, header/binding agreement, README examples."""
import pathlib
import re
import subprocess

import slay
from slay import _lib

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEADER = (ROOT / "include" / "slay.h").read_text()
LIBRARY = _lib.lib._name


def test_exports_only_slay_symbols():
    symbols = subprocess.run(["nm", "-D", "-g", "--defined-only", LIBRARY], capture_output=True, text=True,
                             check=True).stdout.split("\n")
    names = [line.split()[-1] for line in symbols if line.strip()]
    assert names and all(name.startswith("slay_") for name in names), names


def test_swift_runtime_is_static():
    deps = subprocess.run(["ldd", LIBRARY], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in deps and "libFoundation" not in deps and "libdispatch" not in deps, deps


def test_versions_agree_with_header():
    macro = {name: int(value) for name, value in re.findall(r"#define SLAY_(VERSION_\w+|ABI_VERSION) (\d+)\b", HEADER)}
    assert _lib.lib.slay_abi_version() == macro["ABI_VERSION"] == slay.ABI_VERSION
    number = macro["VERSION_MAJOR"] * 10000 + macro["VERSION_MINOR"] * 100 + macro["VERSION_PATCH"]
    assert _lib.lib.slay_version_number() == number
    assert slay.__version__ == "%d.%d.%d" % (macro["VERSION_MAJOR"], macro["VERSION_MINOR"], macro["VERSION_PATCH"])


def test_every_header_function_is_bound():
    declared = set(re.findall(r"^SLAY_API[^(]*?\b(slay_\w+)\(", HEADER, re.M))
    assert declared == set(_lib.SIGNATURES)


def test_status_strings():
    codes = [int(c) for c in re.findall(r"#define SLAY_(?:OK|ERR_\w+)\s+(-?\d+)", HEADER)]
    names = [_lib.lib.slay_status_string(c).decode() for c in codes]
    assert len(set(names)) == len(codes) and "unknown status" not in names
    assert _lib.lib.slay_status_string(12345) == b"unknown status"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
