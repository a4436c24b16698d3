"""The benchmark tool: its numpy baseline computes the same thing, and a quick run produces the
documented report and JSON (the timings themselves are never asserted: see docs/benchmarks.md)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import slay
from slay.bench import NumpyChunked


@pytest.mark.parametrize("causal", [True, False])
def test_numpy_baseline_matches_library(causal):
    fm = slay.FeatureMap("slay", head_dim=16, num_heads=2, nodes=2, poly="anchor", poly_dim=4, prf_dim=8, seed=3)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 150, 2, 16)).astype(np.float32) for _ in range(3))
    expected = slay.linear_attention(q, k, v, fm, causal=causal, chunk_size=32)
    got = NumpyChunked(fm, 32)(q[0], k[0], v[0], causal=causal)
    np.testing.assert_allclose(got, expected[0], rtol=2e-3, atol=2e-4)


def bench_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(slay.__file__)),
                                                        os.environ.get("PYTHONPATH", "")]))


def test_quick_run_streams_rows_and_writes_report_and_json(tmp_path):
    """Rows reach stdout while the run is still going (the first prefill row arrives before the child
    has finished its decode, overhead and maps rows: ≥ 0.8 s of work), the running count ends at
    total/total on stderr, and the JSON holds every section."""
    out = tmp_path / "bench.json"
    run = subprocess.Popen([sys.executable, "-m", "slay.bench", "--quick", "--threads", "1", "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench_env())
    lines = []
    still_running_at_first_row = None
    for line in run.stdout:
        lines.append(line)
        if still_running_at_first_row is None and line.split()[:2] == ["256", "causal"]:
            still_running_at_first_row = run.poll() is None
    stderr = run.stderr.read()
    assert run.wait(timeout=600) == 0, stderr
    stdout = "".join(lines)
    assert still_running_at_first_row is True
    assert "slay tok/s" in stdout and "decode batch 1" in stdout
    data = json.loads(out.read_text())
    result = data["results"][0]
    assert result["threads"] == 1 and result["feature_dim"] == 512
    assert result["sgemm_gflops"] > 0 and result["triad_gbs"] > 0
    for row in result["prefill"]:
        assert row["slay_tokens_per_s"] > 0 and row["numpy_tokens_per_s"] > 0 and "peak_extra_mib" in row
    assert [d["batch"] for d in result["decode"]] == [1, 8]
    assert result["overhead"][0]["python_step_overhead_us"] > 0
    assert "maps and options" in stdout
    maps = result["maps"]
    assert maps[0]["relative_to_baseline"] == 1.0 and all(row["tokens_per_s"] > 0 for row in maps)
    assert {row["map"] for row in maps} >= {"elu+1 (baseline)", "ela-hadamard-exp, automatic (8)",
                                            "identity + GLA log_decay, chunk 64", "slay taylor N=2 (m=d(d+1)/2)"}
    # The running count: one step per row plus the roofline, each with the elapsed time and an ETA.
    memory = result["decode_memory"]
    assert memory[0]["kind"] == "ceilings" and memory[0]["cache_resident_gbs"] > 0 and memory[0]["triad_gbs"] > 0
    assert [(r["batch"], r["storage"]) for r in memory[1:]] == [(1, "float32"), (64, "float32"), (64, "bfloat16")]
    assert all(r["c_us_per_token"] > 0 and r["python_us_per_token"] > 0 and r["fraction_of_cache_resident"] > 0
               and r["ctypes_us_per_token"] > 0 and r["python_fresh_out_us_per_token"] > 0
               for r in memory[1:]) and memory[3]["speedup_vs_float32"] > 0
    # From a source tree with a C compiler (as in CI), the C rows are timed by decode_timing.c.
    import shutil
    if shutil.which("cc") or shutil.which("gcc"):
        assert all(r["c_timed_from"] == "C" for r in memory[1:])
    assert "decode ceilings" in stdout and "of cache-resident" in stdout
    delta = result["delta"]
    assert [row["row"] for row in delta][:3] == ["GLA (per-channel log_decay, automatic chunk)", "Gated DeltaNet prefill",
                                                 "DeltaNet prefill"]
    assert delta[1]["relative_to_gla"] > 0 and delta[3]["slay_speedup"] > 0 and delta[4]["us_per_token"] > 0
    assert "delta rule" in stdout and "2 passes over S" in stdout
    backward = result["backward"]
    assert backward[0]["ratio"] > 0 and backward[0]["ratio_median"] > 0 and backward[0]["ratio_new"] > 0 and backward[0]["train_tokens_per_s"] > 0 and backward[-1]["memory"]
    half = result["half_io"]
    assert [r["dtype"] for r in half[:2]] == ["float32", "float16"] and all(r["ratio_vs_float32"] > 0 and r["paired_ratio_vs_float32"] > 0 for r in half)
    assert "half-precision I/O" in stdout
    rows = (len(result["prefill"]) + len(result["decode"]) + len(memory) + len(result["overhead"]) + len(maps)
            + len(delta) + len(backward) + len(half) + 1)
    rows += len(result.get("torch", []))   # the PyTorch rows (slay/torch/_bench.py), when torch is installed
    progress = [line for line in stderr.splitlines() if line.startswith("[")]
    assert len(progress) == rows and progress[-1].startswith("[%d/%d]" % (rows, rows)) and "done" in progress[-1]
    assert all("elapsed" in line for line in progress) and "ETA" in progress[0]


def test_sections_count_the_rows_they_measure():
    """Each section's count(args) is the number of rows its generator yields (the ETA relies on it)."""
    from slay import bench
    args = bench.argparse.Namespace(lengths=[64, 128], repeats=1, numpy_max_t=128, decode_steps=2, maps_t=64,
                                    delta_t=64, backward_lengths=[64], backward_memory_t=128, half_t=64)
    ctx = bench.BenchContext(1, args)
    for section in bench.SECTIONS:
        rows = list(section.rows(ctx))
        assert len(rows) == section.count(args), section.name
        for row in rows:
            assert section.line(row) and section.label(row)
    args.maps_t = 0
    maps = next(section for section in bench.SECTIONS if section.name == "maps")
    assert maps.count(args) == 0 and list(maps.rows(ctx)) == []


