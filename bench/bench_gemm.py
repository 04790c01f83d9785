#!/usr/bin/env python3
"""fastnn GEMM against numpy.matmul (OpenBLAS), side by side in one run: a markdown table of GFLOP/s.

Each case first checks fastnn's result against NumPy.  Each library is then timed in a process of its
own (their worker threads spin after each call and would steal the cores from the other library),
and the two alternate for several rounds so that a noisy machine affects both alike; the table shows
the median over rounds of each round's median GFLOP/s, and their ratio.

    python bench/bench_gemm.py                 # float32 and float64, 1 and 2 threads
    python bench/bench_gemm.py --quick         # fewer repeats, float32 only
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py   # NumPy at full speed

The code lives in fastnn/benchmark.py (so that the installed `fastnn bench` runs it too); this script
runs it from a source checkout with the same options.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastnn.benchmark import gemm_main  # noqa: E402

if __name__ == "__main__":
    gemm_main(prog="bench/bench_gemm.py")
