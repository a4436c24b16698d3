"""Packaging: the Python package (version from slay.h, swift build arguments, platform wheel with the
library inside, sdist with the Swift sources, the loader without fallbacks), the C install
(scripts/install.sh: SONAME, symlinks, pkg-config, CMake) used by a C++17 program both ways, and
slay.h as strict C++17. The from-scratch pip install into a fresh venv is scripts/test_pip_install.sh
(a step of scripts/test.sh: it builds Swift from a clean clone)."""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import slay
from slay import _lib

ROOT = pathlib.Path(__file__).resolve().parents[3]
PACKAGE_DIR = ROOT / "bindings" / "python"
HEADER = (ROOT / "include" / "slay.h").read_text()
CPP_EXAMPLE = ROOT / "bindings" / "cpp-example"
STRICT_CXX = ["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Wold-style-cast", "-Wcast-qual",
              "-Wzero-as-null-pointer-constant", "-Werror"]


def macro(name):
    return int(re.search(r"^#define %s (\d+)\b" % name, HEADER, re.M).group(1))


VERSION = "%d.%d.%d" % (macro("SLAY_VERSION_MAJOR"), macro("SLAY_VERSION_MINOR"), macro("SLAY_VERSION_PATCH"))
ABI = macro("SLAY_ABI_VERSION")


def cxx_compilers():
    """g++ and clang++ (the Swift toolchain's clang++ when none is on PATH)."""
    found = [shutil.which("g++")]
    clang = shutil.which("clang++") or next((str(p) for p in (pathlib.Path(shutil.which("swift") or "/").parent
                                                              / "clang++",) if p.exists()), None)
    return [c for c in found + [clang] if c]


def soname(path):
    dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Library soname: \[([^\]]+)\]", dynamic)
    return match.group(1) if match else None


def setup_module_constants():
    """SWIFT_BUILD_ARGS and header_version from bindings/python/setup.py, without running setup()."""
    source = (PACKAGE_DIR / "setup.py").read_text()
    namespace = {"__file__": str(PACKAGE_DIR / "setup.py"), "__name__": "setup_constants"}
    exec(compile(source[:source.index("\nCOMMANDS = ")], "setup.py", "exec"), namespace)
    return namespace


# ---- Python package --------------------------------------------------------------------------------

def test_version_is_kept_in_slay_h_only():
    """pyproject.toml has no version of its own (dynamic, from setup.py, which reads slay.h); the
    binding's __version__ is the library's; no version literal hides in the package's Python files."""
    pyproject = (PACKAGE_DIR / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M) and not re.search(r"^version\s*=", pyproject, re.M)
    assert setup_module_constants()["header_version"](ROOT) == VERSION == slay.__version__
    for path in (PACKAGE_DIR / "slay").glob("*.py"):
        assert VERSION not in path.read_text(), path


def test_distribution_name_extra_and_typing():
    pyproject = (PACKAGE_DIR / "pyproject.toml").read_text()
    assert re.search(r'^name = "libslay"$', pyproject, re.M)
    assert re.search(r'^torch = \["torch", "transformers"\]$', pyproject, re.M)
    assert (PACKAGE_DIR / "slay" / "py.typed").exists() and '"py.typed"' in pyproject and '"*.pyi"' in pyproject


def test_setup_builds_with_the_arguments_of_build_sh():
    """The swift build of `pip install` is scripts/build.sh's (same configuration, product, static stdlib)."""
    line = next(line for line in (ROOT / "scripts" / "build.sh").read_text().splitlines()
                if line.startswith("swift build"))
    assert shlex.split(line)[1:-1] == setup_module_constants()["SWIFT_BUILD_ARGS"] and line.endswith('"$@"')


