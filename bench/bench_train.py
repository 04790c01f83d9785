#!/usr/bin/env python3
"""Training throughput of fastnn against PyTorch, plain NumPy and scikit-learn, side by side in one run.

Model 784-512-256-10 ReLU, softmax cross-entropy, SGD lr 0.01 momentum 0.9, 60 000 synthetic float32
samples (seed 0), batch 32/128/512, 1 and 2 threads.  Each library runs in a process of its own (their
thread pools would otherwise fight over the cores) and the libraries alternate round by round, so a
noisy machine affects all alike.  Reported: the median epoch time over rounds, fastnn's ratio to each
peer, and the fraction of the CPU's FP32 peak that the epoch's exact GEMM work reaches
(144.5 GFLOP per epoch: forward and weight gradients of every layer, input gradients of all but the
first).  The peak is measured by fastnn/data/fma_probe.c (FMA throughput per core x cores used).

    python bench/bench_train.py                       # everything (several minutes)
    python bench/bench_train.py --batches 128 --threads 1 --rounds 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_train.py   # NumPy at full speed
    python bench/bench_train.py --contention --mixed --phases     # and how the cores are shared

Multi-thread rows carry the cores' worth of FMA throughput the threads got just before and after
(`capacity`); below 0.9 x threads the host or a neighbour took a share, and the row is marked noisy.
--contention runs the table again beside a CPU-bound process pinned to core 0; --mixed times fastnn's
products of a step alone and right after numpy.matmul in the same process (and, with threadpoolctl,
again with NumPy's BLAS limited to one thread for the whole loop); --phases times each kernel
of a step alone against the step; --only-modes skips the quiet table.

Before timing, each worker checks that one epoch lowers its training loss.  The code lives in
fastnn/benchmark.py (so that the installed `fastnn bench` runs it too); this script runs it from a
source checkout with the same options.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastnn.benchmark import train_main  # noqa: E402

if __name__ == "__main__":
    train_main(prog="bench/bench_train.py")
