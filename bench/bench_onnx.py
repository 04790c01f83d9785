#!/usr/bin/env python3
"""ONNX export and import speed of a 784-512-256-10 MLP (ReLU, softmax output), beside references.

  export   model.export_onnx(path): the graph built, serialized and written atomically (fsync)
  import   fnn.from_onnx(path): read, parsed, every tensor checked, the Sequential built
against, in the same run (where installed):
  torch.onnx.export (TorchScript exporter) of the same network to a file
  onnx.load(path) alone: the parse that from_onnx does as its first step
The bar is under 100 ms for each of export and import.  Before anything is timed, the exported file
is run by ONNX Runtime and compared with predict (1e-5), and the imported weights with the
originals (bitwise).  Medians of --rounds repetitions, alternating the implementations.

    python bench/bench_onnx.py [--rounds 15] [--dtype float32]
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
DIMS = (784, 512, 256, 10)


def fastnn_model(dtype):
    import fastnn as fnn

    model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=784,
                           dtype=dtype, seed=0)
    model.compile("cross_entropy")
    return model


def check(model, path):
    """The exported file gives predict's outputs in ONNX Runtime; the import gives the weights back."""
    import fastnn as fnn

    model.export_onnx(path)
    x = np.random.default_rng(1).standard_normal((256, 784)).astype(model.dtype)
    try:
        import onnxruntime as ort
    except ImportError:
        print("(onnxruntime not installed: the exported graph is not run)")
    else:
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        err = float(np.abs(s.run(None, {"input": x})[0] - model.predict(x)).max())
        assert err <= 1e-5, f"ONNX Runtime differs from predict by {err}"
    back = fnn.from_onnx(path)
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), model.get_weights()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    import fastnn as fnn
    import onnx

    model = fastnn_model(args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.onnx")
        check(model, path)
        jobs = {"fastnn export": lambda: model.export_onnx(path),
                "fastnn import": lambda: fnn.from_onnx(path),
                "onnx.load (parse only)": lambda: onnx.load(path)}
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                      torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(getattr(torch, args.dtype)).eval()
            x = torch.zeros(1, 784, dtype=getattr(torch, args.dtype))
            tpath = os.path.join(tmp, "torch.onnx")

            def torch_export():
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(net, (x,), tpath, dynamo=False, input_names=["x"],
                                      dynamic_axes={"x": {0: "batch"}})
            jobs["torch.onnx.export (TorchScript)"] = torch_export
        for fn in jobs.values():   # warm-up: imports, first-call costs
            fn()
        times = {name: [] for name in jobs}
        for _ in range(args.rounds):
            for name, fn in jobs.items():
                t = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t) * 1e3)
        size = os.path.getsize(path)
    print(f"784-512-256-10 {args.dtype}, {size / 2**20:.1f} MiB file, median of {args.rounds} rounds "
          f"(fastnn {fnn.__version__}, onnx {onnx.__version__}{', torch ' + torch.__version__ if torch else ''})\n")
    print("| operation | ms | bar |")
    print("|---|---:|---|")
    for name, t in times.items():
        med = statistics.median(t)
        bar = ("under 100 ms" if med < 100 else "OVER 100 ms") if name.startswith("fastnn") else ""
        print(f"| {name} | {med:.1f} | {bar} |")
    exp, imp = statistics.median(times["fastnn export"]), statistics.median(times["fastnn import"])
    ref = times.get("torch.onnx.export (TorchScript)")
    if ref:
        print(f"\nfastnn export / torch.onnx.export: {exp / statistics.median(ref):.2f}")
    print(f"fastnn import / onnx.load: {imp / statistics.median(times['onnx.load (parse only)']):.2f}")


if __name__ == "__main__":
    main()
