#!/usr/bin/env python3
"""fastnn GEMM against numpy.matmul (OpenBLAS), side by side in one run: a markdown table of GFLOP/s.

Each case first checks fastnn's result against NumPy, then times both in alternating blocks of about
20 ms (with a pause before each block so that the other library's spinning worker threads have gone
to sleep), so that a noisy machine affects both alike; the table shows medians and the ratio.

    python bench/bench_gemm.py                 # float32 and float64, 1 and 2 threads
    python bench/bench_gemm.py --quick         # fewer repeats, float32 only
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py   # NumPy at full speed

Shapes: squares 256..2048 and the 784-512-256-10 MLP's products (M x N x K): forward
batch x 512 x 784 and batch x 256 x 512, the weight gradient 784 x 512 x batch (A transposed) and the
input gradient batch x 512 x 256 (B transposed), for batch 32, 128, 512.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn as fnn  # noqa: E402

SQUARES = (256, 512, 1024, 2048)
BATCHES = (32, 128, 512)
SETTLE_S = 0.1


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


def measure(name, m, n, k, ta, tb, dtype, rounds, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    A, B = (a.T if ta else a), (b.T if tb else b)
    out_f = np.empty((m, n), dtype)
    out_n = np.empty((m, n), dtype)
    fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=out_f)
    np.matmul(A, B, out=out_n)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    err = np.abs(out_f - ref).max() / max(1.0, np.abs(ref).max())
    if not err < tol:
        raise SystemExit(f"{name} {np.dtype(dtype).name}: wrong result (relative error {err:.2e})")

    def f():
        fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=out_f, check_finite=False)

    def g():
        np.matmul(A, B, out=out_n)

    t0 = time.perf_counter()
    f()
    one = time.perf_counter() - t0
    inner = max(1, int(0.02 / max(one, 1e-7)))  # each sample lasts about 20 ms
    tf, tn = [], []
    for _ in range(rounds):
        for fn, ts in ((f, tf), (g, tn)):
            # OpenBLAS and OpenMP worker threads spin for a while after each call; let the other
            # library's go to sleep so that they do not steal the cores from this block.
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            ts.append((time.perf_counter() - t0) / inner)
    gflop = 2.0 * m * n * k / 1e9
    return gflop / statistics.median(tf), gflop / statistics.median(tn)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default="", help="only shapes whose name contains this text")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.dtypes = 5, "float32"
    info = fnn.build_info()
    print(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']} | numpy {np.__version__}: {blas_info()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}\n")
    print("| dtype | threads | shape (M×N×K) | fastnn GFLOP/s | NumPy GFLOP/s | fastnn / NumPy |")
    print("|---|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for dt in a.dtypes.split(","):
        for th in (int(t) for t in a.threads.split(",")):
            fnn.set_num_threads(th)
            limit_blas(th)
            for name, m, n, k, ta, tb in shapes(a.quick):
                if a.filter and a.filter not in name:
                    continue
                gf, gn = measure(name, m, n, k, ta, tb, np.dtype(dt), a.rounds, rng)
                print(f"| {dt} | {th} | {name} ({m}×{n}×{k}) | {gf:.1f} | {gn:.1f} | {gf / gn:.2f} |", flush=True)


if __name__ == "__main__":
    main()
