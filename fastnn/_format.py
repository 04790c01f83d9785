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
- `write_atomic(path, data)`: the bytes reach `path` whole or not at all.  On Linux the file is written
  unnamed (O_TMPFILE), fsync'ed, given a temporary name with linkat only once complete and renamed
  over `path`, so a process killed while writing leaves no file behind; elsewhere (or on a file
  system without O_TMPFILE) it is written under a temporary name ".NAME.PID.XXXXXXXX.tmp", and each
  save removes the temporaries of that NAME left in the directory by processes that no longer
  exist.  On any error the temporary file is removed and an existing `path` is left as it was.
"""
import collections.abc
import errno
import json
import os
import secrets
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


# Linux's O_TMPFILE (None elsewhere; tests set it to None to exercise the named temporary file).
_O_TMPFILE = getattr(os, "O_TMPFILE", None)


def write_atomic(path, data):
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a torn one."""
    path = os.fsdecode(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    mode = _file_mode(path)
    _remove_stale_temporaries(directory, base)
    fd = _open_unnamed(directory)
    if fd is None or not _write_and_rename(fd, None, data, mode, path, directory, base):
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=directory)
        _write_and_rename(fd, tmp, data, mode, path, directory, base)
    _fsync_dir(directory)


# linkat errors that mean "this system cannot name an O_TMPFILE file" (/proc hidden or a file system
# without hard links): the save is made again through a named temporary file.
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP, errno.EMLINK)


def _write_and_rename(fd, tmp, data, mode, path, directory, base):
    """Write `data` to the open file `fd` (named `tmp`, or unnamed when tmp is None), fsync it, name it
    if unnamed, and rename it over `path`.  False when an unnamed file cannot be named; on any other
    error the temporary file is removed and the error raised."""
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:  # complete and on disk: only now does it get a name
                try:
                    tmp = _link_unnamed(f.fileno(), directory, base)
                except OSError as e:
                    if e.errno in _NO_LINK:
                        return False
                    raise
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    return True


def _open_unnamed(directory):
    """A descriptor on a new unnamed file in `directory` (O_TMPFILE), or None where there is none."""
    if _O_TMPFILE is None or not os.path.isdir("/proc/self/fd"):  # naming it later needs /proc
        return None
    try:
        return os.open(directory, _O_TMPFILE | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # a kernel or file system without O_TMPFILE: the named temporary file
        raise


def _link_unnamed(fd, directory, base):
    """Give the unnamed file `fd` a fresh temporary name in `directory` (linkat through /proc)."""
    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N, open(2)'s recipe; os.link uses linkat (rather than
    # link, which would link the symlink itself) only when given a directory descriptor
    proc = os.open("/proc/self/fd", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for _ in range(100):
            tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                os.link(str(fd), tmp, src_dir_fd=proc, follow_symlinks=True)
                return tmp
            except FileExistsError:
                continue
    finally:
        os.close(proc)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _remove_stale_temporaries(directory, base):
    """Remove ".BASE.PID.XXXXXXXX.tmp" files whose writer PID is no longer running: left by a save
    that was killed while writing under a name (where O_TMPFILE is not available)."""
    prefix = f".{base}."
    try:
        entries = [e.name for e in os.scandir(directory) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return
    for name in entries:
        parts = name[len(prefix):-len(".tmp")].split(".")
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 8:
            continue
        pid = int(parts[0])
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _alive(pid):
    if os.name != "posix":  # os.kill(pid, 0) would send Windows' CTRL_C_EVENT, not ask
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or not a pid we can ask about: leave its file
    return True


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
