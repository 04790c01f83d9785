"""The command line's data readers (fastnn/tabular.py) on hostile tables: headers wide enough that a
quadratic check would never finish, and labels that must come back exactly as they went in."""
import os
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
