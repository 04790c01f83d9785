"""The `fastnn` command (also `python -m fastnn`): info, train, predict, demo, bench, export, import.

Exit status: 0 success; 1 a data or runtime error (a file that cannot be read or parsed, a missing
column, a model file that is not one, a failed training); 2 a usage error (an unknown option, a bad
option value, a missing argument); 130 interrupted.  Every error is one line on stderr,
"fastnn: error: ..." (set FASTNN_DEBUG=1 for the traceback).

Data files (read by fastnn/tabular.py): CSV with a header row (also .csv.gz), or NumPy .npz / .npy.
In a CSV, `--target COL` names the label column and every other column is a feature.  In an .npz, the
features are the array "X" (or the only other array) and `--target KEY` names the labels (default
"y").  A .npy holds the features only.  `--labels FILE` gives the labels as a separate .npy or text
file (one per line, an optional header line).
"""
import argparse
import csv
import json
import os
import sys
import time

from .tabular import DataError, check_exists, encode_labels, file_kind, read_data

__all__ = ["main"]


class CLIError(Exception):
    """An error to report as one line, with the exit status `code`."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: "fastnn train: error: ... (see 'fastnn train --help')"."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind, low, high=None, what=None):
    """An argparse type: text -> kind (int or float) within [low, high) (high None = no bound)."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if v < low or (high is not None and not v < high):
            raise argparse.ArgumentTypeError(f"expected {what or f'a number >= {low}'}, got {v}")
        return v
    return parse


_positive_int = _number(int, 1)
_threads = _number(int, 1, 65537, "a whole number from 1 to 65536")  # fnn.set_num_threads's range
_seed = _number(int, 0, 2 ** 64, "a whole number in [0, 2**64)")
_nonneg_int = _number(int, 0)
_fraction = _number(float, 0.0, 1.0, "a number in [0, 1)")


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0.0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def _positive_float(text):
    v = _nonneg_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def _layer_sizes(text):
    if text.strip() in ("", "none", "0"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths separated by commas such as 512,256, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"every width must be >= 1, got {text!r}")
    return sizes


def _split(n, fraction, seed):
    """(train indices, validation indices): a shuffled split of `fraction` of the rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(fraction * n))
    if fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise CLIError(f"--val-split {fraction}: {n} rows leave an empty training or validation set")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ---------------------------------------------------------------------------------------- commands

def cmd_info(args):
    import fastnn as fnn

    info = fnn.build_info()
    print(f"fastnn {info['version']}")
    for key in ("simd", "simd_available", "openmp", "num_threads", "compiler"):
        value = info.get(key)
        if isinstance(value, (list, tuple)):
            value = ", ".join(value)
        print(f"{key + ':':16}{value}")
    import numpy as np
    print(f"{'numpy:':16}{np.__version__}")
    print(f"{'python:':16}{sys.version.split()[0]}")
    return 0


def _build_model(n_in, n_out, args, task, seed, dtype):
    import fastnn as fnn

    layers = []
    for units in args.layers:
        layers.append(fnn.Dense(units, activation=args.activation, l2=args.l2))
        if args.dropout > 0:
            layers.append(fnn.Dropout(args.dropout))
    layers.append(fnn.Dense(n_out, l2=args.l2))
    model = fnn.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed)
    if args.optimizer == "adam":
        opt = fnn.Adam(lr=args.lr if args.lr is not None else 1e-3)
    else:
        opt = fnn.SGD(lr=args.lr if args.lr is not None else 0.01, momentum=0.9, nesterov=True)
    loss = "cross_entropy" if task == "classification" else "mse"
    model.compile(loss=loss, optimizer=opt, metrics=["accuracy"] if task == "classification" else [])
    return model


def _fold_scaling(model, mean, scale):
    """Put the input standardisation (x - mean) / scale into the first Dense layer, so that the saved
    model takes the raw features: W' = W / scale (per row), b' = b - (mean / scale) @ W."""
    import numpy as np

    weights = model.get_weights()
    W = weights[0].astype(np.float64)
    b = weights[1].astype(np.float64)
    weights[0] = W / scale[:, None]
    weights[1] = b - (mean / scale) @ W
    model.set_weights(weights)


def _check_scaling(path, names, X, mean, scale, dtype):
    """CLIError naming the first column whose standardisation overflows (finite values near 1e300
    have an infinite variance: every standardised value became 0) or whose values, scaled, do not fit
    the model's dtype; the saved model would refuse its own data."""
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        scaled = ((X - mean) / scale).astype(dtype)
        ok = np.isfinite(mean) & np.isfinite(scale) & np.all(np.isfinite(scaled), axis=0)
    if not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        name = repr(names[j]) if names else str(j)
        raise CLIError(f"{path}: column {name}: values from {X[:, j].min():.6g} to {X[:, j].max():.6g} overflow "
                       f"{dtype} once standardised (rescale that column first)")


