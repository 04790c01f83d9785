"""The command line's data readers (fastnn/tabular.py) on hostile tables: headers wide enough that a
quadratic check would never finish, and labels that must come back exactly as they went in."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fastnn import tabular

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, timeout):
    """Run `code` in a fresh interpreter that must finish within `timeout` seconds; its stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s: a check that is quadratic in the columns?")
    assert p.returncode == 0, p.stderr
    return p.stdout


WIDE = 200_000  # a quadratic pass over the header compares 2e10 pairs: hours, against well under a second


def _wide_csv(path, names):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        f.write(",".join("1" for _ in names) + "\n")
        f.write(",".join("2" for _ in names) + "\n")


@pytest.mark.parametrize("case", ["train", "predict", "duplicate"])
def test_a_wide_header_is_read_in_linear_time(tmp_path, case):
    names = [f"c{j}" for j in range(WIDE)]
    if case == "duplicate":
        names[WIDE - 1] = "c7"
        names[WIDE - 2] = "c11"
    path = tmp_path / "wide.csv"
    _wide_csv(path, names)
    code = {
        "train": f"X, y, names, t = tabular.read_csv({str(path)!r}, target='c3'); print(X.shape, len(names), y)",
        # predict takes the model's columns by name, in the model's order
        "predict": f"f = ['c%d' % j for j in range({WIDE} - 1, -1, -1)];"
                   f"X, _, names, _ = tabular.read_csv({str(path)!r}, feature_names=f); "
                   f"print(X.shape, names[0], names[-1])",
        "duplicate": f"""
try:
    tabular.read_csv({str(path)!r}, target='c3')
except tabular.DataError as e:
    print(e)
""",
    }[case]
    out = _python("from fastnn import tabular\n" + code, timeout=90)
    if case == "train":
        assert out.split("[")[0] == f"(2, {WIDE - 1}) {WIDE - 1} "
    elif case == "predict":
        assert out.strip() == f"(2, {WIDE}) c{WIDE - 1} c0"
    else:
        assert "duplicate column name(s) in the header: c11, c7" in out


# ---- labels come back byte for byte ------------------------------------------------------------------

def _labels_csv(path, labels):
    rng = np.random.default_rng(1)
    with open(path, "w") as f:
        f.write("a,b,label\n")
        for i, lab in enumerate(labels):
            f.write(f"{rng.normal():.6f},{i % 7},{lab}\n")


LABEL_SETS = {
    "leading zeros": ["02134", "10001"],
    "beyond 2**53": ["9007199254740993", "9007199254740992", "1"],
    "one and one point zero": ["1", "1.0"],
    "huge": ["1e30", "1000000000000000000000000000000", "7"],
    "negative and plus": ["-3", "+3", "3"],
}


@pytest.mark.parametrize("which", LABEL_SETS)
def test_class_labels_are_kept_as_written(tmp_path, which):
    labels = LABEL_SETS[which] * 20
    _labels_csv(tmp_path / "d.csv", labels)
    X, y, names, target = tabular.read_csv(str(tmp_path / "d.csv"), target="label")
    assert list(y) == labels
    task, idx, classes, why = tabular.encode_labels(y, "classification", target)
    assert sorted(classes) == sorted(LABEL_SETS[which])  # one class per distinct text
    assert [classes[k] for k in idx] == labels
    auto_task, _, auto_classes, _ = tabular.encode_labels(y, "auto", target)
    assert auto_task == "classification" and auto_classes == classes


def test_numeric_classes_are_in_numeric_order():
    y = np.array(["10", "9", "02", "-1", "9007199254740993", "9007199254740992"])
    _, idx, classes, _ = tabular.encode_labels(y, "classification")
    assert classes == ["-1", "02", "9", "10", "9007199254740992", "9007199254740993"]
    assert [classes[k] for k in idx] == list(y)


@pytest.mark.parametrize("y, expect", [
    (np.array([9007199254740993, 9007199254740992, 1]), ["1", "9007199254740992", "9007199254740993"]),
    (np.array([1e30, 2.5, 3.0]), ["2.5", "3", "1e+30"]),
])
def test_numeric_label_arrays_keep_every_value(y, expect):
    """Labels from an .npz or .npy: integers exactly, floats by their shortest repr."""
    _, idx, classes, _ = tabular.encode_labels(np.tile(y, 5), "classification")
    assert classes == expect
    assert len(set(idx.tolist())) == len(expect)


def test_cli_predict_prints_the_training_labels(tmp_path):
    labels = ["02134", "10001", "9007199254740993", "9007199254740992"]
    rows = labels * 30
    _labels_csv(tmp_path / "d.csv", rows)
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("FASTNN_DEBUG", None)
    run = lambda *a: subprocess.run([sys.executable, "-m", "fastnn", *a], cwd=tmp_path, capture_output=True,
                                    text=True, env=env, timeout=120)
    p = run("train", "d.csv", "--target", "label", "--layers", "8", "--epochs", "2", "-q", "--out", "m.safetensors")
    assert p.returncode == 0, p.stderr
    p = run("predict", "m.safetensors", "d.csv", "--proba")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "p_02134,p_10001,p_9007199254740992,p_9007199254740993"
    p = run("predict", "m.safetensors", "d.csv")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "label" and len(out) == len(rows) + 1 and set(out[1:]) <= set(labels)


