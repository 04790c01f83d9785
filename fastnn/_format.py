"""Writing model files (docs/FORMAT.md): a safetensors file whose `__metadata__` holds the architecture.

Reading is the C reader's job (csrc/io.c, bound in fastnn/_io.pxi): one reader for Python and C.

- `encode(architecture, tensors)` -> the file's bytes: header padded with spaces to a multiple of 8
  (as the safetensors package writes it), tensors little-endian and back to back in the given order.
- `write_atomic(path, data)`: the bytes reach `path` whole or not at all: a temporary file in the same
  directory, fsync, rename over `path`, fsync of the directory.  On any error the temporary file is
  removed and an existing `path` is left as it was.
"""
import json
import os
import struct
import tempfile

import numpy as np

from . import _core

SCHEMA = "1.0"
FORMAT = "fastnn"
_DTYPES = {np.dtype(np.float32): ("F32", "<f4"), np.dtype(np.float64): ("F64", "<f8")}


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def metadata(architecture):
    """The `__metadata__` of a model file with this architecture (a dict, see docs/FORMAT.md)."""
    return {"format": FORMAT, "fastnn_schema": SCHEMA, "fastnn_version": _core.VERSION,
            "architecture": _json(architecture)}


def encode(architecture, tensors, *, meta=None):
    """The bytes of a model file: `tensors` is a list of (name, float32/float64 array) in file order;
    `meta` replaces the metadata built from `architecture` when given."""
    header = {"__metadata__": metadata(architecture) if meta is None else dict(meta)}
    chunks, offset = [], 0
    for name, a in tensors:
        a = np.asarray(a)
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
