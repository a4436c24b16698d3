"""python -m slay.bench — libslay against baselines measured in the same run.

For each thread count (1 and 2 by default) a child process is started with
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set, so numpy's BLAS uses the same number of threads as
libslay. Each child measures:
  - prefill tokens/s of slay.linear_attention (causal and bidirectional) for each T;
  - the same chunked algorithm written in numpy (NumpyChunked below), the baseline a user could
    write in an afternoon;
  - torch.nn.functional.scaled_dot_product_attention (exact softmax) when torch is installed;
  - numpy.matmul (OpenBLAS sgemm) GFLOP/s on 2048² matrices: the roofline;
  - decode µs per token (batch 1 and 8) through slay.State.step, Python call included, the bare
    Python overhead (a step on a tiny state), and a STREAM-style triad bandwidth (numpy add of two
    arrays into a third, 3 × 4 bytes per element) to compare the decode state traffic with;
  - peak memory of one prefill call beyond its inputs and outputs (VmHWM after resetting it);
  - the backward pass (T = --backward-lengths, default 16384): forward and backward seconds (their
    calls alternate, best of each) and their ratio, both writing into arrays the caller keeps (out=)
    and both returning new arrays; forward+backward tokens/s (new arrays) against torch autograd of
    the same SLAY map written in torch (torch_slay_chunked), and the peak memory beyond inputs and
    gradients at --backward-memory-t (measured in a fresh process, whose RSS holds no memory freed by
    earlier rows);
  - the other maps and options (causal, B=1, T = --maps-t, the same H, d, dv): tokens/s of each
    against ELU+1 on the plain path in the same run (the cheapest map: its ratio is the cost of
    what the row adds — wider features, GLA decay, gates, Hadamard Exp's rescaling);
  - the delta rule (Gated DeltaNet, DeltaNet) against GLA at T = --delta-t and against a numpy token
    loop of the same recurrence at T = 2048, and its decode step;
  - prefill with float16 and bfloat16 I/O (q, k, v and out in that dtype; bfloat16 through ml_dtypes
    when it is installed) against float32 I/O at T = --half-t, causal and bidirectional, at least 5
    rounds of the dtypes back to back: the best round of each and the median per-round ratio.
Ratios are printed next to the figures; --json FILE writes everything; --sections NAME,... runs only
those sections (e.g. --sections backward).

Each row is printed (and stdout flushed) as soon as it is measured; a running count with the elapsed
time and an ETA goes to stderr (--quiet turns it off). The rows come from SECTIONS: a section is a
generator measuring one row at a time in the child plus how to print it; add rows by adding a section.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ._progress import Progress

DEFAULTS = dict(heads=8, head_dim=64, value_dim=64, nodes=2, poly="anchor", poly_dim=16, prf_dim=16, chunk=64)


# ---------------------------------------------------------------------------------------------
# The numpy baseline: the same chunked algorithm (features per chunk, state carried across chunks)
# ---------------------------------------------------------------------------------------------
class NumpyChunked:
    """Chunked SLAY linear attention in numpy float32, batched over heads with matmul."""

    def __init__(self, fm, chunk):
        params = fm.get_params()
        config = fm.config
        self.omega = params["omega"]                      # (R, H, d, M)
        self.anchors = params.get("anchors")              # (P, d)
        self.chunk = chunk
        R = config["nodes"]
        t, alpha = np.polynomial.laguerre.laggauss(R)
        C = 2 + config["eps"]
        self.s = (t / C).astype(np.float32)
        self.w = (alpha / C).astype(np.float32)
        self.clamp = config["prf_clamp"]
        # √(2 s_r) ω, shaped (H, d, R·M) so one matmul gives every node's exponents.
        scaled = self.omega * np.sqrt(2 * self.s)[:, None, None, None]
        self.omega_cat = np.ascontiguousarray(scaled.transpose(1, 2, 0, 3).reshape(scaled.shape[1], scaled.shape[2], -1))

    def features(self, x):
        """x (H, c, d) → (H, c, m)."""
        u = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-30)
        poly = (u @ self.anchors.T) ** 2 / np.float32(np.sqrt(self.anchors.shape[0]))       # (H, c, P)
        R, _, _, M = self.omega.shape
        z = (u @ self.omega_cat).reshape(u.shape[0], u.shape[1], R, M) - self.s[None, None, :, None]
        prf = np.exp(np.clip(z, -self.clamp, self.clamp)) * (np.sqrt(self.w / M)[None, None, :, None])
        out = poly[:, :, None, :, None] * prf[:, :, :, None, :]                                 # (H, c, R, P, M)
        return out.reshape(u.shape[0], u.shape[1], -1).astype(np.float32)

    def __call__(self, q, k, v, causal=True, delta=1e-6):
        """q, k (T, H, d), v (T, H, dv) → (T, H, dv)."""
        T, H, _ = q.shape
        dv = v.shape[-1]
        qh, kh, vh = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (q, k, v))
        out = np.empty((H, T, dv), np.float32)
        if causal:
            S = None
            z = None
            mask = np.tril(np.ones((self.chunk, self.chunk), np.float32))
            for t0 in range(0, T, self.chunk):
                t1 = min(T, t0 + self.chunk)
                pq, pk, vc = self.features(qh[:, t0:t1]), self.features(kh[:, t0:t1]), vh[:, t0:t1]
                if S is None:
                    S = np.zeros((H, pk.shape[-1], dv), np.float32)
                    z = np.zeros((H, pk.shape[-1], 1), np.float32)
                A = (pq @ pk.transpose(0, 2, 1)) * mask[: t1 - t0, : t1 - t0]
                num = pq @ S + A @ vc
                den = pq @ z + A.sum(-1, keepdims=True)
                out[:, t0:t1] = num / (den + delta)
                S += pk.transpose(0, 2, 1) @ vc
                z += pk.sum(1)[..., None]
        else:
            S = 0
            z = 0
            for t0 in range(0, T, self.chunk):
                pk = self.features(kh[:, t0:t0 + self.chunk])
                S = S + pk.transpose(0, 2, 1) @ vh[:, t0:t0 + self.chunk]
                z = z + pk.sum(1)[..., None]
            for t0 in range(0, T, self.chunk):
                pq = self.features(qh[:, t0:t0 + self.chunk])
                out[:, t0:t0 + self.chunk] = (pq @ S) / (pq @ z + delta)
        return out.transpose(1, 0, 2)


# ---------------------------------------------------------------------------------------------
# Measurements (run inside a child process with a fixed BLAS thread count)
# ---------------------------------------------------------------------------------------------
PREFILL_MIN_TIME = 0.5


def best_time(fn, repeats, min_time=0.0):
    fn()  # warm-up
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < repeats or (time.perf_counter() - start < min_time and runs < 1000):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        runs += 1
    return best


def alternating_times(calls, rounds):
    """Seconds of every run of each (name, call), after one warm-up each: `rounds` rounds that run
    the calls in turn, in alternating order, so that a host whose speed drifts slows them alike and
    ratios between them compare runs made in the same moments."""
    for _, call in calls:
        call()  # warm-up
    times = {name: [] for name, _ in calls}
    for round_ in range(rounds):
        for name, call in (calls if round_ % 2 == 0 else calls[::-1]):
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def flops_per_token(H, d, dv, m, chunk, P, RM):
    """FLOPs per token of the chunked algorithm (features, readout, intra-chunk block, update)."""
    features = 2 * (2 * d * (P + RM)) + 2 * m           # q and k: projections and expansion
    return H * (features + 2 * m * dv + 2 * chunk * m + 2 * chunk * dv + 2 * m * dv)


def vm_hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return 0


def vm_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def sgemm_gflops(n=2048, repeats=3):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    seconds = best_time(lambda: a @ b, repeats)
    return 2 * n ** 3 / seconds / 1e9


def triad_gbs(n=1 << 25, repeats=5):
    a = np.zeros(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.ones(n, np.float32)
    seconds = best_time(lambda: np.add(b, c, out=a), repeats)
    return 3 * 4 * n / seconds / 1e9


# (label, FeatureMap keywords, linear_attention keywords); "log_decay" and the gate logits are
# filled with random data of the right shape by measure_maps.
MAP_ROWS = [
    ("elu+1 (baseline)", dict(kind="elu+1"), dict(chunk_size=64)),
    ("identity, normalize=False", dict(kind="identity"), dict(normalize=False, chunk_size=64)),
    ("identity + RetNet decay", dict(kind="identity"), dict(normalize=False, decay="gamma", chunk_size=64)),
    ("identity + GLA log_decay, chunk 64", dict(kind="identity"), dict(normalize=False, log_decay=True, chunk_size=64)),
    ("identity + GLA log_decay, automatic (8)", dict(kind="identity"), dict(normalize=False, log_decay=True)),
    ("identity + SLA gates", dict(kind="identity"), dict(normalize=False, gates=True, chunk_size=64)),
    ("identity + SLA gates + GLA, automatic (8)", dict(kind="identity"), dict(normalize=False, gates=True,
                                                                             log_decay=True)),
    ("ela-hadamard-exp, chunk 64", dict(kind="ela-hadamard-exp"), dict(chunk_size=64)),
    ("ela-hadamard-exp, automatic (8)", dict(kind="ela-hadamard-exp"), dict()),
    ("favor+ m=128", dict(kind="favor+", prf_dim=128), dict(chunk_size=64)),
    ("slay anchor R=2 P=M=8 (m=128)", dict(kind="slay"), dict(chunk_size=64)),
    ("slay taylor N=2 (m=d(d+1)/2)", dict(kind="slay", expansion="taylor"), dict(chunk_size=64)),
]


# ---------------------------------------------------------------------------------------------
# Sections: each one measures its rows one at a time (in the child) and formats them (in the parent).
# To add benchmark rows, write a generator `def my_rows(ctx): ... yield {...}` and append a Section to
# SECTIONS; the driver streams, counts, times and stores its rows (result[name], a list of dicts).
# ---------------------------------------------------------------------------------------------
class BenchContext:
    """What the sections of one child share: the thread count, the parsed arguments, the sizes and the
    SLAY map of the prefill table, one random generator, the roofline figures and (lazily) torch."""

    def __init__(self, threads, args):
        import slay
        self.slay = slay
        self.threads = threads
        self.args = args
        self.cfg = DEFAULTS
        self.H, self.d, self.dv = DEFAULTS["heads"], DEFAULTS["head_dim"], DEFAULTS["value_dim"]
        self.fm = slay.FeatureMap("slay", head_dim=self.d, num_heads=self.H, nodes=DEFAULTS["nodes"],
                                  poly=DEFAULTS["poly"], poly_dim=DEFAULTS["poly_dim"],
                                  prf_dim=DEFAULTS["prf_dim"], seed=0)
        self.m = self.fm.dim
        self.rng = np.random.default_rng(0)
        self.sgemm_gflops = sgemm_gflops()
        self.triad_gbs = triad_gbs()
        self._torch = False

    @property
    def torch(self):
        """torch with its thread count set to this child's, or None when it is not installed."""
        if self._torch is False:
            try:
                import torch
                torch.set_num_threads(self.threads)
                self._torch = torch
            except ImportError:
                self._torch = None
        return self._torch

    def header(self):
        return {"threads": self.threads, "kernel_variant": self.slay.kernel_variant(), "feature_dim": self.m,
                "sgemm_gflops": self.sgemm_gflops, "triad_gbs": self.triad_gbs}