# ---- the command line's smaller promises: exit codes, messages that name the file and the cause ----

def _cli(*args, cwd, preexec_fn=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("FASTNN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "fastnn", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120, preexec_fn=preexec_fn)


def _error(p):
    lines = p.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("fastnn: error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    rows = [f"{rng.normal():.5f},{rng.normal():.5f},{i % 2}" for i in range(60)]
    (d / "ok.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    return d


@pytest.mark.parametrize("args, words", [
    (["--threads", "100000"], "--threads"),
    (["--threads", "65537"], "--threads"),
    (["--seed", "99999999999999999999999"], "--seed"),
    (["--seed", str(2 ** 64)], "--seed"),
])
def test_out_of_range_options_are_usage_errors(tables, args, words):
    p = _cli("train", "ok.csv", "--target", "y", "--epochs", "1", "-q", *args, cwd=tables)
    assert p.returncode == 2, p.stderr
    assert words in p.stderr and "Traceback" not in p.stderr


def test_the_largest_seed_is_accepted(tables, tmp_path):
    p = _cli("train", str(tables / "ok.csv"), "--target", "y", "--epochs", "1", "-q", "--seed", str(2 ** 64 - 1),
             "--out", "m.safetensors", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def _write(path, data):
    path.write_bytes(data)
    return path.name


def _bad_files(d):
    import gzip
    import zipfile
    good = (d / "ok.csv").read_bytes()
    cases = {}
    cases["non-UTF-8 data row"] = (_write(d / "bad8.csv", b"a,b,y\n1,2,0\n3,\xff4,1\n5,6,0\n"),
                                   r"bad8\.csv: line 3: not UTF-8 text")
    cases["non-UTF-8 header"] = (_write(d / "bad8h.csv", b"a,\xfeb,y\n1,2,0\n3,4,1\n"),
                                 r"bad8h\.csv: line 1: not UTF-8 text")
    cases["non-UTF-8 gz row"] = (_write(d / "bad8.csv.gz", gzip.compress(b"a,b,y\n1,2,0\n3,\xff4,1\n")),
                                 r"bad8\.csv\.gz: line 3: not UTF-8 text")
    cases["truncated .csv.gz"] = (_write(d / "cut.csv.gz", gzip.compress(good + good.split(b"\n", 1)[1] * 20)[:-30]),
                                  r"cut\.csv\.gz: not a readable gzip file")
    cases["garbage .csv.gz"] = (_write(d / "junk.csv.gz", b"\x1f\x8b\x08\x00" + b"\x13" * 200),
                                r"junk\.csv\.gz: not a readable gzip file")
    cases["50 MB field"] = (_write(d / "big.csv", b'a,b,y\n1,2,0\n1,"' + b"7" * (50 << 20) + b'",1\n'),
                            r"big\.csv: line 3: a field longer than")
    cases["50 MB header"] = (_write(d / "bighead.csv", b'a,"' + b"b" * (50 << 20) + b'",y\n1,2,0\n'),
                             r"bighead\.csv: line 1: a field longer than")
    with zipfile.ZipFile(d / "notnpy.npz", "w") as z:
        z.writestr("X", b"not an npy")
        z.writestr("y.npy", b"zz")
    cases["npz member not .npy"] = ("notnpy.npz", r"notnpy\.npz: member 'X' is not a \.npy array")
    np.save(d / "X.npy", np.zeros((60, 2)))
    np.save(d / "y3d.npy", np.zeros((60, 3, 2)))
    cases["3-D labels"] = ("X.npy --labels y3d.npy", r"y3d\.npy: expected one label .* per data row, got shape \(60, 3, 2\)")
    np.savez(d / "y3d.npz", X=np.zeros((60, 2)), y=np.zeros((60, 3, 2)))
    cases["3-D labels in npz"] = ("y3d.npz", r"y3d\.npz: expected one label .* per data row, got shape \(60, 3, 2\)")
    return cases


@pytest.fixture(scope="module")
def bad_files(tables):
    return _bad_files(tables)


@pytest.mark.parametrize("case", [
    "non-UTF-8 data row", "non-UTF-8 header", "non-UTF-8 gz row", "truncated .csv.gz", "garbage .csv.gz",
    "50 MB field", "50 MB header", "npz member not .npy", "3-D labels", "3-D labels in npz"])
def test_bad_data_files_are_named_with_their_cause(tables, bad_files, case):
    args, pattern = bad_files[case]
    csv_file = args.endswith((".csv", ".gz"))
    p = _cli("train", *args.split(), *(["--target", "y"] if csv_file else []), "--epochs", "1", "-q",
             "--out", "m.safetensors", cwd=tables)
    assert p.returncode == 1, p.stderr
    assert re.search(pattern, _error(p)), _error(p)


def test_two_dimensional_labels_from_a_file_are_a_multi_output_regression(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(60, 2)))
    np.save(tmp_path / "y2d.npy", rng.normal(size=(60, 3)))
    p = _cli("train", "X.npy", "--labels", "y2d.npy", "--epochs", "1", "--out", "m.safetensors",
             cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "task: regression, because the labels have 3 columns" in p.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained by the command line, and 3 000 rows to predict."""
    d = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 2))
    (d / "rows.csv").write_text("a,b,y\n" + "\n".join(f"{a:.5f},{b:.5f},{'yes' if a > 0 else 'no'}"
                                                      for a, b in X) + "\n")
    p = _cli("train", "rows.csv", "--target", "y", "--layers", "4", "--epochs", "1", "-q", "--out", "m.safetensors",
             cwd=d)
    assert p.returncode == 0, p.stderr
    return d


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as on Linux")
@pytest.mark.parametrize("proba", [False, True])
def test_predict_out_on_a_full_disk_keeps_the_old_file(trained, tmp_path, proba):
    """A write cut short (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) left a partial predictions
    file in place of the old one; --out is now written as model files are."""
    import resource
    out = tmp_path / "pred.csv"
    out.write_text("old predictions\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    p = _cli("predict", str(trained / "m.safetensors"), str(trained / "rows.csv"), "--out", str(out),
             *(["--proba"] if proba else []), cwd=tmp_path, preexec_fn=limit)
    assert p.returncode == 1, p.stderr
    assert f"--out {out}: cannot write" in _error(p)
    assert out.read_text() == "old predictions\n"
    assert os.listdir(tmp_path) == ["pred.csv"]
    p = _cli("predict", str(trained / "m.safetensors"), str(trained / "rows.csv"), "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0 and len(out.read_text().splitlines()) == 3001


@pytest.mark.parametrize("values, extra, column", [
    ("1e300", [], "big"),           # the variance overflows: every standardised value became 0
    ("1e200", [], "big"),           # the squares overflow
    ("-1e300", [], "big"),
    ("1e300", ["--no-scale"], "big"),  # finite in float64, Inf in the float32 model
    ("1e39", ["--no-scale"], "big"),
])
def test_train_refuses_features_whose_scaling_overflows(tmp_path, values, extra, column):
    rng = np.random.default_rng(3)
    rows = [f"{rng.normal():.4f},{float(values) * rng.uniform(0.5, 1):.6g},{i % 2}" for i in range(60)]
    (tmp_path / "d.csv").write_text("a,big,y\n" + "\n".join(rows) + "\n")
    p = _cli("train", "d.csv", "--target", "y", "--epochs", "1", "-q", *extra, "--out", "m.safetensors", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert re.search(rf"d\.csv: column {column!r}: values .* overflow", _error(p)), _error(p)
    assert not (tmp_path / "m.safetensors").exists()


def test_train_takes_large_features_that_scale(tmp_path):
    rng = np.random.default_rng(3)
    rows = [f"{rng.normal():.4f},{1e30 * rng.uniform(0.5, 1):.6g},{i % 2}" for i in range(60)]
    (tmp_path / "d.csv").write_text("a,big,y\n" + "\n".join(rows) + "\n")
    p = _cli("train", "d.csv", "--target", "y", "--epochs", "1", "-q", "--out", "m.safetensors", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = _cli("predict", "m.safetensors", "d.csv", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


BAD_META = {
    "classes a string": ({"classes": "xyz"}, "classes"),
    "classes numbers": ({"classes": [0, 1]}, "classes"),
    "classes too few": ({"classes": ["no"]}, "classes"),
    "classes too many": ({"classes": ["no", "yes", "maybe"]}, "classes"),
    "classes repeated": ({"classes": ["no", "no"]}, "classes"),
    "task unknown": ({"task": "clustering"}, "task"),
    "task not text": ({"task": 1}, "task"),
    "features a string": ({"features": "ab"}, "features"),
    "features too few": ({"features": ["a"]}, "features"),
    "features repeated": ({"features": ["a", "a"]}, "features"),
    "features numbers": ({"features": [1, 2]}, "features"),
    "target not text": ({"target": ["y"]}, "target"),
    "not an object": ([1, 2], None),
}


@pytest.mark.parametrize("case", BAD_META)
def test_cli_metadata_is_checked_before_use(trained, tmp_path, case):
    """classes: "xyz" printed "x": the command's metadata is now checked as strictly as the rest."""
    import json

    import fastnn as fnn
    m = fnn.load(trained / "m.safetensors")
    meta = json.loads(m.metadata["fastnn_cli"])
    change, key = BAD_META[case]
    meta = change if not isinstance(change, dict) else dict(meta, **change)
    m.save(tmp_path / "bad.safetensors", extra_metadata={"fastnn_cli": json.dumps(meta)})
    for args in (["--proba"], []):
        p = _cli("predict", "bad.safetensors", str(trained / "rows.csv"), *args, cwd=tmp_path)
        assert p.returncode == 1, p.stderr
        msg = _error(p)
        assert "bad.safetensors: the fastnn_cli metadata is not valid" in msg, msg
        if key:
            assert f"({key}:" in msg, msg
