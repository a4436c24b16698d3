"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), checked into the repo:
python3 fuzz/make_corpus.py. state_load seeds are real blobs of the maps its harness creates
(format 2, and format 1 for one of them), with the selector byte in front; the other targets
get a few inputs of assorted lengths (their harnesses read any bytes as a complete case)."""
import pathlib
import random
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bindings" / "python"))
import numpy as np  # noqa: E402
import slay  # noqa: E402


def write(target, name, data):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def version_one(blob):
    """The same state in format 1: 64-byte header without the layout and dtype fields."""
    old = bytearray(blob[:56]) + blob[64:72] + blob[72:]
    struct.pack_into("<I", old, 8, 1)
    body = bytes(old[:-8])
    h = 0xCBF29CE484222325
    for byte in body:
        h = ((h ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
    return body + h.to_bytes(8, "little")


def main():
    rng = np.random.default_rng(0)
    for index, kind in enumerate(["slay", "elu+1", "ela-hadamard-exp"]):
        fm = slay.FeatureMap(kind, head_dim=4, num_heads=2, prf_dim=2, poly_dim=2)
        state = slay.State(fm, num_seqs=2, value_dim=3)
        write("state_load", "%s-empty" % kind, bytes([index]) + state.save())
        q, k, v = (rng.standard_normal((2, 5, 2, d)).astype(np.float32) for d in (4, 4, 3))
        state.prefill(q, k, v)
        blob = state.save()
        write("state_load", "%s-prefilled" % kind, bytes([index]) + blob)
        write("state_load", "%s-prefilled-reseal" % kind, bytes([index | 4]) + blob)
        write("state_load", "%s-v1" % kind, bytes([index]) + version_one(blob))
    generator = random.Random(1)
    for target, lengths in (("attention", (64, 256, 1024, 4096)), ("feature_map", (32, 128, 512)),
                            ("state_step", (128, 512, 2048, 6000))):
        for length in lengths:
            write(target, "random-%d" % length, bytes(generator.randrange(256) for _ in range(length)))
        write(target, "zeros", bytes(256))


if __name__ == "__main__":
    main()
