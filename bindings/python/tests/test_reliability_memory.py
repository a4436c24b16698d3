"""Allocation failure is a status: a feature map whose parameters do not fit in memory raises
SlayMemoryError (SLAY_ERR_OUT_OF_MEMORY) and the process goes on (issue: "Allocation failure aborts")."""
import os
import subprocess
import sys
import textwrap

import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a child process whose address space is capped a little above what it already uses, so
# a SLAY map with a 1 GiB omega (2^28 floats, today's cap) cannot be allocated.
CHILD = textwrap.dedent("""
    import resource, sys
    import slay
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = used + (384 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    for kind, extra in (("slay", dict(head_dim=4096, prf_dim=65536, nodes=1)),
                        ("favor+", dict(head_dim=4096, prf_dim=65536)),
                        ("random-fourier", dict(head_dim=4096, prf_dim=65536))):
        try:
            slay.FeatureMap(kind, **extra)
        except slay.SlayError as error:
            assert isinstance(error, MemoryError), error
            assert error.code == -6, error
            print(kind, "refused:", error)
        else:
            sys.exit(kind + ": a 1 GiB map was created under a 384 MiB budget")
    # The process is intact and a map that fits still works.
    fm = slay.FeatureMap("slay", head_dim=8)
    assert fm.dim == 2 * 8 * 8
    print("ok")
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and RLIMIT_AS")
def test_feature_map_that_does_not_fit_is_out_of_memory_not_an_abort():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("refused: out of memory") == 3, result.stdout
    assert result.stdout.strip().endswith("ok")