class Section:
    """A group of benchmark rows.
    name: key of the rows in the JSON result; count(args): how many rows `rows` yields (for the running
    count and the ETA); rows(ctx): generator measuring one row (a JSON-able dict) at a time;
    heading(header, args): lines printed before the first row; line(row): a row as text;
    label(row): the row in a few words, for the progress line."""

    def __init__(self, name, count, rows, heading, line, label):
        self.name, self.count, self.rows, self.heading, self.line, self.label = name, count, rows, heading, line, label


def prefill_rows(ctx):
    """Prefill tokens/s of the SLAY map for each T, causal and bidirectional, with the numpy and torch
    baselines and the peak extra memory of one call."""
    slay, cfg = ctx.slay, ctx.cfg
    H, d, dv, threads = ctx.H, ctx.d, ctx.dv, ctx.threads
    baseline = NumpyChunked(ctx.fm, cfg["chunk"])
    fpt = flops_per_token(H, d, dv, ctx.m, cfg["chunk"], cfg["poly_dim"], cfg["nodes"] * cfg["prf_dim"])
    # Short rows take ~10 ms a call: best of a few calls would let one noisy spell of this shared
    # machine decide them, so every timing runs for at least PREFILL_MIN_TIME (long rows are
    # decided by the repeat count, as before).
    min_time = 0.0 if getattr(ctx.args, "quick", True) else PREFILL_MIN_TIME
    for T in ctx.args.lengths:
        q, k, v = (ctx.rng.standard_normal((1, T, H, d)).astype(np.float32) for _ in range(3))
        out = np.zeros((1, T, H, dv), np.float32)
        for causal in (True, False):
            run = lambda: slay.linear_attention(q, k, v, ctx.fm, causal=causal, chunk_size=cfg["chunk"],
                                                n_threads=threads, out=out)
            seconds = best_time(run, ctx.args.repeats, min_time)
            row = {"T": T, "causal": causal, "slay_tokens_per_s": T / seconds, "slay_gflops": fpt * T / seconds / 1e9}
            rss = vm_rss_kib()
            if reset_peak():
                run()
                row["peak_extra_mib"] = max(0, vm_hwm_kib() - rss) / 1024
            if T <= ctx.args.numpy_max_t:
                np_seconds = best_time(lambda: baseline(q[0], k[0], v[0], causal=causal), max(1, ctx.args.repeats - 1),
                                       min_time)
                row["numpy_tokens_per_s"] = T / np_seconds
                row["speedup_vs_numpy"] = np_seconds / seconds
            torch = ctx.torch
            if torch is not None and T <= 16384:
                tq, tk, tv = (torch.from_numpy(a.transpose(0, 2, 1, 3).copy()) for a in (q, k, v))
                sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                t_seconds = best_time(sdpa, max(1, ctx.args.repeats - 1), min_time)
                row["torch_sdpa_tokens_per_s"] = T / t_seconds
                row["speedup_vs_torch_sdpa"] = t_seconds / seconds
            row["fraction_of_sgemm"] = row["slay_gflops"] / ctx.sgemm_gflops
            yield row


