"""Library hygiene: exports, self-containment, versions, header/binding agreement, loading, packaging,
README examples."""
import ctypes
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import slay
from slay import _lib

ROOT = pathlib.Path(__file__).resolve().parents[3]
PACKAGE_DIR = pathlib.Path(slay.__file__).resolve().parents[1]
HEADER = (ROOT / "include" / "slay.h").read_text()
LIBRARY = _lib.lib._name


def header_declarations():
    """{name: (return type, [parameter types])} of every SLAY_API function in slay.h."""
    declarations = {}
    for match in re.finditer(r"^SLAY_API\s+(?:SLAY_NODISCARD\s+)?([^;]*?)\b(slay_\w+)\s*\(([^)]*)\)\s*;", HEADER,
                             re.M | re.S):
        returns, name, params = match.group(1).strip(), match.group(2), " ".join(match.group(3).split())
        types = [] if params in ("", "void") else [re.sub(r"\s*\b\w+$", "", p.strip()) for p in params.split(",")]
        declarations[name] = (returns, types)
    return declarations


SCALARS = {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
           "size_t": ctypes.c_size_t, "double": ctypes.c_double, "float": ctypes.c_float}


def test_exports_only_slay_symbols():
    """CONVENTIONS.md: the dynamic symbol table exports only slay_* (global defined symbols)."""
    symbols = subprocess.run(["nm", "-D", "--defined-only", LIBRARY], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    exported = [line.split()[-1] for line in symbols if line.strip() and line.split()[-2].isupper()]
    assert exported and all(name.startswith("slay_") for name in exported), \
        [n for n in exported if not n.startswith("slay_")]
    assert set(exported) == set(header_declarations()), "exports and slay.h functions differ"


def test_swift_runtime_is_static():
    """CONVENTIONS.md: ldd shows no libswift* (the Swift runtime is linked statically), no Foundation."""
    deps = subprocess.run(["ldd", LIBRARY], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in deps and "libFoundation" not in deps and "libdispatch" not in deps, deps


def test_versions_agree_with_header():
    """slay.h version macros == slay_version_number() / slay_abi_version() / slay_version_string()."""
    macro = {name: int(value) for name, value in re.findall(r"#define SLAY_(VERSION_\w+|ABI_VERSION) (\d+)\b", HEADER)}
    assert _lib.lib.slay_abi_version() == macro["ABI_VERSION"] == slay.ABI_VERSION == 1
    number = macro["VERSION_MAJOR"] * 10000 + macro["VERSION_MINOR"] * 100 + macro["VERSION_PATCH"]
    assert _lib.lib.slay_version_number() == number
    assert slay.__version__ == _lib.lib.slay_version_string().decode() == "%d.%d.%d" % (
        macro["VERSION_MAJOR"], macro["VERSION_MINOR"], macro["VERSION_PATCH"])


def test_every_header_function_is_bound_with_matching_types():
    """Every SLAY_API function of slay.h has restype/argtypes in _lib.py with the same arity; scalar
    parameters have the same C type and pointer parameters are pointers (the default restype int
    would truncate returned pointers)."""
    declared = header_declarations()
    assert len(declared) >= 36
    assert set(declared) == set(_lib.SIGNATURES)
    for name, (returns, params) in declared.items():
        restype, argtypes = _lib.SIGNATURES[name]
        function = getattr(_lib.lib, name)
        assert function.restype is restype and list(function.argtypes) == list(argtypes), name
        if returns == "void":
            assert restype is None, name
        elif returns.endswith("*"):
            assert restype is ctypes.c_char_p, name
        else:
            assert restype is SCALARS[returns], name
        assert len(argtypes) == len(params), (name, params)
        for c_type, py_type in zip(params, argtypes):
            if "*" in c_type:
                assert py_type in (ctypes.c_void_p, ctypes.c_char_p) or issubclass(py_type, ctypes._Pointer), \
                    (name, c_type, py_type)
            else:
                assert py_type is SCALARS[c_type.replace("const ", "")], (name, c_type, py_type)


def test_struct_layouts_match_header():
    """ctypes structs mirror slay.h field by field (names in order, C types)."""
    for struct, c_name in [(_lib.FeatureMapParams, "slay_feature_map_params"), (_lib.AttentionOptions,
                           "slay_attention_options"), (_lib.ExactAttentionOptions, "slay_exact_attention_options"),
                           (_lib.Tensor, "slay_tensor"), (_lib.Error, "slay_error")]:
        body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (c_name, c_name), HEADER, re.S).group(1)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        fields = re.findall(r"^\s*([\w\s\*]+?)\s+(\w+)(\[[^\]]+\])?;", body, re.M)
        assert [f[1] for f in fields] == [f[0] for f in struct._fields_], c_name
        for (c_type, _, array), (_, py_type) in zip(fields, struct._fields_):
            if array:
                assert issubclass(py_type, ctypes.Array), c_name
            elif "*" in c_type:
                assert py_type is ctypes.c_void_p, c_name
            else:
                assert py_type is {"uint32_t": ctypes.c_uint32, **SCALARS}[c_type], (c_name, c_type)


def test_status_strings():
    """slay_status_string: a distinct static name for every defined code, "unknown status" otherwise, never NULL."""
    codes = {name: int(c) for name, c in re.findall(r"#define SLAY_(OK|ERR_\w+)\s+(-?\d+)", HEADER)}
    assert len(codes) == 13 and sorted(codes.values()) == list(range(-12, 1))
    names = [_lib.lib.slay_status_string(c).decode() for c in codes.values()]
    assert len(set(names)) == len(codes) and "unknown status" not in names and all(names)
    for undefined in (1, 12345, -13, -100, 2**31 - 1, -2**31):
        assert _lib.lib.slay_status_string(undefined) == b"unknown status"
    from slay import errors
    for name, code in codes.items():  # the binding's constants are the header's
        assert getattr(errors, name.replace("ERR_", "")) == code, name


# ---- loading -------------------------------------------------------------------------------------

def run_import(library_path, code="import slay; print(slay.__version__)"):
    env = dict(os.environ, SLAY_LIBRARY=str(library_path), PYTHONPATH=str(PACKAGE_DIR))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")


def test_slay_library_overrides_the_search():
    """SLAY_LIBRARY (a path) is loaded instead of the copy next to the package."""
    result = run_import(LIBRARY, "import slay, slay._lib as l; print(l.lib._name)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == LIBRARY


def test_missing_library_is_an_import_error():
    """A SLAY_LIBRARY that does not exist gives ImportError naming it."""
    result = run_import("/nonexistent/libslay.so")
    assert result.returncode != 0 and "ImportError" in result.stderr and "/nonexistent/libslay.so" in result.stderr


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build a fake library")
@pytest.mark.parametrize("body,message", [
    ("int slay_abi_version(void) { return 2; }", "ABI version 2, this binding expects 1"),
    ("int slay_abi_version(void) { return 1; }", "does not export slay_"),
    ("int something_else(void) { return 1; }", "no slay_abi_version"),
])
def test_refuses_incompatible_library(tmp_path, body, message):
    """CONVENTIONS.md: the binding refuses (ImportError with a clear message) a library whose
    slay_abi_version() differs from 1, or that lacks functions."""
    source = tmp_path / "fake.c"
    source.write_text(body + "\n")
    fake = tmp_path / "libslay.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(fake), str(source)], check=True)
    result = run_import(fake)
    assert result.returncode != 0 and "ImportError" in result.stderr and message in result.stderr, result.stderr


def test_package_ships_the_library():
    """pyproject.toml: package data includes libslay.so, so `pip install ./bindings/python` ships it."""
    text = (PACKAGE_DIR / "pyproject.toml").read_text()
    assert re.search(r'\[tool\.setuptools\.package-data\]\s*slay\s*=\s*\[[^\]]*"libslay\.so"', text)
    assert (PACKAGE_DIR / "slay" / "libslay.so").exists(), "run scripts/build.sh (it copies the library here)"


def test_quickstart_example_runs():
    """bindings/python/examples/quickstart.py (used by scripts/demo.sh) runs and prints the errors."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
    result = subprocess.run([sys.executable, str(PACKAGE_DIR / "examples" / "quickstart.py")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "relative L2 error" in result.stdout and "identical result: True" in result.stdout
    errors = dict(re.findall(r"SLAY (poly=\w+|taylor N=2) .*?yat-spherical: ([0-9.]+)", result.stdout))
    # the deterministic expansion beats both random-feature maps on this data (0.40 vs 0.87 / 0.48)
    assert float(errors["taylor N=2"]) < min(float(errors["poly=anchor"]), float(errors["poly=exact"]))


# ---- README ----------------------------------------------------------------------------------------

def test_readme_python_examples_run():
    """Every ```python block of README.md runs as written (in order, one namespace per block)."""
    readme = ROOT / "README.md"
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M) if readme.exists() else []
    if not blocks:
        pytest.skip("README.md has no ```python blocks yet")
    for number, block in enumerate(blocks, 1):
        exec(compile(block, "README.md python block %d" % number, "exec"), {"__name__": "__readme__"})
