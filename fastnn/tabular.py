"""Tables for the command line: CSV (.csv, .csv.gz), NumPy .npz/.npy and label files read into
arrays, and labels turned into a task and the engine's targets.  Every problem is a DataError whose
message names the file, line and column; `usage` marks the errors that are about how the data was
named (the command line's options) rather than what is in it.

- `read_data(path, target=None, labels=None, feature_names=None, need_labels=True)` ->
  (X float64 (n, d), labels or None, feature names or None, target name or None).
- `encode_labels(y, task, target=None)` -> (task, targets, class names or None, why the task).

In a CSV the first row names the columns; `target` is the label column and every other column is a
feature (or, for prediction, `feature_names` in that order).  In an .npz the features are the array
"X" (or the only other array) and `target` names the labels (default "y").  A .npy holds features
only.  A labels file is an .npy or text with one label per line (an optional header line).
"""
import csv
import gzip
import math
import os
import stat
import warnings
import zlib

import numpy as np

__all__ = ["DataError", "read_data", "read_csv", "read_npz", "read_npy", "read_labels", "file_kind",
           "check_exists", "encode_labels", "choose_task"]


class DataError(Exception):
    """A data file that cannot be used, said in one line; `usage` is True when the fault is in how
    the data was named (a missing --target, an unknown file type) rather than in its content."""

    def __init__(self, message, usage=False):
        super().__init__(message)
        self.usage = usage


def _open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


# What a damaged .gz raises while it is read (besides gzip.BadGzipFile, an OSError).
_GZIP_ERRORS = (EOFError, zlib.error)


def _unreadable(path, e):
    """The message for an error raised while reading the text of `path`: the line that is not UTF-8,
    a damaged gzip stream, or the error itself, always with the path."""
    if isinstance(e, UnicodeDecodeError):
        return _not_utf8(path) or f"{path}: not UTF-8 text ({e.reason})"
    if path.endswith(".gz") and isinstance(e, _GZIP_ERRORS + (OSError,)) and not isinstance(e, FileNotFoundError):
        return f"{path}: not a readable gzip file ({e})"
    return f"{path}: cannot read ({getattr(e, 'strerror', None) or e})"


def _not_utf8(path):
    """`path: line N: not UTF-8 text (...)` for the first line that does not decode, or None."""
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (f"{path}: line {lineno}: not UTF-8 text ({e.reason}: byte 0x{line[e.start]:02x} at "
                            f"byte {e.start + 1} of the line)")
    except (OSError,) + _GZIP_ERRORS:
        pass
    return None


def _csv_error(path, reader, e):
    """A csv.Error as a message with the path and the line."""
    text = str(e)
    if "field larger than field limit" in text:
        text = f"a field longer than {csv.field_size_limit():,} characters (no number or label is that long)"
    return f"{path}: line {reader.line_num}: {text}"


def file_kind(path):
    name = path.lower()
    for ext in (".csv", ".csv.gz", ".txt", ".npz", ".npy"):
        if name.endswith(ext):
            return "csv" if ext in (".csv", ".csv.gz", ".txt") else ext[1:]
    raise DataError(f"{path}: unknown file type (expected .csv, .csv.gz, .npz or .npy)", usage=True)


def check_exists(path, what):
    """DataError unless `path` is a regular file; said before it is opened (a FIFO with no writer
    would block the open itself, and every reader here reads its file more than once)."""
    if path == "-":
        raise DataError(f"{what}: reading from standard input is not supported; give a file", usage=True)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a directory, not a {what} file")
    if not stat.S_ISREG(mode):
        what_is = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise DataError(f"{path}: is {what_is}, not a regular {what} file")


