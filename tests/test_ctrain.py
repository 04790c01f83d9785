"""Training from C (csrc/train.c, save.c; fastnn.h "training"): C programs built against the library
(as the `embed` fixture builds examples/embed) train models saved from Python, and Python checks what
they did.

- C and Python train to the same bits: `fnn_model_fit` on a Python-saved file gives the weights of
  `fnn.load(path, seed=...)` + `compile` + `fit` with the same options, float32 and float64, 1 and 2
  threads, with and without shuffling and dropout; the two save byte-identical files, and C's
  `fnn_model_evaluate` is Python's `evaluate()["loss"]`.
- The C writer's bytes are Python's for every kind of architecture, metadata and number.
- examples/finetune fine-tunes a Python-saved model's last layer: the frozen layers keep their bits
  and the accuracy on the new task rises.
- Bad input (csrc/tests/train_errors.c): every bad call is an error code with a detail, and changes
  nothing; a model being trained refuses the calls of other threads.  Under ASan with leak checks
  (tools/sanitize.sh), and under valgrind where installed.
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import ROOT, SANITIZED, build_c, with_threads
from _io_util import activation, architecture, batch_norm, dense, dropout, layer_norm, model_bytes

TESTS_C = os.path.join(ROOT, "csrc", "tests")


@pytest.fixture(scope="session")
def cprogs(embed, tmp_path_factory):
    """The C programs of these tests, built against the `embed` fixture's libfastnn.a."""
    lib = os.path.dirname(embed)
    out = tmp_path_factory.mktemp("ctrain")
    return {
        "driver": build_c(os.path.join(TESTS_C, "train_driver.c"), out / "train_driver", lib),
        "errors": build_c(os.path.join(TESTS_C, "train_errors.c"), out / "train_errors", lib, ["-pthread"]),
        "finetune": build_c(os.path.join(ROOT, "examples", "finetune", "finetune.c"), out / "finetune", lib),
    }


def run(exe, *args, env=None, timeout=300):
    env = dict(os.environ, FASTNN_SIMD=_core.simd_level(), **(env or {}))
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


# ---- the same bits as Python ---------------------------------------------------------------------------

# name: the pretrained model with or without dropout, the C driver's options, and the Python
# compile/fit settings that mean the same; y: class labels, targets, or probabilities (for BCE)
CASES = {
    "sgd_momentum_in_order": dict(
        dropout=False, c=["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--no-shuffle"],
        opt=lambda: fnn.SGD(lr=0.05, momentum=0.9), shuffle=False, loss="cross_entropy", y="labels"),
    "adam_shuffle_dropout": dict(
        dropout=True, c=["--optimizer", "adam", "--lr", "0.01", "--seed", "11"],
        opt=lambda: fnn.Adam(lr=0.01), shuffle=True, loss="cross_entropy", y="labels", seed=11),
    "adam_epoch_by_epoch": dict(
        dropout=True, c=["--optimizer", "adam", "--lr", "0.01", "--seed", "11", "--calls", "3"],
        opt=lambda: fnn.Adam(lr=0.01), shuffle=True, loss="cross_entropy", y="labels", seed=11),
    "huber_nesterov_frozen": dict(
        dropout=True, c=["--loss", "huber", "--huber-delta", "0.5", "--optimizer", "sgd", "--lr", "0.02",
                         "--momentum", "0.5", "--nesterov", "--weight-decay", "0.001", "--seed", "5",
                         "--freeze", "1"],
        opt=lambda: fnn.SGD(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.001), shuffle=True,
        loss="huber", huber_delta=0.5, y="targets", seed=5, freeze=1, eval_other="mae"),
    "bce_adamw_defaults": dict(
        dropout=False, c=["--loss", "binary_cross_entropy", "--optimizer", "adamw", "--seed", "2"],
        opt=lambda: fnn.AdamW(), shuffle=True, loss="binary_cross_entropy", y="probabilities", seed=2),
    "rmsprop_centered_mse": dict(
        dropout=True, c=["--loss", "mse", "--optimizer", "rmsprop", "--lr", "0.003", "--momentum", "0.2",
                         "--centered", "--alpha", "0.9", "--batch", "7", "--seed", "9"],
        opt=lambda: fnn.RMSprop(lr=0.003, momentum=0.2, centered=True, alpha=0.9), shuffle=True, loss="mse",
        y="targets", seed=9, batch=7, eval_other="huber"),
}


