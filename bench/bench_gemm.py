#!/usr/bin/env python3
"""fastnn GEMM against numpy.matmul (OpenBLAS), side by side in one run: a markdown table of GFLOP/s.

Each case first checks fastnn's result against NumPy.  Each library is then timed in a process of its
own (their worker threads spin after each call and would steal the cores from the other library),
and the two alternate for several rounds so that a noisy machine affects both alike; the table shows
the median over rounds of each round's median GFLOP/s, and their ratio.

    python bench/bench_gemm.py                 # float32 and float64, 1 and 2 threads
    python bench/bench_gemm.py --quick         # fewer repeats, float32 only
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py   # NumPy at full speed

Shapes: squares 256..2048 and the 784-512-256-10 MLP's products (M x N x K): forward
batch x 512 x 784 and batch x 256 x 512, the weight gradient 784 x 512 x batch (A transposed) and the
input gradient batch x 512 x 256 (B transposed), for batch 32, 128, 512.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn as fnn  # noqa: E402

SQUARES = (256, 512, 1024, 2048)
BATCHES = (32, 128, 512)


def shapes(quick):
    out = [(f"{s}²", s, s, s, False, False) for s in SQUARES]
    for b in BATCHES:
        out += [
            (f"fwd {b}×784→512", b, 512, 784, False, False),
            (f"fwd {b}×512→256", b, 256, 512, False, False),
            (f"dW 784×512, k={b}", 784, 512, b, True, False),
            (f"dX {b}×512←256", b, 512, 256, False, True),
        ]
    return out


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def limit_blas(n):
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(n)
    except ImportError:
        os.environ["OPENBLAS_NUM_THREADS"] = str(n)
        return None


def operands(m, n, k, ta, tb, dtype):
    rng = np.random.default_rng(m * 1_000_003 + n * 1009 + k)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def check(name, m, n, k, ta, tb, dtype):
    """fastnn's product against float64 NumPy before anything is timed."""
    a, b = operands(m, n, k, ta, tb, dtype)
    got = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    err = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
    if not err < (1e-4 if dtype == np.float32 else 1e-10):
        raise SystemExit(f"{name} {np.dtype(dtype).name}: wrong result (relative error {err:.2e})")


def worker(lib, dtype, threads, samples, filt, quick):
    """Runs in a subprocess: GFLOP/s of `lib` ("fastnn" or "numpy") for every shape, as JSON lines."""
    fnn.set_num_threads(threads)
    limit = limit_blas(threads)  # noqa: F841 (kept alive)
    for name, m, n, k, ta, tb in shapes(quick):
        if filt and filt not in name:
            continue
        a, b = operands(m, n, k, ta, tb, dtype)
        out = np.empty((m, n), dtype)
        if lib == "fastnn":
            def fn():
                fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=out, check_finite=False)
        else:
            A, B = (a.T if ta else a), (b.T if tb else b)

            def fn():
                np.matmul(A, B, out=out)
        fn()
        rates = []
        for _ in range(samples):
            t0, reps = time.perf_counter(), 0
            while True:
                fn()
                reps += 1
                dt = time.perf_counter() - t0
                if dt > 0.02:
                    break
            rates.append(2.0 * m * n * k * reps / dt / 1e9)
        print(json.dumps([name, statistics.median(rates)]), flush=True)


def run_worker(lib, dtype, threads, samples, filt, quick):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--dtypes", dtype, "--threads", str(threads),
           "--samples", str(samples), "--filter", filt] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(line) for line in out.splitlines() if line.startswith("["))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of the two libraries")
    ap.add_argument("--samples", type=int, default=5, help="timed samples of ~20 ms per shape and round")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default="", help="only shapes whose name contains this text")
    ap.add_argument("--worker", choices=("fastnn", "numpy"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker, np.dtype(a.dtypes), int(a.threads), a.samples, a.filter, a.quick)
    if a.quick:
        a.rounds, a.samples, a.dtypes = 3, 3, "float32"
    info = fnn.build_info()
    print(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']} | numpy {np.__version__}: {blas_info()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}\n")
    print("| dtype | threads | shape (M×N×K) | fastnn GFLOP/s | NumPy GFLOP/s | fastnn / NumPy |")
    print("|---|---|---|---:|---:|---:|")
    for dt in a.dtypes.split(","):
        for name, m, n, k, ta, tb in shapes(a.quick):
            if not a.filter or a.filter in name:
                check(name, m, n, k, ta, tb, np.dtype(dt))
        for th in (int(t) for t in a.threads.split(",")):
            runs = {"fastnn": [], "numpy": []}
            for _ in range(a.rounds):
                for lib in runs:
                    runs[lib].append(run_worker(lib, dt, th, a.samples, a.filter, a.quick))
            for name, m, n, k, ta, tb in shapes(a.quick):
                if a.filter and a.filter not in name:
                    continue
                gf = statistics.median(r[name] for r in runs["fastnn"])
                gn = statistics.median(r[name] for r in runs["numpy"])
                print(f"| {dt} | {th} | {name} ({m}×{n}×{k}) | {gf:.1f} | {gn:.1f} | {gf / gn:.2f} |", flush=True)


if __name__ == "__main__":
    main()
