"""Build hooks of the libslay Python package; the metadata is in pyproject.toml.

Why setuptools with three small command overrides rather than another PEP 517 backend: the package is
plain Python plus one prebuilt shared library that `swift build` makes, so all that is needed is "run
one command, copy one file, tag the wheel for the platform"; setuptools (a well-kept backend that
every pip can fetch) does that with build_py / bdist_wheel / sdist hooks, while scikit-build-core or
meson-python would add a CMake or Meson layer around SwiftPM for nothing.

- build_py runs `swift build` with the arguments of scripts/build.sh (a test compares them) and puts
  libslay.so inside the package, next to _lib.py, which loads it from there.
- bdist_wheel tags the wheel py3-none-<platform> (linux_x86_64): the library is a native x86-64
  binary, but it is loaded with ctypes, so any CPython 3 can use it.
- sdist adds the Swift package (Package.swift, Sources, include, Tests) under swift/, so the sdist builds on
  any machine with Swift 6; in a repository checkout the package two levels up is used instead.
The version is SLAY_VERSION_MAJOR.MINOR.PATCH of include/slay.h, the one place it is kept.
"""
import pathlib
import re
import shutil
import subprocess

from setuptools import Distribution, setup
try:
    from setuptools.command.bdist_wheel import bdist_wheel   # setuptools >= 70.1 (what pyproject.toml asks)
except ImportError:   # an older setuptools running `setup.py sdist` directly: no wheel command needed
    bdist_wheel = None
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent
BUNDLED = HERE / "swift"
# Tests too: SwiftPM refuses a manifest whose test targets have no folder, even to build the library.
SWIFT_PACKAGE = ("Package.swift", "Sources", "include", "Tests")
# The same arguments as scripts/build.sh (release, the slay product, Swift runtime linked statically).
SWIFT_BUILD_ARGS = ["build", "-c", "release", "--product", "slay", "-Xswiftc", "-static-stdlib"]


def swift_package_root():
    """The Swift package to build: the copy an sdist carries (swift/), else the repository checkout."""
    for root in (BUNDLED, HERE.parents[1]):
        if all((root / name).exists() for name in SWIFT_PACKAGE):
            return root
    raise RuntimeError("libslay's Swift package (Package.swift, Sources, include) is neither in %s nor in %s"
                       % (BUNDLED, HERE.parents[1]))


def header_version(root):
    """"MAJOR.MINOR.PATCH" from the SLAY_VERSION_* macros of include/slay.h."""
    header = (root / "include" / "slay.h").read_text(encoding="utf-8")
    parts = [re.search(r"^#define SLAY_VERSION_%s (\d+)\b" % part, header, re.M) for part in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError("SLAY_VERSION_MAJOR/MINOR/PATCH not found in %s" % (root / "include" / "slay.h"))
    return ".".join(match.group(1) for match in parts)


def build_library(root):
    """Runs swift build in the Swift package and returns the path of the libslay.so it made."""
    swift = shutil.which("swift")
    if swift is None:
        raise RuntimeError("building libslay needs Swift 6 on PATH (https://www.swift.org/install)")
    subprocess.run([swift] + SWIFT_BUILD_ARGS, cwd=root, check=True)
    bin_path = subprocess.run([swift, "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
    return pathlib.Path(bin_path) / "libslay.so"


class BuildPyWithLibrary(build_py):
    """build_py, then libslay.so built by swift and copied into the package."""

    def run(self):
        super().run()
        library = build_library(swift_package_root())
        targets = [pathlib.Path(self.build_lib) / "slay" / "libslay.so"]
        if getattr(self, "editable_mode", False):
            targets.append(HERE / "slay" / "libslay.so")
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(library, target)
            target.chmod(0o755)


class BinaryDistribution(Distribution):
    """The package holds native code, so it installs into platlib and its wheel is not "pure"."""

    def has_ext_modules(self):
        return True


if bdist_wheel is not None:
    class PlatformWheel(bdist_wheel):
        """A py3-none-<platform> wheel: native code inside, no Python ABI dependence (ctypes)."""

        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform


class SdistWithSwiftPackage(sdist):
    """The sdist also carries the Swift package under swift/ (symlinks copied as files)."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = swift_package_root()
        target = pathlib.Path(base_dir) / "swift"
        for name in SWIFT_PACKAGE:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns(".build", "__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / name)


COMMANDS = {"build_py": BuildPyWithLibrary, "sdist": SdistWithSwiftPackage}
if bdist_wheel is not None:
    COMMANDS["bdist_wheel"] = PlatformWheel
setup(version=header_version(swift_package_root()), distclass=BinaryDistribution, cmdclass=COMMANDS)