def pretrained(dtype, with_dropout, path):
    layers = [fnn.Dense(24, "relu", l2=1e-3), fnn.Dense(12, "tanh", l1=1e-4), fnn.Dense(3)]
    if with_dropout:
        layers.insert(1, fnn.Dropout(0.25))
    m = fnn.Sequential(layers, input_dim=10, dtype=dtype, seed=1)
    m.compile("cross_entropy")
    m.save(path)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_c_fit_gives_pythons_bits(cprogs, tmp_path, case, dtype, threads):
    spec = CASES[case]
    rng = np.random.default_rng(7)
    path = tmp_path / "pre.safetensors"
    pretrained(dtype, spec["dropout"], path)
    rows = 101  # the last batch is short
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    X.tofile(tmp_path / "x.f32")
    if spec["y"] == "labels":
        y = rng.integers(0, 3, rows).astype(np.int32)
        y.tofile(tmp_path / "y.i32")
        data = ["--labels", tmp_path / "y.i32"]
    else:
        y = rng.uniform(0, 1, (rows, 3)).astype(np.float32)
        if spec["y"] == "targets":
            y = (y * 4 - 2).astype(np.float32)
        y.tofile(tmp_path / "y.f32")
        data = ["--targets", tmp_path / "y.f32"]
    other = ["--eval-loss", spec["eval_other"]] if "eval_other" in spec else []
    r = run(cprogs["driver"], path, tmp_path / "c.safetensors", "--x", tmp_path / "x.f32", "--rows", rows, *data,
            "--epochs", 3, "--batch", spec.get("batch", 16), "--threads", threads, *spec["c"], *other)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)

    py = fnn.load(path, seed=spec.get("seed", 0))
    py.compile(spec["loss"], optimizer=spec["opt"](), huber_delta=spec.get("huber_delta", 1.0))
    if spec.get("freeze"):
        py.freeze(spec["freeze"])
    before = fnn.get_num_threads()
    fnn.set_num_threads(threads)
    try:
        history = py.fit(X, y, epochs=3, batch_size=spec.get("batch", 16), shuffle=spec["shuffle"], verbose=0)
        want_eval = py.evaluate(X, y)["loss"]
    finally:
        fnn.set_num_threads(before)
    py.save(tmp_path / "py.safetensors")

    c = fnn.load(tmp_path / "c.safetensors")
    for (name, a), (_, b) in zip(c._named_parameters(), py._named_parameters()):
        assert np.array_equal(a, b), (name, np.abs(a - b).max())
    assert (tmp_path / "c.safetensors").read_bytes() == (tmp_path / "py.safetensors").read_bytes()
    assert got["eval"] == want_eval
    assert got["loss"] == pytest.approx(history.history["loss"][-1], rel=1e-12)  # NumPy sums pairwise
    if spec.get("freeze"):
        frozen = fnn.load(path)
        assert np.array_equal(c.layers[0].weight, frozen.layers[0].weight)
    if "eval_other" in spec:  # evaluated with another loss than the model's: a plan of its own
        py.compile(spec["eval_other"])
        assert got["eval_other"] == with_threads(threads, lambda: py.evaluate(X, y)["loss"])


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_a_quantized_model_evaluates_with_its_loss_and_another(cprogs, tmp_path, dtype):
    """fnn_model_evaluate with another loss than the model's plans a copy: its int8 layers read packed
    weights too (Python's evaluate of the same quantized model is the oracle, bit for bit)."""
    rng = np.random.default_rng(5)
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dense(3)], input_dim=10, seed=2)
    m.compile("mse")
    X = rng.normal(size=(37, 10)).astype(np.float32)
    y = rng.normal(size=(37, 3)).astype(np.float32)
    m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    q = fnn.quantize(m, dtype)
    q.save(tmp_path / "q.safetensors")
    X.tofile(tmp_path / "x.f32")
    y.tofile(tmp_path / "y.f32")
    r = run(cprogs["driver"], tmp_path / "q.safetensors", tmp_path / "o.safetensors", "--x", tmp_path / "x.f32",
            "--rows", 37, "--targets", tmp_path / "y.f32", "--epochs", 0, "--threads", 1, "--eval-loss", "mae")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = with_threads(1, lambda: q.evaluate(X, y)["loss"])
    q.compile("mae")
    want_other = with_threads(1, lambda: q.evaluate(X, y)["loss"])
    assert want_other > 0.1  # outputs of the layers' weights, not of zeros
    assert got["eval"] == want and got["eval_other"] == want_other, (got, want, want_other)


