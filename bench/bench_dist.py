#!/usr/bin/env python3
"""Scaling out: data-parallel training over MPI, fit from Dask, and the cost model's measured inputs.

    python bench/bench_dist.py mpi  [--rounds 3] [--batch 128]   # needs mpi4py and mpiexec
    python bench/bench_dist.py dask [--rounds 3] [--chunk 10000] # needs dask
    python bench/bench_dist.py exchange [--rounds 5]             # the gradient exchange alone, 2 ranks
    python bench/bench_dist.py cost [--steps 6]                  # per-row training time of two networks
    python bench/bench_dist.py all

mpi: one epoch of the 784-512-256-10 MLP of bench/bench_train.py (60 000 synthetic rows, SGD momentum,
batch 128 per process) in one process with 2 threads, and in `mpiexec -n 2` with 1 thread per rank (each
rank a half of the rows; also with 64 rows per rank, the same global batch as the single process, and
with the exchange overlapped).  Each configuration runs in processes of its own and they alternate
round by round; the table shows medians, the ratio to the single process, and the seconds the ranks
spent in the gradient exchange (waiting for each other included).  Before timing, each worker checks
that its epoch lowers the loss and, under MPI, that both ranks end with the same bits.

dask: one epoch from a Dask array whose blocks are NumPy arrays in memory against one epoch from the
NumPy array itself, alternating in one process; first checked: without shuffling the two fits give the
same bits.

exchange: the gradient exchange of 784-512-256-10 alone, repeated by 2 ranks without computing (each
transport's own cost, without the waits for a rank that computes more slowly).

cost: the training time per row of 784-512-256-10 and of a 10x wider 784-5120-2560-10 at a few batch
sizes, 1 thread, from which README's cost model derives where each stops scaling.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from fastnn.benchmark import LAYERS, LR, MOMENTUM, N_SAMPLES, make_data  # noqa: E402

WIDE = (784, 5120, 2560, 10)


def make_model(layers=LAYERS, seed=0):
    import fastnn as fnn
    m = fnn.Sequential([fnn.Dense(u, activation="relu") for u in layers[1:-1]] + [fnn.Dense(layers[-1])],
                       input_dim=layers[0], dtype="float32", seed=seed)
    m.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=LR, momentum=MOMENTUM))
    return m


def n_params(layers):
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


def flop_per_row(layers):
    """The GEMM work of one training row: forward and weight gradient of every layer, input gradient of
    all but the first (as fastnn/benchmark.py counts it)."""
    w = [a * b for a, b in zip(layers[:-1], layers[1:])]
    return 4 * sum(w) + 2 * sum(w[1:])


# ---- workers (one process each) ---------------------------------------------------------------------

def worker_solo(args):
    import fastnn as fnn
    fnn.set_num_threads(args.threads)
    X, y = make_data()
    m = make_model()
    before = m.evaluate(X[:4096], y[:4096])["loss"]
    t = time.perf_counter()
    m.fit(X, y, epochs=1, batch_size=args.batch, verbose=0)
    seconds = time.perf_counter() - t
    after = m.evaluate(X[:4096], y[:4096])["loss"]
    assert after < before, f"the epoch did not lower the loss ({before} -> {after})"
    print(json.dumps({"seconds": seconds}))


def worker_mpi(args):
    from mpi4py import MPI
    import fastnn as fnn
    comm = MPI.COMM_WORLD
    fnn.set_num_threads(args.threads)
    X, y = make_data()
    lo, hi = comm.rank * len(X) // comm.size, (comm.rank + 1) * len(X) // comm.size
    m = make_model()
    before = m.evaluate(X[:4096], y[:4096])["loss"]
    dist = fnn.distributed.MPI(overlap=args.overlap)
    comm.Barrier()
    t = time.perf_counter()
    m.fit(X[lo:hi], y[lo:hi], epochs=1, batch_size=args.batch, verbose=0, distributed=dist)
    seconds = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
    after = m.evaluate(X[:4096], y[:4096])["loss"]
    w = np.concatenate([a.ravel() for a in m.get_weights()])
    same = comm.allreduce(int(np.array_equal(comm.bcast(w), w)), op=MPI.MIN)
    assert same and after < before, f"ranks differ ({not same}) or the loss did not drop ({before} -> {after})"
    if comm.rank == 0:
        print(json.dumps({"seconds": seconds, "exchange": dist.stats["exchange_seconds"],
                          "steps": dist.stats["steps"], "transport": dist.stats["transport"]}))


def worker_exchange(args):
    """The gradient exchange alone, for 784-512-256-10's buffer, repeated by every rank without compute
    (fastnn.distributed's own reducers: the transport's cost, without the waits of uneven ranks)."""
    from mpi4py import MPI
    from fastnn import distributed as D
    comm = MPI.COMM_WORLD
    g = D._Group(MPI, comm, 60.0)
    m = make_model()
    grads = m._grads
    coef = np.full(comm.size, 1.0 / comm.size, np.float32)
    out = {}
    for name, cls in (("shared memory", D._SharedWindow), ("MPI all-to-all", D._AllToAll)):
        red = cls(g, grads, m._net)
        times = []
        for _ in range(args.rounds):
            comm.Barrier()
            t = time.perf_counter()
            for _ in range(50):
                red.reduce(0, grads.size, coef, "bench")
                red.update_index()
            times.append((time.perf_counter() - t) / 50)
        red.close(None)
        out[name] = statistics.median(times)
    if comm.rank == 0:
        print(json.dumps(out))


def worker_rows(args):
    """Seconds per training step of a network at each batch size, 1 thread (the cost model's input)."""
    import fastnn as fnn
    fnn.set_num_threads(1)
    layers = tuple(int(v) for v in args.layers.split("-"))
    rng = np.random.default_rng(0)
    out = {}
    for batch in (int(b) for b in args.batches.split(",")):
        m = make_model(layers)
        X = rng.standard_normal((batch * (args.steps + 1), layers[0]), dtype=np.float32)
        y = rng.integers(0, layers[-1], len(X))
        m.fit(X[:batch], y[:batch], batch_size=batch, verbose=0)  # workspace and first touch
        t = time.perf_counter()
        m.fit(X[batch:], y[batch:], batch_size=batch, shuffle=False, verbose=0)
        out[batch] = (time.perf_counter() - t) / args.steps
    print(json.dumps(out))


# ---- drivers ------------------------------------------------------------------------------------------

def run(cmd, threads):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_mpi(args):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if not mpiexec:
        sys.exit("mpi: no mpiexec (pip install mpi4py mpich)")
    me = [sys.executable, os.path.abspath(__file__)]
    b = args.batch
    configs = [
        (f"1 process x 2 threads, batch {b}", me + ["_solo", "--threads", "2", "--batch", str(b)], 2),
        (f"2 ranks x 1 thread, batch {b} per rank", [mpiexec, "-n", "2"] + me + ["_mpi", "--batch", str(b)], 1),
        (f"2 ranks x 1 thread, batch {b // 2} per rank", [mpiexec, "-n", "2"] + me + ["_mpi", "--batch", str(b // 2)],
         1),
        (f"2 ranks x 1 thread, batch {b} per rank, overlapped",
         [mpiexec, "-n", "2"] + me + ["_mpi", "--batch", str(b), "--overlap"], 1),
        (f"1 process x 1 thread, batch {b}", me + ["_solo", "--threads", "1", "--batch", str(b)], 1),
    ]
    results = {name: [] for name, _, _ in configs}
    for _ in range(args.rounds):
        for name, cmd, threads in configs:
            results[name].append(run(cmd, threads))
    base = statistics.median(r["seconds"] for r in results[configs[0][0]])
    print(f"\nOne epoch of {'-'.join(map(str, LAYERS))} on {N_SAMPLES} rows, medians of {args.rounds} alternating "
          "rounds:\n")
    print("| configuration | seconds | / 1 process x 2 threads | exchange s (steps) |")
    print("|---|---:|---:|---|")
    for name, _, _ in configs:
        rs = results[name]
        s = statistics.median(r["seconds"] for r in rs)
        ex = (f"{statistics.median(r['exchange'] for r in rs):.2f} ({rs[0]['steps']}, {rs[0]['transport']})"
              if "exchange" in rs[0] else "")
        print(f"| {name} | {s:.2f} | {s / base:.2f} | {ex} |")


def bench_dask(args):
    import dask.array as da
    X, y = make_data()
    Xd, yd = da.from_array(X, chunks=(args.chunk, X.shape[1])), da.from_array(y, chunks=args.chunk)
    a, b = make_model(), make_model()
    a.fit(X[:5000], y[:5000], batch_size=128, shuffle=False, verbose=0)
    b.fit(Xd[:5000], yd[:5000], batch_size=128, shuffle=False, verbose=0)
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights())), "dask fit != numpy fit"
    rows = []
    for shuffle in (True, False):
        times = {"numpy": [], "dask": []}
        for _ in range(args.rounds):
            for kind, data in (("numpy", (X, y)), ("dask", (Xd, yd))):
                m = make_model()
                t = time.perf_counter()
                m.fit(*data, epochs=1, batch_size=128, shuffle=shuffle, verbose=0)
                times[kind].append(time.perf_counter() - t)
        n, d = statistics.median(times["numpy"]), statistics.median(times["dask"])
        rows.append((shuffle, n, d))
    print(f"\nOne epoch, batch 128, from NumPy and from a Dask array of {len(Xd.chunks[0])} in-memory blocks of "
          f"{args.chunk} rows, medians of {args.rounds} alternating rounds:\n")
    print("| shuffle | NumPy s | Dask s | Dask / NumPy |")
    print("|---|---:|---:|---:|")
    for shuffle, n, d in rows:
        print(f"| {shuffle} | {n:.2f} | {d:.2f} | {d / n:.3f} |")


def bench_exchange(args):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if not mpiexec:
        sys.exit("exchange: no mpiexec (pip install mpi4py mpich)")
    res = run([mpiexec, "-n", "2", sys.executable, os.path.abspath(__file__), "_exchange", "--rounds",
               str(args.rounds)], 1)
    mb = 4 * n_params(LAYERS) / 1e6
    print(f"\nOne gradient exchange of {'-'.join(map(str, LAYERS))} ({mb:.2f} MB), 2 ranks on this host, "
          f"median of {args.rounds} rounds of 50:\n")
    print("| transport | ms per exchange | gradient MB/s |")
    print("|---|---:|---:|")
    for name, s in res.items():
        print(f"| {name} | {s * 1e3:.2f} | {mb / s:,.0f} |")


def bench_cost(args):
    me = [sys.executable, os.path.abspath(__file__), "_rows", "--steps", str(args.steps)]
    print("\nTraining time per step, 1 thread (the cost model's compute side):\n")
    print("| network | parameters | gradient MB | MFLOP per row | batch | ms per step | µs per row | GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for layers, batches in ((LAYERS, "16,64,256"), (WIDE, "16,64,256")):
        res = run(me + ["--layers", "-".join(map(str, layers)), "--batches", batches], 1)
        p = n_params(layers)
        for batch, s in res.items():
            batch = int(batch)
            print(f"| {'-'.join(map(str, layers))} | {p:,} | {4 * p / 1e6:.1f} | {flop_per_row(layers) / 1e6:.1f} | "
                  f"{batch} | {s * 1e3:.1f} | {s / batch * 1e6:.0f} | {flop_per_row(layers) * batch / s / 1e9:.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/bench_dist.py", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["mpi", "dask", "exchange", "cost", "all", "_solo", "_mpi", "_rows", "_exchange"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=10000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--overlap", action="store_true", default=None)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--layers", default="-".join(map(str, LAYERS)))
    p.add_argument("--batches", default="16,64,256")
    args = p.parse_args(argv)
    workers = {"_solo": worker_solo, "_mpi": worker_mpi, "_rows": worker_rows, "_exchange": worker_exchange}
    if args.what in workers:
        return workers[args.what](args)
    for what, fn in (("mpi", bench_mpi), ("dask", bench_dask), ("exchange", bench_exchange), ("cost", bench_cost)):
        if args.what in (what, "all"):
            fn(args)


if __name__ == "__main__":
    main()
