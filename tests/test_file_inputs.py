"""Paths that are not regular files: a FIFO with no writer, a directory, a device.  Every reader of
model and data files (fnn.load, load_weights, the C reader, the command line, the C example) says so
at once instead of blocking in open() or reading forever; and the C API's argument errors leave the
output as every other error does."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))


def _run(args, timeout=60, **kw):
    """A subprocess that must answer within `timeout` seconds (a reader blocked on a FIFO would not)."""
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} did not answer within {timeout} s: blocked on a FIFO?")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.safetensors"
    os.mkfifo(path)
    return path


PY_READERS = {
    "fnn.load": "fnn.load(p)",
    "ModelFile.from_path": "_core.ModelFile.from_path(p)",
    "load_weights": "m = fnn.Sequential([fnn.Dense(2)], input_dim=3); m.load_weights(p)",
    "read_safetensors": "fnn.saving.read_safetensors(p)",
}


@posix
@pytest.mark.parametrize("reader", sorted(PY_READERS))
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_python_readers_refuse_what_is_not_a_regular_file(tmp_path, reader, kind):
    path = {"fifo": tmp_path / "f.safetensors", "directory": tmp_path, "device": "/dev/zero"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    code = (f"import sys, fastnn as fnn\nfrom fastnn import _core\np = sys.argv[1]\n"
            f"try:\n    {PY_READERS[reader]}\nexcept OSError as e:\n    print(type(e).__name__, e)\n")
    r = _run([sys.executable, "-c", code, str(path)])
    assert r.returncode == 0, r.stderr
    want = {"fifo": "a FIFO", "directory": "a directory", "device": "not a regular file" if reader in (
        "fnn.load", "ModelFile.from_path") else "a device"}[kind]
    assert want in r.stdout and str(path) in r.stdout, r.stdout


@posix
def test_cli_predict_with_a_fifo_for_the_model_or_the_data(tmp_path, fifo):
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    model.compile("mse")
    good = tmp_path / "good.safetensors"
    model.save(good)
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c\n1,2,3\n")
    data_fifo = tmp_path / "rows_fifo.csv"
    os.mkfifo(data_fifo)
    for args in ([str(fifo), str(rows)], [str(good), str(data_fifo)]):
        r = _run([sys.executable, "-m", "fastnn", "predict"] + args)
        assert r.returncode == 1, (args, r.stderr)
        assert "FIFO" in r.stderr and r.stderr.startswith("fastnn: error:"), r.stderr
    r = _run([sys.executable, "-m", "fastnn", "train", str(data_fifo), "--target", "c"])
    assert r.returncode == 1 and "FIFO" in r.stderr, r.stderr


@posix
def test_c_example_with_a_fifo_model(embed, fifo, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2,3\n")
    r = _run([embed, str(fifo), str(rows)])
    assert r.returncode == 2, r.stderr
    assert "a FIFO, not a regular file" in r.stderr


def test_c_load_with_a_null_path_sets_the_output_to_null(embed):
    """fnn_model_load(NULL, &m) leaves m NULL, as every other failure does (m set beforehand to a
    value that must not survive)."""
    lib = ctypes.CDLL(os.path.join(os.path.dirname(embed), "libfastnn.so"))
    lib.fnn_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    for path in (None, b"/nonexistent/model.safetensors"):
        m = ctypes.c_void_p(0x1234)
        rc = lib.fnn_model_load(path, ctypes.byref(m))
        assert rc != 0 and m.value is None, (path, rc, m.value)
    m = ctypes.c_void_p(0x1234)
    lib.fnn_model_load_buffer.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
    assert lib.fnn_model_load_buffer(None, 10, ctypes.byref(m)) != 0 and m.value is None


def test_private_classes_do_not_crash_unloaded():
    """ModelFile() made without a file: every property and method raises, none dereferences NULL."""
    mf = _core.ModelFile()
    for name in ("n_inputs", "n_outputs", "dtype", "architecture_json", "loss", "link", "metadata", "layers"):
        with pytest.raises(ValueError, match="no model loaded"):
            getattr(mf, name)
    for call in (mf.tensors, lambda: mf.predict(np.zeros((1, 3), np.float32)),
                 lambda: mf.predict_native(np.zeros((1, 3)))):
        with pytest.raises(ValueError, match="no model loaded"):
            call()


@pytest.mark.parametrize("shape", [[0, 2**64 - 1], [2**64 - 1, 0], [0, 2**63], [0, 2**40, 2**40], [2**63, 0, 3]])
def test_an_empty_tensor_with_a_huge_dimension_is_a_format_error(tmp_path, shape):
    """A zero-size tensor passes the size check whatever its other dimensions; NumPy cannot make an
    array of that shape, which is the file's fault: ModelFormatError naming the tensor, not ValueError."""
    import json
    import struct
    header = json.dumps({"layers.0.weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "z.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    m = fnn.Sequential([fnn.Dense(2)], input_dim=3)
    with pytest.raises(fnn.ModelFormatError, match="layers.0.weight"):
        m.load_weights(path)
    with pytest.raises(fnn.ModelFormatError, match="layers.0.weight"):
        fnn.saving.read_safetensors(path)