def test_fit_of_a_model_without_a_loss_needs_one(cprogs, tmp_path):
    data, _ = model_bytes(architecture([dense(4, "relu"), dense(2)], input_dim=3), np.random.default_rng(0))
    (tmp_path / "m.safetensors").write_bytes(data)
    np.zeros((5, 3), np.float32).tofile(tmp_path / "x.f32")
    np.zeros((5, 2), np.float32).tofile(tmp_path / "y.f32")
    args = [tmp_path / "m.safetensors", tmp_path / "o.safetensors", "--x", tmp_path / "x.f32", "--rows", 5,
            "--targets", tmp_path / "y.f32"]
    r = run(cprogs["driver"], *args)
    assert r.returncode == 1 and "options.loss is NULL and the model file has no loss" in r.stderr
    r = run(cprogs["driver"], *args, "--loss", "mae")
    assert r.returncode == 0, r.stderr
    assert fnn.load(tmp_path / "o.safetensors").loss == "mae"


# ---- the writer: Python's bytes ---------------------------------------------------------------------

WRITER_CASES = {
    "unnamed layers of every kind": architecture(
        [dense(7, "leaky_relu", 0.2), dropout(1 / 3), activation("elu", 0.5), dense(5, "gelu", use_bias=False),
         activation("tanh"), dense(4, "softmax")], input_dim=6, loss="cross_entropy"),
    "names taken already": architecture(
        [dense(3, name="dense_1"), dense(3), dense(3), dropout(0.5), dense(2, name="dense")], input_dim=4,
        loss="binary_cross_entropy"),
    "awkward numbers, float64": architecture(
        [dense(5, "relu", l1=1e-05, l2=0.1), dense(3, "leaky_relu", 3e16, l2=123456789.125),
         dense(2, "elu", -2.5e-7, l1=0.30000000000000004)], input_dim=3, dtype="float64", loss="huber"),
    "no loss": architecture([dense(2, "sigmoid"), dense(1)], input_dim=2),
    "normalization and max_norm (schema 1.1)": architecture(
        [dense(5, max_norm=2.5), batch_norm(momentum=0.9, epsilon=1e-05), activation("relu"),
         layer_norm(epsilon=0.001, trainable=False), dense(3)], input_dim=4, loss="mse"),
}


@pytest.mark.parametrize("case", sorted(WRITER_CASES))
def test_c_save_writes_pythons_bytes(cprogs, tmp_path, case):
    arch = dict(WRITER_CASES[case])
    if arch["loss"] == "huber":
        arch["huber_delta"] = 1e-7
    rng = np.random.default_rng(3)
    data, _ = model_bytes(arch, rng)
    src = tmp_path / "in.safetensors"
    src.write_bytes(data)
    m = fnn.saving.loads(data)
    m.metadata = {"owner": "équipe \"ML\"\n\ttab\\", "ctl\x01\x1f": "\u2028 ok \U0001F600", "empty": ""}
    m.save(src)
    m.save(tmp_path / "py.safetensors")  # Python's bytes for the model as Python holds it
    r = run(cprogs["driver"], src, tmp_path / "c.safetensors", "--resave")
    assert r.returncode == 0, r.stderr
    c_bytes = (tmp_path / "c.safetensors").read_bytes()
    assert c_bytes == (tmp_path / "py.safetensors").read_bytes()
    assert fnn.saving.loads(c_bytes).metadata == m.metadata


