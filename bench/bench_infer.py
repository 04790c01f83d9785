#!/usr/bin/env python3
"""Inference speed of fastnn against PyTorch and plain NumPy, side by side in one run.

For 784-512-256-10 and 64-32-10 (ReLU, softmax output), float32: the median latency of predicting
one row (individually timed calls) and the throughput of 1024-row batches, for
  fastnn      Sequential.predict from Python
  fastnn C    fnn_model_predict from a C program (bench/predict_timer.c linked with libfastnn.a)
  torch       PyTorch in inference_mode
  numpy       x @ W + b with NumPy
Each runs in a process of its own; the runs alternate over rounds and the table shows medians and
fastnn's ratios.  All implementations get the same weights, and their outputs are compared before
anything is timed.

    python bench/bench_infer.py [--threads 1] [--rounds 3]
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
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
NETS = {"784-512-256-10": (784, 512, 256, 10), "64-32-10": (64, 32, 10)}
CALLS = 5000


def weights(dims):
    rng = np.random.default_rng(0)
    return [(rng.uniform(-a ** -0.5, a ** -0.5, (a, b)).astype(np.float32), rng.uniform(-0.1, 0.1, b).astype(np.float32))
            for a, b in zip(dims, dims[1:])]


def inputs(dims):
    return np.random.default_rng(1).standard_normal((1024, dims[0])).astype(np.float32)


def fastnn_model(dims):
    import fastnn as fnn

    layers = [fnn.Dense(b, activation="relu") for b in dims[1:-1]] + [fnn.Dense(dims[-1])]
    model = fnn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(loss="cross_entropy")
    dense = [layer for layer in model.layers if isinstance(layer, fnn.Dense)]
    for layer, (w, b) in zip(dense, weights(dims)):
        layer.weight, layer.bias = w, b
    return model


def numpy_forward(ws, x):
    """ReLU layers, softmax output, in NumPy: the reference (in float64) and the NumPy peer."""
    h = x
    for i, (w, b) in enumerate(ws):
        h = h @ w + b
        if i < len(ws) - 1:
            h = np.maximum(h, 0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(dims, x):
    return numpy_forward(weights(dims), x.astype(np.float64))


def latency_us(fn):
    for _ in range(200):
        fn()
    ts = []
    pc = time.perf_counter_ns
    for _ in range(CALLS):
        t0 = pc()
        fn()
        ts.append(pc() - t0)
    return statistics.median(ts) / 1e3


def throughput(fn, rows=1024):
    rates = []
    for _ in range(5):
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.1:
            fn()
            n += 1
        rates.append(n * rows / (time.perf_counter() - t0))
    return statistics.median(rates)


def worker(lib, net, threads):
    dims = NETS[net]
    x = inputs(dims)
    want = reference(dims, x)
    if lib == "fastnn":
        import fastnn as fnn

        fnn.set_num_threads(threads)
        model = fastnn_model(dims)
        predict = model.predict
    elif lib == "torch":
        import torch

        torch.set_num_threads(threads)
        mods = []
        for i, (w, b) in enumerate(weights(dims)):
            lin = torch.nn.Linear(*w.shape)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            mods += [lin] + ([torch.nn.ReLU()] if i < len(dims) - 2 else [])
        tnet = torch.nn.Sequential(*mods).eval()

        def predict(a):
            with torch.inference_mode():
                return torch.softmax(tnet(torch.from_numpy(a)), dim=1).numpy()
    else:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        ws = weights(dims)

        def predict(a):
            return numpy_forward(ws, a)
    got = predict(x)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise SystemExit(f"{lib} {net}: wrong predictions (max error {np.abs(got - want).max():.2e})")
    x1 = np.ascontiguousarray(x[:1])
    print(json.dumps({"latency_us": latency_us(lambda: predict(x1)),
                      "b1024_samples_s": throughput(lambda: predict(x))}), flush=True)


def c_timer(tmp):
    """Build libfastnn.a and the C timer; None when no C compiler is there."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    build = os.path.join(tmp, "cbuild")
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "csrc"), f"BUILD={build}"], check=True, capture_output=True)
    exe = os.path.join(tmp, "predict_timer")
    subprocess.run([cc, "-O2", os.path.join(HERE, "predict_timer.c"), "-I", os.path.join(ROOT, "csrc"),
                    os.path.join(build, "libfastnn.a"), "-fopenmp", "-lm", "-o", exe], check=True, capture_output=True)
    return exe


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        lib, net = a.worker.split(":")
        return worker(lib, net, a.threads)
    libs = ["fastnn", "fastnn C", "numpy"]
    try:
        import torch  # noqa: F401
        libs.insert(2, "torch")
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        exe = c_timer(tmp)
        if exe is None:
            libs.remove("fastnn C")
        print(f"threads={a.threads}; latency = median of {CALLS} single-row calls; throughput = 1024-row batches\n")
        print("| network | " + " | ".join(f"{lib} 1-row µs" for lib in libs) + " | "
              + " | ".join(f"{lib} rows/s (b=1024)" for lib in libs) + " | fastnn / torch latency | fastnn C / torch latency |")
        print("|" + "---|" * (2 * len(libs) + 3))
        for net, dims in NETS.items():
            runs = {lib: [] for lib in libs}
            for _ in range(a.rounds):
                for lib in libs:
                    if lib == "fastnn C":
                        model = fastnn_model(dims)
                        path = os.path.join(tmp, f"{net}.safetensors")
                        model.save(path)
                        want = model.predict(inputs(dims))
                        out = subprocess.run([exe, path, str(a.threads)], check=True, capture_output=True, text=True).stdout
                        del want
                    else:
                        cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{lib}:{net}", "--threads", str(a.threads)]
                        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[lib].append(json.loads(out.strip().splitlines()[-1]))
            lat = {lib: statistics.median(r["latency_us"] for r in runs[lib]) for lib in libs}
            thr = {lib: statistics.median(r["b1024_samples_s"] for r in runs[lib]) for lib in libs}
            ratio = (f"{lat['fastnn'] / lat['torch']:.2f} | {lat['fastnn C'] / lat['torch']:.2f}"
                     if "torch" in lat and "fastnn C" in lat else "– | –")
            print(f"| {net} | " + " | ".join(f"{lat[lib]:.1f}" for lib in libs) + " | "
                  + " | ".join(f"{thr[lib]:,.0f}" for lib in libs) + f" | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
