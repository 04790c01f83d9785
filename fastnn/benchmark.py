"""Side-by-side benchmarks, shipped with the package so that `fastnn bench` runs them anywhere
(bench/bench_gemm.py and bench/bench_train.py are thin wrappers around `gemm_main` and `train_main`).

Method, for both: every result is checked before anything is timed; each library runs in a process
of its own (their worker threads spin after each call and would steal the cores from the other
library); the libraries alternate for several rounds, so that a noisy machine affects all alike; the
tables show medians over rounds and fastnn's ratio to each peer measured in the same run.

- GEMM: fastnn's `ops.gemm` against `numpy.matmul` (its BLAS), in GFLOP/s, for squares 256..2048 and
  the products of a 784-512-256-10 MLP (M x N x K): forward batch x 512 x 784 and batch x 256 x 512,
  the weight gradient 784 x 512 x batch (A transposed) and the input gradient batch x 512 x 256
  (B transposed), for batch 32, 128, 512.
- Training: one epoch of the 784-512-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.01 momentum 0.9,
  on 60 000 synthetic float32 samples, in fastnn, PyTorch, plain NumPy and scikit-learn (those that
  are installed).  Each worker first checks that its training lowers the loss.  Also reported: the
  fraction of the CPU's FP32 peak that the epoch's exact GEMM work reaches, the peak being measured
  by fastnn/data/fma_probe.c (FMA throughput per core x cores used) when a C compiler is there, and
  in parentheses the fraction of the micro-kernel's own ceiling (its rate with operands in L1).

    python -m fastnn.benchmark gemm [--quick] ...     (or: fastnn bench --only gemm)
    python -m fastnn.benchmark train [--batches 128 --threads 1 --rounds 2] ...
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

__all__ = ["gemm_main", "train_main", "run_gemm", "run_train", "plot", "add_cli_arguments", "cli_options",
           "run_cli"]

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_cmd(kind, args):
    """A subprocess that runs this module with the same fastnn as this process imported."""
    return [sys.executable, "-m", "fastnn.benchmark", kind] + args


def _worker_env(threads):
    """The worker's environment: this fastnn first on the path, and the BLAS thread count set before
    NumPy loads (threadpoolctl, when installed, sets it again inside)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _run_worker(kind, args, threads):
    proc = subprocess.run(_worker_cmd(kind, args), capture_output=True, text=True, env=_worker_env(threads))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"benchmark worker {kind} {' '.join(args)} failed: {tail[-1] if tail else proc.returncode}")
    return proc.stdout


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i.get("user_api") == "blas") or "no BLAS found"


def limit_blas(n):
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(n)
    except ImportError:
        os.environ["OPENBLAS_NUM_THREADS"] = str(n)
        return None


# ============================================================================================= GEMM
SQUARES = (256, 512, 1024, 2048)
BATCHES = (32, 128, 512)


def gemm_shapes():
    out = [(f"{s}²", s, s, s, False, False) for s in SQUARES]
    for b in BATCHES:
        out += [
            (f"fwd {b}×784→512", b, 512, 784, False, False),
            (f"fwd {b}×512→256", b, 256, 512, False, False),
            (f"dW 784×512, k={b}", 784, 512, b, True, False),
            (f"dX {b}×512←256", b, 512, 256, False, True),
        ]
    return out


def _operands(m, n, k, ta, tb, dtype):
    rng = np.random.default_rng(m * 1_000_003 + n * 1009 + k)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _gemm_check(name, m, n, k, ta, tb, dtype):
    """fastnn's product against float64 NumPy before anything is timed."""
    import fastnn as fnn

    a, b = _operands(m, n, k, ta, tb, dtype)
    got = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    err = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
    if not err < (1e-4 if dtype == np.float32 else 1e-10):
        raise SystemExit(f"{name} {np.dtype(dtype).name}: wrong result (relative error {err:.2e})")


def _gemm_worker(lib, dtype, threads, samples, filt):
    """Runs in a subprocess: GFLOP/s of `lib` ("fastnn" or "numpy") for every shape, as JSON lines."""
    import fastnn as fnn

    fnn.set_num_threads(threads)
    limit = limit_blas(threads)  # noqa: F841 (kept alive)
    for name, m, n, k, ta, tb in gemm_shapes():
        if filt and filt not in name:
            continue
        a, b = _operands(m, n, k, ta, tb, dtype)
        out = np.empty((m, n), dtype)
        if lib == "fastnn":
            def fn():
                fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=out, check_finite=False)
        else:
            A, B = (a.T if ta else a), (b.T if tb else b)

            def fn():
                np.matmul(A, B, out=out)
        fn()
        print(json.dumps([name, _rate(fn, 2.0 * m * n * k, samples)]), flush=True)


