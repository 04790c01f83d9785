"""GEMM against NumPy (float64 reference) on awkward shapes, every transpose case, both dtypes, every
SIMD level the CPU runs and 1 and 2 threads; bitwise equality across thread counts; argument errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core
from conftest import TOL, with_threads

# (m, n, k): ones, odd and prime sizes, edge tiles in every dimension, K split into several blocks,
# M larger than one MC block, N larger than one NC block; N at and below the thin tiles' one vector
# (16, 8 or 4 columns by kernel) with M past the small-M kernel.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 2), (3, 5, 7), (13, 17, 19), (31, 37, 41), (64, 32, 16),
          (97, 61, 300), (15, 33, 1), (300, 40, 9), (40, 2100, 6), (29, 10, 300), (45, 3, 50),
          (200, 16, 40), (21, 8, 77)]
TRANS = [(False, False), (True, False), (False, True), (True, True)]


def operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def reference(a, b, ta, tb, alpha=1.0, beta=0.0, c=None):
    r = alpha * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64))
    return r if c is None else r + beta * c.astype(np.float64)


def assert_close(got, want, dtype, k):
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    tol = TOL[np.dtype(dtype)] * max(1.0, np.sqrt(k)) * 10
    err = float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) / scale
    assert err < tol, f"relative error {err:.3e} >= {tol:.1e}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_gemm_matches_numpy(simd, threads, rng, dtype, ta, tb):
    for m, n, k in SHAPES:
        a, b = operands(rng, m, n, k, ta, tb, dtype)
        got = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb)
        assert got.dtype == dtype and got.shape == (m, n)
        assert_close(got, reference(a, b, ta, tb), dtype, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposing_packs_every_remainder(simd, rng, dtype):
    """A as stored and B transposed go through the transposing copy of packing: every count of rows
    and of K below, at and past the vector blocks (2, 4, 8 values), and past one register tile."""
    for m in list(range(5, 20)) + [29, 33]:
        for k in list(range(1, 20)) + [31, 40]:
            for n in (1, 9, 33):
                a, b = operands(rng, m, n, k, False, True, dtype)
                got = fnn.ops.gemm(a, b, trans_b=True)
                assert_close(got, reference(a, b, False, True), dtype, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_beta_and_out(simd, rng, dtype):
    for ta, tb in TRANS:
        a, b = operands(rng, 29, 45, 70, ta, tb, dtype)
        c0 = rng.standard_normal((29, 45)).astype(dtype)
        for alpha, beta in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (1.0, -1.0), (0.0, 3.0)]:
            out = c0.copy()
            res = fnn.ops.gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out)
            assert res is out
            assert_close(out, reference(a, b, ta, tb, alpha, beta, c0), dtype, 70)


def test_beta_zero_never_reads_out(rng):
    a, b = operands(rng, 20, 40, 30, False, False, np.float32)
    out = np.full((20, 40), np.nan, np.float32)
    fnn.ops.gemm(a, b, out=out, beta=0.0, check_finite=False)
    assert np.isfinite(out).all()
    assert_close(out, reference(a, b, False, False), np.float32, 30)


def test_kernel_matches_naive_c_reference(simd, rng):
    """The blocked kernel against the naive triple loop in C (the oracle kept beside it)."""
    for dtype in (np.float32, np.float64):
        for ta, tb in TRANS:
            a, b = operands(rng, 37, 70, 300, ta, tb, dtype)
            fast = np.zeros((37, 70), dtype)
            naive = np.zeros((37, 70), dtype)
            _core.gemm(ta, tb, 37, 70, 300, 1.0, a, a.shape[1], b, b.shape[1], 0.0, fast, 70)
            _core.gemm(ta, tb, 37, 70, 300, 1.0, a, a.shape[1], b, b.shape[1], 0.0, naive, 70, True)
            assert_close(fast, naive.astype(np.float64), dtype, 300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_thread_counts(simd, rng, dtype):
    for (m, n, k), (ta, tb) in zip([(300, 301, 302), (512, 64, 700), (33, 1024, 513), (256, 256, 1000)], TRANS):
        a, b = operands(rng, m, n, k, ta, tb, dtype)
        one = with_threads(1, fnn.ops.gemm, a, b, trans_a=ta, trans_b=tb)
        two = with_threads(2, fnn.ops.gemm, a, b, trans_a=ta, trans_b=tb)
        assert one.tobytes() == two.tobytes()


def test_strided_inputs(rng):
    base = rng.standard_normal((60, 80))
    a = base[::2, 1::3]            # neither C- nor F-contiguous: copied
    b = np.asfortranarray(rng.standard_normal((a.shape[1], 11)))  # F-contiguous: used in place
    assert_close(fnn.ops.gemm(a, b), reference(a, b, False, False), np.float64, a.shape[1])
    assert_close(fnn.ops.gemm(a.T, b, trans_a=True), reference(a, b, False, False), np.float64, a.shape[1])
    out = np.zeros((30, 22))[:, ::2]  # non-contiguous out is filled in place
    fnn.ops.gemm(a, b, out=out)
    assert_close(out, reference(a, b, False, False), np.float64, a.shape[1])


def test_empty_dimensions():
    z = fnn.ops.gemm(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32))
    assert z.shape == (3, 4) and (z == 0).all()
    out = np.full((3, 4), 2.0)
    fnn.ops.gemm(np.ones((3, 0)), np.ones((0, 4)), beta=0.5, out=out)
    assert (out == 1.0).all()
    assert fnn.ops.gemm(np.ones((0, 5)), np.ones((5, 4))).shape == (0, 4)


def test_nan_is_an_error_unless_unchecked():
    a = np.ones((4, 4), np.float32)
    a[1, 2] = np.nan
    with pytest.raises(ValueError, match="a: contains NaN"):
        fnn.ops.gemm(a, np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="b: contains NaN or Inf"):
        fnn.ops.gemm(np.ones((4, 4)), np.full((4, 4), np.inf))
    r = fnn.ops.gemm(a, np.ones((4, 4), np.float32), check_finite=False)
    assert np.isnan(r[1]).all() and np.isfinite(np.delete(r, 1, axis=0)).all()


@pytest.mark.parametrize("bad,exc,match", [
    (np.ones((3, 3), np.int64), TypeError, "a: expected a float32 or float64"),
    (np.ones((3, 3), bool), TypeError, "a: expected a float32 or float64"),
    (np.ones((3, 3), np.complex128), TypeError, "a: expected a float32 or float64"),
    (np.ones((3, 3), np.float16), TypeError, "a: expected a float32 or float64"),
    (np.array([[object()]]), TypeError, "a: expected a float32 or float64"),
    (np.ones(3), ValueError, "a: expected a 2-D array"),
    (np.ones((2, 3, 3)), ValueError, "a: expected a 2-D array"),
])
def test_bad_a(bad, exc, match):
    with pytest.raises(exc, match=match):
        fnn.ops.gemm(bad, np.ones((3, 3)))


def test_bad_combinations():
    with pytest.raises(TypeError, match="b: dtype float64 differs"):
        fnn.ops.gemm(np.ones((2, 3), np.float32), np.ones((3, 2)))
    with pytest.raises(ValueError, match="b: inner dimensions differ"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="out: expected shape"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((3, 2)), out=np.ones((3, 3)))
    with pytest.raises(TypeError, match="out: expected dtype"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((3, 2)), out=np.ones((2, 2), np.float32))
    ro = np.ones((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: array is read-only"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((3, 2)), out=ro)
    with pytest.raises(TypeError, match="alpha: expected a real number"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((3, 2)), alpha="2")
    with pytest.raises(ValueError, match="beta: must be finite"):
        fnn.ops.gemm(np.ones((2, 3)), np.ones((3, 2)), beta=float("nan"), out=np.ones((2, 2)))


def test_build_info_and_threads():
    info = fnn.build_info()
    assert isinstance(info["openmp"], bool)
    assert info["simd"] in info["simd_available"] and "generic" in info["simd_available"]
    assert info["num_threads"] == fnn.get_num_threads() >= 1
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        assert fnn.get_num_threads() == 1
        fnn.set_num_threads(3)
        assert fnn.get_num_threads() == (3 if info["openmp"] else 1)
    finally:
        fnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n: expected at least 1"):
        fnn.set_num_threads(0)
    with pytest.raises(TypeError, match="n: expected an int"):
        fnn.set_num_threads(2.0)
    with pytest.raises(ValueError, match="simd: unknown level"):
        _core.set_simd("sse9")


def run_python(code, **env):
    full = dict(os.environ, **env)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full["PYTHONPATH"] = root + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_env_forces_simd_and_threads():
    code = "import fastnn as f; i = f.build_info(); print(i['simd'], i['num_threads'])"
    for level in _core.simd_available():
        out = run_python(code, FASTNN_SIMD=level, OMP_NUM_THREADS="1")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [level, "1"]
    if fnn.build_info()["openmp"]:
        assert run_python(code, OMP_NUM_THREADS="3").stdout.split()[1] == "3"


def test_read_only_inputs(rng):
    a, b = operands(rng, 9, 11, 13, False, False, np.float32)
    a.flags.writeable = False
    b.flags.writeable = False
    assert_close(fnn.ops.gemm(a, b), reference(a, b, False, False), np.float32, 13)


def test_micro_kernel_ceiling_probe(simd):
    """The benchmarks' micro-kernel ceiling runs the active kernel (both tiles) and reports a rate."""
    for tile in (0, 1):
        assert _core._ukr_rate(tile, 16, 0.01) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leading_dimensions_wider_than_the_operands(simd, threads, rng, dtype):
    """The C entry point on sub-blocks of wider buffers (lda, ldb, ldc past the operands' widths): every
    transpose case and packing path reads only the sub-blocks and writes only C's sub-block."""
    for m, n, k in [(37, 70, 300), (9, 33, 17), (130, 45, 19), (3, 40, 64)]:
        for ta, tb in TRANS:
            ar, ac = (k, m) if ta else (m, k)
            br, bc = (n, k) if tb else (k, n)
            a = rng.standard_normal((ar, ac + 5)).astype(dtype)
            b = rng.standard_normal((br, bc + 3)).astype(dtype)
            c = np.full((m, n + 7), 123.0, dtype)
            _core.gemm(ta, tb, m, n, k, 1.0, a, ac + 5, b, bc + 3, 0.0, c, n + 7)
            want = reference(a[:, :ac], b[:, :bc], ta, tb)
            assert_close(c[:, :n], want, dtype, k)
            assert (c[:, n:] == 123.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_overlapping_an_input_gives_the_product_of_the_inputs_as_they_were(rng, dtype):
    """out=a, out=b, a partly overlapping view, a transposed or strided view of the same memory: the
    result is that of the inputs before the call (as numpy.matmul gives), never values the kernel read
    after writing them."""
    n = 300
    for alpha, beta in [(1.0, 0.0), (0.5, 1.0), (-1.0, 0.25)]:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        tall = rng.standard_normal((n + 7, n)).astype(dtype)
        wide = rng.standard_normal((n, 2 * n)).astype(dtype)
        cases = [  # (what, a, b, out, trans_a)
            ("out=b", a, b, b, False),
            ("out=a", a, b, a, False),
            ("out=a, a transposed", a, b, a, True),
            ("out=b.T", a, b, b.T, False),
            ("rows shifted by 7", tall[:n], b, tall[7:], False),
            ("out=a, every other column", wide[:, ::2], b, wide[:, ::2], False),
            ("the other columns", wide[:, ::2], b, wide[:, 1::2], False),
        ]
        for what, x, y, out, ta in cases:
            x0, y0, c0 = x.copy(), y.copy(), out.copy()
            want = reference(x0, y0, ta, False, alpha, beta, c0)
            res = fnn.ops.gemm(x, y, trans_a=ta, alpha=alpha, beta=beta, out=out)
            assert res is out, what
            assert_close(out, want, dtype, n)


def _aligned(shape, dtype, offset_bytes=0):
    """An array of `shape` whose data starts offset_bytes past a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    n = int(np.prod(shape))
    buf = np.empty(n + (128 + offset_bytes) // itemsize, dtype)
    start = ((-buf.ctypes.data) % 64 + offset_bytes) // itemsize
    out = buf[start:start + n].reshape(shape)
    assert out.ctypes.data % 64 == offset_bytes
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_b_read_in_place_on_and_off_cache_lines(simd, threads, rng, dtype):
    """With few rows, B as stored is read in place when its rows start on cache lines, and packed when
    they do not (as NumPy's own arrays): both, and the in-place read forced onto misaligned rows, give the
    product, whatever the column count's remainder past a panel."""
    for m, n, k in [(5, 64, 40), (31, 48, 300), (64, 80, 77), (17, 37, 33), (1 + 4, 16, 9)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        for offset in (0, 16, 8):
            b = _aligned((k, n), dtype, offset)
            b[...] = rng.standard_normal((k, n))
            want = reference(a, b, False, False)
            assert_close(fnn.ops.gemm(a, b), want, dtype, k)
            try:
                _core._set_gemm_blocks(direct_b=65)  # in place whatever the alignment
                assert_close(fnn.ops.gemm(a, b), want, dtype, k)
            finally:
                _core._set_gemm_blocks()