def prefill_line(p):
    return "%7d %6s %12.0f %8.1f %7.0f%% %12s %9s %10s %9s" % (
        p["T"], "causal" if p["causal"] else "bidir", p["slay_tokens_per_s"], p["slay_gflops"],
        100 * p["fraction_of_sgemm"],
        "%.0f" % p["numpy_tokens_per_s"] if "numpy_tokens_per_s" in p else "-",
        "%.2f" % p["speedup_vs_numpy"] if "speedup_vs_numpy" in p else "-",
        "%.2f" % p["speedup_vs_torch_sdpa"] if "speedup_vs_torch_sdpa" in p else "n/a",
        "%.1f" % p["peak_extra_mib"] if "peak_extra_mib" in p else "-")


def decode_rows(ctx):
    """Decode µs per step through slay.State.step (Python call included), batch 1 and 8, and the state
    traffic against the triad bandwidth."""
    H, d, dv, m, threads = ctx.H, ctx.d, ctx.dv, ctx.m, ctx.threads
    for batch in (1, 8):
        state = ctx.slay.State(ctx.fm, num_seqs=batch, value_dim=dv, max_threads=threads)
        qs, ks, vs = (ctx.rng.standard_normal((batch, H, d)).astype(np.float32) for _ in range(3))
        outs = np.empty((batch, H, dv), np.float32)
        seconds = best_time(lambda: state.step(qs, ks, vs, n_threads=threads, out=outs), ctx.args.decode_steps,
                            min_time=0.3)
        state.close()
        state_bytes = 2 * batch * H * m * (dv + 1) * 4
        yield {"batch": batch, "us_per_step": seconds * 1e6, "us_per_token": seconds * 1e6 / batch,
               "state_gbs": state_bytes / seconds / 1e9,
               "fraction_of_triad": state_bytes / seconds / 1e9 / ctx.triad_gbs}


def decode_line(row):
    return "decode batch %d: %.1f us/step (%.1f us/token), state %.1f GB/s = %.0f%% of triad" % (
        row["batch"], row["us_per_step"], row["us_per_token"], row["state_gbs"], 100 * row["fraction_of_triad"])


def overhead_rows(ctx):
    """The bare Python cost of a State.step call: a step on a one-float state."""
    slay = ctx.slay
    tiny_map = slay.FeatureMap("slay", head_dim=1, num_heads=1, nodes=1, poly="exact", prf_dim=1)
    tiny = slay.State(tiny_map, num_seqs=1, value_dim=1)
    one = np.ones((1, 1, 1), np.float32)
    tiny_out = np.empty((1, 1, 1), np.float32)
    yield {"python_step_overhead_us": best_time(lambda: tiny.step(one, one, one, out=tiny_out), 2000,
                                                min_time=0.2) * 1e6}
    tiny.close()
    tiny_map.close()


def cache_resident_gbs(nbytes, repeats=2000):
    """Read + write bandwidth of a hot buffer of `nbytes` (one decode state): an in-place numpy multiply
    over it, best of many, so the buffer stays in the caches between runs. The numpy call overhead makes
    this a slightly low (conservative) ceiling."""
    buffer = np.ones(max(1, nbytes // 4), np.float32)
    one = np.float32(1)
    seconds = best_time(lambda: np.multiply(buffer, one, out=buffer), repeats, min_time=0.2)
    return 2 * buffer.nbytes / seconds / 1e9


def raw_step_call(state, q, k, v, out, n_threads):
    """slay_state_step through ctypes with every argument prepared once: the C call without the
    State.step wrapper (its time still includes the ctypes call, well under a microsecond)."""
    import ctypes
    from ._lib import lib, Error
    from .attention import attention_options
    from ._tensor import descriptor
    refs = [descriptor(a) for a in (q, k, v, out)]
    options = ctypes.byref(attention_options(True, 1e-6, 1, n_threads, "add", True, None, step=True))
    err = ctypes.byref(Error())
    handle, n, step = state.handle, q.shape[0], lib.slay_state_step

    def call():
        code = step(handle, refs[0], refs[1], refs[2], refs[3], None, n, options, err)
        if code:
            raise RuntimeError("slay_state_step failed with %d" % code)
    return call


class CStepTimer:
    """slay_state_step timed from C: bindings/c-example/decode_timing.c, compiled once per process
    against the library this process loaded. Available when the bench runs from a source tree (the
    program and include/slay.h next to the package) and a C compiler is installed; otherwise the
    decode rows report the ctypes call only."""

    def __init__(self):
        self.binary = None
        self.reason = None

    def _build(self):
        import shutil
        from ._lib import _library_path
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))  # bindings/python/slay
        source = os.path.join(root, "bindings", "c-example", "decode_timing.c")
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not (os.path.exists(source) and os.path.exists(os.path.join(root, "include", "slay.h")) and compiler):
            self.reason = "no C compiler or no source tree"
            return
        folder = tempfile.mkdtemp(prefix="slay-bench-")
        # The program finds the library through its SONAME, libslay.so.1, in this folder.
        library = str(_library_path().resolve())
        os.symlink(library, os.path.join(folder, "libslay.so.1"))
        os.symlink(library, os.path.join(folder, "libslay.so"))
        binary = os.path.join(folder, "slay_decode_timing")
        built = subprocess.run([compiler, "-std=c99", "-O2", "-I", os.path.join(root, "include"), source, "-L", folder,
                                "-lslay", "-Wl,-rpath," + folder, "-o", binary], capture_output=True, text=True)
        if built.returncode:
            self.reason = "decode_timing.c did not build: " + built.stderr.strip()[:200]
            return
        self.binary = binary

    def seconds(self, seconds, batch, storage, ctx):
        """Best seconds per slay_state_step call of `batch` sequences, or None."""
        if self.binary is None and self.reason is None:
            self._build()
        if self.binary is None:
            return None
        cfg = ctx.cfg
        ran = subprocess.run([self.binary, "%g" % seconds, str(batch), str(storage), str(ctx.H), str(ctx.d), str(ctx.dv),
                              str(cfg["nodes"]), str(cfg["poly_dim"]), str(cfg["prf_dim"]), str(ctx.threads)],
                             capture_output=True, text=True)
        if ran.returncode:
            raise RuntimeError("decode_timing failed: " + ran.stderr.strip())
        return float(ran.stdout) * 1e-6


