"""A row's result does not depend on the other rows in the call: the GEMM, `predict`, the C API and the
C example give a row the same bits whether it comes alone, in a short last batch or in a batch of
600, at every SIMD level and thread count.  Every kernel path is crossed: the small-M kernel (up to 4
rows) against the blocked one, the narrow and wide register tiles, full tiles against edge tiles,
B read in place against packed B, K in one block or several, the fused bias and activation, alpha and
beta, and the allocation-free fallback that runs when the packing buffers cannot be had."""
import os
import subprocess

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import SANITIZED

ROWS = 600
# (K, N) of the Dense layers the tests and the benchmarks build: the 784-512-256-10 MLP, the digits
# 64-256-128-10 one, the 20-64-32-5 of the concurrency tests, and the small ones of the model tests.
LAYER_SHAPES = [(784, 512), (512, 256), (256, 10), (64, 256), (256, 128), (128, 10), (20, 64), (64, 32),
                (32, 5), (32, 10), (10, 64), (64, 1), (1000, 30), (300, 400), (24, 12), (23, 9), (16, 8),
                (8, 3), (6, 4), (5, 2), (4, 3), (3, 2), (2, 16), (1, 1)]
# Batch sizes where the kernel paths change: the small-M kernel (up to 4 rows), the register tiles
# (4, 6, 8, 14 rows and their multiples), B read in place (up to 64 rows), the cache blocks (MC of 96
# to 252 rows), and the whole batch.
SOME_BATCHES = sorted(set(range(1, 18)) | {m + d for m in (24, 28, 32, 64, 84, 96, 126, 128, 144, 252, 256, 504)
                                           for d in (-1, 0, 1)} | {599, 600})
# Every batch size from 1 to 600 for one shape that has every path: K in several blocks, N in full
# panels of every register tile width and a partial one.
EVERY_BATCH_SHAPE = (784, 40)


def _assert_rows(full, got, lo, what):
    if got.tobytes() != full[lo:lo + got.shape[0]].tobytes():
        bad = np.flatnonzero((got != full[lo:lo + got.shape[0]]).any(axis=1))
        raise AssertionError(f"{what}: rows {(bad + lo)[:8].tolist()} differ from the same rows computed "
                             f"in a batch of {full.shape[0]}")


