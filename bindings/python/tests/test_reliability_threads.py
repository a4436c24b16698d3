"""Objects shared between Python threads (issue: "Threads can corrupt the heap from Python"):
calls on one State are serialised by its lock, a FeatureMap's readers–writer lock lets many
threads compute at once while set_params waits for them and they for it. Concurrent use blocks,
never raises, and results are bitwise those of some serial order."""
import threading
import time

import numpy as np
import pytest

import slay
from slay._handle import ReadersWriterLock

THREADS = 8


def _run(workers):
    """Runs the callables in threads started together; re-raises the first exception."""
    errors = []
    barrier = threading.Barrier(len(workers))

    def wrap(work):
        try:
            barrier.wait()
            work()
        except BaseException as error:   # noqa: B902 - reported to the test
            errors.append(error)

    threads = [threading.Thread(target=wrap, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def _inputs(seed, b=2, t=24, h=2, d=8, dv=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, t, h, d)).astype(np.float32),
            rng.standard_normal((b, t, h, d)).astype(np.float32),
            rng.standard_normal((b, t, h, dv)).astype(np.float32))


@pytest.mark.parametrize("kind", ["slay", "elu+1", "ela-hadamard-exp"])
def test_threads_sharing_a_map_equal_serial_bitwise(kind):
    fm = slay.FeatureMap(kind, head_dim=8, num_heads=2, prf_dim=4, poly_dim=4)
    cases = [_inputs(seed) for seed in range(THREADS)]
    serial = [slay.linear_attention(q, k, v, fm) for q, k, v in cases]
    serial_features = [fm(q) for q, _, _ in cases]
    results = [[] for _ in range(THREADS)]

    def worker(i):
        q, k, v = cases[i]
        for _ in range(10):
            results[i].append((slay.linear_attention(q, k, v, fm), fm(q)))

    _run([lambda i=i: worker(i) for i in range(THREADS)])
    for i in range(THREADS):
        for out, features in results[i]:
            assert out.tobytes() == serial[i].tobytes()
            assert features.tobytes() == serial_features[i].tobytes()