def test_c_save_into_a_read_only_directory_keeps_the_old_file(cprogs, tmp_path):
    """The same guarantee as Python's save (test_faults.py): the old file stays, whole, and no
    temporary file is left."""
    from test_faults import tmpfs
    rng = np.random.default_rng(0)
    data, _ = model_bytes(architecture([dense(300, "relu"), dense(2)], input_dim=100, loss="mse"), rng)
    (tmp_path / "big.safetensors").write_bytes(data)
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount
        with tmpfs(tmp_path / "ro", "1m") as d:
            old = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=1)
            old.save(d / "m.safetensors")
            old_bytes = (d / "m.safetensors").read_bytes()
            rr = subprocess.run(["mount", "-o", "remount,ro", str(d)], capture_output=True, text=True)
            if rr.returncode != 0:
                pytest.skip(f"cannot remount read-only: {rr.stderr.strip()}")
            r = run(cprogs["driver"], tmp_path / "big.safetensors", d / "m.safetensors", "--resave")
            assert r.returncode == 1 and "I/O error" in r.stderr and "Read-only file system" in r.stderr, r.stderr
            assert (d / "m.safetensors").read_bytes() == old_bytes
            assert sorted(os.listdir(d)) == ["m.safetensors"]
        return
    d = tmp_path / "ro"
    d.mkdir()
    fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=1).save(d / "m.safetensors")
    old_bytes = (d / "m.safetensors").read_bytes()
    d.chmod(0o555)
    try:
        r = run(cprogs["driver"], tmp_path / "big.safetensors", d / "m.safetensors", "--resave")
        assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
        assert (d / "m.safetensors").read_bytes() == old_bytes
        assert sorted(os.listdir(d)) == ["m.safetensors"]
    finally:
        d.chmod(0o755)


# ---- examples/finetune --------------------------------------------------------------------------------

def task(rng, W, n, shift):
    X = rng.normal(size=(n, W.shape[0])).astype(np.float32)
    return X, (np.argmax(X @ W, axis=1) + shift) % W.shape[1]


def write_csv(path, X, y):
    with open(path, "w") as f:
        f.write(",".join(f"x{j}" for j in range(X.shape[1])) + ",label\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:.9g}" for v in row) + f",{label}\n")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finetune_example_tunes_the_last_layer(cprogs, tmp_path, dtype):
    """The seed's small-data recipe in C: a network pretrained on one task is tuned on a few hundred rows
    of a related one (the same features, the classes relabelled); only its last layer moves."""
    rng = np.random.default_rng(5)
    W = rng.normal(size=(16, 4))
    X, y = task(rng, W, 3000, 0)
    pre = fnn.Sequential([fnn.Dense(48, "relu"), fnn.Dropout(0.1), fnn.Dense(32, "relu"), fnn.Dense(4)],
                         input_dim=16, dtype=dtype, seed=0)
    pre.compile("cross_entropy", optimizer=fnn.Adam(lr=0.01))
    pre.fit(X, y, epochs=6, verbose=0)
    pre.save(tmp_path / "pre.safetensors")
    X_new, y_new = task(rng, W, 600, 1)
    X_test, y_test = task(rng, W, 2000, 1)
    write_csv(tmp_path / "new.csv", X_new, y_new)

    r = run(cprogs["finetune"], "--epochs", 8, "--lr", "0.01", "--threads", 2, tmp_path / "pre.safetensors",
            tmp_path / "new.csv", tmp_path / "tuned.safetensors")
    assert r.returncode == 0, r.stderr
    losses = [float(v) for v in re.findall(r"^epoch \d+/8: loss (\S+)$", r.stdout, re.M)]
    assert len(losses) == 8 and losses[-1] < losses[0] / 4, r.stdout
    assert "600 rows" in r.stdout and "saved" in r.stdout

    tuned = fnn.load(tmp_path / "tuned.safetensors")
    for i in (0, 2):  # the frozen Dense layers, bit for bit
        assert np.array_equal(tuned.layers[i].weight, pre.layers[i].weight)
        assert np.array_equal(tuned.layers[i].bias, pre.layers[i].bias)
        assert not tuned.layers[i].trainable
    assert not np.array_equal(tuned.layers[3].weight, pre.layers[3].weight) and tuned.layers[3].trainable
    before = (pre.predict(X_test).argmax(1) == y_test).mean()
    after = (tuned.predict(X_test).argmax(1) == y_test).mean()
    assert before < 0.4 and after > 0.8, (before, after)


