"""Shared fixtures: run a test under every SIMD level this CPU has, and under 1 and 2 threads (exactly:
the training steps' thread-count governor is off unless a test turns it on); the C embedding example
built once per test run."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

SIMD_LEVELS = _core.simd_available()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
SANITIZED = os.environ.get("FASTNN_SANITIZED") == "1"  # set by tools/sanitize.sh


@pytest.fixture(params=SIMD_LEVELS)
def simd(request):
    """Force each SIMD level the CPU runs (generic is always among them); restore afterwards."""
    before = _core.simd_level()
    _core.set_simd(request.param)
    yield request.param
    _core.set_simd(before)


@pytest.fixture(autouse=True)
def exact_thread_counts():
    """Every training step on the thread count the test sets: the governor (set_adaptive_threads) could
    otherwise run a "2-thread" test on one thread on a busy machine.  test_adaptive_threads.py turns it
    on where it is the subject."""
    before = fnn.get_adaptive_threads()
    fnn.set_adaptive_threads(False)
    yield
    fnn.set_adaptive_threads(before)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = fnn.get_num_threads()
    fnn.set_num_threads(request.param)
    yield request.param
    fnn.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def with_threads(n, fn, *args, **kwargs):
    """fn(*args, **kwargs) with n threads, restoring the previous count."""
    before = fnn.get_num_threads()
    fnn.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        fnn.set_num_threads(before)


TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def build_c(src, exe, lib_dir, extra=()):
    """Compile the C program `src` into `exe` against the libfastnn.a in `lib_dir` (the `embed` fixture's
    build), with OpenMP when the library has it and the sanitizers under tools/sanitize.sh."""
    san = ["-fsanitize=address,undefined"] if SANITIZED else []
    for omp in (["-fopenmp"], []):
        r = subprocess.run([CC, "-O1", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I",
                            os.path.join(ROOT, "csrc"), str(src), os.path.join(str(lib_dir), "libfastnn.a")] + omp +
                           san + list(extra) + ["-lm", "-o", str(exe)], capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            return str(exe)
    pytest.fail(f"building {src} failed:\n{r.stderr}")


@pytest.fixture(scope="session")
def embed(tmp_path_factory):
    """examples/embed/embed built as its Makefile documents: libfastnn.a from `make -C csrc`, then cc.
    Under tools/sanitize.sh (FASTNN_SANITIZED=1) the library is built with the sanitizer flags too: the
    extension then runs at -O1, and bitwise equality holds between builds with the same flags only."""
    if not CC or not shutil.which("make"):
        pytest.skip("no C compiler or make")
    build = tmp_path_factory.mktemp("cbuild")
    sanitize = ["SANITIZE=1"] if SANITIZED else []
    r = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "csrc"), f"BUILD={build}"] + sanitize,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (build / "libfastnn.a").exists() and (build / "libfastnn.so").exists()
    exe = build / "embed"
    src = os.path.join(ROOT, "examples", "embed", "embed.c")
    san = ["-fsanitize=address,undefined"] if SANITIZED else []
    for omp in (["-fopenmp"], []):  # the library is built with OpenMP when the compiler has it
        r = subprocess.run([CC, "-O2", "-g", "-std=c11", "-Wall", "-I", os.path.join(ROOT, "csrc"), src,
                            str(build / "libfastnn.a")] + omp + san + ["-lm", "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            return str(exe)
    pytest.fail(f"building examples/embed failed:\n{r.stderr}")