def _summary_lines(task, model, Xv, yv):
    import numpy as np

    import fastnn as fnn

    out = model.predict(Xv).astype(np.float64)
    if task == "classification":
        pred = np.argmax(out, axis=1)
        lines = [f"accuracy {fnn.metrics.accuracy(yv, pred):.4f}",
                 f"macro F1 {fnn.metrics.f1(yv, pred, average='macro'):.4f}"]
        loss = float(np.mean(-np.log(np.maximum(out[np.arange(len(yv)), yv], 1e-300))))
        return [f"loss {loss:.4f}"] + lines
    yv2 = yv.reshape(len(yv), -1)
    out = out.reshape(len(yv), -1)
    return [f"MSE {fnn.metrics.mse(yv2, out):.4g}", f"MAE {fnn.metrics.mae(yv2, out):.4g}",
            f"R2 {fnn.metrics.r2(yv2, out):.4f}"]


def cmd_train(args):
    import numpy as np

    import fastnn as fnn

    if args.target is not None and args.labels is not None:
        raise CLIError("give either --target or --labels, not both", 2)
    if args.threads:
        fnn.set_num_threads(args.threads)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise CLIError(f"--out {args.out}: the directory {out_dir} does not exist")
    X, y, names, tname = read_data(args.data, target=args.target, labels=args.labels)
    task, target, classes, why = encode_labels(y, args.task, tname)
    seed = args.seed
    n = X.shape[0]
    tr, va = _split(n, args.val_split, seed)
    Xtr, ytr = X[tr], target[tr]
    Xva, yva = (X[va], target[va]) if va.size else (None, None)
    if args.scale:
        with np.errstate(over="ignore", invalid="ignore"):  # refused by _check_scaling, naming the column
            mean = Xtr.mean(axis=0)
            scale = Xtr.std(axis=0)
        scale[scale == 0] = 1.0
    else:
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    dt = np.dtype(args.dtype)
    _check_scaling(args.data, names, X, mean, scale, dt)
    Xtr_s = ((Xtr - mean) / scale).astype(dt)
    Xva_s = ((Xva - mean) / scale).astype(dt) if Xva is not None else None
    n_out = len(classes) if task == "classification" else (1 if target.ndim == 1 else target.shape[1])
    model = _build_model(X.shape[1], n_out, args, task, seed, args.dtype)
    quiet = args.quiet
    if not quiet:
        other = "regression" if task == "classification" else "classification"
        print(f"task: {task}, because {why}" + ("" if args.task != "auto" else f"; --task {other} overrides"))
        what = f"{len(classes)} classes" if task == "classification" else "regression"
        print(f"{args.data}: {n} rows, {X.shape[1]} features, {what}; training on {len(tr)}, "
              f"validating on {len(va)}")
        print(f"model {X.shape[1]}-{'-'.join(map(str, args.layers + [n_out]))} {args.activation}, "
              f"{model.count_params():,} parameters, {args.optimizer}, {fnn.get_num_threads()} thread(s)")
    callbacks = []
    if args.patience and Xva is not None:
        callbacks.append(fnn.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True))
    verbose = 0 if quiet else (1 if sys.stderr.isatty() else 2)
    t0 = time.perf_counter()
    history = model.fit(Xtr_s, ytr, epochs=args.epochs, batch_size=args.batch_size, callbacks=callbacks,
                        validation_data=(Xva_s, yva) if Xva is not None else None, verbose=verbose)
    took = time.perf_counter() - t0
    epochs_run = len(history.epoch)
    train_time = sum(history.history.get("time", [0.0]))
    rate = len(tr) * epochs_run / train_time if train_time > 0 else float("inf")
    if not quiet:
        stop = ""
        if callbacks and callbacks[0].stopped_epoch > 0:
            stop = f", stopped early; weights of epoch {callbacks[0].best_epoch + 1}"
        print(f"trained {epochs_run} epoch(s) in {took:.2f}s ({rate:,.0f} samples/s){stop}")
        if Xva is not None:
            print("validation: " + ", ".join(_summary_lines(task, model, Xva_s, yva)))
    if args.scale:
        _fold_scaling(model, mean, scale)
    save_model(model, args.out, {"task": task, "classes": classes, "features": names, "target": tname})
    if not quiet:
        print(f"saved {args.out}")
    return 0


