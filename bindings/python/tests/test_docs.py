"""The documentation in docs/ against the code: the C API reference has a section, with the header's
exact prototype and the four-part template, for every function of slay.h; every "docs/math.md §N" the
code cites exists; relative links in README.md and docs/ resolve; nothing points outside the repository."""
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEADER = (ROOT / "include" / "slay.h").read_text()
TEMPLATE = ("Contract", "Arguments", "Errors", "Thread safety")


def header_prototypes():
    """{name: prototype} of every SLAY_API function and static inline helper of slay.h, whitespace
    normalised, without the SLAY_API / SLAY_NODISCARD macros."""
    prototypes = {}
    for match in re.finditer(r"^SLAY_API\s+(?:SLAY_NODISCARD\s+)?([^;]*?\b(slay_\w+)\s*\([^)]*\))\s*;", HEADER, re.M | re.S):
        prototypes[match.group(2)] = " ".join(match.group(1).split()) + ";"
    for match in re.finditer(r"^static inline (slay_tensor (slay_\w+)\([^)]*\))", HEADER, re.M):
        prototypes[match.group(2)] = "static inline " + " ".join(match.group(1).split()) + ";"
    return prototypes


def c_api_sections():
    """{name: (prototype, {part: text})} of every "### `name`" section of docs/c-api.md."""
    text = (ROOT / "docs" / "c-api.md").read_text()
    sections = {}
    for match in re.finditer(r"^### `(\w+)`\n(.*?)(?=^##|\Z)", text, re.M | re.S):
        body = match.group(2)
        code = re.search(r"```c\n(.*?)```", body, re.S)
        parts = dict(re.findall(r"^- \*\*([\w ]+):\*\* (.+)$", body, re.M))
        sections[match.group(1)] = (" ".join(code.group(1).split()) if code else None, parts)
    return sections


def test_c_api_reference_documents_every_header_function():
    prototypes, sections = header_prototypes(), c_api_sections()
    assert len(prototypes) > 30
    assert not set(prototypes) - set(sections), "docs/c-api.md lacks %s" % sorted(set(prototypes) - set(sections))
    assert not set(sections) - set(prototypes), "docs/c-api.md documents unknown %s" % sorted(set(sections) - set(prototypes))
    for name, (prototype, parts) in sections.items():
        assert prototype == prototypes[name], name
        assert all(parts.get(part, "").strip() for part in TEMPLATE), "%s lacks part of %s" % (name, TEMPLATE)


def test_c_api_reference_names_real_status_codes():
    """Every SLAY_ERR_* the reference mentions is a code of slay.h."""
    codes = set(re.findall(r"#define (SLAY_ERR_\w+)", HEADER))
    mentioned = set(re.findall(r"SLAY_ERR_\w+", (ROOT / "docs" / "c-api.md").read_text()))
    assert mentioned and mentioned <= codes, mentioned - codes


def test_math_sections_cited_by_the_code_exist():
    math = (ROOT / "docs" / "math.md").read_text()
    sections = set(re.findall(r"^## §(\d+) ", math, re.M))
    assert sections == {"1", "2", "3", "4", "5"}
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    cited = set()
    for name in files:
        path = ROOT / name
        if path.suffix in (".swift", ".py", ".h", ".c", ".md", ".sh") and path.is_file():
            for citation in re.findall(r"docs/math\.md((?:,? ?§\d+(?:,? (?:and )?§\d+)*)?)", path.read_text(errors="replace")):
                cited |= set(re.findall(r"§(\d+)", citation))
    assert cited and cited <= sections, cited - sections


def markdown_files():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def test_relative_links_resolve():
    for path in markdown_files():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (path.parent / target).exists(), "%s links to missing %s" % (path.name, target)


def test_nothing_points_outside_the_repository():
    """No tracked file refers to the design notes outside the repository (a clone would not have them)."""
    outside = ["../" + "shared", "/work/" + "shared", "shared/" + "MATH", "MATH" + ".md"]
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            text = path.read_text(errors="replace")
            offenders += ["%s: %s" % (name, needle) for needle in outside if needle in text]
    assert not offenders, offenders


def test_install_instructions_use_the_distribution_name():
    """The distribution is `libslay` (`slay` on PyPI is an unrelated project): no tracked file tells
    users to pip-install the distribution "slay", with or without its torch extra."""
    wrong = re.compile(r"pip install ['\"]?slay\b|(?<![\w-])slay\[torch\]")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".sh", ".toml", ".txt", ".cfg") and path.is_file():
            offenders += ["%s: %s" % (name, m.group(0)) for m in wrong.finditer(path.read_text(errors="replace"))]
    assert not offenders, offenders
