#!/usr/bin/env python3
"""Inference speed of fastnn against ONNX Runtime, PyTorch and plain NumPy, side by side in one run.

For 784-512-256-10 and 64-32-10 (ReLU, softmax output): the median latency of predicting one row
(individually timed calls) and the throughput of 1024-row batches, for
  fastnn        Sequential.predict from Python, float32
  fastnn C      fnn_model_predict from a C program (bench/predict_timer.c linked with libfastnn.a)
  fastnn int8   fnn.quantize(model, "int8") from Python, and "fastnn C int8" its file from C
  fastnn bf16   fnn.quantize(model, "bfloat16") from Python
  ort, ort int8 ONNX Runtime (optional: the bench extra), float32 and quantize_dynamic int8 weights,
                one intra-op thread per requested thread, all graph optimisations
  torch         PyTorch in inference_mode (optional)
  numpy         x @ W + b with NumPy
Each runs in a process of its own; the runs alternate over rounds and the tables show medians and
the ratios the low-precision work is measured by.  All implementations get the same weights, and
their outputs are compared before anything is timed (float32 to 1e-4; the int8 and bf16 ones to the
float64 reference's probabilities within 0.05 and the same class for 95% of the rows).

    python bench/bench_infer.py [--threads 1] [--rounds 3] [--libs fastnn,ort,...] [--cpu-time]

--cpu-time times the batch throughput with the process's CPU time instead of the wall clock (every
library alike): on a machine shared with other work it measures what a call costs, not how long it
waited for a core.  Latencies are always medians of wall-clock calls (a CPU-time clock costs a system
call per reading, and a median already passes over the calls that waited).
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
LIBS = ["fastnn", "fastnn C", "fastnn int8", "fastnn C int8", "fastnn bf16", "ort", "ort int8", "torch", "numpy"]
LOWP = {"fastnn int8", "fastnn C int8", "fastnn bf16", "ort int8"}


def weights(dims):
    rng = np.random.default_rng(0)
    return [(rng.uniform(-a ** -0.5, a ** -0.5, (a, b)).astype(np.float32), rng.uniform(-0.1, 0.1, b).astype(np.float32))
            for a, b in zip(dims, dims[1:])]


def inputs(dims):
    return np.random.default_rng(1).standard_normal((1024, dims[0])).astype(np.float32)


def fastnn_model(dims, precision=None):
    import fastnn as fnn

    layers = [fnn.Dense(b, activation="relu") for b in dims[1:-1]] + [fnn.Dense(dims[-1])]
    model = fnn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(loss="cross_entropy")
    dense = [layer for layer in model.layers if isinstance(layer, fnn.Dense)]
    for layer, (w, b) in zip(dense, weights(dims)):
        layer.weight, layer.bias = w, b
    return fnn.quantize(model, precision) if precision else model


def onnx_model(dims, path):
    """The same MLP as an ONNX graph (MatMul, Add, Relu, Softmax), written to path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    ws = weights(dims)
    for i, (w, b) in enumerate(ws):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [cur, f"W{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        cur = f"a{i}"
        if i < len(ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes.append(helper.make_node("Softmax", [cur], ["y"], axis=-1))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, dims[0]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, dims[-1]])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


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


CLOCK = time.perf_counter  # time.process_time with --cpu-time


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
        t0, n = CLOCK(), 0
        while CLOCK() - t0 < 0.1:
            fn()
            n += 1
        rates.append(n * rows / (CLOCK() - t0))
    return statistics.median(rates)


