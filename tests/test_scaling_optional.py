"""The scaling-out features are optional: `import fastnn` imports neither mpi4py nor Dask, and without
them fnn.distributed.MPI() and fnn.dask.predict say which extra to install.  Arguments are checked
before anything else happens.  Each case runs in a fresh interpreter (importing mpi4py initialises
MPI, which this process must not do)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code, block=()):
    """Run `code` in a fresh interpreter where the modules in `block` cannot be imported."""
    pre = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_import_fastnn_imports_neither_mpi_nor_dask():
    out = run("import fastnn, sys\nprint(sorted(m for m in ('mpi4py', 'dask', 'distributed', 'pandas') "
              "if m in sys.modules))")
    assert out.strip() == "[]"


def test_missing_extras_are_named():
    code = """
import fastnn as fnn, numpy as np
for fn, extra in ((lambda: fnn.distributed.MPI(), 'fastnn[mpi]'),
                  (lambda: fnn.dask.predict(fnn.Sequential([fnn.Dense(2)], input_dim=3), None), 'fastnn[dask]')):
    try:
        fn()
    except ImportError as e:
        assert extra in str(e), e
    else:
        raise AssertionError('no ImportError')
m = fnn.Sequential([fnn.Dense(2)], input_dim=3)
m.compile('mse')
try:
    m.fit(np.zeros((4, 3)), np.zeros((4, 2)), distributed='mpi')
except TypeError as e:
    assert str(e) == 'distributed: expected fastnn.distributed.MPI(...), got str', e
try:
    m.fit(np.zeros((4, 3)), np.zeros((4, 2)), shuffle_window=0)
except ValueError as e:
    assert str(e) == 'shuffle_window: must be >= 1, got 0', e
print('ok')
"""
    assert run(code, block=("mpi4py", "dask")).strip() == "ok"


def test_mpi_arguments_are_checked():
    pytest.importorskip("mpi4py")
    code = """
import fastnn as fnn
for kw, kind, msg in (({'timeout': 0}, ValueError, 'timeout: must be > 0.0, got 0.0'),
                      ({'overlap': 'yes'}, TypeError, "overlap: expected None, True or False, got 'yes'"),
                      ({'shared_memory': 1}, TypeError, 'shared_memory: expected None, True or False, got 1'),
                      ({'comm': 3}, TypeError, 'comm: expected an mpi4py intra-communicator, got int')):
    try:
        fnn.distributed.MPI(**kw)
    except kind as e:
        assert str(e) == msg, e
    else:
        raise AssertionError(kw)
d = fnn.distributed.MPI()
assert (d.rank, d.size) == (0, 1), (d.rank, d.size)
print('ok')
"""
    assert run(code).strip() == "ok"