def gemm_parser(prog=None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of the two libraries")
    ap.add_argument("--samples", type=int, default=5, help="timed samples of ~20 ms per shape and round")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 3 samples, float32 only")
    ap.add_argument("--filter", default="", help="only shapes whose name contains this text")
    ap.add_argument("--worker", choices=("fastnn", "numpy"), help=argparse.SUPPRESS)
    return ap


def run_gemm(threads=(1, 2), dtypes=("float32", "float64"), rounds=5, samples=5, filt="", out=print):
    """The GEMM table (printed through `out`); returns its rows as dicts."""
    import fastnn as fnn

    info = fnn.build_info()
    out(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']} | numpy {np.__version__}: {blas_info()}")
    out(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}\n")
    out("| dtype | threads | shape (M×N×K) | fastnn GFLOP/s | NumPy GFLOP/s | fastnn / NumPy |")
    out("|---|---|---|---:|---:|---:|")
    rows = []
    shapes = [s for s in gemm_shapes() if not filt or filt in s[0]]
    if not shapes:
        raise ValueError(f"--filter {filt!r}: no GEMM shape matches")
    for dt in dtypes:
        for name, m, n, k, ta, tb in shapes:
            _gemm_check(name, m, n, k, ta, tb, np.dtype(dt))
        for th in threads:
            runs = {"fastnn": [], "numpy": []}
            for _ in range(rounds):
                for lib in runs:
                    text = _run_worker("gemm", ["--worker", lib, "--dtypes", dt, "--threads", str(th),
                                                "--samples", str(samples), "--filter", filt], th)
                    runs[lib].append(dict(json.loads(line) for line in text.splitlines() if line.startswith("[")))
            for name, m, n, k, ta, tb in shapes:
                gf = statistics.median(r[name] for r in runs["fastnn"])
                gn = statistics.median(r[name] for r in runs["numpy"])
                rows.append({"dtype": dt, "threads": th, "shape": name, "m": m, "n": n, "k": k,
                             "fastnn": gf, "numpy": gn})
                out(f"| {dt} | {th} | {name} ({m}×{n}×{k}) | {gf:.1f} | {gn:.1f} | {gf / gn:.2f} |")
    return rows


def gemm_main(argv=None, prog=None):
    a = gemm_parser(prog).parse_args(argv)
    if a.worker:
        return _gemm_worker(a.worker, np.dtype(a.dtypes), int(a.threads), a.samples, a.filter)
    if a.quick:
        a.rounds, a.samples, a.dtypes = 3, 3, "float32"
    return run_gemm(threads=[int(t) for t in a.threads.split(",")], dtypes=a.dtypes.split(","), rounds=a.rounds,
                    samples=a.samples, filt=a.filter, out=lambda s: print(s, flush=True))


# ============================================================================================= training
LAYERS = (784, 512, 256, 10)
N_SAMPLES = 60000
LR, MOMENTUM = 0.01, 0.9
_W = [a * b for a, b in zip(LAYERS[:-1], LAYERS[1:])]
EXACT_FLOP_PER_SAMPLE = 2 * sum(_W) * 2 + 2 * sum(_W[1:])  # fwd + dW for all layers, dX for all but the first
# fastnn-bf16: compile(precision="bfloat16"); fastnn-fixed: every step on the thread count asked for
# (set_adaptive_threads(False)), where plain fastnn lets its governor run fewer while that is faster
LIBS = ("fastnn", "fastnn-fixed", "fastnn-bf16", "torch", "numpy", "sklearn")


def make_data(n=N_SAMPLES):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, LAYERS[0]), dtype=np.float32)
    # a learnable target: the class of a fixed random linear map, so that the loss check means something;
    # on one BLAS thread, so that no OpenBLAS worker is left spinning on a core while the timing starts
    W = rng.standard_normal((LAYERS[0], LAYERS[-1]), dtype=np.float32)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return X, np.argmax(X @ W, axis=1)
    with threadpool_limits(1, "blas"):
        return X, np.argmax(X @ W, axis=1)


