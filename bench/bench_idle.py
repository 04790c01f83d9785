"""Sporadic calls: fastnn's products and a small predict, each after the calling thread slept, on 1
thread and on 2.  A server that predicts a request at a time, or code that calls fnn.ops between
other work, leaves fastnn's OpenMP threads idle between calls; libgomp's threads then sleep, and
waking one can take longer than a small product takes on one thread (see README, Threads).

    python bench/bench_idle.py [--gaps 0,0.3,2] [--reps 300]

Prints, per shape and gap (milliseconds slept before each call), the median microseconds per call
on 1 and on 2 threads and their ratio; for each the first call is not timed.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import fastnn as fnn  # noqa: E402

SHAPES = [(32, 256, 512), (32, 512, 784), (128, 256, 512), (128, 512, 784)]


def timed(fn, gap_s, reps):
    fn()
    out = []
    for _ in range(reps):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaps", default="0,0.3,2", help="milliseconds slept before each call")
    ap.add_argument("--reps", type=int, default=300)
    a = ap.parse_args(argv)
    gaps = [float(g) for g in a.gaps.split(",")]
    rng = np.random.default_rng(0)
    cases = []
    for m, n, k in SHAPES:
        x, w = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        cases.append((f"gemm {m}×{n}×{k}", lambda x=x, w=w, out=out: fnn.ops.gemm(x, w, out=out, check_finite=False)))
    model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=784, seed=0)
    model.compile("cross_entropy")
    rows = rng.standard_normal((32, 784)).astype(np.float32)
    cases.append(("predict 32 rows, 784-512-256-10", lambda: model.predict(rows)))
    threads = fnn.get_num_threads()
    print(f"fastnn {fnn.__version__} simd={fnn.build_info()['simd']}; median microseconds per call, "
          f"{a.reps} calls, each after the gap\n")
    print("| call | gap (ms) | 1 thread | 2 threads | 2 / 1 |")
    print("|---|---|---:|---:|---:|")
    try:
        for name, fn in cases:
            for gap in gaps:
                t = {}
                for nt in (1, 2):
                    fnn.set_num_threads(nt)
                    t[nt] = timed(fn, gap / 1e3, a.reps)
                print(f"| {name} | {gap:g} | {t[1]:.1f} | {t[2]:.1f} | {t[2] / t[1]:.2f} |", flush=True)
    finally:
        fnn.set_num_threads(threads)


if __name__ == "__main__":
    main()
