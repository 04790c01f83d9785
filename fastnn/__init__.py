"""fastnn: dense neural networks on the CPU, with C kernels (SIMD, OpenMP) under a small Python API."""
import numbers as _numbers
import os as _os

# OpenMP worker threads that spin long between parallel regions lose the CPU when another process
# wants it, and then regions wait a scheduler time slice for them.  A short spin keeps the
# quiet-machine speed and is 30-40% faster than libgomp's default when another process competes
# for the cores (README, "Threads").  Only when the user chose no policy, and only for a libgomp
# that is loaded from here on.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "3000"

from . import _core
from ._errors import FastNNError, ModelFormatError, NotCompiledError, NotFittedError
from . import ops

__version__ = _core.VERSION
__all__ = ["ops", "distributed", "dask", "build_info", "set_num_threads", "get_num_threads", "set_adaptive_threads",
           "get_adaptive_threads", "FastNNError", "ModelFormatError",
           "NotCompiledError", "NotFittedError", "from_onnx", "quantize", "dequantize", "__version__"]


def build_info():
    """What this build of fastnn runs: SIMD level, OpenMP, threads, compiler, and the instruction paths
    of int8 products ("avx512_vnni", "avx2", "generic") and bfloat16 products ("avx512_bf16", or
    "software": rounded to bfloat16, then multiplied in float32) at that level."""
    return {
        "version": __version__,
        "openmp": _core.has_openmp(),
        "simd": _core.simd_level(),
        "simd_available": _core.simd_available(),
        "num_threads": _core.get_num_threads(),
        "max_threads": _core.max_threads(),
        "adaptive_threads": _core.get_adaptive_threads(),
        "compiler": _core.compiler(),
        "int8": _core.int8_path(),
        "bf16": _core.bf16_path(),
    }


def set_num_threads(n):
    """Threads used by every parallel kernel from now on (at least 1). Without OpenMP this is 1.  A
    count above build_info()["max_threads"] (4 per processor available, at most 1024) means that
    bound; a calling thread that cannot start as many threads (a memory limit) gets as many as it can."""
    if isinstance(n, bool) or not isinstance(n, _numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected at least 1 thread, got {n}")
    if n > 65536:
        raise ValueError(f"n: expected at most 65536 threads, got {n}")
    _core.set_num_threads(int(n))


def set_adaptive_threads(on):
    """Whether training steps (and the batches of predict and evaluate) may run on fewer threads than
    set_num_threads while that is measured to be faster (the default, True): where another process keeps
    a core busy, a thread waiting for it would slow every step.  The results are the same bits either way;
    False keeps every step at the full count.  fnn.ops always run on the full count."""
    if not isinstance(on, (bool, _numbers.Integral)):
        raise TypeError(f"on: expected a bool, got {type(on).__name__}")
    _core.set_adaptive_threads(bool(on))


def get_adaptive_threads():
    """True while training steps choose their thread count (see set_adaptive_threads)."""
    return _core.get_adaptive_threads()


def get_num_threads():
    """Threads the parallel kernels use on the calling thread (OMP_NUM_THREADS, or the cores, unless
    set_num_threads; within the bound and what this thread can start)."""
    return _core.get_num_threads()

from . import callbacks, metrics, schedules
from .callbacks import (EarlyStopping, ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau, History, Callback,
                        CSVLogger, LambdaCallback)
from ._errors import NonFiniteLossError
from .layers import Dense, Dropout, Activation, BatchNorm, LayerNorm
from .optimizers import SGD, Adam, AdamW, RMSprop
from .models import Sequential
from . import layers, optimizers, models, distributed, dask


from . import saving
from .saving import load
from .quantization import quantize, dequantize


def from_onnx(source):
    """A Sequential from an ONNX file (a path, its bytes, or an onnx.ModelProto) holding an MLP as
    fastnn, torch.onnx.export or skl2onnx write it; ModelFormatError names anything else.  Needs the
    optional onnx package (pip install "fastnn[onnx]"); see fastnn/onnx.py for what is read."""
    return saving.from_onnx(source)
