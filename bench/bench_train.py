#!/usr/bin/env python3
"""Training throughput of fastnn against PyTorch, plain NumPy and scikit-learn, side by side in one run.

Model 784-512-256-10 ReLU, softmax cross-entropy, SGD lr 0.01 momentum 0.9, 60 000 synthetic float32
samples (seed 0), batch 32/128/512, 1 and 2 threads.  Each library runs in a process of its own (their
thread pools would otherwise fight over the cores) and the libraries alternate round by round, so a
noisy machine affects all alike.  Reported: the median epoch time over rounds, fastnn's ratio to each
peer, and the fraction of the CPU's FP32 peak that the epoch's exact GEMM work reaches
(144.5 GFLOP per epoch: forward and weight gradients of every layer, input gradients of all but the
first).  The peak is measured by bench/fma_probe.c (FMA throughput per core x cores used).

    python bench/bench_train.py                       # everything (several minutes)
    python bench/bench_train.py --batches 128 --threads 1 --rounds 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_train.py   # NumPy at full speed

Before timing, each worker checks that one epoch lowers its training loss.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

LAYERS = (784, 512, 256, 10)
N_SAMPLES = 60000
LR, MOMENTUM = 0.01, 0.9
_W = [a * b for a, b in zip(LAYERS[:-1], LAYERS[1:])]
EXACT_FLOP_PER_SAMPLE = 2 * sum(_W) * 2 + 2 * sum(_W[1:])  # fwd + dW for all layers, dX for all but the first
LIBS = ("fastnn", "torch", "numpy", "sklearn")


def make_data(n=N_SAMPLES):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, LAYERS[0]), dtype=np.float32)
    # a learnable target: the class of a fixed random linear map, so that the loss check means something
    y = np.argmax(X @ rng.standard_normal((LAYERS[0], LAYERS[-1]), dtype=np.float32), axis=1)
    return X, y


# ----------------------------------------------------------------------------- one library per process
def epochs_fastnn(X, y, batch, epochs, threads):
    import fastnn as fnn

    fnn.set_num_threads(threads)
    model = fnn.Sequential([fnn.Dense(512, activation="relu"), fnn.Dense(256, activation="relu"), fnn.Dense(10)],
                           input_dim=LAYERS[0], dtype="float32", seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=LR, momentum=MOMENTUM))
    before = model.evaluate(X[:4096], y[:4096])["loss"]
    h = model.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)
    after = model.evaluate(X[:4096], y[:4096])["loss"]
    return h.history["time"], before, after


def epochs_torch(X, y, batch, epochs, threads):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mods = []
    for i, (fi, fo) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        mods.append(nn.Linear(fi, fo))
        if i < len(LAYERS) - 2:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()

    def loss_on_head():
        with torch.inference_mode():
            return float(F.cross_entropy(model(Xt[:4096]), yt[:4096]))

    before = loss_on_head()
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(N_SAMPLES)
        for j in range(0, N_SAMPLES, batch):
            idx = perm[j:j + batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times, before, loss_on_head()


class NumpyMLP:
    """The same step in plain NumPy (float32): ReLU layers, softmax cross-entropy, SGD momentum."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.W = [rng.uniform(-fi ** -0.5, fi ** -0.5, (fi, fo)).astype(np.float32) for fi, fo in zip(LAYERS, LAYERS[1:])]
        self.b = [np.zeros(fo, np.float32) for fo in LAYERS[1:]]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]

    def forward(self, x):
        acts = [x]
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            x = x @ w + b
            if i < len(self.W) - 1:
                x = np.maximum(x, 0)
                acts.append(x)
        return x, acts

    def loss(self, x, y):
        z, _ = self.forward(x)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    def step(self, x, y):
        g, acts = self.forward(x)
        g -= g.max(axis=1, keepdims=True)
        np.exp(g, out=g)
        g /= g.sum(axis=1, keepdims=True)
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        for i in range(len(self.W) - 1, -1, -1):
            gW, gb = acts[i].T @ g, g.sum(axis=0)
            if i > 0:
                g = g @ self.W[i].T
                g *= acts[i] > 0
            for p, v, d in ((self.W[i], self.vW[i], gW), (self.b[i], self.vb[i], gb)):
                v *= MOMENTUM
                v += d
                p -= LR * v


