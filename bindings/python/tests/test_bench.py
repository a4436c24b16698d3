"""The benchmark tool: its numpy baseline computes the same thing, and a quick run produces the
documented report and JSON (the timings themselves are never asserted: see the README table)."""
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


def test_quick_run_writes_report_and_json(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(slay.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "slay.bench", "--quick", "--threads", "1", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "slay tok/s" in run.stdout and "decode batch 1" in run.stdout
    data = json.loads(out.read_text())
    result = data["results"][0]
    assert result["threads"] == 1 and result["feature_dim"] == 512
    assert result["sgemm_gflops"] > 0 and result["triad_gbs"] > 0
    for row in result["prefill"]:
        assert row["slay_tokens_per_s"] > 0 and row["numpy_tokens_per_s"] > 0 and "peak_extra_mib" in row
    assert [d["batch"] for d in result["decode"]] == [1, 8]
    assert result["python_step_overhead_us"] > 0
    assert "maps and options" in run.stdout
    maps = result["maps"]["rows"]
    assert maps[0]["relative_to_baseline"] == 1.0 and all(row["tokens_per_s"] > 0 for row in maps)
    assert {row["map"] for row in maps} >= {"elu+1 (baseline)", "ela-hadamard-exp, automatic (8)",
                                            "identity + GLA log_decay, chunk 64", "slay taylor N=2 (m=d(d+1)/2)"}