def _check_gemm(a, w, batches, windows=True, **kw):
    """gemm(a[s:s+m], w) == gemm(a, w)[s:s+m] for every m in batches, at offset 0 (a row keeps its place
    in its tile, the batch's end moves) and (windows) at an offset that moves every row elsewhere."""
    full = fnn.ops.gemm(a, w, **kw)
    for m in batches:
        for s in sorted({0, (7 * m) % (a.shape[0] - m + 1) if windows else 0}):
            part = fnn.ops.gemm(a[s:s + m], w, **kw)
            _assert_rows(full, part, s, f"gemm of rows [{s}, {s + m}) of {a.shape} x {w.shape}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_rows_do_not_depend_on_the_batch(simd, threads, dtype):
    rng = np.random.default_rng(3)
    for k, n in LAYER_SHAPES:
        a = rng.standard_normal((ROWS, k)).astype(dtype)
        w = rng.standard_normal((k, n)).astype(dtype)
        _check_gemm(a, w, SOME_BATCHES)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_rows_for_every_batch_size(simd, dtype):
    rng = np.random.default_rng(2)
    k, n = EVERY_BATCH_SHAPE
    a = rng.standard_normal((ROWS, k)).astype(dtype)
    w = rng.standard_normal((k, n)).astype(dtype)
    _check_gemm(a, w, range(1, ROWS + 1), windows=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_rows_with_alpha_beta_and_transposes(simd, threads, dtype):
    """alpha != 1 and beta != 0 (each K block added to C with one rounding, in every path), and B
    stored transposed (packed, never read in place) or A transposed."""
    rng = np.random.default_rng(4)
    for k, n in [(784, 40), (300, 33), (64, 32), (9, 17)]:
        a = rng.standard_normal((ROWS, k)).astype(dtype)
        w = rng.standard_normal((k, n)).astype(dtype)
        c = rng.standard_normal((ROWS, n)).astype(dtype)
        for alpha, beta in [(0.7, 0.0), (1.0, 1.0), (-1.3, 0.3), (0.5, -2.0)]:
            full = fnn.ops.gemm(a, w, alpha=alpha, beta=beta, out=c.copy())
            for m in SOME_BATCHES:
                s = (5 * m) % (ROWS - m + 1)
                part = fnn.ops.gemm(a[s:s + m], w, alpha=alpha, beta=beta, out=c[s:s + m].copy())
                _assert_rows(full, part, s, f"alpha={alpha} beta={beta} rows [{s}, {s + m}) K={k} N={n}")
        wt = np.ascontiguousarray(w.T)
        _check_gemm(a, wt, SOME_BATCHES[::3], trans_b=True)
        at = np.asfortranarray(a)  # used in place as the transpose of a row-major (k, ROWS) array
        full = fnn.ops.gemm(at, w)
        for m in SOME_BATCHES[::3]:
            _assert_rows(full, fnn.ops.gemm(at[:m], w), 0, f"A stored transposed, rows [0, {m})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_rows_with_the_tiles_forced(simd, dtype):
    """The narrow and the wide register tile, the thin ones (one vector of columns: the default for
    10 columns), B packed for every batch, small cache blocks (several MC and NC blocks, a K block of
    64): none changes a row's bits."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((ROWS, 300)).astype(dtype)
    w = rng.standard_normal((300, 70)).astype(dtype)
    w10 = rng.standard_normal((300, 10)).astype(dtype)
    want, want10 = fnn.ops.gemm(a, w), fnn.ops.gemm(a, w10)
    try:
        for blocks in [dict(tile=1), dict(tile=2), dict(tile=3), dict(tile=4), dict(direct_b=1),
                       dict(mc=24, nc=32), dict(tile=2, mc=8)]:
            _core._set_gemm_blocks(**blocks)
            for m in (1, 2, 3, 4, 5, 7, 13, 64, 65, ROWS):
                _assert_rows(want, fnn.ops.gemm(a[:m], w), 0, f"blocks {blocks}, rows [0, {m})")
                _assert_rows(want10, fnn.ops.gemm(a[:m], w10), 0,
                             f"blocks {blocks}, 10 columns, rows [0, {m})")
        # a K block of 64 changes the order of the sums (as intended): the same for every batch
        _core._set_gemm_blocks(kc=64)
        want64 = fnn.ops.gemm(a, w)
        for m in (1, 3, 4, 5, 14, 65, 200):
            _assert_rows(want64, fnn.ops.gemm(a[:m], w), 0, f"kc=64, rows [0, {m})")
    finally:
        _core._set_gemm_blocks()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_fallback_without_packing_buffers_gives_the_same_bits(simd, threads, dtype):
    """When the packing buffers cannot be allocated, the GEMM runs a loop that needs none; it sums in
    the blocked kernels' order, so that memory pressure changes no result."""
    rng = np.random.default_rng(6)
    cases = [(37, 784, 40, False, False), (20, 300, 33, True, False), (9, 70, 17, False, True),
             (30, 64, 32, True, True)]
    try:
        for m, k, n, ta, tb in cases:
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c = rng.standard_normal((m, n)).astype(dtype)
            for alpha, beta in [(1.0, 0.0), (0.7, 0.4)]:
                _core._set_gemm_blocks()
                want = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=c.copy())
                _core._set_gemm_blocks(no_workspace=1)
                got = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=c.copy())
                _assert_rows(want, got, 0, f"fallback m={m} k={k} n={n} ta={ta} tb={tb} alpha={alpha}")
    finally:
        _core._set_gemm_blocks()


# ---- the layers: fused bias and activation, predict, the C API and the C example -------------------

ACTS = ["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu", None]


def _model(sizes, dtype, loss="cross_entropy", seed=0):
    layers = [fnn.Dense(w, activation=ACTS[i % len(ACTS)]) for i, w in enumerate(sizes[1:-1])]
    model = fnn.Sequential(layers + [fnn.Dense(sizes[-1])], input_dim=sizes[0], dtype=dtype, seed=seed)
    model.compile(loss)
    return model


MODELS = [(784, 512, 256, 10), (64, 256, 128, 10), (20, 64, 32, 5), (64, 32, 10), (10, 64, 1), (3, 8, 16, 2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_rows_do_not_depend_on_the_batch(simd, dtype):
    """predict on r rows equals the first r rows of predict on 600, for every r (a short last batch),
    and predict with batch_size=b splits the same rows into batches of b without changing a bit."""
    rng = np.random.default_rng(7)
    for sizes in MODELS:
        for loss in ("cross_entropy", "mse"):
            model = _model(sizes, dtype, loss)
            X = rng.standard_normal((ROWS, sizes[0])).astype(dtype)
            full = model.predict(X)
            every = sizes == (64, 32, 10) and loss == "cross_entropy"
            for r in (range(1, ROWS + 1) if every else SOME_BATCHES[::3]):
                _assert_rows(full, model.predict(X[:r]), 0, f"{sizes} {loss}: predict on {r} rows")
            for b in (1, 3, 7, 64, 257):
                got = model.predict(X, batch_size=b)
                _assert_rows(full, got, 0, f"{sizes} {loss}: predict with batch_size={b}")


def test_c_api_rows_do_not_depend_on_the_batch(simd, threads, tmp_path):
    """fnn_model_predict (through the binding) on r rows equals the rows of one call on 600, and equals
    Sequential.predict bit for bit."""
    rng = np.random.default_rng(8)
    for sizes in MODELS:
        model = _model(sizes, "float32")
        path = tmp_path / "m.safetensors"
        model.save(path)
        mf = _core.ModelFile.from_path(str(path))
        X = rng.standard_normal((ROWS, sizes[0])).astype(np.float32)
        full = mf.predict(X)
        assert full.tobytes() == model.predict(X).tobytes()
        for r in SOME_BATCHES[::4]:
            _assert_rows(full, mf.predict(X[:r]), 0, f"{sizes}: the C API on {r} rows")
            _assert_rows(full, mf.predict(X[ROWS - r:]), ROWS - r, f"{sizes}: the C API on the last {r} rows")


@pytest.mark.skipif(SANITIZED, reason="the example is built with other flags under the sanitizers")
def test_c_example_on_257_rows_equals_one_predict(embed, tmp_path):
    """The example predicts 256 rows at a time: its 257th row (a batch of one) has the bits of the
    same row in a whole-batch predict."""
    rng = np.random.default_rng(9)
    for sizes in [(784, 512, 256, 10), (64, 32, 10)]:
        model = _model(sizes, "float32")
        path = tmp_path / "m.safetensors"
        model.save(path)
        X = rng.standard_normal((257, sizes[0])).astype(np.float32)
        rows = tmp_path / "rows.f32"
        X.astype("<f4").tofile(rows)
        r = subprocess.run([embed, "--binary", str(path), str(rows)], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert r.returncode == 0, r.stderr
        got = np.array([[float(v) for v in line.split(",")] for line in r.stdout.splitlines()], dtype=np.float32)
        want = model.predict(X)
        assert got.shape == want.shape
        _assert_rows(want, got, 0, f"{sizes}: examples/embed on 257 rows")
