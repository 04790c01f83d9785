"""Fuzzing the model-file reader: mutated valid files must give a clean ModelFormatError or a model
that predicts, never a crash.  Three levels: hypothesis against the Python binding (bounded to a few
seconds); a generated corpus through the C reader under AddressSanitizer + UBSan
(csrc/tests/fuzz_reader.c; by hand: `make -C csrc fuzz && csrc/build-asan/fuzz_reader DIR`); and a
short coverage-guided libFuzzer run of the same target where clang is installed (the long runs:
`bash tools/fuzz_reader.sh 3000000`)."""
import json
import os
import random
import shutil
import struct
import subprocess

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core

from conftest import SANITIZED
from _io_util import activation, architecture, batch_norm, dense, dropout, layer_norm, model_bytes, raw_file

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _seeds():
    rng = np.random.default_rng(7)
    archs = [
        architecture([dense(4, "relu"), dropout(0.5), dense(3)], input_dim=3, loss="cross_entropy"),
        architecture([dense(3, "leaky_relu", 0.2), activation("tanh"), dense(2, "sigmoid", use_bias=False)],
                     input_dim=2, dtype="float64", loss="binary_cross_entropy"),
        architecture([activation("softmax")], input_dim=3),
        architecture([dense(4, max_norm=2.0), batch_norm(), activation("relu"), layer_norm(), dense(2)], input_dim=3,
                     loss="mse"),
    ]
    seeds = [model_bytes(a, rng)[0] for a in archs]
    m = fnn.Sequential([fnn.Dense(3), fnn.BatchNorm(), fnn.Dense(2)], input_dim=2, seed=1)  # a training state
    m.compile("mse", optimizer=fnn.Adam(lr=fnn.schedules.CosineDecayByStep(0.1, 10), clipnorm=1.0))
    m.train_on_batch(np.ones((4, 2)), np.zeros((4, 2)))
    return seeds + [fnn.saving.dumps(m, include_optimizer=True)]


SEEDS = _seeds()


JSON_CHARS = b'{}[]",:0123456789-.eE \\ntrufals\x00\xff\xc3'


def mutate(data, ops):
    """Apply (kind, a, b) edits to the bytes of a file; positions are fractions of the length."""
    b = bytearray(data)
    for kind, a, v in ops:
        n = len(b)
        if kind == "flip" and n:
            b[int(a * n) % n] ^= 1 << (v % 8)
        elif kind == "byte" and n:
            b[int(a * n) % n] = v % 256
        elif kind == "truncate":
            del b[int(a * n):]
        elif kind == "append":
            b += bytes([v % 256]) * (1 + int(a * 16))
        elif kind == "hlen" and n >= 8:
            h = struct.unpack("<Q", b[:8])[0]
            choices = [0, 1, h - 1, h + 1, h - 8, h + 8, n, n - 8, 2**63, 2**64 - 1, v]
            b[:8] = struct.pack("<Q", choices[int(a * len(choices)) % len(choices)] % 2**64)
        elif kind == "insert":
            b[int(a * n):int(a * n)] = bytes([v % 256])
        elif kind == "delete" and n:
            del b[int(a * n) % n]
        elif kind == "json":  # edit a character of the header text only
            h = struct.unpack("<Q", b[:8])[0] if n >= 8 else 0
            if 8 < 8 + h <= n:
                pos = 8 + int(a * h) % h
                b[pos] = JSON_CHARS[v % len(JSON_CHARS)]
    return bytes(b)


def check(data):
    """Load; a failure must be a ModelFormatError with a detail, a success must predict."""
    try:
        m = _core.ModelFile.from_buffer(data)
    except fnn.ModelFormatError as e:
        assert e.detail and e.reason in ("malformed model file", "unsupported model file")
        return False
    if m.n_inputs <= 4096 and m.n_outputs <= 4096:
        x = np.ones((2, m.n_inputs), dtype=np.float32)
        assert m.predict(x).shape == (2, m.n_outputs)
        m.tensors()
        m.layers
    return True