def test_finetune_example_reports_bad_data(cprogs, tmp_path):
    m = fnn.Sequential([fnn.Dense(4, "relu"), fnn.Dense(3)], input_dim=2, seed=0)
    m.compile("cross_entropy")
    m.save(tmp_path / "m.safetensors")
    cases = [("1,2,0\n3,4,7\n", "class labels must be in [0, 3)"), ("1,2\n", "expected 3 numbers"),
             ("1,2,0.5\n", "not a whole number"), ("1,nan,1\n", "x contains NaN"), ("x,y,label\n", "no rows")]
    for text, message in cases:
        (tmp_path / "d.csv").write_text(text)
        r = run(cprogs["finetune"], tmp_path / "m.safetensors", tmp_path / "d.csv", tmp_path / "out.safetensors")
        assert r.returncode == 1 and message in r.stderr, (text, r.stderr)
        assert not (tmp_path / "out.safetensors").exists()


# ---- bad input, threads, leaks ----------------------------------------------------------------------------

def errors_model(path):
    m = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dropout(0.3), fnn.Dense(16, "gelu"), fnn.Dense(4)],
                       input_dim=12, seed=0)
    m.compile("cross_entropy")
    m.save(path)


def check_table(out):
    lines = out.strip().splitlines()
    assert lines[-1] == "0 failures", "\n".join(line for line in lines if line.startswith("FAIL"))
    ok = [line for line in lines if line.startswith("ok ")]
    # 36 bad calls x (their error, nothing changed) x (as loaded, trained) + the rest
    assert len(ok) >= 2 * 2 * 36 + 15, len(ok)
    for line in ok:
        if line.startswith(("ok as loaded: ", "ok trained: ")) and not line.endswith(("unchanged: ", "left: ")) \
                and ": model unchanged: " not in line:
            assert re.search(r": fnn_model_\w+: \S", line), line  # a detail that names the call


def test_bad_input_is_refused_and_changes_nothing(cprogs, tmp_path):
    errors_model(tmp_path / "m.safetensors")
    (tmp_path / "scratch").mkdir()
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:halt_on_error=1"} if SANITIZED else None
    r = run(cprogs["errors"], tmp_path / "m.safetensors", tmp_path / "scratch", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_table(r.stdout)


VALGRIND = shutil.which("valgrind")


@pytest.mark.skipif(not VALGRIND, reason="valgrind is not installed")
@pytest.mark.skipif(SANITIZED, reason="a sanitized build does not run under valgrind")
def test_training_from_c_is_clean_under_valgrind(cprogs, tmp_path):
    from test_leaks import lost_bytes, memcheck
    errors_model(tmp_path / "m.safetensors")
    (tmp_path / "scratch").mkdir()
    rc, report = memcheck(cprogs["errors"], tmp_path / "m.safetensors", tmp_path / "scratch", "--memcheck")
    assert rc == 0, report[-3000:]  # 99 would be a memcheck error or a leak
    assert "ERROR SUMMARY: 0 errors" in report and lost_bytes(report, "definitely") == 0, report[-3000:]
    rng = np.random.default_rng(1)
    X, y = task(rng, rng.normal(size=(12, 4)), 200, 0)
    write_csv(tmp_path / "new.csv", X, y)
    for args, status in ((["--epochs", 2, "--threads", 2], 0), (["--all", "--optimizer", "nope"], 1)):
        rc, report = memcheck(cprogs["finetune"], *args, tmp_path / "m.safetensors", tmp_path / "new.csv",
                              tmp_path / "out.safetensors")
        assert rc == status, (args, report[-3000:])
        assert "ERROR SUMMARY: 0 errors" in report, report[-3000:]
        assert lost_bytes(report, "definitely") == 0 and lost_bytes(report, "indirectly") == 0, report[-3000:]


# ---- the seed of a loaded model ----------------------------------------------------------------------

def test_a_loaded_models_seed_can_be_given_and_set(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    m = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dropout(0.5), fnn.Dense(2)], input_dim=5, seed=4)
    m.compile("cross_entropy")
    m.save(tmp_path / "m.safetensors")

    def trained(model):
        model.compile("cross_entropy", optimizer=fnn.SGD(lr=0.1))
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        return model.get_weights()

    a = trained(fnn.load(tmp_path / "m.safetensors", seed=123))
    b = fnn.load(tmp_path / "m.safetensors")
    b.seed = 123
    assert b.seed == 123
    b = trained(b)
    c = trained(fnn.load(tmp_path / "m.safetensors", seed=124))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))  # other shuffles, other masks
    d = fnn.saving.loads((tmp_path / "m.safetensors").read_bytes(), seed=123)
    assert all(np.array_equal(u, v) for u, v in zip(a, trained(d)))
    for bad, err in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError)):
        with pytest.raises(err, match="seed"):
            fnn.load(tmp_path / "m.safetensors", seed=bad)
        with pytest.raises(err, match="seed"):
            m.seed = bad
    assert m.seed == 4


