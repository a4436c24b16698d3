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


def library_dir(tmp_path):
    """A folder holding the loaded library as libslay.so and under its SONAME (libslay.so.<ABI>), for
    programs linked with -lslay: they ask for the SONAME at run time."""
    libdir = tmp_path / "lib"
    libdir.mkdir()
    for name in ("libslay.so", "libslay.so.%d" % slay.ABI_VERSION):
        (libdir / name).symlink_to(pathlib.Path(LIBRARY).resolve())
    return libdir


SCALARS = {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
           "size_t": ctypes.c_size_t, "double": ctypes.c_double, "float": ctypes.c_float}


def test_exports_only_slay_symbols():
    """Convention: the dynamic symbol table exports only slay_* (global defined symbols)."""
    symbols = subprocess.run(["nm", "-D", "--defined-only", LIBRARY], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    exported = [line.split()[-1] for line in symbols if line.strip() and line.split()[-2].isupper()]
    assert exported and all(name.startswith("slay_") for name in exported), \
        [n for n in exported if not n.startswith("slay_")]
    assert set(exported) == set(header_declarations()), "exports and slay.h functions differ"


def test_swift_runtime_is_static():
    """Convention: ldd shows no libswift* (the Swift runtime is linked statically), no Foundation."""
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
    assert len(codes) == 14 and sorted(codes.values()) == list(range(-13, 1))
    names = [_lib.lib.slay_status_string(c).decode() for c in codes.values()]
    assert len(set(names)) == len(codes) and "unknown status" not in names and all(names)
    for undefined in (1, 12345, -14, -100, 2**31 - 1, -2**31):
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
    """Convention: the binding refuses (ImportError with a clear message) a library whose
    slay_abi_version() differs from 1, or that lacks functions."""
    source = tmp_path / "fake.c"
    source.write_text(body + "\n")
    fake = tmp_path / "libslay.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(fake), str(source)], check=True)
    result = run_import(fake)
    assert result.returncode != 0 and "ImportError" in result.stderr and message in result.stderr, result.stderr


def test_package_ships_the_library():
    """setup.py's build_py puts the libslay.so it builds into the package (test_packaging.py checks the
    wheel's contents), and scripts/build.sh leaves a copy in the source tree for PYTHONPATH use."""
    text = (PACKAGE_DIR / "setup.py").read_text()
    assert re.search(r'pathlib\.Path\(self\.build_lib\) / "slay" / "libslay\.so"', text)
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

# The pages whose ```python blocks are run as written (docs/pytorch.md has its own tests).
PYTHON_EXAMPLE_PAGES = ["README.md", "docs/python-api.md"]


@pytest.mark.parametrize("page", PYTHON_EXAMPLE_PAGES)
def test_readme_python_examples_run(page):
    """Every ```python block of README.md and of docs/python-api.md runs as written (in order, one
    namespace per block); a block that imports torch is skipped where torch is not installed."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / page).read_text(), re.S | re.M)
    assert blocks, "%s has no ```python blocks" % page
    for number, block in enumerate(blocks, 1):
        if re.search(r"^import torch|^import slay\.torch", block, re.M):
            pytest.importorskip("torch")
        exec(compile(block, "%s python block %d" % (page, number), "exec"), {"__name__": "__readme__"})


# ---- header, Python API and README agree -------------------------------------------------------------

def header_macros():
    """{name: int value} of every integer #define in slay.h."""
    return {name: int(value) for name, value in re.findall(r"^#define (SLAY_\w+)\s+(-?\d+)\b", HEADER, re.M)}


# Python name → slay.h constant, for every enum-like constant group (same meaning: the names below).
HEADER_NAMES = {
    "KIND": ("feature_map", "KINDS", {
        "slay": "SLAY", "elu+1": "ELU_PLUS_ONE", "relu": "RELU", "favor+": "FAVOR_PLUS", "relu-random": "RELU_RANDOM",
        "random-fourier": "RANDOM_FOURIER", "cosformer": "COSFORMER", "ela-sum-sqeuclid": "SUM_SQ_EUCLIDEAN",
        "ela-sub-sqeuclid": "SUB_SQ_EUCLIDEAN", "ela-blueprint": "BLUEPRINT", "ela-hadamard-exp": "HADAMARD_EXP",
        "identity": "IDENTITY"}),
    "POLY": ("feature_map", "POLYS", {
        "anchor": "ANCHOR", "exact": "EXACT", "exact_full": "EXACT_FULL", "laplace": "LAPLACE",
        "random_maclaurin": "RANDOM_MACLAURIN", "tensorsketch": "TENSORSKETCH", "nystrom": "NYSTROM"}),
    "EXPANSION": ("feature_map", "EXPANSIONS", {"quadrature": "QUADRATURE", "taylor": "TAYLOR"}),
    "ROLE": ("feature_map", "ROLES", {"query": "QUERY", "key": "KEY"}),
    "DENOMINATOR": ("attention", "DENOMINATORS", {"add": "ADD", "clamp": "CLAMP"}),
    "EXACT": ("attention", "EXACT_KERNELS", {"softmax": "SOFTMAX", "yat-spherical": "YAT_SPHERICAL", "yat": "YAT"}),
}


@pytest.mark.parametrize("group", sorted(HEADER_NAMES))
def test_python_names_are_the_header_constants(group):
    """Every SLAY_<group>_* constant of slay.h has exactly one Python name with the same value, and the
    Python table has no other names."""
    import importlib
    module, table, names = HEADER_NAMES[group]
    python = getattr(importlib.import_module("slay." + module), table)
    header = {name[len("SLAY_%s_" % group):]: value for name, value in header_macros().items()
              if name.startswith("SLAY_%s_" % group)}
    assert set(python) == set(names), "Python %s names differ from this test's table" % table
    assert sorted(names.values()) == sorted(header), "slay.h SLAY_%s_* constants differ from Python %s" % (group, table)
    for py_name, c_name in names.items():
        assert python[py_name] == header[c_name], (py_name, c_name)


def struct_defaults(c_name):
    """{field: default} parsed from the field comments of a slay.h struct ("default X", "X (default)",
    "X (the default)", "NULL by default" in a comment above the fields); a symbolic default is
    resolved through the header's #defines."""
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (c_name, c_name), HEADER, re.S).group(1)
    macros = header_macros()
    defaults = {}
    null_by_default = False
    for match in re.finditer(r"^[ \t]*(/\*.*?\*/)|^\s*([\w\s\*]+?)\s+(\w+);[ \t]*(/\*.*?\*/)?", body, re.M | re.S):
        if match.group(1):  # a comment of its own, about the fields below it
            null_by_default = null_by_default or "NULL by default" in match.group(1)
            continue
        field, comment = match.group(3), " ".join((match.group(4) or "").split())
        if field == "struct_size":
            continue
        found = (re.search(r"\b[Dd]efault:?\s+([\w.+-]+)", comment)
                 or re.search(r"([\w.+-]+) \((?:the )?default\)", comment))
        if found:
            token = found.group(1)
        elif "*" in match.group(2) and null_by_default:
            token = "NULL"
        else:
            raise AssertionError("%s.%s: no default in its slay.h comment" % (c_name, field))
        if token == "NULL":
            defaults[field] = None
        elif token in macros:
            defaults[field] = macros[token]
        elif re.fullmatch(r"-?[\d.]+(e-?\d+)?", token):
            defaults[field] = float(token) if re.search(r"[.e]", token) else int(token)
        else:
            matches = [value for name, value in macros.items() if name.endswith("_" + token)
                       and field.upper() in name]
            assert len(matches) == 1, (c_name, field, token)
            defaults[field] = matches[0]
    return defaults