OPS = st.lists(st.tuples(st.sampled_from(["flip", "byte", "truncate", "append", "hlen", "insert", "delete",
                                          "json", "json", "json"]),
                         st.floats(0, 1, allow_nan=False, exclude_max=True), st.integers(0, 2**32)),
               min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))), ops=OPS)
def test_mutated_files_fail_cleanly(seed, ops):
    check(mutate(SEEDS[seed], ops))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_fail_cleanly(data):
    assert not check(data)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=20))
def test_arbitrary_json_headers_fail_cleanly(value):
    check(raw_file({"__metadata__": {"format": "fastnn", "fastnn_schema": "1.0",
                                     "architecture": json.dumps(value)}}))
    if isinstance(value, dict):
        check(raw_file(value))


def test_unmutated_seeds_load():
    assert all(check(s) for s in SEEDS)


# ---- the C reader under AddressSanitizer ---------------------------------------------------------------

def corpus(directory, n=600):
    """Write the seeds, n random mutations of them and a few hand-made edge cases to `directory`."""
    r = random.Random(1234)
    kinds = ["flip", "byte", "truncate", "append", "hlen", "insert", "delete", "json", "json"]
    files = list(SEEDS)
    for _ in range(n):
        ops = [(r.choice(kinds), r.random(), r.randrange(2**32)) for _ in range(r.randint(1, 4))]
        files.append(mutate(r.choice(SEEDS), ops))
    files += [b"", b"\0" * 8, raw_file(b"{}"), raw_file(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"),
              raw_file(b'{"a":"\\ud800\\u0041"}'), struct.pack("<Q", 2**64 - 1) + b"{}"]
    for i, f in enumerate(files):
        with open(os.path.join(directory, f"{i:04d}.safetensors"), "wb") as fh:
            fh.write(f)
    return len(files)


@pytest.fixture(scope="module")
def fuzz_reader(tmp_path_factory):
    if not shutil.which("make") or not (shutil.which("cc") or os.environ.get("CC")):
        pytest.skip("no C compiler or make")
    build = tmp_path_factory.mktemp("asan")
    r = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "csrc"), "fuzz", f"ASAN_BUILD={build}"],
                       capture_output=True, text=True, timeout=300)
    exe = build / "fuzz_reader"
    if r.returncode != 0 or not exe.exists():
        if "asan" in r.stderr.lower() or "sanitize" in r.stderr.lower():
            pytest.skip(f"the compiler cannot build with AddressSanitizer: {r.stderr[-300:]}")
        pytest.fail(f"building the fuzz driver failed:\n{r.stdout}\n{r.stderr}")
    return str(exe)


@pytest.mark.skipif(SANITIZED, reason="this run is the sanitized suite: the README run builds and runs the ASan "
                    "reader itself, and the corpus tests here already run under ASan")
def test_corpus_under_address_sanitizer(fuzz_reader, tmp_path):
    n = corpus(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([fuzz_reader, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    if "LeakSanitizer does not work" in r.stderr:  # e.g. under ptrace: run without leak checks
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        r = subprocess.run([fuzz_reader, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "ERROR" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    assert r.stdout.startswith(f"{n} inputs:"), r.stdout
    loaded = int(r.stdout.split()[2])
    assert 3 <= loaded < n


# ---- coverage-guided: libFuzzer (clang) ---------------------------------------------------------------

def test_libfuzzer_short_run(tmp_path):
    """A bounded run of tools/fuzz_reader.sh (20 000 inputs, a few seconds; the long runs are by hand).
    Skipped where clang has no libFuzzer."""
    cc = shutil.which("clang") or shutil.which("clang-14")
    if not cc or not shutil.which("make"):
        pytest.skip("no clang (libFuzzer) or make")
    probe = subprocess.run([cc, "-fsanitize=fuzzer", "-x", "c", "-", "-o", str(tmp_path / "probe")],
                           input="int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }",
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"{cc} cannot link libFuzzer: {probe.stderr[-200:]}")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env.update(FUZZ_CC=cc, FUZZ_WORK=str(tmp_path / "work"))  # clang's own sanitizer runtime, not gcc's
    r = subprocess.run(["bash", os.path.join(ROOT, "tools", "fuzz_reader.sh"), "20000"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stat::number_of_executed_units: 20000" in r.stdout, r.stdout