def _csv_header(path):
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            try:
                header = next(reader, None)
            except csv.Error as e:
                raise DataError(_csv_error(path, reader, e)) from None
    except (OSError, UnicodeDecodeError) + _GZIP_ERRORS as e:
        raise DataError(_unreadable(path, e)) from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{path}: empty file (a CSV needs a header row and data rows)")
    names = [h.strip() for h in header]
    seen, dup = set(), set()
    for n in names:  # linear: a header may have a million columns
        (dup if n in seen else seen).add(n)
    dup = sorted(dup)
    if dup:
        raise DataError(f"{path}: duplicate column name(s) in the header: {', '.join(dup)}")
    return names


def _csv_diagnose(path, names, numeric_cols, default=None):
    """The message about the first malformed line, else `path: default` (None when `default` is None).
    A pass in Python: it runs only where the fast parse could not be used."""
    try:
        return _csv_first_problem(path, names, numeric_cols, default)
    except (OSError, UnicodeDecodeError) + _GZIP_ERRORS as e:
        return _unreadable(path, e)


def _csv_first_problem(path, names, numeric_cols, default):
    ncol = len(names)
    with _open_text(path) as f:
        reader = csv.reader(f)
        lineno = 0
        while True:
            try:
                row = next(reader)  # not a for loop: a csv.Error is reported with its line
            except StopIteration:
                break
            except csv.Error as e:
                return _csv_error(path, reader, e)
            lineno += 1
            if lineno == 1 or not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != ncol:
                return f"{path}: line {lineno} has {len(row)} fields, the header has {ncol}"
            for j in numeric_cols:
                v = row[j].strip()
                try:
                    x = float(v)
                except ValueError:
                    what = "an empty field" if not v else f"{v!r} is not a number"
                    return f"{path}: line {lineno}, column {names[j]!r}: {what}"
                if not np.isfinite(x):
                    return f"{path}: line {lineno}, column {names[j]!r}: {v!r} (missing or infinite values are not supported)"
    return None if default is None else f"{path}: {default}"


def read_csv(path, target=None, feature_names=None):
    """(X float64 (n, d), labels as str array or None, feature names, target name or None).

    `target`: the label column (must exist).  `feature_names`: take these columns in this order
    (predict); otherwise every column except the target."""
    names = _csv_header(path)
    where = {n: j for j, n in enumerate(names)}  # names are unique: lookups by name stay linear
    if target is not None and target not in where:
        raise DataError(f"{path}: no column {target!r} (columns: {', '.join(names[:20])}"
                       f"{', ...' if len(names) > 20 else ''})")
    if feature_names is not None:
        missing = [c for c in feature_names if c not in where]
        if missing:
            raise DataError(f"{path}: missing the model's input column(s) {', '.join(map(repr, missing[:10]))}")
        cols = [where[c] for c in feature_names]
    else:
        cols = [j for j, n in enumerate(names) if n != target]
    if not cols:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    ti = where[target] if target is not None else None
    labels = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, quotechar='"',
                              encoding="utf-8")
        if data.shape[0] == 0:
            raise DataError(f"{path}: no data rows after the header")
        if data.shape[1] != len(names):
            raise ValueError("width")
        X = data[:, cols]
        if ti is not None:  # labels are text until proven numeric: "02134" must come back as written
            labels = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, ndmin=1, quotechar='"',
                                encoding="utf-8", usecols=[ti])
    except ValueError:
        # a non-numeric label column (class names), or a malformed file: parse the parts separately
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # NumPy's notes on blank lines
                X = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, quotechar='"',
                               encoding="utf-8", usecols=cols)
                if ti is not None:
                    labels = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, ndmin=1, quotechar='"',
                                        encoding="utf-8", usecols=[ti])
            msg = _csv_diagnose(path, names, cols)  # rows of the wrong width pass usecols unseen
            if msg is not None:
                raise DataError(msg)
        except ValueError:
            raise DataError(_csv_diagnose(path, names, cols, "cannot be parsed as CSV numbers")) from None
    except (OSError, UnicodeDecodeError) + _GZIP_ERRORS as e:
        raise DataError(_unreadable(path, e)) from None
    if X.shape[0] == 0:
        raise DataError(f"{path}: no data rows after the header")
    if not np.all(np.isfinite(X)):
        raise DataError(_csv_diagnose(path, names, cols, "contains missing (NaN) or infinite values"))
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype.kind == "U":
            labels = np.char.strip(labels)
            empty = np.flatnonzero(labels == "")
            if empty.size:
                raise DataError(f"{path}: column {target!r} is empty in data row {empty[0] + 1}")
    return X, labels, [names[j] for j in cols], target