def test_set_params_during_attention_blocks_and_never_tears():
    """Every output equals the serial output under the old or the new parameters, never a mix."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, prf_dim=16, poly_dim=8)
    omegas = [fm.get_params()["omega"], fm.get_params()["omega"] * 0.5]
    q, k, v = _inputs(7, t=64)
    expected = []
    for omega in omegas:
        fm.set_params(omega=omega)
        expected.append(slay.linear_attention(q, k, v, fm).tobytes())
    assert expected[0] != expected[1]
    stop = threading.Event()
    seen = []                   # (writes completed when the call started, output)
    writes = [0]

    def reader():
        while not stop.is_set():
            started_after = writes[0]
            seen.append((started_after, slay.linear_attention(q, k, v, fm).tobytes()))

    def writer():
        for i in range(60):
            fm.set_params(omega=omegas[i % 2])
            assert fm.get_params()["omega"].tobytes() == omegas[i % 2].tobytes()
            writes[0] = i + 1
            # Wait for a call that started after this write, so every write is observed.
            deadline = time.monotonic() + 30
            while not any(g == i + 1 for g, _ in seen[-8:]) and time.monotonic() < deadline:
                time.sleep(0.0005)
        stop.set()

    _run([reader] * 4 + [writer])
    assert all(out in expected for _, out in seen)
    assert {out for _, out in seen} == set(expected), "both parameter sets were seen"


def test_concurrent_step_save_restore_reset_on_one_state():
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, prf_dim=4, poly_dim=4)
    state = slay.State(fm, num_seqs=4, value_dim=4)
    q, k, v = _inputs(3, b=4, t=1)
    blob = state.save()

    def stepper():
        for _ in range(150):
            out = state.step(q[:, 0], k[:, 0], v[:, 0])
            assert np.isfinite(out).all()

    def saver():
        for _ in range(100):
            slay.State.load(state.save(), fm)

    def restorer():
        for _ in range(100):
            state.restore(blob)

    def resetter():
        for i in range(100):
            state.reset(i % 4 if i % 3 else None)
            state.read(i % 4)
            state.position(i % 4)

    def copier():
        other = slay.State(fm, num_seqs=4, value_dim=4)
        for i in range(100):
            other.copy_slot(i % 4, state, (i + 1) % 4)
            state.copy_slot(i % 4, other, i % 4)
            state.copy().close()

    _run([stepper, stepper, saver, restorer, resetter, copier])
    restored = slay.State.load(state.save(), fm)
    assert np.isfinite(restored.read(0)[0]).all()


def test_steps_of_threads_on_one_state_equal_a_serial_order():
    """Threads stepping disjoint slots of one state end exactly where one thread would."""
    fm = slay.FeatureMap("elu+1", head_dim=8, num_heads=2)
    q, k, v = _inputs(11, b=THREADS, t=20)
    shared = slay.State(fm, num_seqs=THREADS, value_dim=4)
    serial = slay.State(fm, num_seqs=THREADS, value_dim=4)
    outputs = {}
    for i in range(THREADS):
        for t in range(20):
            outputs[i, t] = serial.step(q[i:i + 1, t], k[i:i + 1, t], v[i:i + 1, t], slots=[i]).tobytes()

    def worker(i):
        for t in range(20):
            out = shared.step(q[i:i + 1, t], k[i:i + 1, t], v[i:i + 1, t], slots=[i])
            assert out.tobytes() == outputs[i, t]

    _run([lambda i=i: worker(i) for i in range(THREADS)])
    assert shared.save() == serial.save()


def test_close_waits_for_running_calls():
    """close() takes the map's write lock: it waits for running calls; later calls get a clean
    SlayError ("closed"), never a crash."""
    fm = slay.FeatureMap("slay", head_dim=8, num_heads=2, prf_dim=8)
    q, k, v = _inputs(5, t=256)
    started = threading.Event()
    outcomes = []

    def compute():
        while True:
            try:
                out = slay.linear_attention(q, k, v, fm)
            except slay.SlayError as error:
                outcomes.append(str(error))
                return
            assert np.isfinite(out).all()
            started.set()

    worker = threading.Thread(target=compute)
    worker.start()
    started.wait(60)
    fm.close()
    worker.join(60)
    assert len(outcomes) == 1 and "closed" in outcomes[0]


def test_readers_writer_lock():
    lock = ReadersWriterLock()
    events = []
    inside = threading.Event()
    release = threading.Event()

    def reader():
        with lock.reading():
            events.append("read")
            inside.set()
            release.wait(10)
            events.append("read ending")

    def writer():
        inside.wait(10)
        with lock.writing():
            events.append("write")

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    time.sleep(0.05)
    assert "write" not in events            # the writer waits for the reader
    release.set()
    for thread in threads:
        thread.join(10)
    assert events == ["read", "read ending", "write"]
    # Re-entrant: a reader may read again, a writer may read and write again.
    with lock.reading():
        with lock.reading():
            pass
    with lock.writing():
        with lock.reading():
            with lock.writing():
                pass
    # A second reader is not admitted while a writer waits (writers are preferred).
    admitted = []
    writer_in, late_in = threading.Event(), threading.Event()

    def waiting_writer():
        with lock.writing():
            admitted.append("w")
        writer_in.set()

    def late_reader():
        with lock.reading():
            admitted.append("r")
        late_in.set()

    with lock.reading():
        first = threading.Thread(target=waiting_writer)
        first.start()
        time.sleep(0.05)
        second = threading.Thread(target=late_reader)
        second.start()
        time.sleep(0.05)
        assert admitted == []
    first.join(10)
    second.join(10)
    assert admitted == ["w", "r"]