_CLI_META = "fastnn_cli"


def save_model(model, path, extra):
    """`model.save` with one more metadata key, "fastnn_cli": JSON text of `extra` (task, class
    labels, column names), which `fastnn.load` keeps as `model.metadata` and the C API ignores."""
    try:
        model.save(path, extra_metadata={_CLI_META: json.dumps(extra, separators=(",", ":"), ensure_ascii=False)})
    except OSError as e:
        raise CLIError(f"--out {path}: cannot write ({e.strerror or e})") from None


def load_model(path):
    """(model, extra): `fastnn.load(path)` and its "fastnn_cli" metadata ({} for a file written by
    model.save)."""
    import fastnn as fnn

    check_exists(path, "model")
    try:
        model = fnn.load(path)
    except fnn.ModelFormatError as e:
        raise CLIError(str(e)) from None
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror or e})") from None
    text = model.metadata.get(_CLI_META)
    try:
        extra = json.loads(text) if text else {}
        if not isinstance(extra, dict):
            raise ValueError("not an object")
        _check_cli_meta(extra, model)
    except ValueError as e:
        raise CLIError(f"{path}: the {_CLI_META} metadata is not valid ({e})") from None
    return model, extra


def _check_cli_meta(extra, model):
    """ValueError naming the first key of the command's metadata that does not fit `model`: it comes
    from a file, and is checked as strictly as the file's own architecture."""
    def names(key, count, what):
        v = extra[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"{key}: expected a list of {what} names, got {v!r:.80}")
        if len(v) != count:
            raise ValueError(f"{key}: {len(v)} {what} names for a model with {count}")
        if len(set(v)) != len(v):
            raise ValueError(f"{key}: a {what} name appears twice")

    task = extra.get("task")
    if task is not None and task not in ("classification", "regression"):
        raise ValueError(f"task: expected 'classification' or 'regression', got {task!r:.80}")
    if extra.get("classes") is not None:
        names("classes", max(model.n_outputs, 2), "class")
    if extra.get("features") is not None:
        names("features", model.input_dim, "input column")
    target = extra.get("target")
    if target is not None and not isinstance(target, str):
        raise ValueError(f"target: expected a column name, got {target!r:.80}")


def _write_table(path, header, columns):
    """CSV of `columns` (lists of strings or float arrays) to `path`, or stdout for '-'.  A file is
    written as model files are (whole or not at all: a full disk leaves the old one)."""
    import io

    from ._format import write_atomic

    rows = zip(*[[c if isinstance(c, str) else f"{c:.9g}" for c in col] for col in columns])
    f = sys.stdout if path == "-" else io.StringIO(newline="")
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    if f is sys.stdout:
        return
    try:
        write_atomic(path, f.getvalue().encode("utf-8"))
    except OSError as e:
        raise CLIError(f"--out {path}: cannot write ({e.strerror or e})") from None