def epochs_fastnn(X, y, batch, epochs, threads, precision="float32", adaptive=True):
    import fastnn as fnn

    fnn.set_num_threads(threads)
    fnn.set_adaptive_threads(adaptive)
    model = fnn.Sequential([fnn.Dense(512, activation="relu"), fnn.Dense(256, activation="relu"), fnn.Dense(10)],
                           input_dim=LAYERS[0], dtype="float32", seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=LR, momentum=MOMENTUM), precision=precision)
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
    n = len(X)

    def loss_on_head():
        with torch.inference_mode():
            return float(F.cross_entropy(model(Xt[:4096]), yt[:4096]))

    before = loss_on_head()
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for j in range(0, n, batch):
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
    n = len(X)
    before = net.loss(X[:4096], y[:4096])
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for j in range(0, n, batch):
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


_EPOCHS = {"fastnn": epochs_fastnn,
           "fastnn-bf16": lambda X, y, batch, epochs, threads: epochs_fastnn(X, y, batch, epochs, threads, "bfloat16"),
           "fastnn-fixed": lambda X, y, batch, epochs, threads: epochs_fastnn(X, y, batch, epochs, threads,
                                                                             adaptive=False),
           "torch": epochs_torch, "numpy": epochs_numpy, "sklearn": epochs_sklearn}


def _train_worker(lib, batch, epochs, threads, n):
    X, y = make_data(n)
    limit = limit_blas(threads)  # noqa: F841 (kept alive)
    times, before, after = _EPOCHS[lib](X, y, batch, epochs, threads)
    if before is not None and not after < before:
        raise SystemExit(f"{lib}: the loss did not decrease ({before:.4f} -> {after:.4f})")
    print(json.dumps({"times": times}), flush=True)