def worker(lib, net, threads):
    dims = NETS[net]
    x = inputs(dims)
    want = reference(dims, x)
    if lib.startswith("fastnn"):
        import fastnn as fnn

        fnn.set_num_threads(threads)
        model = fastnn_model(dims, {"fastnn int8": "int8", "fastnn bf16": "bfloat16"}.get(lib))
        predict = model.predict
    elif lib.startswith("ort"):
        import tempfile as tf

        import onnxruntime as ort

        d = tf.mkdtemp()
        path = os.path.join(d, "m.onnx")
        onnx_model(dims, path)
        if lib == "ort int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(path, os.path.join(d, "q.onnx"), weight_type=QuantType.QInt8)
            path = os.path.join(d, "q.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        def predict(a):
            return sess.run(None, {"x": a})[0]
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
    if lib in LOWP:
        agree = np.mean(got.argmax(axis=1) == want.argmax(axis=1))
        if np.abs(got - want).max() > 0.05 or agree < 0.95:
            raise SystemExit(f"{lib} {net}: wrong predictions (max error {np.abs(got - want).max():.2e}, "
                             f"{agree:.1%} same class)")
    elif not np.allclose(got, want, rtol=1e-4, atol=1e-5):
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


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--libs", default=",".join(LIBS), help="comma-separated, of: " + ", ".join(LIBS))
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated, of: " + ", ".join(NETS))
    ap.add_argument("--cpu-time", action="store_true", help="time in process CPU time, not wall time")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        global CLOCK
        CLOCK = time.process_time if a.cpu_time else time.perf_counter
        lib, net = a.worker.split(":")
        return worker(lib, net, a.threads)
    libs = [lib for lib in a.libs.split(",") if lib in LIBS]
    if not _has("torch"):
        libs = [lib for lib in libs if lib != "torch"]
    if not (_has("onnxruntime") and _has("onnx")):
        libs = [lib for lib in libs if not lib.startswith("ort")]
    with tempfile.TemporaryDirectory() as tmp:
        exe = c_timer(tmp) if any(" C" in lib for lib in libs) else None
        if exe is None:
            libs = [lib for lib in libs if " C" not in lib]
        print(f"threads={a.threads}; latency = median of {CALLS} single-row calls; throughput = 1024-row batches; "
              f"{'process CPU time' if a.cpu_time else 'wall time'}\n")
        print("| network | measure | " + " | ".join(libs) + " |")
        print("|---|---|" + "---|" * len(libs))
        ratios = []
        for net in a.nets.split(","):
            dims = NETS[net]
            runs = {lib: [] for lib in libs}
            for _ in range(a.rounds):
                for lib in libs:
                    if " C" in lib:
                        model = fastnn_model(dims, "int8" if lib.endswith("int8") else None)
                        path = os.path.join(tmp, f"{net}-{lib[-4:]}.safetensors")
                        model.save(path)
                        out = subprocess.run([exe, path, str(a.threads)] + (["cpu"] if a.cpu_time else []), check=True,
                                             capture_output=True, text=True).stdout
                    else:
                        cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{lib}:{net}", "--threads",
                               str(a.threads)] + (["--cpu-time"] if a.cpu_time else [])
                        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[lib].append(json.loads(out.strip().splitlines()[-1]))
            lat = {lib: statistics.median(r["latency_us"] for r in runs[lib]) for lib in libs}
            thr = {lib: statistics.median(r["b1024_samples_s"] for r in runs[lib]) for lib in libs}
            print(f"| {net} | 1-row µs | " + " | ".join(f"{lat[lib]:.1f}" for lib in libs) + " |")
            print(f"| {net} | rows/s (b=1024) | " + " | ".join(f"{thr[lib]:,.0f}" for lib in libs) + " |", flush=True)
            for ours, peer in (("fastnn int8", "ort int8"), ("fastnn C int8", "ort int8"), ("fastnn", "ort"),
                               ("fastnn C", "ort"), ("fastnn int8", "ort"), ("fastnn", "torch")):
                if ours in libs and peer in libs:
                    ratios.append(f"{net}: {ours} / {peer}: latency {lat[ours] / lat[peer]:.2f}x, "
                                  f"throughput {thr[ours] / thr[peer]:.2f}x")
        if ratios:
            print()
            print("\n".join(ratios))
        if "fastnn int8" in libs:
            dims = NETS["784-512-256-10"]
            f32, i8 = os.path.join(tmp, "f.safetensors"), os.path.join(tmp, "q.safetensors")
            fastnn_model(dims).save(f32)
            fastnn_model(dims, "int8").save(i8)
            print(f"784-512-256-10 file: float32 {os.path.getsize(f32):,} B, int8 {os.path.getsize(i8):,} B "
                  f"({os.path.getsize(f32) / os.path.getsize(i8):.2f}x smaller)")


if __name__ == "__main__":
    main()
