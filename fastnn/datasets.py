"""Small real data sets shipped inside the package (nothing is downloaded); see fastnn/data/README.md."""
import gzip
import os

import numpy as np

__all__ = ["load_digits", "data_path"]

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def data_path(name):
    """The path of a file shipped in fastnn/data."""
    return os.path.join(_DATA, name)


def load_digits(*, dtype="float32", scale=True):
    """The UCI handwritten digits (1797 8x8 images, 10 classes): returns (X, y) with X of shape
    (1797, 64) in `dtype` (pixels 0..16, divided by 16 when `scale`) and y int64 digits 0..9.
    Source and license (CC BY 4.0): fastnn/data/README.md."""
    with gzip.open(data_path("digits.csv.gz"), "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    X = data[:, :-1]
    if scale:
        X = X / 16.0
    return X.astype(dtype), data[:, -1].astype(np.int64)
