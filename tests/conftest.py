"""Shared fixtures: run a test under every SIMD level this CPU has, and under 1 and 2 threads."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

SIMD_LEVELS = _core.simd_available()


@pytest.fixture(params=SIMD_LEVELS)
def simd(request):
    """Force each SIMD level the CPU runs (generic is always among them); restore afterwards."""
    before = _core.simd_level()
    _core.set_simd(request.param)
    yield request.param
    _core.set_simd(before)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = fnn.get_num_threads()
    fnn.set_num_threads(request.param)
    yield request.param
    fnn.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def with_threads(n, fn, *args, **kwargs):
    """fn(*args, **kwargs) with n threads, restoring the previous count."""
    before = fnn.get_num_threads()
    fnn.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        fnn.set_num_threads(before)


TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