C_STEP_TIMER = CStepTimer()
STORAGE_CODES = {"float32": 0, "float16": 2, "bfloat16": 3}  # SLAY_DTYPE_* (slay.h)


def decode_memory_rows(ctx):
    """Decode against both memory ceilings measured here: the cache-resident bound (read + write a hot
    buffer the size of one sequence's state) and DRAM triad. Batch 1 (one state, cache-resident) and
    64 (states beyond L3), µs per token through the C call and through State.step, and batch 64 with
    bfloat16 state storage (half the traffic) against float32 storage."""
    H, d, dv, m, threads = ctx.H, ctx.d, ctx.dv, ctx.m, ctx.threads
    state_bytes = H * m * (dv + 1) * 4
    cache_gbs = cache_resident_gbs(state_bytes)
    fp32_us = {}
    yield {"kind": "ceilings", "state_bytes": state_bytes, "cache_resident_gbs": cache_gbs, "triad_gbs": ctx.triad_gbs}
    for batch, storage in ((1, "float32"), (64, "float32"), (64, "bfloat16")):
        state = ctx.slay.State(ctx.fm, num_seqs=batch, value_dim=dv, max_threads=threads, storage_dtype=storage)
        qs, ks, vs = (ctx.rng.standard_normal((batch, H, d)).astype(np.float32) for _ in range(3))
        outs = np.empty((batch, H, dv), np.float32)
        steps = max(3, ctx.args.decode_steps // batch)
        ctypes_seconds = best_time(raw_step_call(state, qs, ks, vs, outs, threads), steps, min_time=0.3)
        py_seconds = best_time(lambda: state.step(qs, ks, vs, n_threads=threads, out=outs), steps, min_time=0.3)
        py_fresh_seconds = best_time(lambda: state.step(qs, ks, vs, n_threads=threads), steps, min_time=0.3)
        state.close()
        # Timed from C when the harness builds; the ctypes call otherwise.
        harness_seconds = C_STEP_TIMER.seconds(0.3, batch, STORAGE_CODES[storage], ctx)
        c_seconds = ctypes_seconds if harness_seconds is None else harness_seconds
        traffic = 2 * batch * state_bytes * (1 if storage == "float32" else 0.5) / c_seconds / 1e9
        row = {"kind": "decode", "batch": batch, "storage": storage, "c_us_per_token": c_seconds * 1e6 / batch,
               "c_timed_from": "ctypes" if harness_seconds is None else "C",
               "ctypes_us_per_token": ctypes_seconds * 1e6 / batch,
               "python_us_per_token": py_seconds * 1e6 / batch,
               "python_fresh_out_us_per_token": py_fresh_seconds * 1e6 / batch, "state_gbs": traffic,
               "fraction_of_cache_resident": traffic / cache_gbs, "fraction_of_triad": traffic / ctx.triad_gbs}
        if storage == "float32":
            fp32_us[batch] = c_seconds
        else:
            row["speedup_vs_float32"] = fp32_us[batch] / c_seconds
        yield row


def decode_memory_line(row):
    if row["kind"] == "ceilings":
        return ("decode ceilings: one state = %.2f MiB; cache-resident (hot read+write) %.1f GB/s, DRAM triad %.1f GB/s"
                % (row["state_bytes"] / 2**20, row["cache_resident_gbs"], row["triad_gbs"]))
    return ("decode batch %2d, %s state: %.1f us/token via C%s, %.1f via ctypes, %.1f via State.step(out=), %.1f via "
            "State.step; state %.1f GB/s = %.0f%% of cache-resident, %.0f%% of triad%s"
            % (row["batch"], row["storage"], row["c_us_per_token"],
               "" if row["c_timed_from"] == "C" else " (timed through ctypes: no C compiler)",
               row["ctypes_us_per_token"], row["python_us_per_token"], row["python_fresh_out_us_per_token"],
               row["state_gbs"], 100 * row["fraction_of_cache_resident"], 100 * row["fraction_of_triad"],
               "; %.2fx the tokens/s of float32" % row["speedup_vs_float32"] if "speedup_vs_float32" in row else ""))


def maps_rows(ctx):
    """Tokens/s of every MAP_ROWS row on one causal sequence (B=1, T = --maps-t), and the ratio to the
    first row (ELU+1 on the plain path: the cheapest map, so the ratio is the cost of what a row adds)."""
    slay = ctx.slay
    H, d, dv, T = ctx.H, ctx.d, ctx.dv, ctx.args.maps_t
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, T, H, d)).astype(np.float32) for _ in range(3))
    out = np.empty((1, T, H, dv), np.float32)
    gates = dict(query_gate_logits=rng.standard_normal((1, T, H)).astype(np.float32),
                 key_gate_logits=rng.standard_normal((1, T, H)).astype(np.float32))
    baseline = None
    for label, map_options, options in MAP_ROWS:
        map_options = dict(map_options)
        fm = slay.FeatureMap(map_options.pop("kind"), head_dim=d, num_heads=H, seed=0, **map_options)
        call = dict(options)
        if call.pop("decay", None):
            call["decay"] = np.full(H, 0.99, np.float32)
        if call.pop("log_decay", None):
            call["log_decay"] = (-0.05 * np.abs(rng.standard_normal((1, T, H, fm.dim)))).astype(np.float32)
        if call.pop("gates", None):
            call.update(gates)
        seconds = best_time(lambda: slay.linear_attention(q, k, v, fm, causal=True, n_threads=ctx.threads, out=out,
                                                          **call), ctx.args.repeats)
        row = {"map": label, "T": T, "feature_dim": fm.dim, "tokens_per_s": T / seconds}
        baseline = baseline or row["tokens_per_s"]
        row["relative_to_baseline"] = row["tokens_per_s"] / baseline
        fm.close()
        yield row