def test_c_trains_normalization_layers_with_pythons_bits(cprogs, tmp_path):
    """fnn_model_fit on a file with BatchNorm, LayerNorm and a max_norm: the batch statistics, the running
    ones, the gradients of gamma and beta and the constraint are the engine's, so C and Python train to
    the same bits; C's save
    drops a file's training state (Python's plain save does too); a batch of one row is refused."""
    rng = np.random.default_rng(5)
    m = fnn.Sequential([fnn.Dense(12, max_norm=0.7), fnn.BatchNorm(momentum=0.8), fnn.Activation("relu"), fnn.Dropout(0.2),
                        fnn.Dense(8, "tanh"), fnn.LayerNorm(), fnn.Dense(3)], input_dim=10, seed=1)
    m.compile("cross_entropy", optimizer=fnn.Adam(0.01))
    m.train_on_batch(rng.normal(size=(20, 10)), rng.integers(0, 3, 20))
    path = tmp_path / "pre.safetensors"
    m.save(path, include_optimizer=True)  # C reads the training state and starts afresh, as from a plain file
    m.save(tmp_path / "plain.safetensors")
    rows = 100
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    y = rng.integers(0, 3, rows).astype(np.int32)
    X.tofile(tmp_path / "x.f32")
    y.tofile(tmp_path / "y.i32")
    args = [path, tmp_path / "c.safetensors", "--x", tmp_path / "x.f32", "--rows", rows, "--labels",
            tmp_path / "y.i32", "--epochs", 2, "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
            "--seed", "4"]
    r = run(cprogs["driver"], *args, "--batch", 30)  # a last batch of 10 rows
    assert r.returncode == 0, r.stderr
    py = fnn.load(tmp_path / "plain.safetensors", seed=4)
    py.compile("cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
    py.fit(X, y, epochs=2, batch_size=30, verbose=0)
    py.save(tmp_path / "py.safetensors")
    assert (tmp_path / "c.safetensors").read_bytes() == (tmp_path / "py.safetensors").read_bytes()
    norms = np.linalg.norm(py.layers[0].weight, axis=0)
    assert norms.max() <= 0.7 * (1 + 1e-6) and np.isclose(norms, 0.7, rtol=1e-5).any()  # the constraint bit
    r = run(cprogs["driver"], *args, "--batch", 33)  # 100 = 3 x 33 + 1
    assert r.returncode != 0 and "leaves a batch of 1 row" in r.stderr
    # frozen (Keras's rule), the BatchNorm runs on its running statistics and leaves them alone, in C as
    # in Python; a batch of one row is then fine
    r = run(cprogs["driver"], *args, "--batch", 33, "--freeze", 2)
    assert r.returncode == 0, r.stderr
    py = fnn.load(tmp_path / "plain.safetensors", seed=4)
    py.freeze(2)
    py.compile("cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
    py.fit(X, y, epochs=2, batch_size=33, verbose=0)
    py.save(tmp_path / "py.safetensors")
    assert (tmp_path / "c.safetensors").read_bytes() == (tmp_path / "py.safetensors").read_bytes()
    assert np.array_equal(py.layers[1].moving_mean, m.layers[1].moving_mean)