def c_defaults(struct, init):
    """{field: value} of a struct filled by its slay_*_init (pointers as None)."""
    value = struct()
    assert init(ctypes.byref(value)) == 0
    return {name: getattr(value, name) for name, _ in struct._fields_ if name != "struct_size"}


def python_defaults(function, skip=()):
    import inspect
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty and name not in skip}


def test_feature_map_defaults_agree():
    """slay_feature_map_params: slay.h's documented defaults == slay_feature_map_params_init ==
    slay.FeatureMap's keyword defaults (head_dim: 0 in C means "must be set", None in Python)."""
    from slay.feature_map import KINDS, POLYS, EXPANSIONS
    header = struct_defaults("slay_feature_map_params")
    c = c_defaults(_lib.FeatureMapParams, _lib.lib.slay_feature_map_params_init)
    assert header == c
    py = python_defaults(slay.FeatureMap.__init__)
    renamed = {"orthogonal": "prf_orthogonal", "shared_omega": "prf_shared"}
    converted = {renamed.get(name, name): value for name, value in py.items()}
    converted.update(kind=KINDS[py["kind"]], poly=POLYS[py["poly"]], expansion=EXPANSIONS[py["expansion"]],
                     prf_orthogonal=int(py["orthogonal"]), prf_shared=int(py["shared_omega"]))
    assert converted.pop("head_dim") is None and c.pop("head_dim") == 0
    assert converted == c