def numpy_gated_delta(q, k, v, beta, g):
    """The Gated DeltaNet recurrence as a numpy float32 token loop, vectorised over heads (batched
    matmul): S_t = e^{g_t} (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t, with q and k
    L2-normalised first. q, k (T, H, d), v (T, H, dv), beta and g (T, H)."""
    q = q / np.sqrt((q * q).sum(-1, keepdims=True) + 1e-6)
    k = k / np.sqrt((k * k).sum(-1, keepdims=True) + 1e-6)
    T, H, d = q.shape
    S = np.zeros((H, d, v.shape[2]), np.float32)
    out = np.empty((T, H, v.shape[2]), np.float32)
    alpha = np.exp(g).astype(np.float32)
    for t in range(T):
        S *= alpha[t][:, None, None]
        kt = k[t][:, None, :]
        u = beta[t][:, None] * (v[t] - (kt @ S)[:, 0])
        S += k[t][:, :, None] * u[:, None, :]
        out[t] = (q[t][:, None, :] @ S)[:, 0]
    return out


def delta_rows(ctx):
    """Gated DeltaNet and DeltaNet (update="delta", identity map, qk_l2norm) against GLA (per-channel
    log_decay, automatic chunk) on one causal sequence of T = --delta-t, the numpy token loop of the
    same recurrence at T = min(2048, --delta-t), and the GDN decode step (two passes over S)."""
    slay = ctx.slay
    H, d, dv, T = ctx.H, ctx.d, ctx.dv, ctx.args.delta_t
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, T, H, d)).astype(np.float32) for _ in range(3))
    beta = rng.random((1, T, H)).astype(np.float32)
    g = (-0.05 * rng.random((1, T, H))).astype(np.float32)
    out = np.empty((1, T, H, dv), np.float32)
    fm = slay.FeatureMap("identity", head_dim=d, num_heads=H)
    gla_decay = (-0.05 * rng.random((1, T, H, d))).astype(np.float32)
    gla = best_time(lambda: slay.linear_attention(q, k, v, fm, normalize=False, log_decay=gla_decay, out=out,
                                                  n_threads=ctx.threads), ctx.args.repeats)
    yield {"row": "GLA (per-channel log_decay, automatic chunk)", "T": T, "tokens_per_s": T / gla}
    for label, decay in (("Gated DeltaNet prefill", g), ("DeltaNet prefill", None)):
        seconds = best_time(lambda: slay.linear_attention(q, k, v, fm, normalize=False, update="delta", beta=beta,
                                                          log_decay=decay, qk_l2norm=True, out=out,
                                                          n_threads=ctx.threads), ctx.args.repeats)
        yield {"row": label, "T": T, "tokens_per_s": T / seconds, "relative_to_gla": gla / seconds}
    short = min(2048, T)
    qs, ks, vs, bs, gs = (a[0, :short] for a in (q, k, v, beta, g))
    loop = best_time(lambda: numpy_gated_delta(qs, ks, vs, bs, gs), 1)
    ours = best_time(lambda: slay.linear_attention(q[:, :short], k[:, :short], v[:, :short], fm, normalize=False,
                                                   update="delta", beta=beta[:, :short], log_decay=g[:, :short],
                                                   qk_l2norm=True, n_threads=ctx.threads), ctx.args.repeats)
    yield {"row": "numpy token loop (GDN, vectorised over heads)", "T": short, "tokens_per_s": short / loop,
           "slay_speedup": loop / ours}
    state = slay.State(fm, num_seqs=1, value_dim=dv, max_threads=ctx.threads)
    q1, k1, v1 = (rng.standard_normal((1, H, d)).astype(np.float32) for _ in range(3))
    b1, g1 = beta[:, 0].copy(), g[:, 0].copy()
    o1 = np.empty((1, H, dv), np.float32)
    step = best_time(lambda: state.step(q1, k1, v1, normalize=False, update="delta", beta=b1, log_decay=g1,
                                        qk_l2norm=True, out=o1, n_threads=ctx.threads), ctx.args.decode_steps,
                     min_time=0.2)
    state.close()
    fm.close()
    yield {"row": "GDN decode step, batch 1 (2 passes over S)", "T": 1, "us_per_token": step * 1e6}


def delta_line(row):
    if "us_per_token" in row:
        return "  %-48s %10.1f us/token" % (row["row"], row["us_per_token"])
    extra = ""
    if "relative_to_gla" in row:
        extra = " %6.2fx GLA" % row["relative_to_gla"]
    if "slay_speedup" in row:
        extra = " (slay %.1fx faster at this T)" % row["slay_speedup"]
    return "  %-48s T=%6d %10.0f tok/s%s" % (row["row"], row["T"], row["tokens_per_s"], extra)


def maps_line(row):
    return "  %-40s m=%5d %10.0f tok/s %6.2fx" % (row["map"], row["feature_dim"], row["tokens_per_s"],
                                                 row["relative_to_baseline"])


def torch_available():
    import importlib.util
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


def torch_quick(args):
    """Small PyTorch rows with --quick, and for argument sets without the flag (the tests' own)."""
    return getattr(args, "quick", True)


def torch_count(args):
    """Rows of the PyTorch section (slay/torch/_bench.py); none without torch and transformers."""
    if not torch_available():
        return 0
    import slay
    return (3 if torch_quick(args) else 5) + (1 if hasattr(slay, "linear_attention_backward") else 0)


def torch_rows(ctx):
    """The PyTorch layer's rows (slay/torch/_bench.py), when torch and transformers are installed."""
    if not torch_available():
        return
    from .torch import _bench
    yield from _bench.rows(ctx.threads, torch_quick(ctx.args))


def torch_line(row):
    from .torch import _bench
    return _bench.line(row)


