"""The fastnn command, run as a user runs it (`python -m fastnn` in a subprocess): train -> predict round
trips, the demo, the benchmark, and the documented exit codes and one-line messages."""
import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fastnn(*args, cwd, env=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("FASTNN_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "fastnn", *args], cwd=cwd, capture_output=True, text=True,
                          env=e, timeout=120)


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A classification CSV with named classes and a label column in the middle (features on very
    different scales), and a regression CSV."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)) * [1, 10, 100, 0.1] + [0, 5, 50, 1]
    label = np.where(X[:, 0] + (X[:, 1] - 5) / 10 > 0, "yes", "no")
    write_csv(d / "cls.csv", ["a", "b", "label", "c", "d"],
              [(f"{x[0]:.6f}", f"{x[1]:.6f}", lab, f"{x[2]:.6f}", f"{x[3]:.6f}") for x, lab in zip(X, label)])
    t = 2 * X[:, 0] + (X[:, 1] - 5) / 10
    write_csv(d / "reg.csv", ["a", "b", "c", "d", "t"], [(*np.round(x, 6), round(v, 6)) for x, v in zip(X, t)])
    return d, X, label, t


def one_error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_train_then_predict_round_trip(data):
    d, X, label, _ = data
    p = fastnn("train", "cls.csv", "--target", "label", "--layers", "32,16", "--epochs", "40", "--batch-size", "32",
               "--patience", "5", "--out", "cls.safetensors", cwd=d)
    assert p.returncode == 0, p.stderr
    assert "validation: loss" in p.stdout and "accuracy" in p.stdout and "saved cls.safetensors" in p.stdout
    assert "Epoch 1/40" in p.stderr  # the progress (one line per epoch when stderr is not a terminal)

    p = fastnn("predict", "cls.safetensors", "cls.csv", "--out", "pred.csv", cwd=d)
    assert p.returncode == 0, p.stderr
    pred = np.loadtxt(d / "pred.csv", dtype=str, skiprows=1)
    assert open(d / "pred.csv").readline().strip() == "label"
    assert pred.shape == label.shape and np.mean(pred == label) > 0.95  # the labels come back as names

    p = fastnn("predict", "cls.safetensors", "cls.csv", "--proba", cwd=d)  # to stdout
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "p_no,p_yes" and len(lines) == 401
    proba = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(np.where(proba[:, 1] > proba[:, 0], "yes", "no"), pred)

    # the model file is a safetensors file any reader opens, the architecture in its metadata
    safetensors = pytest.importorskip("safetensors")
    with safetensors.safe_open(str(d / "cls.safetensors"), "np") as f:
        assert f.metadata()["format"] == "fastnn" and "architecture" in f.metadata()
        assert f.get_tensor("layers.0.weight").shape == (4, 32)


def test_regression_and_numpy_inputs(data):
    d, X, _, t = data
    p = fastnn("train", "reg.csv", "--target", "t", "--epochs", "60", "--layers", "32", "--out", "reg.safetensors",
               "--quiet", cwd=d)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stderr
    p = fastnn("predict", "reg.safetensors", "reg.csv", cwd=d)
    assert p.returncode == 0, p.stderr
    got = np.array(p.stdout.split()[1:], dtype=float)
    assert 1 - np.mean((got - t) ** 2) / np.var(t) > 0.9

    np.savez(d / "arr.npz", X=X, y=(X[:, 0] > 0).astype(int))
    np.save(d / "feat.npy", X)
    np.save(d / "lab.npy", (X[:, 0] > 0).astype(int))
    for args in (["arr.npz"], ["feat.npy", "--labels", "lab.npy"]):
        p = fastnn("train", *args, "--epochs", "5", "--out", "n.safetensors", "--quiet", cwd=d)
        assert p.returncode == 0, p.stderr
    p = fastnn("predict", "n.safetensors", "feat.npy", cwd=d)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "prediction", p.stderr


def test_demo_runs_in_seconds(tmp_path):
    t0 = time.perf_counter()
    p = fastnn("demo", "--out", "digits.safetensors", cwd=tmp_path)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    assert "test accuracy" in p.stdout and "samples/s" in p.stdout
    acc = float(p.stdout.split("test accuracy ")[1].split()[0])
    assert acc > 0.95
    assert (tmp_path / "digits.safetensors").exists()
    assert took < 30, f"demo took {took:.1f}s"


def test_info_and_help(tmp_path):
    p = fastnn("info", cwd=tmp_path)
    assert p.returncode == 0 and "simd:" in p.stdout and "openmp:" in p.stdout
    for cmd in ("train", "predict", "demo", "bench"):
        p = fastnn(cmd, "--help", cwd=tmp_path)
        assert p.returncode == 0 and "usage: fastnn " + cmd in p.stdout


@pytest.mark.parametrize("args, code, message", [
    (["train", "bad_fields.csv", "--target", "y"], 1, "bad_fields.csv: line 3 has 2 fields, the header has 3"),
    (["train", "bad_number.csv", "--target", "y"], 1, "bad_number.csv: line 2, column 'a': 'x1' is not a number"),
    (["train", "bad_empty.csv", "--target", "y"], 1, "bad_empty.csv: line 3, column 'b': an empty field"),
    (["train", "header_only.csv", "--target", "y"], 1, "header_only.csv: no data rows after the header"),
    (["train", "empty.csv", "--target", "y"], 1, "empty.csv: empty file"),
    (["train", "ok.csv", "--target", "label"], 1, "ok.csv: no column 'label' (columns: a, b, y)"),
    (["train", "ok.csv"], 2, "name the label column with --target COLUMN"),
    (["train", "nofile.csv", "--target", "y"], 1, "nofile.csv: no such file"),
    (["train", "ok.csv", "--target", "y", "--epochs", "0"], 2, "argument --epochs: expected a number >= 1, got 0"),
    (["train", "ok.csv", "--target", "y", "--layers", "8,x"], 2, "argument --layers"),
    (["train", "ok.csv", "--target", "y", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["train", "ok.csv", "--target", "y", "--out", "no/such/dir/m.safetensors"], 1, "does not exist"),
    (["predict", "garbage.safetensors", "ok.csv"], 1, "(not a safetensors file?)"),
    (["predict", "nofile.safetensors", "ok.csv"], 1, "nofile.safetensors: no such file"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ([], 2, "the following arguments are required: COMMAND"),
])
def test_errors_are_one_line_with_the_documented_exit_code(tmp_path, args, code, message):
    write_csv(tmp_path / "ok.csv", ["a", "b", "y"], [(1, 2, 0), (3, 4, 1), (5, 6, 0), (7, 8, 1)])
    write_csv(tmp_path / "bad_fields.csv", ["a", "b", "y"], [(1, 2, 0), (3, 4)])
    write_csv(tmp_path / "bad_number.csv", ["a", "b", "y"], [("x1", 2, 0), (3, 4, 1)])
    write_csv(tmp_path / "bad_empty.csv", ["a", "b", "y"], [(1, 2, 0), (3, "", 1)])
    write_csv(tmp_path / "header_only.csv", ["a", "b", "y"], [])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "garbage.safetensors").write_text("this is not a model")
    p = fastnn(*args, cwd=tmp_path)
    assert p.returncode == code, (p.returncode, p.stderr)
    line = one_error_line(p)
    assert line.startswith("fastnn") and ": error: " in line and message in line, line


def test_predict_rejects_a_file_without_the_model_columns(data, tmp_path):
    d, X, label, _ = data
    p = fastnn("train", "cls.csv", "--target", "label", "--epochs", "2", "--out", str(tmp_path / "m.safetensors"),
               "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    write_csv(tmp_path / "other.csv", ["a", "b", "x"], [(1, 2, 3)])
    p = fastnn("predict", "m.safetensors", "other.csv", cwd=tmp_path)
    assert p.returncode == 1 and "missing the model's input column(s) 'c', 'd'" in one_error_line(p)
    p = fastnn("predict", "m.safetensors", str(d / "reg.csv"), "--out", "p.csv", cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # columns are matched by name; extra ones are ignored


def test_bench_small_run_with_plot(tmp_path):
    p = fastnn("bench", "--quick", "--filter", "fwd 32×512", "--threads", "1", "--rounds", "1", "--samples", "1024",
               "--libs", "fastnn,numpy", "--plot", "bench.png", cwd=tmp_path)
    if "matplotlib" in p.stderr:
        pytest.skip("matplotlib is not installed")
    assert p.returncode == 0, p.stderr
    assert "| float32 | 1 | fwd 32×512→256 (32×256×512) |" in p.stdout
    assert "| 1 | 128 |" in p.stdout and "fastnn / numpy" in p.stdout
    assert (tmp_path / "bench.png").stat().st_size > 1000


def test_bench_plot_without_matplotlib_is_a_clear_error(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from fastnn.cli import main; "
            "sys.exit(main(['bench', '--plot', 'x.png']))")
    e = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=e, timeout=60)
    assert p.returncode == 1
    assert one_error_line(p) == "fastnn: error: --plot needs matplotlib, which is not installed (pip install matplotlib)"


def test_model_files_are_fastnns_own(data, tmp_path):
    """train writes what fastnn.load reads; predict takes a file written by model.save."""
    import fastnn as fnn

    d, X, _, _ = data
    p = fastnn("train", "reg.csv", "--target", "t", "--epochs", "3", "--out", str(tmp_path / "r.safetensors"),
               "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    model = fnn.load(tmp_path / "r.safetensors")
    assert model.input_dim == 4 and model.loss == "mse"

    clf = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(3)], input_dim=4, seed=0)
    clf.compile("cross_entropy")
    clf.save(tmp_path / "plain.safetensors")
    np.save(tmp_path / "x.npy", X[:5])
    p = fastnn("predict", "plain.safetensors", "x.npy", "--proba", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = np.array([[float(v) for v in line.split(",")] for line in p.stdout.split()[1:]])
    np.testing.assert_allclose(got, clf.predict(X[:5].astype(np.float32)), rtol=1e-6)
    assert p.stdout.split()[0] == "p_0,p_1,p_2"


# ---- which task train chooses -------------------------------------------------------------------------

@pytest.mark.parametrize("labels, task, words", [
    (["no", "yes"] * 20, "classification", "are names"),
    ([0, 1, 0, 1], "classification", "2 distinct values in 4 rows"),
    ([1, 2, 3] * 20, "classification", "3 distinct values in 60 rows (at most max(20, sqrt(rows)) = 20"),
    ([0.0, 1.0, 2.0, 3.0] * 10, "classification", "4 distinct values in 40 rows"),  # whole numbers as floats
    (list(range(10)) * 180, "classification", "10 distinct values in 1800 rows"),   # digits
    (list(range(25)) * 2, "regression", "25 distinct values in 50 rows (more than max(20, sqrt(rows)) = 20"),
    (list(range(45)) * 50, "classification", "45 distinct values in 2250 rows (at most max(20, sqrt(rows)) = 47"),
    (list(range(60)) * 50, "regression", "60 distinct values in 3000 rows (more than max(20, sqrt(rows)) = 54"),
    ([0.5, 1.0, 2.0, 3.0] * 10, "regression", "are real numbers"),
])
def test_choose_task(labels, task, words):
    from fastnn.tabular import choose_task, encode_labels

    got, why = choose_task(np.array(labels), "y")
    assert got == task and words in why and "(column 'y')" in why, why
    enc_task, targets, classes, _ = encode_labels(np.array(labels), "auto", "y")
    assert enc_task == task
    if task == "classification":
        assert len(classes) == len(set(labels)) and targets.dtype == np.int64
        assert [classes[k] for k in targets] == [str(v) if isinstance(v, str) else str(int(v)) for v in labels]
    else:
        assert np.array_equal(targets, np.array(labels, dtype=float))


def test_train_says_which_task_and_how_to_override(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)  # 3 classes as whole numbers
    write_csv(tmp_path / "c.csv", ["a", "b", "c", "y"], [(*np.round(x, 5), v) for x, v in zip(X, y)])
    p = fastnn("train", "c.csv", "--target", "y", "--epochs", "2", "--out", "c.safetensors", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith("task: classification, because the labels (column 'y') are whole numbers with 3 "
                            "distinct values in 90 rows") and first.endswith("; --task regression overrides"), first
    p = fastnn("train", "c.csv", "--target", "y", "--epochs", "2", "--task", "regression", "--out", "r.safetensors",
               cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "task: regression, because --task regression"
    import fastnn as fnn

    assert fnn.load(tmp_path / "c.safetensors").loss == "cross_entropy"
    assert fnn.load(tmp_path / "r.safetensors").loss == "mse"


def test_diabetes_target_is_a_regression(tmp_path):
    """scikit-learn's diabetes data: 442 rows whose target (disease progression, a whole number from 25
    to 346) takes 214 distinct values.  That is a quantity to regress, not 214 classes."""
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_diabetes()
    write_csv(tmp_path / "diab.csv", list(d.feature_names) + ["target"],
              [(*(f"{v:.8g}" for v in x), int(t)) for x, t in zip(d.data, d.target)])
    p = fastnn("train", "diab.csv", "--target", "target", "--epochs", "30", "--out", "diab.safetensors", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first == ("task: regression, because the labels (column 'target') are whole numbers with 214 distinct "
                     "values in 442 rows (more than max(20, sqrt(rows)) = 21: a quantity, not classes); "
                     "--task classification overrides"), first
    assert "regression; training on" in p.stdout and "R2 " in p.stdout
    import fastnn as fnn

    m = fnn.load(tmp_path / "diab.safetensors")
    assert m.loss == "mse" and m.n_outputs == 1
    p = fastnn("predict", "diab.safetensors", "diab.csv", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    pred = np.array(p.stdout.split()[1:], dtype=float)
    assert pred.shape == (442,) and np.corrcoef(pred, d.target)[0, 1] > 0.5  # a regression, and a useful one


def test_the_fma_probe_ships_and_measures():
    """fastnn/data/fma_probe.c is package data that the wheel keeps (only Cython's generated _core.c
    is left out), and the benchmarks get a peak from it where a C compiler is there."""
    import fnmatch
    import shutil

    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        tool = tomllib.load(f)["tool"]["setuptools"]
    probe = "data/fma_probe.c"
    assert any(fnmatch.fnmatch(probe, pat) for pat in tool["package-data"]["fastnn"])
    assert not any(fnmatch.fnmatch(probe, pat) for pat in tool["exclude-package-data"]["fastnn"])
    assert any(fnmatch.fnmatch("_core.c", pat) for pat in tool["exclude-package-data"]["fastnn"])
    from fastnn import benchmark

    import fastnn as fnn

    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler")
    if "avx2" not in fnn.build_info()["simd_available"]:
        pytest.skip("the probe measures AVX2/AVX-512 FMA only")
    peak = benchmark.peak_per_core()
    assert peak is not None and peak > 0


def test_bench_idle_reports_every_call_and_gap(tmp_path):
    """bench_idle.py runs and prints a row per call and gap, with both thread counts (figures are
    measured, not asserted here)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_idle.py"), "--gaps", "0,0.1", "--reps", "3"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    calls = ["gemm 32×256×512", "gemm 32×512×784", "gemm 128×256×512", "gemm 128×512×784", "predict 32 rows"]
    assert len(rows) == 2 * len(calls)
    for call in calls:
        for gap in ("0", "0.1"):
            row = next(line for line in rows if line.startswith(f"| {call}") and f"| {gap} |" in line)
            one, two, ratio = (float(v) for v in row.split("|")[3:6])
            assert one > 0 and two > 0 and abs(ratio - two / one) <= 0.01 + 0.05 * (two / one), row


def test_bench_sharing_modes_report_every_product_and_phase(tmp_path):
    """bench_train's --contention, --mixed and --phases run and print a row per product and phase of
    the step (figures are measured, not asserted here)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_train.py"), "--only-modes", "--contention",
                        "--mixed", "--phases", "--batches", "32", "--threads", "1", "--rounds", "1",
                        "--samples", "256", "--libs", "fastnn"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "## Beside a busy neighbour" in out and "| 1 | 32 | " in out
    products = ["fwd 32×784→512", "fwd 32×512→256", "fwd 32×256→10", "dW 256×10, k=32", "dX 32×256←10",
                "dW 512×256, k=32", "dX 32×512←256", "dW 784×512, k=32"]
    mixed = out.split("## Mixed")[1].split("## Phases")[0]
    phases = out.split("## Phases")[1]
    for name in products:
        row = next(line for line in mixed.splitlines() if f"| {name} |" in line)
        alone, after, ratio = (float(v) for v in row.split("|")[3:6])
        # the rates are printed to 0.1 and the ratio to 0.01: it lies between the printed rates' bounds
        assert alone > 0 and after > 0
        assert (after - 0.05) / (alone + 0.05) - 0.005 <= ratio <= (after + 0.05) / (alone - 0.05) + 0.005, row
        limited, lratio, loop = (v.strip() for v in row.split("|")[7:10])
        if importlib.util.find_spec("threadpoolctl") is None:
            assert (limited, lratio, loop) == ("–", "–", "–"), row
        else:
            limited, lratio, loop = float(limited), float(lratio), float(loop)
            assert limited > 0 and loop > 0
            assert (limited - 0.05) / (alone + 0.05) - 0.005 <= lratio <= (limited + 0.05) / (alone - 0.05) + 0.005, row
        assert f"| {name} | " in phases
    assert "| the rest" in phases and "softmax cross-entropy 32×10" in phases
