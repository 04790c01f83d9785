"""Thread counts are bounded, and a thread that cannot be created never ends the process: libgomp
exits with "Thread creation failed" when it cannot start a worker, so fastnn first checks that the
calling thread can start as many as it asks for and asks for fewer when it cannot (a memory limit,
huge OMP_STACKSIZE), from Python and from C.  Results are the same bits with any count."""
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import SANITIZED, with_threads

openmp = pytest.mark.skipif(not fnn.build_info()["openmp"], reason="serial build: no threads to start")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
# AddressSanitizer reserves terabytes of address space: no RLIMIT_AS can be set under it
no_asan = pytest.mark.skipif(SANITIZED, reason="AddressSanitizer reserves address space beyond any RLIMIT_AS")
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))


@openmp
def test_thread_counts_are_capped_at_the_documented_bound():
    procs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bound = min(4 * procs, 1024)
    assert fnn.build_info()["max_threads"] == bound
    for n in (bound, bound + 1, 600, 65536):
        assert with_threads(n, fnn.get_num_threads) == min(n, bound)
    assert with_threads(1, fnn.get_num_threads) == 1


@openmp
def test_omp_num_threads_above_the_bound_is_capped():
    code = "import fastnn as fnn; print(fnn.get_num_threads(), fnn.build_info()['max_threads'])"
    env = dict(os.environ, OMP_NUM_THREADS="100000", PYTHONPATH=PKG_ROOT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    n, bound = map(int, r.stdout.split())
    assert n == bound


def _limited(limit):
    """A preexec_fn: the child's address space capped at `limit` bytes."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


PY_SCRIPT = r'''
import sys, numpy as np, fastnn as fnn
want_threads = int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((600, 700)).astype(np.float32)
b = rng.standard_normal((700, 500)).astype(np.float32)
fnn.set_num_threads(1)
one = fnn.ops.gemm(a, b)
fnn.set_num_threads(want_threads)
got = fnn.ops.gemm(a, b)
X = rng.standard_normal((512, 300)).astype(np.float32)
m = fnn.Sequential([fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=300, seed=0)
m.compile("cross_entropy", fnn.SGD(lr=0.01))
m.fit(X, rng.integers(0, 10, 512), epochs=1, batch_size=256, verbose=0)
print(fnn.get_num_threads(), int(got.tobytes() == one.tobytes()))
'''


@openmp
@linux_only
@no_asan
@pytest.mark.parametrize("threads,stack", [(600, None), (8, "1G")])
def test_python_under_a_memory_limit_falls_back_to_the_threads_it_can_start(tmp_path, threads, stack):
    """600 threads of 8 MiB stacks, or 8 threads of 1 GiB stacks (OMP_STACKSIZE), in 2 GiB of address
    space: fewer threads, the same bits, exit status 0 (libgomp would print "Thread creation failed"
    and exit 1)."""
    script = tmp_path / "threads.py"
    script.write_text(PY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, OPENBLAS_NUM_THREADS="1")
    if stack:
        env["OMP_STACKSIZE"] = stack
    r = subprocess.run([sys.executable, str(script), str(threads)], capture_output=True, text=True, env=env,
                       timeout=300, preexec_fn=_limited(2 << 30))
    assert "Thread creation failed" not in r.stderr
    assert r.returncode == 0, r.stderr[-2000:]
    got_threads, same = map(int, r.stdout.split())
    asked = min(threads, fnn.build_info()["max_threads"])
    assert 1 <= got_threads <= asked
    if stack:  # the stacks of even two workers do not fit
        assert got_threads < asked
    assert same == 1


@openmp
@linux_only
@no_asan
def test_c_api_under_a_memory_limit_falls_back(embed, tmp_path):
    """The C example with --threads 600 in 1 GiB of address space predicts the same bits as with one
    thread, instead of being ended by libgomp."""
    model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=784, seed=0)
    model.compile("cross_entropy")
    path = tmp_path / "m.safetensors"
    model.save(path)
    rows = tmp_path / "rows.f32"
    X = np.random.default_rng(0).standard_normal((300, 784)).astype("<f4")
    X.tofile(rows)
    outs = []
    for threads, env_extra in (("1", {}), ("600", {}), ("8", {"OMP_STACKSIZE": "512M"})):
        env = dict(os.environ, **env_extra)
        r = subprocess.run([embed, "--threads", threads, "--binary", str(path), str(rows)], capture_output=True,
                           text=True, timeout=300, env=env, preexec_fn=_limited(1 << 30))
        assert "Thread creation failed" not in r.stderr
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout)
    assert outs[1] == outs[0] and outs[2] == outs[0]
    want = model.predict(X)
    got = np.array([[float(v) for v in line.split(",")] for line in outs[0].splitlines()], dtype=np.float32)
    assert got.tobytes() == want.tobytes()


@openmp
def test_a_new_calling_thread_gets_its_own_check():
    """The check is per calling thread (libgomp keeps workers per thread that starts regions): a
    Python thread computing with 2 threads gets the bits of the main thread."""
    import threading
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 300))
    b = rng.standard_normal((300, 200))
    want = with_threads(1, fnn.ops.gemm, a, b)
    got = {}

    def run():
        got["n"] = fnn.get_num_threads()
        got["c"] = fnn.ops.gemm(a, b)

    before = fnn.get_num_threads()
    fnn.set_num_threads(2)
    try:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    finally:
        fnn.set_num_threads(before)
    assert got["n"] == 2
    assert got["c"].tobytes() == want.tobytes()