def cmd_predict(args):
    import numpy as np

    import fastnn as fnn

    if args.threads:
        fnn.set_num_threads(args.threads)
    model, extra = load_model(args.model)
    features = extra.get("features")
    kind = file_kind(args.data) if os.path.exists(args.data) else None
    X, _, _, _ = read_data(args.data, feature_names=features if kind == "csv" else None,
                           need_labels=False)
    if X.shape[1] != model.input_dim:
        raise CLIError(f"{args.data}: {X.shape[1]} feature columns, the model takes {model.input_dim}")
    out = model.predict(X.astype(model.dtype)).astype(np.float64)
    task = extra.get("task") or ("classification" if model.loss in ("cross_entropy", "binary_cross_entropy")
                                 else "regression")
    classes = extra.get("classes") or [str(k) for k in range(max(out.shape[1], 2))]
    name = extra.get("target") or "prediction"
    if args.proba:
        if task != "classification":
            raise CLIError(f"--proba: {args.model} is a regression model (no class probabilities)")
        if out.shape[1] == 1:
            out = np.hstack([1 - out, out])
        _write_table(args.out, [f"p_{c}" for c in classes], [out[:, j] for j in range(out.shape[1])])
    elif task == "classification":
        idx = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else np.argmax(out, axis=1)
        _write_table(args.out, [name], [[classes[k] for k in idx]])
    else:
        header = [name] if out.shape[1] == 1 else [f"{name}_{j}" for j in range(out.shape[1])]
        _write_table(args.out, header, [out[:, j] for j in range(out.shape[1])])
    if args.out != "-":
        print(f"wrote {X.shape[0]} predictions to {args.out}", file=sys.stderr)
    return 0


