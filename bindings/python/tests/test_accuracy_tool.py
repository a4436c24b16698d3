"""The accuracy tool (python -m slay.accuracy): a quick run prints both tables with the published column
and writes the JSON; its numpy quadrature reference and aligned queries do what they say. The protocol's
numbers themselves (anchor ≈ 0.65 with 4 seeds) are asserted in test_estimators.py, not here."""
import json
import os
import subprocess
import sys

import numpy as np

import slay
from slay import accuracy


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(slay.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "slay.accuracy", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_quick_run_prints_both_tables_and_writes_json(tmp_path):
    out = tmp_path / "accuracy.json"
    run = run_tool("--seeds", "1", "--quick", "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert "scenario random" in run.stdout and "scenario aligned" in run.stdout
    assert run.stdout.count("published") >= 2 and "0.65" in run.stdout and "0.026" in run.stdout
    data = json.loads(out.read_text())
    assert [(t["setup"], t["scenario"]) for t in data["tables"]] == [("module", "random"), ("module", "aligned")]
    for table in data["tables"]:
        names = [row["name"] for row in table["rows"]]
        assert "anchor R=2 P=8 M=8 (paper default)" in names and "exact R=2 M=8" in names
        assert any(name.startswith("quadrature R=2") for name in names)
        assert any(row["family"] == "classic" for row in table["rows"])
        for row in table["rows"]:
            assert row["rel_l2"] is None or row["rel_l2"] >= 0
            if row["family"] != "quadrature":
                assert row["dim"] > 0
    # Rows print as measured with a running count on stderr: one step per row of both tables.
    rows = sum(len(table["rows"]) for table in data["tables"])
    progress = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == rows and progress[-1].startswith("[%d/%d]" % (rows, rows))
    assert "ETA" in progress[0] and "aligned: quadrature R=2" in progress[-1]
    anchor = next(r for r in data["tables"][0]["rows"] if r["name"].startswith("anchor R=2 P=8 M=8"))
    assert anchor["dim"] == 128 and anchor["published"] == 0.65 and 0.4 < anchor["rel_l2"] < 0.9
    assert all(row["published"] is None for row in data["tables"][1]["rows"])


def test_quiet_leaves_stderr_empty_and_prints_the_same_rows():
    loud, quiet = run_tool("--seeds", "1", "--quick"), run_tool("--seeds", "1", "--quick", "--quiet")
    assert loud.returncode == 0 and quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and loud.stderr != ""
    table = [line for line in quiet.stdout.splitlines() if not line.startswith("published")]
    assert table == [line for line in loud.stdout.splitlines() if not line.startswith("published")]


def test_streamed_output_equals_format_table():
    """The rows printed one by one are format_table's lines (the tables' text has one definition)."""
    run = run_tool("--seeds", "1", "--quick", "--scenario", "random", "--quiet")
    assert run.returncode == 0, run.stderr
    table = accuracy.run_table("module", "random", 1, quick=True)
    assert accuracy.format_table(table) in run.stdout


def test_plot_without_matplotlib_exits_2_or_writes_png(tmp_path):
    path = tmp_path / "accuracy.png"
    run = run_tool("--seeds", "1", "--quick", "--scenario", "random", "--plot", str(path))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert run.returncode == 2 and "matplotlib" in run.stderr
        return
    assert run.returncode == 0, run.stderr
    assert path.stat().st_size > 0


def test_quadrature_reference_matches_the_kernel_directly():
    """quadrature_attention against a loop over one (batch, head) with the kernel written out."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 6, 2, 4)).astype(np.float32) for _ in range(3))
    y = accuracy.quadrature_attention(q, k, v, 2)
    s = np.array([0.5857864376, 3.4142135624]) / (2 + 1e-6)
    w = np.array([0.8535533906, 0.1464466094]) / (2 + 1e-6)
    h = 1
    for i in range(6):
        num, den = np.zeros(4), 0.0
        for j in range(i + 1):
            x = q[0, i, h] @ k[0, j, h] / np.linalg.norm(q[0, i, h]) / np.linalg.norm(k[0, j, h])
            kern = (w * x * x * np.exp(2 * s * x)).sum()
            num, den = num + kern * v[0, j, h], den + kern
        np.testing.assert_allclose(y[0, i, h], num / (den + 1e-6), rtol=1e-5)


def test_aligned_queries_have_the_requested_cosine_with_an_earlier_key():
    rng = np.random.default_rng(1)
    q, k = (rng.standard_normal((2, 20, 3, 16)).astype(np.float32) for _ in range(2))
    a = accuracy.align_queries(q, k, np.random.default_rng(2))
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), np.linalg.norm(q, axis=-1), rtol=1e-5)
    an = a / np.linalg.norm(a, axis=-1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=-1, keepdims=True)
    cos = np.einsum("bihd,bjhd->bhij", an, kn)
    causal = np.tril(np.ones((20, 20), bool))
    best = np.where(causal, cos, -2).max(-1)
    assert best.min() >= 0.9 - 1e-5


def test_plot_styles_are_distinct_for_every_series():
    """The plot gives each SLAY family (13 in a full run) its own colour and its own marker, and each
    classic map its own colour-marker pair; labels live in the legend, not on the axes."""
    families = {row[1] for row in accuracy.SLAY_ROWS}
    assert len(families) == 13
    assert len(set(accuracy.FAMILY_COLOURS)) >= len(families) and len(set(accuracy.PLOT_MARKERS)) >= len(families)
    classics = len(accuracy.CLASSIC_ROWS)
    pairs = {(accuracy.CLASSIC_COLOURS[i % len(accuracy.CLASSIC_COLOURS)],
              accuracy.PLOT_MARKERS[(i + 3) % len(accuracy.PLOT_MARKERS)]) for i in range(classics)}
    assert len(pairs) == classics and len(set(accuracy.CLASSIC_COLOURS)) >= classics
