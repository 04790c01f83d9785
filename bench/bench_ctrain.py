#!/usr/bin/env python3
"""Training from C against training from Python: the same engine, so the same speed is the bar.

One epoch of 784-512-256-10 ReLU, softmax cross-entropy, SGD lr 0.01 momentum 0.9, shuffled, at batch
128 (by default) on the training benchmark's 60 000 synthetic rows, through
  Python   fnn.load + compile + fit(epochs=1), timed around each fit call
  C        fnn_model_fit(epochs=1) from bench/train_timer.c linked with libfastnn.a
both starting from the same model file.  Each side runs in a process of its own, the two alternate
round by round, and each process trains `--epochs` epochs (default 2) of which the table shows every
epoch's median; the first one also pays for the workspace and the first touch of the data.  Wall
time is the bar; the process CPU time beside it moves less on a shared machine (with 1 thread).
Before anything is timed, one epoch on 2 048 rows through each must end in byte-identical model files.

    python bench/bench_ctrain.py [--threads 1 2] [--batch 128] [--rounds 5] [--samples 60000]
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from fastnn.benchmark import LAYERS, LR, MOMENTUM, make_data  # noqa: E402


def c_timer(tmp):
    """Build libfastnn.a and the C timer (SystemExit without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("bench_ctrain: no C compiler")
    build = os.path.join(tmp, "cbuild")
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "csrc"), f"BUILD={build}"], check=True, capture_output=True)
    exe = os.path.join(tmp, "train_timer")
    subprocess.run([cc, "-O2", os.path.join(HERE, "train_timer.c"), "-I", os.path.join(ROOT, "csrc"),
                    os.path.join(build, "libfastnn.a"), "-fopenmp", "-lm", "-o", exe], check=True, capture_output=True)
    return exe


def python_worker(model, xpath, ypath, rows, threads, epochs, batch, out):
    import numpy as np
    import fastnn as fnn

    fnn.set_num_threads(threads)
    X = np.fromfile(xpath, dtype=np.float32, count=rows * LAYERS[0]).reshape(rows, LAYERS[0])
    y = np.fromfile(ypath, dtype=np.int32, count=rows)
    m = fnn.load(model, seed=0)
    m.compile("cross_entropy", optimizer=fnn.SGD(lr=LR, momentum=MOMENTUM))
    seconds, cpu = [], []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        m.fit(X, y, epochs=1, batch_size=batch, verbose=0)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    m.save(out)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}))


def run_side(side, exe, files, rows, threads, epochs, batch, out):
    if side == "C":
        cmd = [exe, files["model"], files["x"], files["y"], str(rows), str(threads), str(epochs), str(batch), out]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", files["model"], files["x"], files["y"], str(rows),
               str(threads), str(epochs), str(batch), out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_ctrain: the {side} run failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per process (default 2)")
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--worker", nargs=8, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        model, xpath, ypath, rows, threads, epochs, batch, out = a.worker
        return python_worker(model, xpath, ypath, int(rows), int(threads), int(epochs), int(batch), out)
    import numpy as np
    import fastnn as fnn

    with tempfile.TemporaryDirectory() as tmp:
        exe = c_timer(tmp)
        X, y = make_data(a.samples)
        files = {"model": os.path.join(tmp, "m.safetensors"), "x": os.path.join(tmp, "x.f32"),
                 "y": os.path.join(tmp, "y.i32")}
        model = fnn.Sequential([fnn.Dense(512, "relu"), fnn.Dense(256, "relu"), fnn.Dense(10)], input_dim=LAYERS[0],
                               seed=0)
        model.compile("cross_entropy")
        model.save(files["model"])
        X.tofile(files["x"])
        y.astype(np.int32).tofile(files["y"])

        # the check: the same epoch, the same bits
        outs = {side: os.path.join(tmp, f"check-{side}.safetensors") for side in ("C", "Python")}
        for side, out in outs.items():
            run_side(side, exe, files, 2048, 1, 1, a.batch, out)
        if open(outs["C"], "rb").read() != open(outs["Python"], "rb").read():
            raise SystemExit("bench_ctrain: C and Python trained to different weights")
        print(f"check: one epoch on 2048 rows gives byte-identical files from C and Python\n"
              f"{a.samples} rows, batch {a.batch}, {a.rounds} alternating rounds, {a.epochs} epochs per process; "
              f"seconds per epoch: wall median (fastest), and process CPU time median\n")
        print("| threads | epoch | Python wall | C wall | C / Python wall | Python CPU | C CPU | C / Python CPU |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for threads in a.threads:
            runs = {"C": [], "Python": []}
            for r in range(a.rounds):
                for side in (("C", "Python") if r % 2 == 0 else ("Python", "C")):
                    runs[side].append(run_side(side, exe, files, a.samples, threads, a.epochs, a.batch,
                                               os.path.join(tmp, "out.safetensors")))
            for e in range(a.epochs):
                wall = {side: [run["seconds"][e] for run in runs[side]] for side in runs}
                cpu = {side: statistics.median(run["cpu_seconds"][e] for run in runs[side]) for side in runs}
                med = {side: statistics.median(v) for side, v in wall.items()}
                print(f"| {threads} | {e + 1} | {med['Python']:.3f} ({min(wall['Python']):.3f}) | "
                      f"{med['C']:.3f} ({min(wall['C']):.3f}) | {med['C'] / med['Python']:.3f} | "
                      f"{cpu['Python']:.3f} | {cpu['C']:.3f} | {cpu['C'] / cpu['Python']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
