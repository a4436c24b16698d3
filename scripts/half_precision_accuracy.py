"""The accuracy cost of half-precision state storage (docs/half-precision.md): decode T steps of random
tokens into states stored as float32, bfloat16 and float16, and print the relative error of the outputs
(‖o_half − o_fp32‖ / ‖o_fp32‖ over the step's heads) at steps 1k, 10k and 100k, for SLAY (anchor R=2
P=M=16, m=512, no decay, normalised) and GLA (identity map, m=64, data-dependent per-channel decay,
unnormalised); H=8, d=dv=64, one sequence, seed 0.

    python3 scripts/half_precision_accuracy.py [--steps 100000]
"""
import argparse
import sys

import numpy as np

import slay

CHECKPOINTS = (1_000, 10_000, 100_000)


def run(kind, steps, block=1000):
    H, d, dv = 8, 64, 64
    if kind == "slay":
        fm = slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=2, poly="anchor", poly_dim=16, prf_dim=16, seed=0)
        options = {}
    else:
        fm = slay.FeatureMap("identity", head_dim=d, num_heads=H)
        options = {"normalize": False}
    states = {name: slay.State(fm, num_seqs=1, value_dim=dv, storage_dtype=name)
              for name in ("float32", "bfloat16", "float16")}
    outs = {name: np.empty((1, H, dv), np.float32) for name in states}
    rng = np.random.default_rng(0)
    errors = {}
    for start in range(0, steps, block):
        q, k, v = (rng.standard_normal((block, 1, H, d)).astype(np.float32) for _ in range(3))
        if kind == "gla":
            k /= np.sqrt(d)
            # GLA gates: log α = log σ(x)/16 with x ~ N(2, 1), α ≈ 0.99 on average.
            x = rng.standard_normal((block, 1, H, d)) + 2
            log_decay = (-np.log1p(np.exp(-x)) / 16).astype(np.float32)
        for t in range(block):
            extra = {"log_decay": log_decay[t]} if kind == "gla" else {}
            for name, state in states.items():
                state.step(q[t], k[t], v[t], out=outs[name], **extra, **options)
            step = start + t + 1
            if step in CHECKPOINTS:
                ref = outs["float32"].astype(np.float64)
                errors[step] = {name: float(np.linalg.norm(outs[name] - ref) / np.linalg.norm(ref))
                                for name in ("bfloat16", "float16")}
                print("%s step %d: %s" % (kind, step, errors[step]), file=sys.stderr, flush=True)
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    rows = {kind: run(kind, args.steps) for kind in ("slay", "gla")}
    print("| map | state | " + " | ".join("after %dk steps" % (c // 1000) for c in CHECKPOINTS if c <= args.steps) + " |")
    print("|---|---|" + "---|" * sum(c <= args.steps for c in CHECKPOINTS))
    for kind, errors in rows.items():
        for name in ("bfloat16", "float16"):
            cells = ["%.2e" % errors[c][name] for c in CHECKPOINTS if c in errors]
            print("| %s | %s | %s |" % ("SLAY (m=512)" if kind == "slay" else "GLA (identity, m=64)", name,
                                        " | ".join(cells)))


if __name__ == "__main__":
    main()