def read_npz(path, target=None):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if not arrays:
        raise DataError(f"{path}: the .npz holds no arrays")
    for k, v in arrays.items():  # NumPy hands back the raw bytes of a member that is not an .npy file
        if not isinstance(v, np.ndarray):
            raise DataError(f"{path}: member {k!r} is not a .npy array (the file is not an .npz that NumPy wrote)")
    tkey = target if target is not None else ("y" if "y" in arrays else None)
    if target is not None and target not in arrays:
        raise DataError(f"{path}: no array {target!r} (arrays: {', '.join(arrays)})")
    rest = [k for k in arrays if k != tkey]
    xkey = "X" if "X" in arrays else ("x" if "x" in arrays else (rest[0] if len(rest) == 1 else None))
    if xkey is None:
        raise DataError(f"{path}: cannot tell the features apart: name them 'X' (arrays: {', '.join(arrays)})")
    return arrays[xkey], (arrays[tkey] if tkey else None), None, tkey


def read_npy(path):
    try:
        return np.load(path, allow_pickle=False), None, None, None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None


def read_labels(path, n):
    check_exists(path, "labels")
    if path.lower().endswith(".npy"):
        y = read_npy(path)[0]
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
    else:
        try:
            with _open_text(path) as f:
                lines = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) + _GZIP_ERRORS as e:
            raise DataError(_unreadable(path, e)) from None
        if len(lines) == n + 1:
            lines = lines[1:]  # a header line
        y = np.array([line.strip('"') for line in lines])
    _check_label_shape(path, y, n)
    return y


def _check_label_shape(path, y, n):
    """One label (or, for a multi-output regression, one row of targets) per data row."""
    if y.ndim not in (1, 2):
        raise DataError(f"{path}: expected one label (or one row of targets) per data row, got shape {y.shape}")
    if y.shape[0] != n:
        raise DataError(f"{path}: {y.shape[0]} labels for {n} data rows")


def read_data(path, target=None, labels=None, feature_names=None, need_labels=True):
    """(X float64, y or None, feature names or None, target name or None) from any supported file."""
    check_exists(path, "data")
    kind = file_kind(path)
    if need_labels and kind == "csv" and target is None and labels is None:
        raise DataError("train: name the label column with --target COLUMN (or give --labels FILE)", usage=True)
    if kind == "csv":
        X, y, names, tname = read_csv(path, target=target, feature_names=feature_names)
    elif kind == "npz":
        X, y, names, tname = read_npz(path, target=target)
    else:
        if target is not None:
            raise DataError("--target: a .npy file holds the features only; give the labels with --labels FILE",
                            usage=True)
        X, y, names, tname = read_npy(path)
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise DataError(f"{path}: the features are not numbers (dtype {X.dtype})")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"{path}: expected a table of samples x features, got shape {X.shape}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise DataError(f"{path}: the features contain missing (NaN) or infinite values")
    if labels is not None:
        if y is not None and target is not None:
            raise DataError("give either --target or --labels, not both", usage=True)
        y = read_labels(labels, X.shape[0])
    if need_labels and y is None:
        if kind == "csv":
            raise DataError("train: name the label column with --target COLUMN (or give --labels FILE)", usage=True)
        raise DataError(f"{path}: no labels; give --labels FILE" + (" or --target KEY" if kind == "npz" else ""),
                        usage=True)
    if y is not None:
        _check_label_shape(path, np.asarray(y), X.shape[0])
    return X, y, names, tname


# ---- labels ----------------------------------------------------------------------------------------

