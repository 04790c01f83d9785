#!/usr/bin/env python3
"""bench_lbfgs - full-batch L-BFGS training time per iteration, fastnn.sklearn against scikit-learn.

Both estimators run solver="lbfgs" (scipy's L-BFGS-B) with the same parameters and random_state, so they
start from the same weights and take the same iterations; scikit-learn computes each loss and gradient
with NumPy, fastnn with one call into its C engine.  Data: scikit-learn's digits (1 797 x 64, 10
classes, MLP 64-100-10, accuracy) and make_friedman1 (2 000 x 10, MLP 10-64-1, R^2), 75/25 splits.

Each (library, data, threads) fit runs in a process of its own, with OMP_NUM_THREADS and the BLAS pool
set to the thread count, and the libraries alternate round by round.  Before anything is timed, every
fit's test score is checked: fastnn's within 1 point of scikit-learn's for the same seed.  Reported:
the median seconds per L-BFGS iteration over rounds (fit time / n_iter_), the ratio, and the scores.

    python bench/bench_lbfgs.py                      # 3 rounds, 200 iterations, 1 and 2 threads
    python bench/bench_lbfgs.py --quick              # 1 round, 30 iterations: a check that it runs
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_lbfgs.py --threads 1 --rounds 5
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBS = ("sklearn", "fastnn", "fastnn-f32")
DATA = ("digits", "friedman1")


def load(name):
    from sklearn.datasets import load_digits, make_friedman1
    from sklearn.model_selection import train_test_split

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y), (100,)
    X, y = make_friedman1(n_samples=2000, noise=0.5, random_state=0)
    return train_test_split(X, y, test_size=0.25, random_state=0), (64,)


def worker(lib, data, threads, max_iter, seed):
    """Runs in its own process: one fit; prints {"seconds", "n_iter", "score"} as JSON."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    (Xtr, Xte, ytr, yte), hidden = load(data)
    classify = data == "digits"
    if lib == "sklearn":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        extra = {}
    else:
        sys.path.insert(0, ROOT)
        from fastnn.sklearn import MLPClassifier, MLPRegressor
        extra = {"n_threads": threads, "dtype": "float32" if lib == "fastnn-f32" else None}
    cls = MLPClassifier if classify else MLPRegressor
    with threadpool_limits(threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # a first short fit imports what fit imports and starts the thread pools, outside the timing
        cls(solver="lbfgs", hidden_layer_sizes=hidden, max_iter=2, random_state=seed, **extra).fit(Xtr, ytr)
        est = cls(solver="lbfgs", hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed, **extra)
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "n_iter": int(est.n_iter_), "score": float(est.score(Xte, yte))}))


def run_worker(lib, data, threads, max_iter, seed):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, data, str(threads), str(max_iter), str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{lib} on {data} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/bench_lbfgs.py", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--data", nargs="+", choices=DATA, default=list(DATA))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="1 round of 30 iterations")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        lib, data, threads, max_iter, seed = args.worker
        return worker(lib, data, int(threads), int(max_iter), int(seed))
    if args.quick:
        args.rounds, args.max_iter = 1, 30

    results = {}  # (data, threads, lib) -> list of runs
    for r in range(args.rounds):
        for data in args.data:
            for threads in args.threads:
                for lib in (LIBS if r % 2 == 0 else LIBS[::-1]):
                    results.setdefault((data, threads, lib), []).append(
                        run_worker(lib, data, threads, args.max_iter, args.seed))
                ref = results[(data, threads, "sklearn")][-1]["score"]
                for lib in LIBS[1:]:
                    got = results[(data, threads, lib)][-1]["score"]
                    if got < ref - 0.01:
                        raise SystemExit(f"check failed: {lib} scores {got:.4f} on {data}, scikit-learn {ref:.4f}")

    print(f"L-BFGS, {args.max_iter} iterations at most, {args.rounds} round(s); milliseconds per iteration (fit time / "
          "n_iter_), median (fastest); score = test accuracy (digits) or R^2 (friedman1)\n")
    print("| data | threads | scikit-learn | fastnn (float64) | fastnn (float32) | scikit-learn / fastnn (float64) "
          "| iterations | scores sklearn / fastnn / float32 |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for data in args.data:
        for threads in args.threads:
            runs = {lib: [run["seconds"] / max(run["n_iter"], 1) * 1e3 for run in results[(data, threads, lib)]]
                    for lib in LIBS}
            per = {lib: statistics.median(v) for lib, v in runs.items()}
            cell = {lib: f"{per[lib]:.2f} ({min(runs[lib]):.2f})" for lib in LIBS}
            last = {lib: results[(data, threads, lib)][-1] for lib in LIBS}
            print(f"| {data} | {threads} | {cell['sklearn']} | {cell['fastnn']} "
                  f"| {cell['fastnn-f32']} | {per['sklearn'] / per['fastnn']:.1f}x "
                  f"| {' / '.join(str(last[lib]['n_iter']) for lib in LIBS)} "
                  f"| {' / '.join(format(last[lib]['score'], '.4f') for lib in LIBS)} |")


if __name__ == "__main__":
    main()