def test_attention_option_defaults_agree():
    """slay_attention_options: slay.h's documented defaults == slay_attention_options_init ==
    attention_options() == the keyword defaults of linear_attention, State.prefill/query/step."""
    from slay.attention import attention_options, DENOMINATORS
    from slay.options import UPDATES
    header = struct_defaults("slay_attention_options")
    c = c_defaults(_lib.AttentionOptions, _lib.lib.slay_attention_options_init)
    assert header == c
    assert c["chunk_size"] == 0 and c["delta"] == 1e-6 and c["normalize"] == 1  # the values the docs quote
    options = attention_options()
    assert {name: getattr(options, name) for name in c} == c
    option_keywords = set(python_defaults(attention_options)) - {"step"}
    for function in (slay.linear_attention, slay.State.prefill, slay.State.query, slay.State.step):
        py = {name: value for name, value in python_defaults(function).items() if name in option_keywords}
        assert py, function.__name__
        for name, value in py.items():
            if name == "denominator":
                value = DENOMINATORS[value]
            elif name == "update":
                value = UPDATES[value]
            elif name in ("causal", "normalize", "qk_l2norm", "check_finite"):
                value = int(value)
            assert value == c[name], (function.__qualname__, name, value, c[name])
        assert getattr(options, "decay") is None


def test_exact_attention_option_defaults_agree():
    """slay_exact_attention_options: slay.h == slay_exact_attention_options_init == exact_attention
    (scale None stands for the C default 0, i.e. 1/√d)."""
    from slay.attention import EXACT_KERNELS
    header = struct_defaults("slay_exact_attention_options")
    c = c_defaults(_lib.ExactAttentionOptions, _lib.lib.slay_exact_attention_options_init)
    assert header == c
    py = python_defaults(slay.exact_attention, skip=("out",))
    py.update(kernel=EXACT_KERNELS[py["kernel"]], causal=int(py["causal"]), scale=0 if py["scale"] is None else None)
    assert py == c


def public_callables():
    """(README name, Python function) of every public function and method with keywords."""
    return [("slay.FeatureMap", slay.FeatureMap.__init__), ("fm", slay.FeatureMap.__call__),
            ("slay.linear_attention", slay.linear_attention), ("slay.exact_attention", slay.exact_attention),
            ("slay.gauss_laguerre", slay.gauss_laguerre), ("slay.State", slay.State.__init__),
            ("prefill", slay.State.prefill), ("query", slay.State.query), ("step", slay.State.step),
            ("State.load", slay.State.load.__func__), ("restore", slay.State.restore),
            ("copy_slot", slay.State.copy_slot), ("reset", slay.State.reset), ("read", slay.State.read),
            ("position", slay.State.position)]


def signature_parameters(function):
    import inspect
    return [(name, p.default) for name, p in inspect.signature(function).parameters.items()
            if name not in ("self", "cls") and not name.startswith("_")]


def test_readme_api_lists_every_keyword_with_its_default():
    """The "API" list of docs/python-api.md (moved there from the README) gives each public function's
    parameters in order, with the defaults the code has (`name=default`)."""
    import ast
    import inspect
    page = (ROOT / "docs" / "python-api.md").read_text()
    start = page.index("\nAPI ")
    end = page.find("\n## ", start)
    api = page[start:end if end >= 0 else len(page)]
    calls = {}
    for name, arguments in re.findall(r"`([\w.]+)\(([^`]*)\)`", " ".join(api.split())):
        calls.setdefault(name, arguments)
    for readme_name, function in public_callables():
        assert readme_name in calls, "docs/python-api.md API list lacks %s(...)" % readme_name
        listed = []
        for argument in filter(None, (a.strip() for a in calls[readme_name].split(","))):
            name, _, default = argument.partition("=")
            listed.append((name, ast.literal_eval(default) if default else inspect.Parameter.empty))
        assert listed == signature_parameters(function), readme_name


def test_docstrings_name_every_keyword():
    """Each public function's docstring (the class docstring for constructors) names each of its
    parameters."""
    for readme_name, function in public_callables():
        owner = function.__qualname__.split(".")[0]
        doc = (getattr(slay, owner).__doc__ if function.__name__ == "__init__" else function.__doc__) or ""
        missing = [name for name, _ in signature_parameters(function) if not re.search(r"\b%s\b" % name, doc)]
        assert not missing, "%s docstring does not mention %s" % (function.__qualname__, missing)