def test_quiet_leaves_stderr_empty():
    run = subprocess.run([sys.executable, "-m", "slay.bench", "--quick", "--threads", "1", "--quiet"],
                         capture_output=True, text=True, env=bench_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and "decode batch 8" in run.stdout


def test_backward_memory_row_counts_the_backward_workspace():
    """The backward memory row runs in a fresh process: after a large allocation freed here (as the
    torch rows leave behind) it still sees the call's own memory (its per-token scalars and
    workspaces, a few MiB) beyond the returned gradients, which it counts exactly."""
    from slay import bench
    garbage = np.ones(64 << 20, np.uint8)
    del garbage
    row = bench.backward_memory_row(4096, 1)
    H, d = bench.DEFAULTS["heads"], bench.DEFAULTS["head_dim"]
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=bench.DEFAULTS["nodes"], poly=bench.DEFAULTS["poly"],
                         poly_dim=bench.DEFAULTS["poly_dim"], prf_dim=bench.DEFAULTS["prf_dim"])
    params = sum(np.asarray(p).nbytes for p in fm.get_params().values())
    assert row["memory"] and row["T"] == 4096
    assert row["gradients_mib"] == (3 * 4096 * H * d * 4 + params) / 2 ** 20
    assert 0 < row["peak_extra_mib"] < 64, row
    assert "peak memory beyond inputs and gradients" in bench.backward_line(row)


def test_sections_option_runs_only_the_named_sections(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "slay.bench", "--quick", "--threads", "1", "--quiet", "--sections",
                          "backward", "--json", str(out)], capture_output=True, text=True, env=bench_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    assert "backward T=256" in run.stdout and "decode" not in run.stdout
    result = json.loads(out.read_text())["results"][0]
    assert result["backward"] and not result["prefill"]
    bad = subprocess.run([sys.executable, "-m", "slay.bench", "--sections", "nope"], capture_output=True, text=True,
                         env=bench_env(), timeout=600)
    assert bad.returncode != 0 and "unknown section" in bad.stderr