# ---------------------------------------------------------------------------------------------
# Backward pass: slay.linear_attention_backward against its forward and torch autograd
# ---------------------------------------------------------------------------------------------
def torch_slay_chunked(torch, params, config, q, k, v, chunk, delta=1e-6):
    """The SLAY anchor map and chunked causal normalised attention written in torch (q, k, v
    (H, T, d) tensors), so torch autograd can differentiate it: the baseline of the backward rows."""
    R, M, P = config["nodes"], config["prf_dim"], config["poly_dim"]
    t, alpha = np.polynomial.laguerre.laggauss(R)
    C = 2 + config["eps"]
    s, w = t / C, alpha / C
    anchors = torch.from_numpy(params["anchors"])
    omega = torch.from_numpy(params["omega"])                # (R, H, d, M)

    def features(x):                                         # (H, c, d) -> (H, c, R·P·M)
        u = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        poly = (u @ anchors.T) ** 2 / P ** 0.5
        blocks = []
        for r in range(R):
            e = (2 * s[r]) ** 0.5 * (u @ omega[r]) - s[r]
            prf = torch.exp(e.clamp(-config["prf_clamp"], config["prf_clamp"])) * (w[r] / M) ** 0.5
            blocks.append((poly[..., :, None] * prf[..., None, :]).flatten(-2))
        return torch.cat(blocks, -1)

    H, T, _ = q.shape
    m = R * P * M
    S = q.new_zeros((H, m, v.shape[-1]))
    z = q.new_zeros((H, m, 1))
    outs = []
    mask = None
    for t0 in range(0, T, chunk):
        pq, pk, vc = features(q[:, t0:t0 + chunk]), features(k[:, t0:t0 + chunk]), v[:, t0:t0 + chunk]
        n = pq.shape[1]
        if mask is None or mask.shape[0] != n:
            mask = torch.tril(torch.ones(n, n))
        A = (pq @ pk.transpose(1, 2)) * mask
        outs.append((pq @ S + A @ vc) / (pq @ z + A.sum(-1, keepdim=True) + delta))
        S = S + pk.transpose(1, 2) @ vc
        z = z + pk.sum(1)[..., None]
    return torch.cat(outs, 1)


def backward_rows(ctx):
    """Forward and backward seconds of the default backward call (every gradient, including the map's
    parameters) at each --backward-lengths T, their ratio, forward+backward tokens/s, the same in torch
    autograd of the same map (T <= 16384), and at --backward-memory-t the peak memory beyond the inputs
    and the gradients."""
    slay, cfg = ctx.slay, ctx.cfg
    H, d, dv, threads = ctx.H, ctx.d, ctx.dv, ctx.threads
    for T in ctx.args.backward_lengths:
        q, k, v = (ctx.rng.standard_normal((1, T, H, d)).astype(np.float32) for _ in range(3))
        dout = ctx.rng.standard_normal((1, T, H, dv)).astype(np.float32)
        out = np.zeros((1, T, H, dv), np.float32)
        grads = {name: np.zeros_like(x) for name, x in (("q", q), ("k", k), ("v", v))}
        # Two like-for-like pairs: both calls writing into arrays the caller keeps (out=, as a C
        # caller or a training loop reusing its buffers does), and both returning new arrays
        # (which first-touches fresh pages: 3 gradients against 1 output). All four alternate, so
        # their ratios compare runs made in the same moments.
        times = alternating_times([
            ("forward", lambda: slay.linear_attention(q, k, v, ctx.fm, n_threads=threads, out=out)),
            ("backward", lambda: slay.linear_attention_backward(q, k, v, ctx.fm, dout, n_threads=threads, out=grads)),
            ("forward_new", lambda: slay.linear_attention(q, k, v, ctx.fm, n_threads=threads)),
            ("backward_new", lambda: slay.linear_attention_backward(q, k, v, ctx.fm, dout, n_threads=threads))],
            max(3, ctx.args.repeats))
        forward, backward = min(times["forward"]), min(times["backward"])
        forward_new, backward_new = min(times["forward_new"]), min(times["backward_new"])
        # Best against best, and the median of the rounds' own ratios (each round times both calls
        # within a few seconds, so a drifting host moves them together).
        paired = float(np.median(np.array(times["backward"]) / np.array(times["forward"])))
        row = {"T": T, "forward_s": forward, "backward_s": backward, "ratio": backward / forward,
               "ratio_median": paired, "forward_new_s": forward_new, "backward_new_s": backward_new,
               "ratio_new": backward_new / forward_new, "train_tokens_per_s": T / (forward_new + backward_new)}
        torch = ctx.torch
        if torch is not None and T <= 16384:
            params = ctx.fm.get_params()
            tq, tk, tv = (torch.from_numpy(a[0].transpose(1, 0, 2).copy()) for a in (q, k, v))
            tdout = torch.from_numpy(dout[0].transpose(1, 0, 2).copy())

            def step():
                leaves = [x.clone().requires_grad_() for x in (tq, tk, tv)]
                y = torch_slay_chunked(torch, params, ctx.fm.config, *leaves, cfg["chunk"])
                y.backward(tdout)
            t_seconds = best_time(step, 1)
            row["torch_train_tokens_per_s"] = T / t_seconds
            row["speedup_vs_torch"] = t_seconds / (forward_new + backward_new)
        yield row
    T = ctx.args.backward_memory_t
    if T > 0:
        yield backward_memory_row(T, threads)


def backward_memory_row(T, threads):
    """The backward's peak memory beyond its inputs and the gradients it returns, measured in a fresh
    process: in this one, memory freed by the rows before (torch autograd's above all) stays resident
    in the allocator, the gradients reuse it without growing the RSS, and the difference came out 0."""
    code = "import json, sys; from slay.bench import backward_memory_probe; " \
           "print(json.dumps(backward_memory_probe(%d, %d)))" % (T, threads)
    import slay
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(slay.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError("backward memory probe failed:\n%s" % run.stderr)
    return json.loads(run.stdout.strip().splitlines()[-1])


def backward_memory_probe(T, threads):
    """Runs in a fresh process: allocates the inputs of the default backward call (the bench's SLAY map,
    B=1, T tokens), resets the peak RSS, runs the call and reports VmHWM minus the RSS before the call
    minus the bytes of every returned gradient (q, k, v and the map's parameters)."""
    import slay
    cfg = DEFAULTS
    H, d, dv = cfg["heads"], cfg["head_dim"], cfg["value_dim"]
    fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=cfg["nodes"], poly=cfg["poly"],
                         poly_dim=cfg["poly_dim"], prf_dim=cfg["prf_dim"], seed=0)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, T, H, d), dtype=np.float32) for _ in range(3))
    dout = rng.standard_normal((1, T, H, dv), dtype=np.float32)
    row = {"T": T, "memory": True}
    rss = vm_rss_kib()
    if reset_peak():
        grads = slay.linear_attention_backward(q, k, v, fm, dout, n_threads=threads)
        arrays = [grads[name] for name in ("q", "k", "v")] + list(grads.get("params", {}).values())
        row["gradients_mib"] = sum(a.nbytes for a in arrays) / 2 ** 20
        row["peak_extra_mib"] = max(0.0, (vm_hwm_kib() - rss) / 1024 - row["gradients_mib"])
    return row


