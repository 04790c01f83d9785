"""Writing model files (docs/FORMAT.md): a safetensors file whose `__metadata__` holds the architecture.

Reading is the C reader's job (csrc/io.c, bound in fastnn/_io.pxi): one reader for Python and C.

- `encode(architecture, tensors, extra_metadata=None, training=None)` -> the file's bytes: header padded
  with spaces to a multiple of 8 (as the safetensors package writes it), tensors little-endian and back
  to back in the given order; `extra_metadata` (str -> str, none of RESERVED_KEYS) joins the format's
  own keys; `training` (a dict) is the training state, stored as JSON text under "training".
  A tensor is (name, array) or (name, array, dtype) with dtype "BF16" for float32 values stored as
  bfloat16 (rounded to nearest even); int8 arrays are I8.
- The schema a file declares is the oldest that holds it: "1.0", "1.1" for a file with a
  normalization layer, a max_norm or a training state, "1.2" for one with low-precision (int8,
  bfloat16) layers, so that older readers keep reading the rest.
- `write_atomic(path, data)`: the bytes reach `path` whole or not at all: a temporary file in the same
  directory, fsync, rename over `path`, fsync of the directory.  On any error the temporary file is
  removed and an existing `path` is left as it was.
"""
import collections.abc
import json
import os
import struct
import tempfile

import numpy as np

from . import _core

SCHEMA = "1.0"       # what a file that uses nothing newer declares
SCHEMA_LATEST = "1.1"  # normalization layers, Dense max_norm, the training state
SCHEMA_LOWP = "1.2"  # Dense layers with a "precision" (int8, bfloat16)
FORMAT = "fastnn"
_DTYPES = {np.dtype(np.float32): ("F32", "<f4"), np.dtype(np.float64): ("F64", "<f8"), np.dtype(np.int8): ("I8", "i1")}


# The __metadata__ keys the format itself uses; a model's extra metadata may use any other string.
RESERVED_KEYS = ("format", "fastnn_schema", "fastnn_version", "architecture", "training")


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def path_arg(path, name="path"):
    """`path` as a str or bytes path; TypeError/ValueError naming `name` otherwise."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected a str or path-like object, got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name}: is empty")
    return path


def check_extra_metadata(extra, name="extra_metadata"):
    """`extra` as a dict of str -> str that the format can carry beside its own keys."""
    if extra is None:
        return {}
    if not isinstance(extra, collections.abc.Mapping):
        raise TypeError(f"{name}: expected a dict of str -> str, got {type(extra).__name__}")
    out = {}
    for k, v in extra.items():
        if not isinstance(k, str):
            raise TypeError(f"{name}: keys must be str, got {k!r} ({type(k).__name__})")
        if not isinstance(v, str):
            raise TypeError(f"{name}[{k!r}]: values must be str (safetensors metadata is text), got "
                            f"{type(v).__name__}")
        if k in RESERVED_KEYS:
            raise ValueError(f"{name}: key {k!r} is reserved by the model file format "
                             f"({', '.join(RESERVED_KEYS)})")
        if "\0" in k or "\0" in v:  # the C reader refuses \u0000: the file would not load
            raise ValueError(f"{name}: key {k!r}: NUL characters cannot be stored")
        out[k] = v
    return out


def schema(architecture, training=None):
    """The oldest schema that holds a file with this architecture and training state."""
    if any(layer.get("precision") for layer in architecture.get("layers", ())):
        return SCHEMA_LOWP
    newer = training is not None or any(
        layer.get("type") in ("batch_norm", "layer_norm") or layer.get("max_norm") is not None
        for layer in architecture.get("layers", ()))
    return SCHEMA_LATEST if newer else SCHEMA


def metadata(architecture, extra=None, training=None):
    """The `__metadata__` of a model file with this architecture (a dict, see docs/FORMAT.md), plus
    the `extra` keys (checked by check_extra_metadata) and the training state, when given."""
    meta = {"format": FORMAT, "fastnn_schema": schema(architecture, training), "fastnn_version": _core.VERSION,
            "architecture": _json(architecture)}
    if training is not None:
        meta["training"] = _json(training)
    meta.update(check_extra_metadata(extra))
    return meta


def _bf16_bytes(a):
    """float32 values as little-endian bfloat16 (the upper halves after rounding to nearest even)."""
    r = _core.bf16_round(np.ascontiguousarray(a, dtype=np.float32).reshape(-1))
    return (r.view(np.uint32) >> 16).astype("<u2").tobytes()


def encode(architecture, tensors, *, extra_metadata=None, training=None):
    """The bytes of a model file: `tensors` is a list of (name, float32/float64/int8 array) or (name,
    array, dtype) in file order, dtype "BF16" (float32 values stored as bfloat16) or None;
    `extra_metadata` (str -> str) joins the format's own metadata keys; `training` is the training
    state (docs/FORMAT.md), whose optimizer tensors are among `tensors`."""
    header = {"__metadata__": metadata(architecture, extra_metadata, training)}
    chunks, offset = [], 0
    for name, a, *as_dtype in tensors:
        a = np.asarray(a)
        if as_dtype and as_dtype[0] == "BF16":
            code, raw = "BF16", _bf16_bytes(a)
        else:
            code, le = _DTYPES[a.dtype]
            raw = np.ascontiguousarray(a, dtype=le).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = _json(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text] + chunks)


def _file_mode(path):
    """Permission bits for the new file: those of the file it replaces, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:  # the umask without changing it (Linux)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def write_atomic(path, data):
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a torn one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode(path))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
