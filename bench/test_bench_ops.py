"""pytest-benchmark cases for the kernels (not part of the test suite: run them explicitly).

    python -m pytest bench/test_bench_ops.py --benchmark-only --benchmark-group-by=param:shape

Each case checks its result against NumPy before it is timed; `numpy` rows are the reference measured
in the same run, so compare ratios, not absolute times.
"""
import numpy as np
import pytest

import fastnn as fnn

pytest.importorskip("pytest_benchmark", reason="the benchmark cases need pytest-benchmark (the [bench] extra)")

MLP_SHAPES = [  # (m, n, k, trans_a): forward, weight gradient
    (32, 512, 784, False), (128, 512, 784, False), (512, 512, 784, False),
    (128, 256, 512, False), (784, 512, 32, True), (784, 512, 128, True), (784, 512, 512, True),
]
SQUARES = [(s, s, s, False) for s in (256, 512, 1024, 2048)]


def operands(m, n, k, ta, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("lib", ["fastnn", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", MLP_SHAPES + SQUARES, ids=lambda s: "x".join(map(str, s[:3])) + ("T" if s[3] else ""))
def test_gemm(benchmark, lib, dtype, shape):
    m, n, k, ta = shape
    a, b = operands(m, n, k, ta, dtype)
    A = a.T if ta else a
    out = np.empty((m, n), dtype)
    ref = A.astype(np.float64) @ b
    if lib == "fastnn":
        fn = lambda: fnn.ops.gemm(a, b, trans_a=ta, out=out, check_finite=False)  # noqa: E731
    else:
        fn = lambda: np.matmul(A, b, out=out)  # noqa: E731
    fn()
    assert np.abs(out - ref).max() <= (1e-3 if dtype == "float32" else 1e-9) * np.abs(ref).max()
    benchmark.extra_info["gflop"] = 2.0 * m * n * k / 1e9
    benchmark(fn)


@pytest.mark.parametrize("lib", ["fastnn", "numpy"])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation(benchmark, lib, name):
    x = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    ref = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
           "softmax": lambda v: np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)}[name]
    fn = (lambda: getattr(fnn.ops, name)(x, check_finite=False)) if lib == "fastnn" else (lambda: ref(x))
    np.testing.assert_allclose(fn(), ref(x), rtol=1e-5, atol=1e-6)
    benchmark(fn)
