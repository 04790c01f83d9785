"""Faults from outside: Ctrl-C during fit, memory that is not there, a target directory that is read-only
or full.  Each leaves the model or the file as it was after the last thing that completed, and raises."""
import _thread
import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core, _format, _validate
from conftest import SANITIZED

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


# ---- KeyboardInterrupt during fit -----------------------------------------------------------------

def make_model(seed=0, width=64):
    m = fnn.Sequential([fnn.Dense(width, "relu"), fnn.Dropout(0.2), fnn.Dense(width, "tanh"), fnn.Dense(4)],
                       input_dim=16, seed=seed)
    m.compile("cross_entropy", fnn.SGD(lr=0.01, momentum=0.9))
    return m


def data(n=2000):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 16)).astype(np.float32), rng.integers(0, 4, n)


WIDE = 384  # a step of about 0.3 ms: an epoch of the 32 000 rows below spans several chunks


def replay(steps, X, y, batch, width):
    """A fresh model given the first `steps` batches of fit's epochs one train_on_batch at a time: the
    weights fit has after `steps` completed steps."""
    ref = make_model(width=width)
    n = X.shape[0]
    per_epoch = -(-n // batch)
    perm = np.empty(n, dtype=np.int64)
    for s in range(steps):
        epoch, b = divmod(s, per_epoch)
        if b == 0:
            _core.permutation(ref.seed, epoch, perm)
        rows = perm[b * batch:(b + 1) * batch]
        ref.train_on_batch(X[rows], y[rows])
    return ref


def test_interrupt_from_a_callback_keeps_the_completed_epochs():
    class CtrlC(fnn.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    X, y = data(300)
    m = make_model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=10, batch_size=32, verbose=0, callbacks=[CtrlC()])
    ref = make_model()
    ref.fit(X, y, epochs=3, batch_size=32, verbose=0)
    assert m._params.tobytes() == ref._params.tobytes()
    assert m.history.epoch == [0, 1, 2] and len(m.history.history["loss"]) == 3
    assert m.history.history["loss"] == ref.history.history["loss"]
    assert m._net.counters == ref._net.counters


def _pthread_kill():
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _interrupt_main():
    _thread.interrupt_main()


@pytest.mark.parametrize("send", [_pthread_kill, _interrupt_main], ids=["pthread_kill", "interrupt_main"])
def test_ctrl_c_returns_within_a_chunk_with_the_last_completed_step(send):
    """SIGINT from a timer thread while fit is deep in an endless run: fit raises KeyboardInterrupt
    within one chunk of batches (~0.15 s), with exactly the weights of its last completed step, the
    history of the epochs that ended, and a model that trains on."""
    X, y = data(32_000)
    m = make_model(width=WIDE)
    sent, started, lock, done = [], threading.Event(), threading.Lock(), []

    class Started(fnn.Callback):
        def on_train_begin(self, logs=None):
            started.set()

    def timer():
        if not started.wait(30):
            return
        time.sleep(0.3)
        with lock:  # never interrupt anything after fit: pytest would stop the whole run
            if not done:
                sent.append(time.perf_counter())
                send()

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = threading.Thread(target=timer)
    try:
        t.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                m.fit(X, y, epochs=100_000, batch_size=16, verbose=0, callbacks=[Started()])
        finally:
            with lock:
                done.append(True)
        latency = time.perf_counter() - sent[0]
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)
    assert latency < 2.0, f"fit took {latency:.2f} s to stop"  # a chunk is ~0.15 s of work
    steps, opt_steps = m._net.counters
    per_epoch = -(-X.shape[0] // 16)
    assert steps == opt_steps and steps > 0
    if steps < per_epoch:  # the usual case: stopped inside the first epoch, between two chunks
        assert m.history.epoch == []
    assert m._params.tobytes() == replay(steps, X, y, 16, WIDE)._params.tobytes()
    full = steps // per_epoch  # epochs whose every batch ran; the last may have ended before its logs
    assert len(m.history.epoch) in ((full,) if steps % per_epoch else (full, full - 1))
    assert all(len(v) == len(m.history.epoch) for v in m.history.history.values())
    assert np.isfinite(m.predict(X[:5])).all()
    m.fit(X[:800], y[:800], epochs=1, batch_size=16, verbose=0)
    assert m._net.counters[0] == steps + 50


# ---- out of memory ---------------------------------------------------------------------------------

def test_absurd_widths_are_a_memory_error_with_the_size():
    for units, size in ((2**40, "72.0 TiB"), (2**62, "more than any address space"), (2**64, "address space")):
        with pytest.raises(MemoryError, match=rf"units: Dense layer 'dense' with {units:,} units on 4 inputs.*{size}"):
            fnn.Sequential([fnn.Dense(units)], input_dim=4)
    with pytest.raises(MemoryError, match=r"input_dim: .* on 1,099,511,627,776 inputs .*48\.0 TiB \(52,776,558,133,272 bytes\)"):
        fnn.Sequential([fnn.Dense(3)], input_dim=2**40)
    m = fnn.Sequential([fnn.Dense(2**21), fnn.Dense(2**21)])  # built by fit: 16 TiB
    with pytest.raises(MemoryError, match="units: Dense layer 'dense_1' with 2,097,152 units"):
        m.compile("mse")
        m.fit(np.ones((4, 3)), np.ones((4, 2**21)), verbose=0)
    with pytest.raises(MemoryError, match=r"out: the 1,048,576 x 1,048,576 result of gemm: needs 4\.0 TiB"):
        fnn.ops.gemm(np.ones((2**20, 1), np.float32), np.ones((1, 2**20), np.float32))


def test_memory_checks_use_the_available_memory(monkeypatch):
    """With 100 MiB available: a model whose parameters need more is refused before any allocation;
    a batch whose workspace needs more is refused naming batch_size; predict's default block shrinks
    instead; Adam's state is refused naming the optimizer."""
    monkeypatch.setattr(_validate, "available_memory", lambda: 100 << 20)
    with pytest.raises(MemoryError, match=r"units: Dense layer 'big' with 4,000,000 units on 8 inputs .* more "
                                          r"than the 100\.0 MiB of memory available"):
        fnn.Sequential([fnn.Dense(4_000_000, name="big")], input_dim=8)
    m = fnn.Sequential([fnn.Dense(200_000, "relu"), fnn.Dense(2)], input_dim=8, seed=0)  # 8.4 MiB of parameters
    m.compile("mse")
    X, y = np.ones((600, 8), np.float32), np.zeros((600, 2), np.float32)
    with pytest.raises(MemoryError, match=r"batch_size: the workspace for batches of 512 rows: needs .* MiB"):
        m.fit(X, y, batch_size=512, verbose=0)
    h = m.fit(X, y, batch_size=16, validation_split=0.5, verbose=0)  # validation blocks shrink like predict's
    assert np.isfinite(h.history["val_loss"][0])
    with pytest.raises(MemoryError, match="batch_size: the workspace for batches of 600 rows"):
        m.predict(X, batch_size=600)
    p = m.predict(X)  # the default block of 1024 rows would need 1.5 GiB: it shrinks
    assert p.shape == (600, 2) and m._net.workspace[0] < 128
    assert p.tobytes() == m.predict(X, batch_size=16).tobytes()
    monkeypatch.setattr(_validate, "available_memory", lambda: 10 << 20)
    monkeypatch.setattr(_validate, "MEMORY_CHECK_MIN", 1 << 20)
    with pytest.raises(MemoryError, match=r"optimizer: the state of Adam \(2 per parameter, 2,200,002 parameters\)"):
        m.compile("mse", fnn.Adam())


@linux_only
@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer reserves address space beyond any RLIMIT_AS")
def test_gemm_without_memory_for_one_threads_buffers(tmp_path):
    """A GEMM whose worker thread cannot allocate its packing buffers (RLIMIT_AS, glibc told to mmap
    them) computes that thread's part unblocked and the rest as usual: the right product, with beta
    and the epilogue applied once."""
    if fnn.build_info()["openmp"] is False:
        pytest.skip("serial build: no worker thread")
    script = tmp_path / "oom_gemm.py"
    script.write_text('''
import resource, numpy as np, fastnn as fnn
from fastnn import _core
rng = np.random.default_rng(0)
n = 512
a, b, c0 = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(3))
want = 0.5 * (a.astype(np.float64) @ b) + 2.0 * c0
fnn.set_num_threads(2)
fnn.ops.gemm(a[:256, :256], b[:256, :256])  # starts the OpenMP team; the worker's buffers stay small
_core._set_gemm_blocks(mc=1 << 14, kc=1 << 14, nc=1 << 14)  # one block per product: (m + n) * k floats
fnn.set_num_threads(1)
fnn.ops.gemm(a, b)  # this thread's buffers grow to the whole product's
outs = [c0.copy() for _ in range(6)]
with open("/proc/self/statm") as f:
    vm = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 10), resource.RLIM_INFINITY))
fnn.set_num_threads(2)
for c in outs:  # the worker cannot allocate its buffers: ~768 KiB for its share
    fnn.ops.gemm(a, b, alpha=0.5, beta=2.0, out=c, check_finite=False)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(max(float(np.abs(c - want).max()) for c in outs))
''')
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))
    env = dict(os.environ, MALLOC_ARENA_MAX="1", MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS="2",
               PYTHONPATH=pkg_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout) < 1e-3, r.stdout


