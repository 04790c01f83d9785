"""Memory stays flat: 1 000 cycles of fit/predict/evaluate/save/load/pickle/ops (and their error paths) on
a small model grow the C heap (the bytes glibc's malloc has handed out and not taken back) by less
than 64 KiB, and Python's own allocations (tracemalloc) by a few KiB; the C example runs clean under
valgrind memcheck (0 bytes definitely or indirectly lost, no invalid access).  Each detector is first
shown to catch a deliberate leak of the size it must catch.

The heap is measured in bytes allocated (mallinfo2), not in resident pages: freed pages stay resident
for the allocator to reuse, so a leak that reuses them does not grow the resident set, and whether it
does depends on what ran before.  The cycles run in a fresh interpreter (this file run as a script),
so that nothing an earlier test left behind (garbage collected mid-measurement, warm caches, thread
settings) enters the figure either."""
import ctypes
import gc
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import SANITIZED

HEAP_LIMIT = 64 << 10    # bytes of C heap growth allowed over the measured cycles
TRACED_LIMIT = 24 << 10  # bytes of Python allocations allowed to remain over the traced cycles
LEAK = (1000, 4096)      # the deliberate leak the detectors must see: 1 000 blocks of 4 KiB


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    """The C library, with malloc and glibc's mallinfo2 (2.33+) typed; None where mallinfo2 is missing."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        return None
    libc.malloc.restype = ctypes.c_void_p
    return libc


LIBC = _libc()
needs_mallinfo2 = pytest.mark.skipif(LIBC is None, reason="glibc's mallinfo2 is not available")
not_sanitized = pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's allocator: mallinfo2 does not see it")


def heap_bytes():
    """Bytes of the C heap in use: chunks handed out by malloc in every arena, plus mmap'ed blocks."""
    m = LIBC.mallinfo2()
    return m.uordblks + m.hblkhd


def run_worker(mode, *args):
    """This file run as a script in a fresh interpreter; returns the dict it prints."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), mode, *map(str, args)], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scratch():
    """A directory for the model files, on tmpfs when there is one (fsync there costs nothing)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="fastnn-leak-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_cycle(directory):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    bad_y = y + 5
    path = os.path.join(directory, "m.safetensors")

    def predict_in_a_new_thread(model):
        # a thread that exits: its per-thread GEMM and predict buffers must be freed with it
        t = threading.Thread(target=model.predict, args=(X,))
        t.start()
        t.join()

    def cycle(i):
        m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dropout(0.1), fnn.Dense(3)], input_dim=8, seed=i)
        m.compile("cross_entropy", fnn.Adam(1e-3), metrics=["accuracy"])
        m.fit(X, y, epochs=1, batch_size=16, validation_split=0.25, verbose=0)
        m.predict(X)
        m.evaluate(X, y)
        m.train_on_batch(X[:8], y[:8])
        m.save(path)
        loaded = fnn.load(path)
        loaded.predict(X)
        pickle.loads(pickle.dumps(m))
        predict_in_a_new_thread(loaded)
        fnn.ops.gemm(X, X, trans_b=True)
        fnn.ops.relu(X)
        fnn.ops.softmax(X)
        fnn.ops.cross_entropy(X[:, :3], y)
        fnn.ops.mse(X, X)
        # error paths free what they allocated too
        with open(path, "rb") as f:
            data = f.read()
        with pytest.raises(fnn.ModelFormatError):
            _core.ModelFile.from_buffer(data[:-3])
        with pytest.raises(ValueError):
            m.fit(X, bad_y, verbose=0)

    return cycle


def run_cycles(cycle, n):
    for i in range(n):
        cycle(i)
    gc.collect()


def _leak_blocks(count, size, keep):
    for _ in range(count):
        p = LIBC.malloc(size)
        ctypes.memset(p, 1, size)
        keep.append(p)


def worker_detector():
    """Heap growth over the deliberate leak, made in this thread and in a thread that then exits."""
    keep, out = [], {}
    for where in ("main", "thread"):
        before = heap_bytes()
        if where == "main":
            _leak_blocks(*LEAK, keep)
        else:
            t = threading.Thread(target=_leak_blocks, args=(*LEAK, keep))
            t.start()
            t.join()
        out[where] = heap_bytes() - before
    return out


def worker_cycles(directory, warmup, n):
    cycle = make_cycle(directory)
    run_cycles(cycle, warmup)  # first-use allocations, per-thread buffers, caches
    before = heap_bytes()
    run_cycles(cycle, n)
    return {"growth": heap_bytes() - before}


@needs_mallinfo2
@not_sanitized
def test_heap_detector_sees_a_small_c_leak():
    """The measurement used below sees 1 000 leaked 4 KiB blocks of C memory (4 MiB), whether the
    thread that leaked them is the caller or one that has exited, in a fresh interpreter."""
    got = run_worker("detector")
    for where in ("main", "thread"):
        assert got[where] >= LEAK[0] * LEAK[1] > 16 * HEAP_LIMIT, (where, got)


@needs_mallinfo2
@not_sanitized
def test_c_heap_stays_flat_over_1000_cycles(scratch):
    growth = run_worker("cycles", scratch, 300, 1000)["growth"]
    assert growth < HEAP_LIMIT, f"the C heap grew by {growth / 1024:.1f} KiB over 1000 cycles"