def test_readme_feature_map_table_has_every_kind_and_poly():
    """The feature-map table of docs/choosing-a-feature-map.md (moved there from the README) has a row
    for every kind, poly and expansion of the binding."""
    from slay.feature_map import KINDS, POLYS, EXPANSIONS
    page = (ROOT / "docs" / "choosing-a-feature-map.md").read_text()
    section = page[page.index("## The maps"):page.index("## Accuracy")]
    table = section[section.index("| kind |"):section.index("\n\n", section.index("| kind |"))]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    kinds = {re.match(r"\s*`([^`]+)`", cell).group(1) for cell in first_cells}
    polys = set(re.findall(r'poly="(\w+)"', " ".join(first_cells)))
    assert kinds == set(KINDS)
    assert polys == set(POLYS)
    assert all('expansion="%s"' % name in section for name in EXPANSIONS)


def test_readme_header_overview_names_every_function():
    """The "Header overview" of docs/c-api.md (moved there from the README) names every SLAY_API
    function and the tensor helpers (grouped names such as `slay_state_create/free` and the feature-map
    suffixes included)."""
    page = (ROOT / "docs" / "c-api.md").read_text()
    start = page.index("Header overview")
    overview = page[start:page.index("\n## ", start)]
    named = set()
    for token in re.findall(r"`([\w/]+)`", overview):
        first, *others = token.split("/")
        bases = [first] if first.startswith("slay_") else ["slay_" + first, "slay_feature_map_" + first]
        for base in bases:
            named.add(base)
            parts = base.split("_")
            for other in others:
                for cut in range(1, len(parts) - 1):
                    named.add("_".join(parts[:-cut] + [other]))
    wanted = set(header_declarations()) | set(re.findall(r"^static inline slay_tensor (slay_\w+)\(", HEADER, re.M))
    assert "slay_tensor_4d" in wanted and "slay_tensor_4d_const" in wanted
    assert not wanted - named, "docs/c-api.md header overview misses %s" % sorted(wanted - named)


def test_readme_layout_matches_the_tree():
    """Every path the "## Layout" block of docs/development.md (moved there from the README) names
    exists, and it names every Sources/ target, every script and every C program."""
    page = (ROOT / "docs" / "development.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.*?)```", page, re.S).group(1)
    for line in layout.splitlines():
        assert (ROOT / line.split()[0]).exists(), line
    for target in (ROOT / "Sources").iterdir():
        assert target.name in layout, target
    for folder in (ROOT / "Sources" / "SlayCore").iterdir():
        if folder.is_dir():
            assert folder.name + "/" in layout, folder
    for script in (ROOT / "scripts").glob("*.sh"):
        assert script.name in layout, script
    for program in (ROOT / "bindings" / "c-example").glob("*.c"):
        assert program.name in layout, program


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_readme_c_example_compiles_and_runs(tmp_path):
    """The README's ```c block, wrapped in a main() that supplies its data, compiles with the C
    example's strict flags and returns SLAY_OK."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"^```c\n(.*?)^```", readme, re.S | re.M)
    includes = "".join(line + "\n" for line in block.splitlines() if line.startswith("#include"))
    body = "".join("    " + line + "\n" for line in block.splitlines() if not line.startswith("#include"))
    source = tmp_path / "readme.c"
    source.write_text("#include <stdio.h>\n" + includes + "int main(void) {\n"
                      "    enum { B = 2, T = 5 };\n"
                      "    static float q_data[B * T * 2 * 16], k_data[B * T * 2 * 16], v_data[B * T * 2 * 8],"
                      " y_data[B * T * 2 * 8];\n"
                      "    int i;\n"
                      "    for (i = 0; i < B * T * 2 * 16; i++) { q_data[i] = (float)(i % 7) / 7; k_data[i] = (float)(i % 5) / 5; }\n"
                      "    for (i = 0; i < B * T * 2 * 8; i++) v_data[i] = (float)(i % 3);\n"
                      + body + "    if (rc != SLAY_OK) { fprintf(stderr, \"%s\\n\", err.message); return 1; }\n"
                      "    printf(\"y[0] = %g\\n\", y_data[0]);\n    return 0;\n}\n")
    binary = tmp_path / "readme_c"
    libdir = library_dir(tmp_path)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(ROOT / "include"),
                    str(source), "-L", str(libdir), "-lslay", "-lm",
                    "-Wl,-rpath," + str(libdir), "-o", str(binary)], check=True, capture_output=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("y[0] = ")