def test_loader_has_no_fallback_path(tmp_path):
    """Without SLAY_LIBRARY the package loads the libslay.so next to _lib.py and nothing else: a copy of
    the package without the library is an ImportError naming that one path (no .build/release search)."""
    source = (PACKAGE_DIR / "slay" / "_lib.py").read_text()
    assert ".build" not in source
    copy = tmp_path / "slay"
    shutil.copytree(PACKAGE_DIR / "slay", copy, ignore=shutil.ignore_patterns("libslay.so", "__pycache__"))
    env = {key: value for key, value in os.environ.items() if key not in ("SLAY_LIBRARY", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-c", "import slay"], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode != 0 and "ImportError" in result.stderr
    assert "not found at %s" % (copy / "libslay.so") in result.stderr, result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel bindings/python` (no isolation: setuptools is installed; swift build is incremental)."""
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", str(PACKAGE_DIR), "-w", str(out)],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    (path,) = out.glob("*.whl")
    return path


def test_wheel_is_platform_tagged_and_ships_the_library(wheel):
    assert wheel.name == "libslay-%s-py3-none-linux_x86_64.whl" % VERSION
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("libslay-%s.dist-info/WHEEL" % VERSION).decode()
        requires = archive.read("libslay-%s.dist-info/METADATA" % VERSION).decode()
        library = archive.read("slay/libslay.so")
    assert {"slay/__init__.py", "slay/__init__.pyi", "slay/_lib.py", "slay/py.typed", "slay/libslay.so"} <= names
    assert "Root-Is-Purelib: false" in metadata and "Tag: py3-none-linux_x86_64" in metadata
    assert "Requires-Dist: numpy" in requires and re.search(r"Requires-Dist: torch.*extra == .torch.", requires)
    assert library[:4] == b"\x7fELF" and library == pathlib.Path(_lib.lib._name).read_bytes()


@pytest.mark.skipif(shutil.which("auditwheel") is None, reason="auditwheel is not installed (pip install auditwheel)")
def test_auditwheel_verdict(wheel):
    """auditwheel's verdict on the wheel: the library needs only libc, libm, libstdc++ and libgcc_s, so it
    is consistent with a manylinux tag (the glibc version is the build machine's); printed for the report."""
    run = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    verdict = " ".join(run.stdout.split())
    print("auditwheel:", verdict)
    assert re.search(r'consistent with the following platform tag: "manylinux_\d+_\d+_x86_64"', verdict), verdict


def test_sdist_carries_the_swift_package(tmp_path):
    """The sdist holds Package.swift, Sources (the AVX2 symlink as real files), include and Tests under
    swift/, and SwiftPM accepts the manifest there."""
    run = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=PACKAGE_DIR,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    archive = tmp_path / ("libslay-%s.tar.gz" % VERSION)
    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    base = "libslay-%s/swift/" % VERSION
    for name in ("Package.swift", "include/slay.h", "include/module.modulemap", "Sources/SlayCABI/exports.map",
                 "Sources/SlayKernels/PackedGemm.swift", "Sources/SlayKernelsAVX2/PackedGemm.swift"):
        assert base + name in members and members[base + name].isfile(), name
    assert not any(name.endswith("libslay.so") for name in members)
    swift = shutil.which("swift")
    if swift:
        describe = subprocess.run([swift, "package", "describe"], cwd=tmp_path / base, capture_output=True,
                                  text=True, timeout=300)
        assert describe.returncode == 0 and "SlayCABI" in describe.stdout, describe.stderr


# ---- C install ---------------------------------------------------------------------------------------

def test_soname_is_the_abi_version():
    assert soname(_lib.lib._name) == "libslay.so.%d" % ABI
    assert 'soname=libslay.so.%d"' % ABI in (ROOT / "Package.swift").read_text()


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """scripts/install.sh --prefix into a temporary folder (the library scripts/build.sh built)."""
    prefix = tmp_path_factory.mktemp("prefix")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "--prefix", str(prefix), "--no-build"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return prefix


def test_install_layout(prefix):
    lib = prefix / "lib"
    real = lib / ("libslay.so.%s" % VERSION)
    assert real.is_file() and not real.is_symlink() and soname(real) == "libslay.so.%d" % ABI
    assert os.readlink(lib / ("libslay.so.%d" % ABI)) == real.name
    assert os.readlink(lib / "libslay.so") == "libslay.so.%d" % ABI
    assert (prefix / "include" / "slay.h").read_text() == HEADER
    pc = (lib / "pkgconfig" / "libslay.pc").read_text()
    assert "Version: %s\n" % VERSION in pc and "-lslay" in pc and "@" not in pc
    config = lib / "cmake" / "libslay"
    assert "libslay::slay" in (config / "libslayConfig.cmake").read_text()
    assert 'set(PACKAGE_VERSION "%s")' % VERSION in (config / "libslayConfigVersion.cmake").read_text()


def run_app(binary):
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, env=dict(
        os.environ, LD_LIBRARY_PATH=""))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("libslay %s (ABI %d" % (VERSION, ABI)), result.stdout
    needed = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "[libslay.so.%d]" % ABI in needed


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config is not installed (install_deps.sh)")
@pytest.mark.parametrize("compiler", cxx_compilers())
def test_cpp17_program_with_pkg_config(prefix, tmp_path, compiler):
    """bindings/cpp-example/app.cpp built with `$(pkg-config --cflags --libs libslay)`, every warning of
    the strict set an error, runs against the installed library (found through its rpath)."""
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libslay"], capture_output=True, text=True,
                           env=env, check=True).stdout.split()
    libdir = subprocess.run(["pkg-config", "--variable=libdir", "libslay"], capture_output=True, text=True, env=env,
                            check=True).stdout.strip()
    binary = tmp_path / "app"
    build = subprocess.run([compiler] + STRICT_CXX + [str(CPP_EXAMPLE / "app.cpp")] + flags
                           + ["-Wl,-rpath," + libdir, "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run_app(binary)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (install_deps.sh)")
def test_cmake_project_with_find_package(prefix, tmp_path):
    """bindings/cpp-example/CMakeLists.txt: find_package(libslay 0.1 REQUIRED) and
    target_link_libraries(app libslay::slay), configured against the prefix, builds and runs; asking
    for a later major version fails (the ConfigVersion file)."""
    build = tmp_path / "build"
    configure = subprocess.run(["cmake", "-S", str(CPP_EXAMPLE), "-B", str(build), "-DCMAKE_PREFIX_PATH=" + str(prefix),
                                "-DCMAKE_CXX_FLAGS=" + " ".join(STRICT_CXX[1:])], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    make = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert make.returncode == 0, make.stdout + make.stderr
    run_app(build / "app")
    later = tmp_path / "later"
    later.mkdir()
    (later / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.16)\nproject(later LANGUAGES CXX)\n"
                                          "find_package(libslay %d.0 REQUIRED)\n" % (macro("SLAY_VERSION_MAJOR") + 1))
    refused = subprocess.run(["cmake", "-S", str(later), "-B", str(later / "build"),
                              "-DCMAKE_PREFIX_PATH=" + str(prefix)], capture_output=True, text=True)
    assert refused.returncode != 0 and "libslay" in refused.stderr


# ---- slay.h as C++ -----------------------------------------------------------------------------------

@pytest.mark.parametrize("compiler", cxx_compilers())
def test_header_is_warning_free_cpp17(tmp_path, compiler):
    """slay.h (both tensor helpers used) compiles as C++17 with -Wall -Wextra -Wpedantic -Wold-style-cast
    -Wcast-qual -Wzero-as-null-pointer-constant -Werror."""
    source = tmp_path / "header.cpp"
    source.write_text('#include "slay.h"\n'
                      "int main() {\n"
                      "    static float out[8];\n"
                      "    static const float in[8] = {};\n"
                      "    const slay_tensor a = slay_tensor_4d(out, 1, 2, 1, 4);\n"
                      "    const slay_tensor b = slay_tensor_4d_const(in, 1, 2, 1, 4);\n"
                      "    return (a.strides[0] == 8 && b.strides[1] == 4 && b.data == in) ? 0 : 1;\n"
                      "}\n")
    build = subprocess.run([compiler] + STRICT_CXX + ["-I", str(ROOT / "include"), str(source), "-o",
                                                      str(tmp_path / "header")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "header")]).returncode == 0


def test_header_const_helper_is_warning_free_c(tmp_path):
    """The C side of slay_tensor_4d_const: no cast warning under -Wcast-qual either."""
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = tmp_path / "header.c"
    source.write_text('#include "slay.h"\nint main(void) {\n    static const float in[4] = {0};\n'
                      "    slay_tensor t = slay_tensor_4d_const(in, 1, 1, 1, 4);\n"
                      "    return t.data == (const void*)in ? 0 : 1;\n}\n")
    build = subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wcast-qual", "-Werror",
                            "-I", str(ROOT / "include"), str(source), "-o", str(tmp_path / "header")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "header")]).returncode == 0


# ---- type hints ---------------------------------------------------------------------------------------

def stub_definitions():
    """{"name" or "Class.name": ast.FunctionDef} of slay/__init__.pyi, and the names it assigns."""
    import ast
    tree = ast.parse((PACKAGE_DIR / "slay" / "__init__.pyi").read_text())
    functions, names = {}, set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    functions["%s.%s" % (node.name, item.name)] = item
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return functions, names


def runtime_callables():
    """{"name" or "Class.name": function} of the public API: slay.__all__'s functions and every public
    method, property, classmethod and context-manager method of its classes."""
    import inspect
    found = {}
    for name in slay.__all__:
        value = getattr(slay, name)
        if inspect.isfunction(value):
            found[name] = value
        elif inspect.isclass(value) and not issubclass(value, BaseException):
            for member in dir(value):
                if member.startswith("_") and member not in ("__init__", "__call__", "__enter__", "__exit__"):
                    continue
                static = inspect.getattr_static(value, member)
                target = static.__func__ if isinstance(static, (classmethod, staticmethod)) else \
                    static.fget if isinstance(static, property) else static
                if inspect.isfunction(target):
                    found["%s.%s" % (value.__name__, member)] = target
    return found


def test_type_stub_covers_the_public_api():
    """slay/__init__.pyi (PEP 561, with py.typed) has every public function, method and property with
    the code's parameters in order and its defaults, and annotates every parameter and return."""
    import ast
    import inspect
    functions, names = stub_definitions()
    assert set(slay.__all__) <= set(functions) | names, set(slay.__all__) - set(functions) - names
    runtime = runtime_callables()
    assert not set(runtime) - set(functions), "add to slay/__init__.pyi: %s" % sorted(set(runtime) - set(functions))
    for qualname, function in runtime.items():
        node = functions[qualname]
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        defaults = [None] * (len(node.args.posonlyargs + node.args.args) - len(node.args.defaults)) \
            + list(node.args.defaults) + list(node.args.kw_defaults)
        stub = [(a.arg, None if d is None else ast.literal_eval(d)) for a, d in zip(args, defaults)]
        if node.args.vararg:
            stub.append(("*" + node.args.vararg.arg, None))
        if node.args.kwarg:
            stub.append(("**" + node.args.kwarg.arg, None))
        code = []
        for name, p in inspect.signature(function).parameters.items():
            if name.startswith("_"):   # private keywords stay out of the stub
                continue
            prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
            code.append((prefix + name, None if p.default is p.empty else p.default))
        assert stub == code, "%s: stub %s, code %s" % (qualname, stub, code)
        annotated = [a for a in args if a.arg not in ("self", "cls")] + [a for a in (node.args.vararg, node.args.kwarg) if a]
        assert all(a.annotation is not None for a in annotated) and node.returns is not None, qualname


def test_mypy_checks_user_code_against_the_stub(tmp_path):
    """A type checker reads the hints: mypy accepts correct use and flags a wrong type (skipped when
    mypy is not installed)."""
    pytest.importorskip("mypy")
    user = tmp_path / "user.py"
    user.write_text("import numpy as np\nimport slay\n\n"
                    "fm = slay.FeatureMap('slay', head_dim=16, num_heads=2)\n"
                    "q = np.zeros((1, 8, 2, 16), np.float32)\n"
                    "y = slay.linear_attention(q, q, q, fm, causal=False)\n"
                    "state = slay.State(fm, num_seqs=1)\n"
                    "width: int = fm.dim\n"
                    "wrong: str = state.save()\n")
    run = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                          str(user)], capture_output=True, text=True, cwd=PACKAGE_DIR, timeout=600,
                         env=dict(os.environ, MYPYPATH=str(PACKAGE_DIR)))
    assert "user.py:9: error: Incompatible types in assignment" in run.stdout, run.stdout + run.stderr
    assert run.stdout.count("error:") == 1, run.stdout