def backward_line(row):
    if row.get("memory"):
        return "backward T=%d: peak memory beyond inputs and gradients %s MiB" % (
            row["T"], "%.1f" % row["peak_extra_mib"] if "peak_extra_mib" in row else "n/a")
    return ("backward T=%d: forward %.3f s, backward %.3f s (%.2fx forward; median of the rounds' ratios %.2fx) "
            "into the caller's arrays; returning new arrays %.3f s, %.3f s (%.2fx); forward+backward %.0f tok/s%s") % (
        row["T"], row["forward_s"], row["backward_s"], row["ratio"], row["ratio_median"], row["forward_new_s"],
        row["backward_new_s"], row["ratio_new"], row["train_tokens_per_s"],
        ", torch autograd of the same map %.0f tok/s (slay %.2fx)" % (row["torch_train_tokens_per_s"],
                                                                       row["speedup_vs_torch"])
        if "torch_train_tokens_per_s" in row else "")


def half_io_dtypes():
    """(name, numpy dtype) of the I/O dtypes measured: float32 first, bfloat16 only with ml_dtypes."""
    dtypes = [("float32", np.float32), ("float16", np.float16)]
    try:
        import ml_dtypes
        dtypes.append(("bfloat16", ml_dtypes.bfloat16))
    except ImportError:
        pass
    return dtypes