def cmd_demo(args):
    import numpy as np

    import fastnn as fnn
    from .datasets import load_digits

    if args.threads:
        fnn.set_num_threads(args.threads)
    info = fnn.build_info()
    print(f"fastnn {fnn.__version__}: simd={info['simd']} openmp={info['openmp']} threads={info['num_threads']}")
    X, y = load_digits()
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    print(f"UCI handwritten digits (shipped with fastnn): {len(tr)} training and {len(te)} test images, "
          f"8x8 pixels, 10 classes")
    model = fnn.Sequential([fnn.Dense(256, activation="relu", l2=1e-5), fnn.Dropout(0.1),
                            fnn.Dense(128, activation="relu", l2=1e-5), fnn.Dense(10)],
                           input_dim=64, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=2e-3), metrics=["accuracy"])
    print(f"model 64-256-128-10 relu, dropout 0.1, {model.count_params():,} parameters, Adam; "
          f"{args.epochs} epochs of batch {args.batch_size}")
    t0 = time.perf_counter()
    h = model.fit(X[tr], y[tr], epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    took = time.perf_counter() - t0
    rate = len(tr) * args.epochs / sum(h.history["time"])
    proba = model.predict(X[te])
    acc = fnn.metrics.accuracy(y[te], proba)
    print(f"trained in {took:.2f}s: {rate:,.0f} samples/s; final training loss {h.history['loss'][-1]:.4f}")
    print(f"test accuracy {acc:.4f} ({int(round(acc * n_test))}/{n_test})")
    if args.compare:
        _demo_compare(X[tr], y[tr], X[te], y[te], args)
    save_model(model, args.out, {"task": "classification", "classes": [str(k) for k in range(10)],
                                 "features": [f"pixel_{i}" for i in range(64)], "target": "digit"})
    back, _ = load_model(args.out)
    if not np.array_equal(back.predict(X[te]), proba):
        raise CLIError(f"{args.out}: the reloaded model predicts differently from the trained one")
    print(f"saved {args.out} ({os.path.getsize(args.out):,} bytes); reload it with "
          f"`fastnn predict {args.out} DATA.csv`")
    return 0


def _demo_compare(Xtr, ytr, Xte, yte, args):
    """scikit-learn's MLPClassifier and fastnn.sklearn's with the same hyperparameters, one thread each
    (BLAS threads and OpenMP threads would otherwise compete for the cores)."""
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        print("--compare: scikit-learn is not installed (pip install scikit-learn)")
        return
    import contextlib
    import warnings

    from .sklearn import MLPClassifier as FastMLP

    try:
        from threadpoolctl import threadpool_limits
        one_blas_thread = threadpool_limits(1)
    except ImportError:
        one_blas_thread = contextlib.nullcontext()
    kw = dict(hidden_layer_sizes=(256, 128), alpha=1e-4, batch_size=args.batch_size, learning_rate_init=2e-3,
              max_iter=args.epochs, tol=0.0, random_state=0)
    times = {}
    with warnings.catch_warnings(), one_blas_thread:
        warnings.simplefilter("ignore")
        for name, cls, extra in (("scikit-learn", MLPClassifier, {}), ("fastnn.sklearn", FastMLP, {"n_threads": 1})):
            t0 = time.perf_counter()
            clf = cls(**kw, **extra).fit(Xtr.astype("float64"), ytr)
            times[name] = time.perf_counter() - t0
            print(f"{name + ' MLPClassifier:':32} test accuracy {clf.score(Xte.astype('float64'), yte):.4f}, "
                  f"fit {times[name]:.2f}s (1 thread)")
    print(f"same hyperparameters, one thread each: fastnn.sklearn is "
          f"{times['scikit-learn'] / times['fastnn.sklearn']:.1f}x as fast as scikit-learn here")


def cmd_bench(args):
    from . import benchmark

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    try:
        options = benchmark.cli_options(args)
    except ValueError as e:
        raise CLIError(str(e), 2) from None
    return benchmark.run_cli(options)


def cmd_export(args):
    """`fastnn export MODEL OUT.onnx`: the model file's metadata (the command's class and column names)
    rides along in metadata_props."""
    from . import onnx as onnx_io

    model, _ = load_model(args.model)
    onnx_io.export(model, args.out, opset=args.opset)
    print(f"wrote {args.out}")
    return 0


def cmd_import(args):
    """`fastnn import IN.onnx OUT.safetensors`: metadata_props other than fastnn's own come back as the
    model file's metadata."""
    import fastnn as fnn

    check_exists(args.onnx, "ONNX")
    model = fnn.from_onnx(args.onnx)
    try:
        model.save(args.out)
    except OSError as e:
        raise CLIError(f"{args.out}: cannot write ({e.strerror or e})") from None
    print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------------------- main

def build_parser():
    p = _Parser(prog="fastnn", description="fastnn: dense neural networks on the CPU, fast.",
                epilog="Exit status: 0 success, 1 data or runtime error, 2 usage error.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("info", help="version, SIMD level, OpenMP, threads, compiler")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("train", help="train a network on a CSV/.npz/.npy file and save it",
                       description="Train a dense network on tabular data and save it as a model file. "
                                   "Features are standardised on the training rows and the scaling is "
                                   "folded into the first layer, so the saved model takes raw features.")
    s.add_argument("data", metavar="DATA", help="CSV with a header row (.csv, .csv.gz), .npz or .npy")
    g = s.add_argument_group("labels")
    g.add_argument("--target", metavar="COL", help="the label column of a CSV (the label array of an .npz)")
    g.add_argument("--labels", metavar="FILE", help="labels in a separate .npy or text file, one per line")
    g.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="auto (default): classification for names and for whole numbers with at most "
                        "max(20, sqrt(rows)) distinct values, regression otherwise")
    g = s.add_argument_group("network")
    g.add_argument("--layers", type=_layer_sizes, default=[256, 128], metavar="W1,W2,...",
                   help="hidden layer widths (default 256,128)")
    g.add_argument("--activation", default="relu",
                   choices=("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid"))
    g.add_argument("--dropout", type=_fraction, default=0.0, help="drop probability after each hidden layer")
    g.add_argument("--l2", type=_nonneg_float, default=1e-4, help="L2 penalty on the weights (default 1e-4)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g = s.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=50)
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    g.add_argument("--lr", type=_positive_float, help="learning rate (default 1e-3 for adam, 0.01 for sgd)")
    g.add_argument("--patience", type=_nonneg_int, default=5,
                   help="stop after this many epochs without a better validation loss, keeping the best "
                        "weights (0: never; default 5)")
    g.add_argument("--val-split", type=_fraction, default=0.1,
                   help="fraction of the rows held out at random for validation (default 0.1)")
    g.add_argument("--no-scale", dest="scale", action="store_false", help="do not standardise the features")
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--threads", type=_threads, help="threads (default: OMP_NUM_THREADS or the cores)")
    s.add_argument("--out", default="model.safetensors", metavar="PATH", help="model file (default model.safetensors)")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("predict", help="predict with a saved model",
                       description="Predict with a model file written by `fastnn train` or model.save. "
                                   "A CSV's columns are matched by name to the training columns; "
                                   "other columns (such as the label) are ignored.")
    s.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    s.add_argument("data", metavar="DATA", help="CSV with a header row, .npz or .npy")
    s.add_argument("--out", default="-", metavar="PATH", help="CSV of predictions (default: standard output)")
    s.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    s.add_argument("--threads", type=_threads)
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("demo", help="train on the bundled handwritten digits: accuracy and speed in seconds")
    s.add_argument("--epochs", type=_positive_int, default=30)
    s.add_argument("--batch-size", type=_positive_int, default=64)
    s.add_argument("--threads", type=_threads)
    s.add_argument("--compare", action="store_true", help="also fit scikit-learn's MLP (if installed) and compare")
    s.add_argument("--out", default="digits.safetensors", metavar="PATH", help="model file (default digits.safetensors)")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("export", help='a model file as an ONNX graph (needs pip install "fastnn[onnx]")',
                       description="Write a model file as an ONNX graph that gives `fastnn predict --proba`'s "
                                   "outputs; the class and column names ride along in its metadata_props.")
    s.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    s.add_argument("out", metavar="OUT", help="ONNX file to write")
    s.add_argument("--opset", type=_number(int, 13, what="an opset >= 13"), default=17, help="(default 17)")
    s.set_defaults(fn=cmd_export)
    s = sub.add_parser("import", help="an ONNX MLP (from PyTorch, scikit-learn, fastnn) as a model file",
                       description="Read an ONNX MLP graph (torch.onnx.export, skl2onnx, fastnn export) and write "
                                   "it as a model file for fine-tuning, `fastnn predict` and the C API.")
    s.add_argument("onnx", metavar="IN", help="ONNX file")
    s.add_argument("out", metavar="OUT", help="model file to write (.safetensors)")
    s.set_defaults(fn=cmd_import)

    from .benchmark import add_cli_arguments
    s = sub.add_parser("bench", help="GEMM and training benchmarks side by side with NumPy, PyTorch, scikit-learn",
                       description="Side-by-side benchmarks: each library in a process of its own, alternating "
                                   "rounds, results checked before timing.  Prints markdown tables.")
    add_cli_arguments(s)
    s.add_argument("--plot", metavar="PNG", help="also draw the results into this image (needs matplotlib)")
    s.set_defaults(fn=cmd_bench)
    return p


def _version():
    try:
        from . import __version__
        return f"fastnn {__version__}"
    except Exception:  # a broken build still answers --version
        return "fastnn (version unknown: the extension does not import)"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except CLIError as e:
        print(f"fastnn: error: {e}", file=sys.stderr)
        return e.code
    except DataError as e:
        print(f"fastnn: error: {e}", file=sys.stderr)
        return 2 if e.usage else 1
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastnn predict ... | head`: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:  # never a traceback: one line, and FASTNN_DEBUG=1 for the details
        if os.environ.get("FASTNN_DEBUG"):
            raise
        print(f"fastnn: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e):
    text = " ".join(str(e).split())
    known = type(e).__module__ == "builtins" or type(e).__module__.startswith("fastnn")
    return text if known and text else f"{type(e).__name__}: {text}"