# Only what fastnn's Python code (and this file) allocated counts: a thread that another test left
# running, or pytest's own bookkeeping, must not decide whether fastnn leaks.
OURS = [tracemalloc.Filter(True, os.path.join(os.path.dirname(os.path.abspath(fnn.__file__)), "*")),
        tracemalloc.Filter(True, os.path.abspath(__file__))]


def traced_snapshot():
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(OURS)


def traced_bytes(snapshot=None):
    return sum(s.size for s in (snapshot or traced_snapshot()).statistics("filename"))


def windows_growth(step, windows=2):
    """Bytes of traced allocations left behind by each of `windows` calls of step().  A leak grows in
    every window; a table of the interpreter's that happens to double its size once (its new block
    attributed to whatever line was running) shows in one only."""
    out = []
    before = traced_snapshot()
    for _ in range(windows):
        step()
        after = traced_snapshot()
        where = "\n".join(map(str, after.compare_to(before, "lineno")[:5]))
        out.append((traced_bytes(after) - traced_bytes(before), where))
        before = after
    return out


def test_tracemalloc_detector_sees_a_small_python_leak():
    """The tracemalloc measurement used below catches one leaked 100-byte object per cycle, in every
    window of 600 cycles."""
    kept = []

    def leak():
        for i in range(600):
            kept.append(b"x" * 67 + i.to_bytes(4, "little"))  # 100 bytes with the object header

    tracemalloc.start()
    try:
        growth = windows_growth(leak)
    finally:
        tracemalloc.stop()
    assert all(g > TRACED_LIMIT for g, _ in growth), growth


@pytest.mark.skipif(SANITIZED, reason="Python's own allocations, traced the same with or without ASan: checked in "
                    "the README run, not again in the sanitized suite")
def test_python_allocations_stay_flat(scratch):
    """After a warm-up, one of two windows of 600 traced cycles leaves less than 24 KiB of Python
    allocations behind (what remains is CPython's type attribute cache filling up, which saturates)."""
    cycle = make_cycle(scratch)
    tracemalloc.start()
    try:
        run_cycles(cycle, 300)
        growth = windows_growth(lambda: run_cycles(cycle, 600))
    finally:
        tracemalloc.stop()
    assert min(g for g, _ in growth) < TRACED_LIMIT, \
        "Python allocations grew in both windows of 600 cycles: " + \
        "; ".join(f"{g} bytes, the most at:\n{where}" for g, where in growth)


# ---- valgrind memcheck of the C example --------------------------------------------------------------

VALGRIND = shutil.which("valgrind")


def memcheck(exe, *args, stdin=None):
    """(exit status of the program, valgrind's report) of one run under memcheck.

    --fair-sched: memcheck runs one thread at a time, and its default lock can leave a thread that
    waits for another (a join, a race that must see the other thread inside a call) unscheduled for
    minutes."""
    r = subprocess.run([VALGRIND, "--fair-sched=yes", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                        "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", exe, *map(str, args)],
                       capture_output=True, text=True, timeout=300, input=stdin,
                       env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    return r.returncode, r.stdout[-3000:] + r.stderr


def lost_bytes(report, kind):
    """Bytes `kind` ("definitely", "indirectly") lost in a memcheck report; 0 when every block was freed."""
    if "All heap blocks were freed" in report:
        return 0
    m = re.search(rf"{kind} lost: ([\d,]+) bytes", report)
    assert m, report[-3000:]
    return int(m.group(1).replace(",", ""))


@pytest.mark.skipif(not VALGRIND, reason="valgrind is not installed")
@pytest.mark.skipif(SANITIZED, reason="a sanitized build does not run under valgrind")
def test_c_example_is_clean_under_valgrind(embed, tmp_path):
    rng = np.random.default_rng(3)
    m = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dropout(0.2), fnn.Dense(16, "gelu"), fnn.Dense(3)],
                       input_dim=6, seed=0)
    m.compile("cross_entropy")
    m.save(tmp_path / "m.safetensors")
    m64 = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(1)], input_dim=6, dtype="float64", seed=0)
    m64.compile("mse")
    m64.save(tmp_path / "m64.safetensors")
    X = rng.normal(size=(700, 6))
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    X.astype("<f4").tofile(tmp_path / "x.f32")
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "m.safetensors").read_bytes()[:-5])
    runs = [  # (arguments, stdin, expected exit status of embed)
        (["--threads", 2, tmp_path / "m.safetensors", tmp_path / "x.csv"], None, 0),
        (["--threads", 1, "--binary", tmp_path / "m64.safetensors", tmp_path / "x.f32"], None, 0),
        ([tmp_path / "bad.safetensors"], "", 2),           # a model the reader rejects
        ([tmp_path / "m.safetensors"], "1,2,3\n", 1),       # a short row
        ([tmp_path / "missing.safetensors"], "", 2),       # no such file
    ]
    for args, stdin, status in runs:
        rc, report = memcheck(embed, *args, stdin=stdin)
        assert rc == status, (args, rc, report[-3000:])  # 99 would be a memcheck error or a leak
        assert "ERROR SUMMARY: 0 errors" in report, report[-3000:]
        assert lost_bytes(report, "definitely") == 0 and lost_bytes(report, "indirectly") == 0, report[-3000:]


if __name__ == "__main__":  # a worker of the heap tests, in a fresh interpreter: prints one JSON line
    mode, rest = sys.argv[1], sys.argv[2:]
    result = worker_detector() if mode == "detector" else worker_cycles(rest[0], int(rest[1]), int(rest[2]))
    print(json.dumps(result))