def epochs_numpy(X, y, batch, epochs, threads):
    net = NumpyMLP()
    rng = np.random.default_rng(1)
    before = net.loss(X[:4096], y[:4096])
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(N_SAMPLES)
        for j in range(0, N_SAMPLES, batch):
            idx = perm[j:j + batch]
            net.step(X[idx], y[idx])
        times.append(time.perf_counter() - t0)
    return times, before, net.loss(X[:4096], y[:4096])


def epochs_sklearn(X, y, batch, epochs, threads):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X64 = X.astype(np.float64)  # scikit-learn's default dtype
    clf = MLPClassifier(hidden_layer_sizes=LAYERS[1:-1], solver="sgd", learning_rate_init=LR, momentum=MOMENTUM,
                        nesterovs_momentum=False, alpha=0.0, batch_size=batch, max_iter=1, shuffle=True,
                        random_state=0, tol=0.0, warm_start=True)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for e in range(epochs):
            t0 = time.perf_counter()
            clf.fit(X64, y)
            times.append(time.perf_counter() - t0)
    losses = clf.loss_curve_
    return times, None if len(losses) < 2 else losses[0], losses[-1]


def worker(lib, batch, epochs, threads):
    from threadpoolctl import threadpool_limits

    X, y = make_data()
    with threadpool_limits(threads):
        times, before, after = globals()["epochs_" + lib](X, y, batch, epochs, threads)
    if before is not None and not after < before:
        raise SystemExit(f"{lib}: the loss did not decrease ({before:.4f} -> {after:.4f})")
    print(json.dumps({"times": times}), flush=True)


# ----------------------------------------------------------------------------- driver
def peak_per_core():
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_probe")
        try:
            subprocess.run([cc, "-O2", os.path.join(HERE, "fma_probe.c"), "-o", exe], check=True, capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None, None
    kv = dict(item.split("=") for item in out.split())
    return float(kv["gflops"]), float(kv["ghz"])


def available(lib):
    try:
        __import__({"sklearn": "sklearn", "torch": "torch", "numpy": "numpy", "fastnn": "fastnn"}[lib])
        return True
    except ImportError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the libraries")
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per library and round")
    ap.add_argument("--sklearn-batches", default="128", help="scikit-learn is slow: only these batch sizes")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        lib, batch, threads = a.worker.split(":")
        return worker(lib, int(batch), a.epochs, int(threads))

    import fastnn as fnn

    per_core, ghz = peak_per_core()
    libs = [lib for lib in a.libs.split(",") if available(lib)]
    info = fnn.build_info()
    print(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']}; peers: "
          + ", ".join(lib for lib in libs if lib != "fastnn"))
    if per_core:
        print(f"FP32 peak {per_core:.1f} GFLOP/s per core, measured by bench/fma_probe.c (independent FMA chains); "
              f"clock {ghz:.2f} GHz if the core has 2 FMA pipes of that width")
    print(f"exact GEMM work: {EXACT_FLOP_PER_SAMPLE * N_SAMPLES / 1e9:.1f} GFLOP per epoch\n")
    head = "| threads | batch | " + " | ".join(f"{lib} s/epoch" for lib in libs) + " | " + \
        " | ".join(f"fastnn / {lib}" for lib in libs if lib != "fastnn") + " | fastnn % of peak |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for th in (int(t) for t in a.threads.split(",")):
        for batch in (int(b) for b in a.batches.split(",")):
            runs = {lib: [] for lib in libs if lib != "sklearn" or str(batch) in a.sklearn_batches.split(",")}
            for _ in range(a.rounds):
                for lib in runs:
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{lib}:{batch}:{th}",
                           "--epochs", str(a.epochs)]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[lib] += json.loads(out.strip().splitlines()[-1])["times"]
            med = {lib: statistics.median(ts) for lib, ts in runs.items()}
            cells = [f"{med[lib]:.2f}" if lib in med else "–" for lib in libs]
            ratios = [f"{med['fastnn'] / med[lib]:.2f}" if lib in med and "fastnn" in med else "–"
                      for lib in libs if lib != "fastnn"]
            frac = "–"
            if per_core and "fastnn" in med:
                achieved = EXACT_FLOP_PER_SAMPLE * N_SAMPLES / med["fastnn"] / 1e9
                frac = f"{100 * achieved / (per_core * th):.0f}% ({achieved:.0f} GFLOP/s)"
            print(f"| {th} | {batch} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {frac} |", flush=True)


if __name__ == "__main__":
    main()