# ---- saving into a read-only or full directory ----------------------------------------------------

def small_model():
    m = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=1)
    m.compile("mse")
    return m


def big_model():
    return fnn.Sequential([fnn.Dense(100)], input_dim=300, seed=2)  # 120 KiB of weights


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` mounted on `path` (root with mount rights only); skips the test otherwise."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def assert_old_file_intact(directory, path, old_bytes):
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(directory)) == [path.name]  # no temporary file left behind
    assert fnn.load(path).predict(np.ones((1, 3))).shape == (1, 2)


def test_save_into_a_read_only_directory_keeps_the_old_file(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only mount
        with tmpfs(tmp_path / "ro", "1m") as d:
            path = d / "m.safetensors"
            small_model().save(path)
            old = path.read_bytes()
            r = subprocess.run(["mount", "-o", "remount,ro", str(d)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
            with pytest.raises(OSError) as e:
                big_model().save(path)
            assert e.value.errno in (errno.EROFS, errno.EACCES)
            assert_old_file_intact(d, path, old)
        return
    d = tmp_path / "ro"
    d.mkdir()
    path = d / "m.safetensors"
    small_model().save(path)
    old = path.read_bytes()
    d.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            big_model().save(path)
        assert_old_file_intact(d, path, old)
    finally:
        d.chmod(0o755)


def test_save_onto_a_full_tmpfs_keeps_the_old_file(tmp_path):
    with tmpfs(tmp_path / "full", "64k") as d:
        path = d / "m.safetensors"
        small_model().save(path)
        old = path.read_bytes()
        with pytest.raises(OSError) as e:
            big_model().save(path)
        assert e.value.errno == errno.ENOSPC
        assert_old_file_intact(d, path, old)


@linux_only
def test_save_past_the_file_size_limit_keeps_the_old_file(tmp_path):
    """A write that the kernel cuts short (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) fails
    the save; the old file stays, the partial temporary file is removed."""
    path = tmp_path / "m.safetensors"
    small_model().save(path)
    old = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python ignores it already; be sure
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))
    try:
        with pytest.raises(OSError) as e:
            big_model().save(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert e.value.errno == errno.EFBIG
    assert_old_file_intact(tmp_path, path, old)


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_save_failing_at_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch, where):
    path = tmp_path / "m.safetensors"
    small_model().save(path)
    old = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC if where == "fsync" else errno.EROFS, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_format.os, where, fail)
    with pytest.raises(OSError):
        big_model().save(path)
    monkeypatch.undo()
    assert_old_file_intact(tmp_path, path, old)


# ---- a save killed while it writes ----------------------------------------------------------------

_KILLED_SAVER = r'''
import sys
import numpy as np
import fastnn as fnn
from fastnn import _format
if sys.argv[2] == "named":
    _format._O_TMPFILE = None  # as on a system without O_TMPFILE
m = fnn.Sequential([fnn.Dense(3000)], input_dim=4000, seed=3)  # 48 MB of weights
m.save(sys.argv[1])
print("saved", flush=True)
while True:
    m.save(sys.argv[1])
'''


def _writing(pid, directory, final):
    """True while process `pid` holds open a file in `directory` other than the finished `final`."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + os.sep) and target != str(final):
            return True
    return False


def _kill_while_writing(args, directory, final, env=None):
    """Run `args` (which saves to `final`, prints "saved", then saves again and again) and SIGKILL it
    while it holds a new file open in `directory`; (its pid, the bytes of `final` before the kill)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "saved"
        old = final.read_bytes()
        deadline = time.monotonic() + 60
        while not _writing(p.pid, directory, final):
            assert time.monotonic() < deadline, "the saver never opened its temporary file"
            time.sleep(0.001)
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    assert p.returncode == -signal.SIGKILL
    return p.pid, old


@linux_only
@pytest.mark.parametrize("how", ["unnamed", "named"])
def test_a_save_killed_while_writing_leaves_no_temporary_file(tmp_path, how):
    """SIGKILL in the middle of writing a 48 MB model: the old file stays whole and, once the next save
    to that directory has run (where O_TMPFILE is not available), no temporary file is left."""
    path = tmp_path / "m.safetensors"
    script = tmp_path.parent / f"{tmp_path.name}_saver.py"
    script.write_text(_KILLED_SAVER)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pid, old = _kill_while_writing([sys.executable, str(script), str(path), how], tmp_path, path, env)
    assert path.read_bytes() == old
    if how == "unnamed":
        assert os.listdir(tmp_path) == [path.name]
    else:
        left = [n for n in os.listdir(tmp_path) if n != path.name]
        assert all(n.startswith(f".{path.name}.{pid}.") and n.endswith(".tmp") for n in left), left
        with _named_temporaries():
            small_model().save(tmp_path / "m.safetensors")  # the next save clears what the dead one left
        assert os.listdir(tmp_path) == [path.name]
    fnn.load(path)


@contextlib.contextmanager
def _named_temporaries():
    saved = _format._O_TMPFILE
    _format._O_TMPFILE = None
    try:
        yield
    finally:
        _format._O_TMPFILE = saved


@linux_only
def test_stale_temporaries_of_other_names_and_live_writers_are_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = f".m.safetensors.{dead_pid}.abcd1234.tmp"
    keep = [f".m.safetensors.{os.getppid()}.abcd1234.tmp",  # a live process may be writing it
            f".other.safetensors.{dead_pid}.abcd1234.tmp",  # another file's
            f".m.safetensors.{dead_pid}.abcd1234.tmp.bak",  # not our naming
            "m.safetensors.tmp"]
    for name in [stale] + keep:
        (tmp_path / name).write_bytes(b"x")
    for use_tmpfile in (True, False):
        if use_tmpfile:
            small_model().save(tmp_path / "m.safetensors")
        else:
            (tmp_path / stale).write_bytes(b"x")
            with _named_temporaries():
                small_model().save(tmp_path / "m.safetensors")
        assert sorted(os.listdir(tmp_path)) == sorted(keep + ["m.safetensors"])


_KILLED_C_SAVER = r'''
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.fnn_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.fnn_model_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
m = ctypes.c_void_p()
assert lib.fnn_model_load(sys.argv[2].encode(), ctypes.byref(m)) == 0
assert lib.fnn_model_save(m, sys.argv[3].encode()) == 0
print("saved", flush=True)
while True:
    lib.fnn_model_save(m, sys.argv[3].encode())
'''


@linux_only
def test_a_c_save_killed_while_writing_leaves_no_temporary_file(embed, tmp_path):
    """fnn_model_save (the C writer) killed by SIGKILL while writing a 48 MB model: the old file stays
    whole and nothing else is left in the directory (O_TMPFILE, named only once complete)."""
    src = tmp_path / "src.safetensors"
    fnn.Sequential([fnn.Dense(3000)], input_dim=4000, seed=3).save(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    path = out_dir / "m.safetensors"
    script = tmp_path / "csaver.py"
    script.write_text(_KILLED_C_SAVER)
    lib = os.path.join(os.path.dirname(embed), "libfastnn.so")
    _, old = _kill_while_writing([sys.executable, str(script), lib, str(src), str(path)], out_dir, path)
    assert os.listdir(out_dir) == [path.name]
    assert path.read_bytes() == old == src.read_bytes()


@linux_only
def test_save_where_an_unnamed_file_cannot_be_named_falls_back(tmp_path, monkeypatch):
    """/proc hidden or a file system without hard links: linkat fails, and the save goes through a
    named temporary file instead, leaving nothing behind."""
    path = tmp_path / "m.safetensors"
    calls = []

    def no_link(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(_format.os, "link", no_link)
    m = small_model()
    m.save(path)
    monkeypatch.undo()
    assert calls or _format._O_TMPFILE is None
    assert os.listdir(tmp_path) == [path.name]
    assert fnn.load(path).get_weights()[0].tobytes() == m.get_weights()[0].tobytes()
