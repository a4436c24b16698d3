"""libslay quickstart: a SLAY feature map, causal linear attention, and the exact reference.

Run from the repository root after `bash scripts/build.sh`:
    PYTHONPATH=bindings/python python3 bindings/python/examples/quickstart.py
"""
import numpy as np

import slay

B, T, H, d = 2, 256, 4, 16
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((B, T, H, d)).astype(np.float32) for _ in range(3))

print("libslay", slay.__version__, "(ABI %d)" % slay.ABI_VERSION)
reference = slay.exact_attention(q, k, v, kernel="yat-spherical", eps=1e-6, causal=True)

for poly in ("anchor", "exact"):
    with slay.FeatureMap("slay", head_dim=d, num_heads=H, nodes=2, poly=poly, poly_dim=8, prf_dim=8,
                         eps=1e-6, seed=0) as fm:
        y = slay.linear_attention(q, k, v, fm, causal=True, delta=1e-6, chunk_size=64)
        error = np.linalg.norm(y - reference) / np.linalg.norm(reference)
        print("SLAY poly=%-6s  %5d features/head  output %s  relative L2 error vs exact yat-spherical: %.3f"
              % (poly, fm.dim, y.shape, error))

# The deterministic Taylor expansion of the same kernel (no random features): the recommended SLAY
# configuration for small head dims (docs/choosing-a-feature-map.md, Accuracy).
with slay.FeatureMap("slay", head_dim=d, num_heads=H, expansion="taylor", degree=2, eps=1e-6) as fm:
    y = slay.linear_attention(q, k, v, fm, causal=True, delta=1e-6, chunk_size=64)
    error = np.linalg.norm(y - reference) / np.linalg.norm(reference)
    print("SLAY taylor N=2   %5d features/head  output %s  relative L2 error vs exact yat-spherical: %.3f"
          % (fm.dim, y.shape, error))

# Head-first [B, H, T, d] buffers are passed as strided views (no copy), with the same result.
with slay.FeatureMap("slay", head_dim=d, num_heads=H, poly="exact", seed=0) as fm:
    head_first = np.ascontiguousarray(q.transpose(0, 2, 1, 3))
    same = np.array_equal(slay.linear_attention(head_first.transpose(0, 2, 1, 3), k, v, fm),
                          slay.linear_attention(q, k, v, fm))
    print("head-first strided view gives the identical result:", same)
    try:
        slay.linear_attention(q[..., :8], k, v, fm)
    except ValueError as error:
        print("bad input is an exception, not a crash:", error)