def half_io_rows(ctx):
    """Prefill tokens/s of the SLAY map with q, k, v and out in float16 / bfloat16 against float32, the
    same inputs (rounded) and call otherwise; the runs of the dtypes alternate so that drifting machine
    speed hits them alike, and each keeps its best."""
    slay, cfg, T, threads = ctx.slay, ctx.cfg, ctx.args.half_t, ctx.threads
    base = [ctx.rng.standard_normal((1, T, ctx.H, ctx.d)).astype(np.float32) for _ in range(3)]
    for causal in (True, False):
        calls = []
        for name, dtype in half_io_dtypes():
            q, k, v = (a.astype(dtype) for a in base)
            out = np.zeros((1, T, ctx.H, ctx.dv), dtype)
            calls.append((name, lambda q=q, k=k, v=v, out=out: slay.linear_attention(
                q, k, v, ctx.fm, causal=causal, chunk_size=cfg["chunk"], n_threads=threads, out=out)))
        times = alternating_times(calls, max(5, ctx.args.repeats))
        for name, _ in calls:
            # Best-of ratios move with the machine's load; the median of the per-round ratios (runs
            # seconds apart) much less.
            paired = sorted(a / b for a, b in zip(times["float32"], times[name]))
            yield {"T": T, "causal": causal, "dtype": name, "tokens_per_s": T / min(times[name]),
                   "ratio_vs_float32": min(times["float32"]) / min(times[name]),
                   "paired_ratio_vs_float32": paired[len(paired) // 2]}


def half_io_line(row):
    return "%7d %6s %9s %12.0f %8.3f %8.3f" % (row["T"], "causal" if row["causal"] else "bidir", row["dtype"],
                                               row["tokens_per_s"], row["ratio_vs_float32"],
                                               row["paired_ratio_vs_float32"])


SECTIONS = [
    Section("prefill", lambda args: 2 * len(args.lengths), prefill_rows,
            lambda header, args: ["%7s %6s %12s %8s %8s %12s %9s %10s %9s" % (
                "T", "mode", "slay tok/s", "GFLOP/s", "/sgemm", "numpy tok/s", "x numpy", "torch x", "peak MiB")],
            prefill_line, lambda row: "prefill T=%d %s" % (row["T"], "causal" if row["causal"] else "bidir")),
    Section("decode", lambda args: 2, decode_rows, lambda header, args: [], decode_line,
            lambda row: "decode batch %d" % row["batch"]),
    Section("decode_memory", lambda args: 4, decode_memory_rows, lambda header, args: [], decode_memory_line,
            lambda row: "decode vs ceilings" if row["kind"] == "ceilings" else "decode batch %d %s" % (
                row["batch"], row["storage"])),
    Section("overhead", lambda args: 1, overhead_rows, lambda header, args: [],
            lambda row: "python overhead of a step call: %.1f us" % row["python_step_overhead_us"],
            lambda row: "python step overhead"),
    Section("maps", lambda args: len(MAP_ROWS) if args.maps_t > 0 else 0,
            lambda ctx: maps_rows(ctx) if ctx.args.maps_t > 0 else iter(()),
            lambda header, args: ["maps and options, causal, T=%d: tokens/s and the ratio to %s"
                                  % (args.maps_t, MAP_ROWS[0][0])],
            maps_line, lambda row: "maps: %s" % row["map"]),
    Section("delta", lambda args: 5 if args.delta_t > 0 else 0,
            lambda ctx: delta_rows(ctx) if ctx.args.delta_t > 0 else iter(()),
            lambda header, args: ["delta rule (identity map, qk_l2norm, causal, B=1): tokens/s against GLA and a "
                                  "numpy token loop"],
            delta_line, lambda row: "delta: %s" % row["row"]),
    Section("torch", torch_count, torch_rows, lambda header, args: ["PyTorch (slay.torch)"], torch_line,
            lambda row: "torch: %s" % row["row"]),
    Section("backward", lambda args: len(args.backward_lengths) + (1 if args.backward_memory_t > 0 else 0),
            backward_rows,
            lambda header, args: ["backward (slay.linear_attention_backward, every gradient incl. the map's parameters), "
                                  "causal, B=1"],
            backward_line, lambda row: "backward T=%d" % row["T"]),
    Section("half_io", lambda args: 2 * len(half_io_dtypes()) if args.half_t > 0 else 0,
            lambda ctx: half_io_rows(ctx) if ctx.args.half_t > 0 else iter(()),
            lambda header, args: ["prefill with half-precision I/O (q, k, v, out), B=1: tokens/s and the ratio to "
                                  "float32 I/O (best of the rounds, and the median of per-round ratios)",
                                  "%7s %6s %9s %12s %8s %8s" % ("T", "mode", "I/O", "tok/s", "/fp32", "paired")],
            half_io_line, lambda row: "half I/O %s %s" % (row["dtype"], "causal" if row["causal"] else "bidir")),
]


def selected_sections(args):
    """The sections --sections names (all by default), in SECTIONS order."""
    return [section for section in SECTIONS if not args.sections or section.name in args.sections]


def child_main(threads, args):
    """Runs in the child: one JSON line per event on stdout, flushed as soon as it is measured."""
    def emit(event):
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    ctx = BenchContext(threads, args)
    emit({"event": "header", "header": ctx.header()})
    for section in selected_sections(args):
        for row in section.rows(ctx):
            emit({"event": "row", "section": section.name, "row": row})
    return 0


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def child_command(threads, args):
    return [sys.executable, "-m", "slay.bench", "--child", str(threads), "--lengths",
            ",".join(map(str, args.lengths)), "--repeats", str(args.repeats), "--numpy-max-t",
            str(args.numpy_max_t), "--decode-steps", str(args.decode_steps), "--maps-t", str(args.maps_t), "--delta-t", str(args.delta_t),
            "--backward-lengths", ",".join(map(str, args.backward_lengths)), "--backward-memory-t",
            str(args.backward_memory_t), "--half-t", str(args.half_t), "--sections", ",".join(args.sections)] + (
                ["--quick"] if args.quick else [])


def run_child(threads, args, progress, title=False):
    """Starts the child for one thread count and prints its rows as they arrive (after the report's
    title line if `title`); returns its result: the header's fields plus one list of rows per section."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    sections = {section.name: section for section in SECTIONS}
    result = {section.name: [] for section in SECTIONS}
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(child_command(threads, args), env=env, stdout=subprocess.PIPE, stderr=errors,
                                 text=True)
        for line in child.stdout:
            event = json.loads(line)
            if event["event"] == "header":
                result.update(event["header"])
                if title:
                    cfg = DEFAULTS
                    progress.print("libslay benchmark: SLAY %s, B=1, H=%d, d=dv=%d, R=%d, P=M=%d (m=%d), fp32, "
                                   "chunk %d, kernels %s" % (cfg["poly"], cfg["heads"], cfg["head_dim"], cfg["nodes"],
                                                             cfg["poly_dim"], result["feature_dim"], cfg["chunk"],
                                                             result["kernel_variant"]))
                progress.print("\n== %d thread(s): numpy.matmul sgemm %.1f GFLOP/s, triad %.1f GB/s"
                               % (threads, result["sgemm_gflops"], result["triad_gbs"]))
                progress.step("%d thread(s): roofline" % threads)
                continue
            section, row = sections[event["section"]], event["row"]
            if not result[section.name]:
                for heading in section.heading(result, args):
                    progress.print(heading)
            result[section.name].append(row)
            progress.print(section.line(row))
            progress.step("%d thread(s): %s" % (threads, section.label(row)))
        if child.wait() != 0:
            errors.seek(0)
            raise RuntimeError("benchmark child (%d threads) failed:\n%s" % (threads, errors.read()))
    return result


def print_scaling(results, out):
    out("\n== scaling")
    for one, two in zip(results[0]["prefill"], results[1]["prefill"]):
        out("T %6d %6s: 2 threads / 1 thread = %.2f" % (one["T"], "causal" if one["causal"] else "bidir",
                                                       two["slay_tokens_per_s"] / one["slay_tokens_per_s"]))
    for r in results:
        by_t = {p["T"]: p["slay_tokens_per_s"] for p in r["prefill"] if p["causal"]}
        if 4096 in by_t and max(by_t) > 4096:
            out("%d thread(s): tokens/s at T=%d / at T=4096 = %.2f" % (r["threads"], max(by_t),
                                                                      by_t[max(by_t)] / by_t[4096]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m slay.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--lengths", default="1024,4096,16384,65536", help="sequence lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy-max-t", type=int, default=65536, help="skip the numpy baseline above this T")
    parser.add_argument("--decode-steps", type=int, default=200)
    parser.add_argument("--maps-t", type=int, default=4096,
                        help="sequence length of the maps-and-options table (0 skips it)")
    parser.add_argument("--delta-t", type=int, default=16384,
                        help="sequence length of the delta-rule rows (GDN, DeltaNet, GLA; 0 skips them)")
    parser.add_argument("--backward-lengths", default="16384",
                        help="sequence lengths of the backward rows (comma-separated; empty skips them)")
    parser.add_argument("--backward-memory-t", type=int, default=65536,
                        help="sequence length of the backward peak-memory row (0 skips it)")
    parser.add_argument("--half-t", type=int, default=16384,
                        help="T of the half-precision I/O prefill rows (0 skips them)")
    parser.add_argument("--sections", default="",
                        help="comma-separated sections to run (default all): " + ", ".join(s.name for s in SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress (running count and ETA) on stderr; the rows still print as measured")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.repeats, args.decode_steps, args.maps_t, args.delta_t = "256,1024", 1, 20, 256, 256
        args.backward_lengths, args.backward_memory_t, args.half_t = "256", 1024, 512
    args.lengths = [int(x) for x in str(args.lengths).split(",")]
    args.backward_lengths = [int(x) for x in str(args.backward_lengths).split(",") if x.strip()]
    args.sections = [x.strip() for x in str(args.sections).split(",") if x.strip()]
    unknown = sorted(set(args.sections) - {section.name for section in SECTIONS})
    if unknown:
        parser.error("unknown section(s) %s; the sections are %s" % (", ".join(unknown),
                                                                     ", ".join(s.name for s in SECTIONS)))
    if args.child:
        return child_main(args.child, args)
    threads = [int(t) for t in args.threads.split(",")]
    per_child = 1 + sum(section.count(args) for section in selected_sections(args))
    progress = Progress(per_child * len(threads), quiet=args.quiet)
    results = [run_child(t, args, progress, title=(i == 0)) for i, t in enumerate(threads)]
    if len(results) == 2 and results[0]["prefill"] and results[1]["prefill"]:
        print_scaling(results, progress.print)
    progress.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": DEFAULTS, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