def peak_per_core():
    """The FP32 peak in GFLOP/s per core: the FMA throughput fma_probe.c measures (independent FMA
    chains on the widest vectors the CPU runs, timed in the probe's own CPU time so that other
    processes do not lower it), or None without a C compiler.  It is a measurement,
    not a clock times an assumed number of FMA pipes: that number differs between cores (two 512-bit
    pipes on many Xeons, one 512-bit or two 256-bit on AMD's Zen 4, two 256-bit on Zen 3)."""
    from .datasets import data_path

    cc = shutil.which("cc") or shutil.which("gcc")
    src = data_path("fma_probe.c")
    if not cc or not os.path.exists(src):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_probe")
        try:
            subprocess.run([cc, "-O2", src, "-o", exe], check=True, capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
    kv = dict(item.split("=") for item in out.split())
    return float(kv["gflops"]) if float(kv["gflops"]) > 0 else None


def kernel_ceiling():
    """GFLOP/s per core of fastnn's float32 micro-kernel with its operands in L1, best of its tiles."""
    from . import _core

    return max(_core._ukr_rate(tile, 256, 0.3) for tile in (0, 1))


def available(lib):
    try:
        __import__(lib.split("-")[0])
        return True
    except ImportError:
        return False


def train_parser(prog=None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the libraries")
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per library and round")
    ap.add_argument("--samples", type=int, default=N_SAMPLES, help="training rows (default 60000)")
    ap.add_argument("--sklearn-batches", default="128", help="scikit-learn is slow: only these batch sizes")
    ap.add_argument("--contention", action="store_true",
                    help="run the table again beside a CPU-bound process pinned to one core")
    ap.add_argument("--mixed", action="store_true",
                    help="fastnn's products of the step alone and interleaved with NumPy's in one process")
    ap.add_argument("--phases", action="store_true",
                    help="where one step's time goes: each of its kernels timed alone against the step")
    ap.add_argument("--only-modes", action="store_true", help="skip the quiet table (with the options above)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    return ap


def run_train(threads=(1, 2), batches=(32, 128, 512), libs=LIBS, rounds=3, epochs=1, n=N_SAMPLES,
              sklearn_batches=(128,), out=print):
    """The training table (printed through `out`); returns its rows as dicts."""
    import fastnn as fnn

    for lib in libs:
        if lib not in LIBS:
            raise ValueError(f"--libs: unknown library {lib!r}; expected some of {', '.join(LIBS)}")
    per_core = peak_per_core()
    ceiling = kernel_ceiling()
    libs = [lib for lib in libs if available(lib)]
    info = fnn.build_info()
    flop = EXACT_FLOP_PER_SAMPLE * n
    out(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']}; peers: "
        + (", ".join(lib for lib in libs if lib != "fastnn") or "none installed"))
    if per_core:
        out(f"FP32 peak {per_core:.1f} GFLOP/s per core: the FMA throughput measured by fma_probe.c "
            f"(independent FMA chains on the widest vectors)")
        out(f"micro-kernel ceiling {ceiling:.1f} GFLOP/s per core with its operands in L1 "
            f"({100 * ceiling / per_core:.0f}% of that peak): no blocked GEMM on this core goes faster")
    out(f"model {'-'.join(map(str, LAYERS))} ReLU, SGD momentum, {n:,} samples; exact GEMM work "
        f"{flop / 1e9:.1f} GFLOP per epoch\n")
    peers = [lib for lib in libs if not lib.startswith("fastnn")]
    bf16 = "fastnn" in libs and "fastnn-bf16" in libs
    fixed = "fastnn" in libs and "fastnn-fixed" in libs
    head = "| threads | batch | " + "".join(f"{lib} s/epoch | " for lib in libs) + \
        "".join(f"fastnn / {lib} | " for lib in peers) + ("bf16 / float32 | " if bf16 else "") + \
        ("governed / fixed | " if fixed else "") + \
        "fastnn % of peak (of kernel ceiling) | capacity |"
    out(head)
    out("|" + "---|" * (head.count("|") - 1))
    rows = []
    for th in threads:
        for batch in batches:
            runs = {lib: [] for lib in libs if (lib != "sklearn" or batch in sklearn_batches)
                    and (lib != "fastnn-fixed" or th > 1)}  # one thread is never governed
            caps = [capacity(th)] if th > 1 else []
            for _ in range(rounds):
                for lib in runs:
                    text = _run_worker("train", ["--worker", f"{lib}:{batch}:{th}", "--epochs", str(epochs),
                                                 "--samples", str(n)], th)
                    runs[lib] += json.loads(text.strip().splitlines()[-1])["times"]
            med = {lib: statistics.median(ts) for lib, ts in runs.items()}
            cells = [f"{med[lib]:.2f}" if lib in med else "–" for lib in libs]
            ratios = [f"{med['fastnn'] / med[lib]:.2f}" if lib in med and "fastnn" in med else "–" for lib in peers]
            if bf16:
                ratios.append(f"{med['fastnn-bf16'] / med['fastnn']:.2f}")
            if fixed:
                ratios.append(f"{med['fastnn'] / med['fastnn-fixed']:.2f}" if "fastnn-fixed" in med else "–")
            frac = "–"
            if per_core and "fastnn" in med:
                achieved = flop / med["fastnn"] / 1e9
                frac = (f"{100 * achieved / (per_core * th):.0f}% ({100 * achieved / (ceiling * th):.0f}%), "
                        f"{achieved:.0f} GFLOP/s")
            if th > 1:
                caps.append(capacity(th))
            rows.append({"threads": th, "batch": batch, "seconds": med, "samples": n, "capacity": caps})
            cap = "–" if not caps else f"{min(caps):.2f}" + (" (noisy)" if min(caps) < 0.9 * th else "")
            out(f"| {th} | {batch} | " + "".join(c + " | " for c in cells + ratios) + f"{frac} | {cap} |")
    out("\nfastnn / peer: fastnn's epoch time over the peer's (below 1: fastnn is faster). capacity: the "
        "cores' worth of FMA throughput the threads got just before and after the row (the lower), "
        "\"noisy\" below 0.9 x threads: the host or a neighbour took a share, so the row's ratios mean little.")
    if fixed:
        out("governed / fixed: fastnn's epoch time over fastnn-fixed's, whose steps all run on the thread count "
            "asked for (set_adaptive_threads(False)); fastnn's governor runs fewer while that is measured faster.")
    if bf16:
        out(f"bf16 / float32: compile(precision='bfloat16') over float32 epoch time; bfloat16 path "
            f"{info['bf16']!r} (\"software\": rounded to bfloat16, then the float32 kernels).")
    return rows


def train_main(argv=None, prog=None):
    a = train_parser(prog).parse_args(argv)
    if a.worker:
        kind, *rest = a.worker.split(":")
        if kind in _CORE_WORKERS:
            return _CORE_WORKERS[kind](*map(int, rest), a.samples)
        lib, batch, threads = a.worker.split(":")
        return _train_worker(lib, int(batch), a.epochs, int(threads), a.samples)
    say = lambda s: print(s, flush=True)  # noqa: E731
    threads, batches = [int(t) for t in a.threads.split(",")], [int(b) for b in a.batches.split(",")]
    rows = []
    if not a.only_modes:
        rows = run_train(threads=threads, batches=batches, libs=a.libs.split(","), rounds=a.rounds, epochs=a.epochs,
                         n=a.samples, sklearn_batches=[int(b) for b in a.sklearn_batches.split(",") if b], out=say)
    if a.contention:
        say("\n## Beside a busy neighbour: a CPU-bound process pinned to core 0 for the whole table\n")
        with busy_neighbour():
            run_train(threads=threads, batches=batches, libs=a.libs.split(","), rounds=a.rounds, epochs=a.epochs,
                      n=a.samples, sklearn_batches=(), out=say)
    if a.mixed:
        say("\n## Mixed: NumPy's BLAS and fastnn in one process\n")
        run_mixed(threads=[t for t in threads if t > 1] or threads, batches=batches, rounds=a.rounds, out=say)
    if a.phases:
        say("\n## Phases of one training step\n")
        run_phases(threads=threads, batches=batches, n=a.samples, out=say)
    return rows


# ============================================================================ sharing the cores
def capacity(threads, seconds=0.1):
    """How many cores' worth of FMA throughput `threads` concurrent threads get right now: the summed rate
    of the micro-kernel (operands in L1) over `threads` threads, over its rate on one.  A host that
    time-slices the vCPUs, or a neighbour, shows as less than `threads`."""
    import threading

    from . import _core

    one = _core._ukr_rate(0, 256, seconds)
    if threads <= 1 or one <= 0:
        return 1.0
    rates = [0.0] * threads

    def run(i):
        rates[i] = _core._ukr_rate(0, 256, seconds)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(rates) / one


class busy_neighbour:
    """A CPU-bound process (a Python busy loop) pinned to core 0 for the life of the `with` block."""

    def __enter__(self):
        code = "import os\ntry:\n    os.sched_setaffinity(0, {0})\nexcept (AttributeError, OSError):\n    pass\n" \
               "while True:\n    pass\n"
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _rate(fn, flop, samples=5, min_s=0.02):
    """Median GFLOP/s of fn() over `samples` samples of at least min_s seconds each."""
    rates = []
    for _ in range(samples):
        t0, reps = time.perf_counter(), 0
        while True:
            fn()
            reps += 1
            dt = time.perf_counter() - t0
            if dt > min_s:
                break
        rates.append(flop * reps / dt / 1e9)
    return statistics.median(rates)


def _step_products(batch):
    """The products of one training step of the benchmark MLP: (name, m, n, k, trans_a, trans_b)."""
    out = []
    for i, (fan_in, fan_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        out.append((f"fwd {batch}×{fan_in}→{fan_out}", batch, fan_out, fan_in, False, False))
    for i, (fan_in, fan_out) in reversed(list(enumerate(zip(LAYERS[:-1], LAYERS[1:])))):
        out.append((f"dW {fan_in}×{fan_out}, k={batch}", fan_in, fan_out, batch, True, False))
        if i > 0:
            out.append((f"dX {batch}×{fan_in}←{fan_out}", batch, fan_in, fan_out, False, True))
    return out


def _mixed_worker(threads, batch, rounds, n):
    """In one process with fastnn and NumPy both at `threads` threads: each product of the step by fastnn
    alone, before NumPy has run a product in the process (its BLAS threads, once started, spin after
    every call and would take cores from fastnn's "alone"); then each product alternating with
    numpy.matmul of the same shape (fastnn's calls timed alone), and NumPy's alone.  With threadpoolctl,
    the alternation again with NumPy's BLAS limited to one thread for the whole loop (README, Threads):
    fastnn's rate then, and the loop's time (NumPy's product and fastnn's) over the unlimited loop's."""
    import fastnn as fnn

    fnn.set_num_threads(threads)
    limit = limit_blas(threads)  # noqa: F841 (kept alive)
    cases = []
    for name, m, nn, k, ta, tb in _step_products(batch):
        a, b = _operands(m, nn, k, ta, tb, np.float32)
        out, out_np = np.empty((m, nn), np.float32), np.empty((m, nn), np.float32)

        def fast(a=a, b=b, ta=ta, tb=tb, out=out):
            fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=out, check_finite=False)

        def numpy(A=(a.T if ta else a), B=(b.T if tb else b), out_np=out_np):
            np.matmul(A, B, out=out_np)

        fast()
        cases.append((name, 2.0 * m * nn * k, fast, numpy))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None

    def alternate(numpy, fast):
        """fastnn's seconds and the loop's seconds per pair, alternating with NumPy for 0.1 s of fastnn."""
        spent, reps, t_loop = 0.0, 0, time.perf_counter()
        while spent < 0.1:
            numpy()
            t0 = time.perf_counter()
            fast()
            spent += time.perf_counter() - t0
            reps += 1
        return spent / reps, (time.perf_counter() - t_loop) / reps

    alone = {name: [_rate(fast, flop) for _ in range(rounds)] for name, flop, fast, _ in cases}
    for name, flop, fast, numpy in cases:
        numpy()
        mixed, np_alone, limited, loop_ratio = [], [], [], []
        for _ in range(rounds):
            np_alone.append(_rate(numpy, flop))
            t_fast, t_pair = alternate(numpy, fast)
            mixed.append(flop / t_fast / 1e9)
            if threadpool_limits is not None:
                time.sleep(0.2)  # OpenBLAS's threads stop spinning (about 2**28 cycles after a call)
                with threadpool_limits(1, "blas"):
                    t_fast1, t_pair1 = alternate(numpy, fast)
                limited.append(flop / t_fast1 / 1e9)
                loop_ratio.append(t_pair1 / t_pair)
        print(json.dumps([name, statistics.median(alone[name]), statistics.median(mixed),
                          statistics.median(np_alone), statistics.median(limited) if limited else None,
                          statistics.median(loop_ratio) if loop_ratio else None]), flush=True)


def run_mixed(threads=(2,), batches=(32, 128, 512), rounds=3, out=print):
    """Table: fastnn's product rate alone and right after a NumPy product in the same process."""
    out("fastnn's products of one step, alone and each right after numpy.matmul of the same shape (whose "
        "BLAS threads keep spinning for a while after it returns); GFLOP/s, medians over rounds.  The last "
        "columns (threadpoolctl installed) alternate the same way with NumPy's BLAS limited to one thread for "
        "the whole loop: fastnn's rate, and the loop's time (both products) over the unlimited loop's.\n")
    out("| threads | product | fastnn alone | fastnn after NumPy | mixed / alone | NumPy alone "
        "| after NumPy on 1 BLAS thread | limited / alone | loop time, limited / not |")
    out("|---|---|---|---|---|---|---|---|---|")
    for th in threads:
        for batch in batches:
            text = _run_worker("train", ["--worker", f"mixed:{th}:{batch}:{rounds}"], th)
            for line in text.strip().splitlines():
                name, alone, mixed, np_alone, limited, loop = json.loads(line)
                rest = (f"{limited:.1f} | {limited / alone:.2f} | {loop:.2f}" if limited is not None
                        else "– | – | –")
                out(f"| {th} | {name} | {alone:.1f} | {mixed:.1f} | {mixed / alone:.2f} | {np_alone:.1f} | {rest} |")


def _phases_worker(threads, batch, n):
    """Each kernel of one step timed alone at the step's shapes, then the step itself (an epoch of fit)."""
    import fastnn as fnn

    fnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X, y = make_data(n)
    rows = []

    def timed(name, fn, reps=None):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.02:  # warm: the first calls start the threads, touch the pages
            fn()
        t0, k = time.perf_counter(), 0
        while True:
            fn()
            k += 1
            if time.perf_counter() - t0 > 0.05:
                break
        rows.append((name, (time.perf_counter() - t0) / k))

    idx = rng.permutation(n)[:batch]
    xb = np.empty((batch, LAYERS[0]), np.float32)
    timed("gather the batch's rows", lambda: np.take(X, idx, axis=0, out=xb))
    acts = [xb] + [rng.standard_normal((batch, w), dtype=np.float32) for w in LAYERS[1:]]
    for name, m, nn, k, ta, tb in _step_products(batch):
        a, b = _operands(m, nn, k, ta, tb, np.float32)
        c = np.empty((m, nn), np.float32)
        timed(name, lambda a=a, b=b, c=c, ta=ta, tb=tb: fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, out=c,
                                                                      check_finite=False))
    for w in LAYERS[1:-1]:
        h = acts[LAYERS.index(w)]
        timed(f"relu {batch}×{w}, forward + backward",
              lambda h=h: (fnn.ops.relu(h, check_finite=False), fnn.ops.activation_grad("relu", h, h,
                                                                                         check_finite=False)))
    logits, labels = acts[-1], y[:batch]
    timed(f"softmax cross-entropy {batch}×{LAYERS[-1]} and its gradient",
          lambda: fnn.ops.cross_entropy(logits, labels, check_finite=False))
    params = sum(a * b + b for a, b in zip(LAYERS[:-1], LAYERS[1:]))
    w, v, g = (np.zeros(params, np.float32) for _ in range(3))

    def update():  # the bytes an SGD-momentum update moves, at NumPy's speed (an upper bound of fastnn's)
        np.multiply(v, MOMENTUM, out=v)
        np.subtract(v, LR * g, out=v)
        np.add(w, v, out=w)
    timed(f"SGD momentum update of {params:,} parameters (NumPy, an upper bound)", update)
    times, _, _ = epochs_fastnn(X, y, batch, 1, threads)
    print(json.dumps({"kernels": rows, "step": times[0] / -(-n // batch)}), flush=True)


def run_phases(threads=(1, 2), batches=(32, 128, 512), n=N_SAMPLES, out=print):
    """Table per thread count and batch: each kernel of a step timed alone, its share of the measured step,
    and what is left (synchronisation, the fused epilogues, Python once per chunk)."""
    out("Each kernel of a step run alone through fnn.ops at the step's shapes and thread count, against the "
        "step as fit runs it (an epoch's time over its steps). The rest is what the step does between and "
        "around its kernels: waits at barriers, bias and activation epilogues, the loop's own work.\n")
    for th in threads:
        for batch in batches:
            cap = capacity(th)
            res = json.loads(_run_worker("train", ["--worker", f"phases:{th}:{batch}", "--samples", str(n)],
                                         th).strip().splitlines()[-1])
            step = res["step"]
            out(f"threads {th}, batch {batch}: step {1e6 * step:.0f} µs (capacity {cap:.2f} cores)\n")
            out("| phase | µs | % of step |")
            out("|---|---|---|")
            total = 0.0
            for name, t in res["kernels"]:
                bound = "upper bound" in name
                total += 0.0 if bound else t
                out(f"| {name}{' (not in the sum)' if bound else ''} | {1e6 * t:.1f} | {100 * t / step:.0f}% |")
            out(f"| the rest: the update, epilogues, waits, the loop | {1e6 * (step - total):.1f} | "
                f"{100 * (step - total) / step:.0f}% |\n")


_CORE_WORKERS = {"mixed": _mixed_worker, "phases": _phases_worker}


# ============================================================================================= plot
def plot(gemm_rows, train_rows, path):
    """Draw the tables into `path` (PNG): GEMM GFLOP/s of fastnn and NumPy per shape, and training
    samples/s per library.  Needs matplotlib; returns the figure."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting the benchmarks needs matplotlib: pip install matplotlib") from None
    panels = [p for p in (("gemm", gemm_rows), ("train", train_rows)) if p[1]]
    if not panels:
        raise ValueError("plot: no results to draw")
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 4.5 * len(panels)), squeeze=False)
    for ax, (kind, rows) in zip(axes[:, 0], panels):
        if kind == "gemm":
            labels = [f"{r['shape']}\n{r['dtype']}, {r['threads']}t" for r in rows]
            series = {"fastnn": [r["fastnn"] for r in rows], "NumPy": [r["numpy"] for r in rows]}
            ax.set_ylabel("GFLOP/s (higher is better)")
            ax.set_title("GEMM: fastnn.ops.gemm vs numpy.matmul")
        else:
            libs = sorted({lib for r in rows for lib in r["seconds"]}, key=lambda l: LIBS.index(l))
            labels = [f"batch {r['batch']}, {r['threads']} thread(s)" for r in rows]
            series = {lib: [r["samples"] / r["seconds"][lib] if lib in r["seconds"] else 0.0 for r in rows]
                      for lib in libs}
            ax.set_ylabel("training samples/s (higher is better)")
            ax.set_title(f"Training epoch, MLP {'-'.join(map(str, LAYERS))}, SGD momentum")
        x = np.arange(len(labels))
        width = 0.8 / len(series)
        for i, (name, values) in enumerate(series.items()):
            ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center",
                           fontsize=7 if len(labels) > 8 else 9)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


# ============================================================================================= CLI
def add_cli_arguments(p):
    """Options of `fastnn bench`."""
    p.add_argument("--only", choices=("gemm", "train"), help="run one of the two benchmarks")
    p.add_argument("--quick", action="store_true",
                   help="a short run (about a minute): float32 GEMM, training at batch 128, 1 round")
    p.add_argument("--threads", default=None, metavar="LIST", help="thread counts, e.g. 1,2 (default 1,2)")
    p.add_argument("--rounds", type=int, default=None, help="alternations of the libraries")
    p.add_argument("--filter", default="", metavar="TEXT", help="GEMM: only shapes whose name contains TEXT")
    p.add_argument("--batches", default=None, metavar="LIST", help="training: batch sizes (default 32,128,512)")
    p.add_argument("--libs", default=",".join(LIBS), metavar="LIST",
                   help="training: libraries to compare (default: all installed of " + ",".join(LIBS) + ")")
    p.add_argument("--samples", type=int, default=N_SAMPLES, metavar="N", help="training rows (default 60000)")


def _int_list(text, what):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what}: expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{what}: every value must be >= 1, got {text!r}")
    return values


def cli_options(args):
    """The options of `fastnn bench` checked and filled in (a dict for run_cli); ValueError naming the
    option that is wrong."""
    threads = _int_list(args.threads or "1,2", "--threads")
    batches = _int_list(args.batches or ("128" if args.quick else "32,128,512"), "--batches")
    if args.rounds is not None and args.rounds < 1:
        raise ValueError(f"--rounds: must be >= 1, got {args.rounds}")
    if args.samples < 1:
        raise ValueError(f"--samples: must be >= 1, got {args.samples}")
    libs = args.libs.split(",")
    bad = [lib for lib in libs if lib not in LIBS]
    if bad:
        raise ValueError(f"--libs: unknown {', '.join(bad)}; expected some of {', '.join(LIBS)}")
    if args.filter and not any(args.filter in s[0] for s in gemm_shapes()):
        raise ValueError(f"--filter {args.filter!r}: no GEMM shape matches")
    return {"only": args.only, "quick": args.quick, "threads": threads, "batches": batches, "rounds": args.rounds,
            "samples": args.samples, "libs": libs, "filter": args.filter, "plot": getattr(args, "plot", None)}


def run_cli(o):
    """`fastnn bench`: the two tables, then the plot when asked; `o` from cli_options."""
    say = lambda s: print(s, flush=True)  # noqa: E731
    gemm_rows = train_rows = []
    if o["only"] in (None, "gemm"):
        say("## GEMM: fastnn vs NumPy\n")
        gemm_rows = run_gemm(threads=o["threads"], dtypes=("float32",) if o["quick"] else ("float32", "float64"),
                             rounds=o["rounds"] or (3 if o["quick"] else 5), samples=3 if o["quick"] else 5,
                             filt=o["filter"], out=say)
        say("")
    if o["only"] in (None, "train"):
        say("## Training epoch: fastnn vs " + ", ".join(lib for lib in o["libs"] if lib != "fastnn") + "\n")
        train_rows = run_train(threads=o["threads"], batches=o["batches"], libs=o["libs"],
                               rounds=o["rounds"] or (1 if o["quick"] else 3), n=o["samples"], out=say)
    if o["plot"]:
        plot(gemm_rows, train_rows, o["plot"])
        say(f"\nplot written to {o['plot']}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("gemm", "train"):
        print("usage: python -m fastnn.benchmark {gemm,train} [options]  (or: fastnn bench)", file=sys.stderr)
        return 2
    fn = gemm_main if argv[0] == "gemm" else train_main
    fn(argv[1:], prog=f"python -m fastnn.benchmark {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
