"""The C inference library from outside Python: examples/embed (built by the `embed` fixture of
conftest.py with the system C compiler against `make -C csrc`) run on model files written from
Python; and concurrent predict on one model."""
import os
import subprocess
import threading

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from _io_util import activation, architecture, dense, dropout, model_bytes


def run(exe, *args, env=None, stdin=None):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})), input=stdin)
    return r


def parse(text, n_out):
    rows = [line.split(",") for line in text.splitlines()]
    assert all(len(r) == n_out for r in rows)
    return np.array(rows, dtype=np.float64).astype(np.float32)  # %.9g round-trips every float32


MODELS = {
    "mlp": architecture([dense(16, "relu"), dropout(0.5), dense(8, "gelu"), dense(3)], input_dim=6,
                        loss="cross_entropy"),
    "f64": architecture([dense(9, "elu", 0.5), activation("tanh"), dense(2, "sigmoid")], input_dim=6,
                        dtype="float64", loss="binary_cross_entropy"),
    "reg": architecture([dense(40, "silu"), dense(33, "leaky_relu", 0.1), dense(1)], input_dim=6, loss="mse"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_embed_matches_python_bitwise(embed, name, tmp_path, rng):
    data, _ = model_bytes(MODELS[name], rng)
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    m = _core.ModelFile.from_path(path)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, x, delimiter=",", fmt="%.9g")
    binary = tmp_path / "x.f32"
    x.astype("<f4").tofile(binary)
    before = _core.simd_level()
    try:
        for level in _core.simd_available():
            _core.set_simd(level)
            want = m.predict(x)
            for threads in (1, 2):
                env = {"FASTNN_SIMD": level}
                r = run(embed, "--threads", threads, path, csv, env=env)
                assert r.returncode == 0, r.stderr
                assert np.array_equal(parse(r.stdout, m.n_outputs), want), (level, threads)
                r = run(embed, "--threads", threads, "--binary", path, binary, env=env)
                assert r.returncode == 0, r.stderr
                assert np.array_equal(parse(r.stdout, m.n_outputs), want), (level, threads)
    finally:
        _core.set_simd(before)


def test_embed_reads_stdin_and_reports_errors(embed, tmp_path, rng):
    data, _ = model_bytes(MODELS["mlp"], rng)
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    r = run(embed, path, stdin="# a comment\n\n1,2,3,4,5,6\n 1 2 3 4 5 6 \n")
    assert r.returncode == 0, r.stderr
    out = parse(r.stdout, 3)
    assert out.shape == (2, 3) and np.array_equal(out[0], out[1])
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-6)
    r = run(embed, path, stdin="1,2,3\n")
    assert r.returncode == 1 and "expected 6 numbers, found 3" in r.stderr
    r = run(embed, path, stdin="1,2,3,4,5,6,7\n")
    assert r.returncode == 1 and "more than 6 values" in r.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:-2])
    r = run(embed, bad, stdin="")
    assert r.returncode == 2 and "malformed model file" in r.stderr and "truncated" in r.stderr
    r = run(embed, tmp_path / "nope.safetensors", stdin="")
    assert r.returncode == 2 and "No such file" in r.stderr
    (tmp_path / "short.f32").write_bytes(b"\0" * 10)
    r = run(embed, "--binary", path, tmp_path / "short.f32")
    assert r.returncode == 1 and "inside a row" in r.stderr


def test_embed_on_saved_model_matches_predict(embed, tmp_path, rng):
    """A model trained and saved from Python gives, through the C example, Sequential.predict's bits."""
    m = fnn.Sequential([fnn.Dense(30, "relu"), fnn.Dropout(0.5), fnn.Dense(20, "gelu"), fnn.Dense(4, "softmax")],
                       input_dim=8, seed=4)
    m.compile("cross_entropy")
    X = rng.normal(size=(500, 8)).astype(np.float32)
    m.fit(X, rng.integers(0, 4, 500), epochs=2, verbose=0)
    m.save(tmp_path / "m.safetensors")
    X.astype("<f4").tofile(tmp_path / "x.f32")
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", fmt="%.9g")
    want = m.predict(X)
    for threads in (1, 2):
        env = {"FASTNN_SIMD": _core.simd_level()}
        r = run(embed, "--threads", threads, "--binary", tmp_path / "m.safetensors", tmp_path / "x.f32", env=env)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(parse(r.stdout, 4), want)
        r = run(embed, "--threads", threads, tmp_path / "m.safetensors", tmp_path / "x.csv", env=env)
        assert np.array_equal(parse(r.stdout, 4), want)


# ---- threads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mlp", "f64"])
def test_concurrent_predict_equals_serial(name, rng):
    arch = architecture([dense(64, "relu"), dense(32, "softmax")], input_dim=24, loss="cross_entropy") \
        if name == "mlp" else MODELS["f64"]
    data, _ = model_bytes(arch, rng)
    m = _core.ModelFile.from_buffer(data)
    batches = [rng.normal(size=(n, arch["input_dim"])).astype(np.float32) for n in (1, 3, 1, 50, 700, 1, 2000)]
    serial = [m.predict(b) for b in batches]
    errors, results = [], {}

    def worker(k):
        try:
            for rep in range(15):
                i = (k + rep) % len(batches)
                results.setdefault(k, []).append((i, m.predict(batches[i])))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    before = fnn.get_num_threads()
    fnn.set_num_threads(2)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        fnn.set_num_threads(before)
    assert not errors
    assert sum(len(v) for v in results.values()) == 60
    for v in results.values():
        for i, out in v:
            assert np.array_equal(out, serial[i])


def test_the_example_in_fastnn_h_compiles_and_predicts_as_python(embed, tmp_path, rng):
    """fastnn.h opens with a complete program: cut it out of the header, build it against the library the
    `embed` fixture built, run it on a model saved from Python and compare with Sequential.predict."""
    from conftest import CC, ROOT
    header = open(os.path.join(ROOT, "csrc", "fastnn.h")).read().split("\n")
    start = next(i for i, l in enumerate(header) if l.strip() == "*     #include <stdio.h>")
    end = next(i for i in range(start, len(header)) if header[i].strip() == "*     }")
    src = "\n".join(l.replace(" *     ", "", 1) if l.startswith(" *     ") else "" for l in header[start:end + 1])
    (tmp_path / "app.c").write_text(src)
    build = os.path.dirname(embed)
    exe = tmp_path / "app"
    san = ["-fsanitize=address,undefined"] if os.environ.get("FASTNN_SANITIZED") == "1" else []
    for omp in (["-fopenmp"], []):
        r = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "csrc"),
                            str(tmp_path / "app.c"), os.path.join(build, "libfastnn.a")] + omp + san +
                           ["-lm", "-o", str(exe)], capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            break
    assert r.returncode == 0, r.stderr
    m = fnn.Sequential([fnn.Dense(7, "relu"), fnn.Dense(3)], input_dim=5, seed=1)
    m.compile("cross_entropy")
    m.save(tmp_path / "model.safetensors")
    out = run(str(exe), tmp_path / "model.safetensors")
    assert out.returncode == 0, out.stderr
    got = np.array([line.split() for line in out.stdout.splitlines()], dtype=np.float64).astype(np.float32)
    want = m.predict(np.stack([np.zeros(5), np.ones(5)]).astype(np.float32))
    np.testing.assert_array_equal(got, want)
    bad = run(str(exe), tmp_path / "missing.safetensors")
    assert bad.returncode == 1 and "I/O error" in bad.stderr and "missing.safetensors" in bad.stderr
