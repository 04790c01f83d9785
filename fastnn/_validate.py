"""Argument checks at the Python boundary: every error names the argument that was wrong."""
import numbers
import os

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(x, name, *, ndim=None, dtype=None, check_finite=True, min_rows=0):
    """`x` as a float32/float64 ndarray (no copy when it already is one).

    Raises TypeError for a dtype that is not float32/float64 (or not `dtype` when given) and
    ValueError for a wrong number of dimensions or NaN/Inf (when check_finite).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be read as an array ({e})") from None
        if x.dtype.kind in "iub":  # plain Python numbers: let a list of ints be floats
            x = x.astype(np.float64 if dtype is None else dtype)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype}")
    if ndim is not None and x.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    if x.ndim >= 1 and x.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} row(s), got shape {x.shape}")
    if check_finite and not all_finite(x):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def all_finite(x):
    """No NaN/Inf in `x` (a float array); a C scan with the GIL released, no temporary arrays."""
    if x.size == 0 or x.dtype.kind in "biu":
        return True
    if x.dtype not in FLOAT_DTYPES:  # float16, longdouble, complex: rare, let NumPy scan them
        return bool(np.isfinite(x).all())
    flat = x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
    return _core.all_finite(flat)


def real_number(v, name, *, low=None, high=None, low_open=False, high_open=False):
    """`v` as a float within [low, high] (open ends when asked); TypeError/ValueError naming `name`."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, got {v}")
    return v


def integer(v, name, *, low=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    v = int(v)
    if low is not None and v < low:
        raise ValueError(f"{name}: must be >= {low}, got {v}")
    return v


def row_major(x):
    """(buffer, transposed, ld): a C-contiguous 2-D array holding `x` or its transpose, without copying
    when `x` is C- or F-contiguous (copied once otherwise)."""
    if x.flags.c_contiguous:
        return x, False, x.shape[1]
    if x.flags.f_contiguous:
        return x.T, True, x.shape[0]
    x = np.ascontiguousarray(x)
    return x, False, x.shape[1]


def real_array(x, name, kinds="biuf", what="real numbers"):
    """`x` as an ndarray (no copy when it is one) whose dtype kind is in `kinds`; ValueError when it
    cannot be read as an array, TypeError for another dtype, both naming `name`."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:
            raise ValueError(f"{name}: cannot be read as an array ({e})") from None
    if x.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected {what}, got dtype {x.dtype}")
    return x


def replacement(value, shape, name, what="real numbers", dtype=None):
    """A value about to be copied into a parameter buffer of `shape`: numbers of kind f/i/u (`what`
    names them in the error), that shape, finite; in `dtype` (the buffer's) when given, and finite
    there too (cast_finite)."""
    value = np.asarray(value)
    if value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
    value = real_array(value, name, "fiu", what)
    if value.dtype.kind == "f" and not all_finite(value):
        raise ValueError(f"{name}: contains NaN or Inf")
    return value if dtype is None else cast_finite(value, dtype, name)


def cast_finite(value, dtype, name):
    """`value` (finite real numbers) in `dtype`, a float dtype; ValueError naming `name` and the first
    value that the cast would turn into Inf (1e300 is finite in float64, Inf in float32)."""
    dtype = np.dtype(dtype)
    if value.dtype == dtype:
        return value
    with np.errstate(over="ignore", invalid="ignore"):
        out = value.astype(dtype)
    if not all_finite(out):
        flat = np.flatnonzero(~np.isfinite(out.reshape(-1)))[0]
        where = np.unravel_index(flat, value.shape) if value.ndim else ()
        raise ValueError(f"{name}: the value {value.reshape(-1)[flat].item()!r} at index {tuple(map(int, where))} overflows "
                         f"{dtype} (largest {np.finfo(dtype).max:.6g}); the model's parameters are {dtype}")
    return out


def target_array(t, name, like, *, check_finite=True):
    """Loss targets as an array of `like`'s dtype: they are data, so any real dtype (bool, int, float)
    is converted.  TypeError for complex/object/str, ValueError for NaN/Inf (when check_finite)."""
    t = real_array(t, name)
    t = t.astype(like.dtype, copy=False)
    if check_finite and not all_finite(t):
        raise ValueError(f"{name}: contains NaN or Inf")
    return t


def probabilities(t, name, what="cross-entropy targets"):
    """ValueError naming the first row and column of the 2-D `t` outside [0, 1]: a negative (or above
    one) target makes a cross-entropy negative, or unbounded below, instead of a loss."""
    bad = (t < 0) | (t > 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name}: {what} must lie in [0, 1] (probabilities); row {i}, column {j} is {t[i, j]!r}")


def class_labels(t, name, n_rows, n_classes):
    """Class labels as a C-contiguous int64 array: integer dtype, shape (n_rows,), values in
    [0, n_classes); ValueError naming `name` otherwise."""
    if not isinstance(t, np.ndarray):
        t = np.asarray(t)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name}: class labels must be integers, got dtype {t.dtype}")
    if t.shape != (n_rows,):
        raise ValueError(f"{name}: expected {n_rows} class labels (shape ({n_rows},)), got shape {t.shape}")
    if t.size:
        lo, hi = t.min(), t.max()
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name}: class labels must lie in [0, {n_classes}), got values from {lo} to {hi}")
    return np.ascontiguousarray(t, dtype=np.int64)


# ---- memory -----------------------------------------------------------------------------------------
# Linux overcommits: a huge np.zeros or malloc succeeds, and the process is killed later when the pages
# are touched.  So allocations whose size comes from the user (layer widths, batch sizes, GEMM outputs)
# are compared with the memory available first, and refused with a MemoryError that gives the size.

MEMORY_CHECK_MIN = 64 << 20  # smaller requests are not checked (reading /proc/meminfo costs ~30 us)
_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),                    # v2
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def available_memory():
    """Bytes of memory this process can still use without swapping or being killed: the kernel's
    MemAvailable, or less when a cgroup limit leaves less room; None where it cannot be told."""
    avail = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            room = max(int(limit) - usage, 0)
            avail = room if avail is None else min(avail, room)
        break
    return avail


def format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return None  # not reached


def check_memory(nbytes, what):
    """Raise MemoryError("{what}: needs ... bytes ...") when `nbytes` cannot be allocated: more than
    the available memory, or beyond any address space.  Requests under MEMORY_CHECK_MIN pass."""
    if nbytes < MEMORY_CHECK_MIN:
        return
    size = f"{format_bytes(nbytes)} ({nbytes:,} bytes)" if nbytes >= 1024 else format_bytes(nbytes)
    if nbytes >= 2**63:
        raise MemoryError(f"{what}: needs {size}, more than any address space holds")
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise MemoryError(f"{what}: needs {size}, more than the {format_bytes(avail)} of memory available")