MIN_CLASS_LIMIT = 20  # whole-number labels with at most max(this, sqrt(rows)) distinct values are classes


def _numeric(y):
    """`y` as float64, or None when its values are not all numbers."""
    if y.dtype.kind in "fiub":
        numeric = y.astype(np.float64)
    else:
        try:
            numeric = y.astype(np.float64)
        except ValueError:
            return None
    if not np.all(np.isfinite(numeric)):
        raise DataError("the labels contain missing (NaN) or infinite values")
    return numeric


def choose_task(y, target=None):
    """("classification" or "regression", why) for the labels `y` when no task is given.

    Names are classes.  Several columns are a multi-output regression.  Real numbers are a regression.
    Whole numbers are classes when they take few distinct values for the rows, at most
    max(20, sqrt(rows)), as class labels do (scikit-learn's type_of_target calls every whole-number
    column multiclass, which turns a count or a score such as a disease progression into hundreds
    of classes); beyond that they are a quantity to regress."""
    y = np.asarray(y)
    what = "the labels" + (f" (column {target!r})" if target else "")
    numeric = _numeric(y)
    if numeric is None:
        return "classification", f"{what} are names"
    if numeric.ndim > 1 and numeric.shape[1] > 1:
        return "regression", f"{what} have {numeric.shape[1]} columns"
    values = np.unique(numeric)
    n = numeric.shape[0]
    k = len(np.unique(_text_keys(y))) if y.dtype.kind in "USO" else len(values)  # "1" and "1.0" are two
    if not np.all(values == np.round(values)):
        return "regression", f"{what} are real numbers"
    limit = max(MIN_CLASS_LIMIT, math.isqrt(n))
    counts = f"{what} are whole numbers with {k} distinct values in {n} rows"
    if k <= limit:
        return "classification", f"{counts} (at most max({MIN_CLASS_LIMIT}, sqrt(rows)) = {limit}: class labels)"
    return "regression", f"{counts} (more than max({MIN_CLASS_LIMIT}, sqrt(rows)) = {limit}: a quantity, not classes)"


def encode_labels(y, task="auto", target=None):
    """(task, targets for the engine, class labels as strings or None, why this task).

    `task` "auto" chooses with choose_task; "classification" gives int64 class indices in the order
    of the sorted labels, "regression" float64 targets (n,) or (n, outputs)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if task == "auto":
        task, why = choose_task(y, target)
    else:
        why = f"--task {task}"
    numeric = _numeric(y)
    if task == "regression":
        if numeric is None:
            raise DataError("--task regression: the labels are not numbers")
        return task, numeric, None, why
    if y.ndim != 1:
        raise DataError(f"--task classification: expected one label per row, got labels of shape {y.shape}")
    if y.dtype.kind in "USO":
        text = _text_keys(y)
        classes, idx = np.unique(text, return_inverse=True)
        if numeric is not None:  # numbers in numeric order ("2" before "10"), exactly (beyond 2**53 too)
            order = sorted(range(len(classes)), key=lambda k: _number_key(classes[k]))
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            classes, idx = classes[order], rank[idx]
        names = [str(s) for s in classes]
    elif y.dtype.kind in "iub":
        classes, idx = np.unique(y, return_inverse=True)
        names = [str(int(v)) for v in classes]
    else:
        classes, idx = np.unique(numeric, return_inverse=True)
        names = [_fmt_label(v) for v in classes]
    if len(classes) < 2:
        raise DataError(f"the labels have 1 class ({names[0] if names else ''}); a classifier needs at least 2")
    return task, idx.reshape(-1).astype(np.int64), names, why


def _text_keys(y):
    return np.char.strip(y.astype(str))


def _number_key(text):
    """Sort key of a label that parses as a number: its value, exact for whole numbers of any size."""
    v = float(text)
    try:
        exact = int(text)
    except ValueError:
        exact = v
    return (v, exact, text)


def _fmt_label(v):
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2.0 ** 53 else repr(v)
