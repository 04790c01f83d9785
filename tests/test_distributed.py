"""Data-parallel training over MPI (fastnn/distributed.py), run as `mpiexec -n N python tests/mpi_jobs.py`.

Each job writes what every rank ended with; the oracle is one process of this test taking the same
global batches with train_on_batch (the gradient of the mean loss over every rank's rows of the step).
Every launch has a timeout: a hang fails the test instead of stalling the run.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import mpi_jobs as jobs  # noqa: E402  (tests/ is on sys.path under pytest)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = [pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)"), pytest.mark.timeout(600)]


def launch(job, n, out, *, timeout=240, flags=(), check=True):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    cmd = [MPIEXEC, *flags, "-n", str(n), sys.executable, os.path.join(ROOT, "tests", "mpi_jobs.py"), job, str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{job}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def load(out, job, n):
    return [dict(np.load(os.path.join(out, f"{job}-{r}.npz"))) for r in range(n)]


def oracle(parts, batch, epochs, val=None, dtype="float64"):
    """One process over the global batches of `parts` (shuffle off): final weights, per-epoch loss,
    accuracy (of the training outputs before each update) and, with val, validation loss/accuracy."""
    import fastnn as fnn
    m = jobs.model(dtype)
    steps = max(-(-len(x) // batch) for x, _ in parts)
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for _ in range(epochs):
        tot = rows = hits = 0.0
        for s in range(steps):
            xb = np.concatenate([x[s * batch:(s + 1) * batch] for x, _ in parts])
            yb = np.concatenate([y[s * batch:(s + 1) * batch] for _, y in parts])
            hits += (m._forward_train(xb).argmax(1) == yb).sum()
            tot += m.train_on_batch(xb, yb) * len(xb)
            rows += len(xb)
        hist["loss"].append(tot / rows)
        hist["accuracy"].append(hits / rows)
        if val is not None:
            ev = m.evaluate(*val)
            hist["val_loss"].append(ev["loss"])
            hist["val_accuracy"].append(ev["accuracy"])
    assert isinstance(m, fnn.Sequential)
    return jobs.flat(m), hist


def test_two_ranks_match_one_process_and_repeat_bit_for_bit(tmp_path):
    """2 ranks with equal shards: the same weights on both ranks, those of one process on the global
    batches within float64 rounding, the same history; a second run gives the same bits; every
    exchange (shared memory, MPI all-to-all, each overlapped or not) gives the same bits."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    launch("same", 2, a)
    launch("same", 2, b)
    ra, rb = load(a, "same", 2), load(b, "same", 2)
    for key in ra[0]:
        if key.startswith("transport"):
            continue
        assert np.array_equal(ra[0][key], ra[1][key]), key  # every rank ends with the same bits
        assert np.array_equal(ra[0][key], rb[0][key]), key  # and every run does
    w, hist = oracle(jobs.shards(2, rows=(120, 120)), 16, 2)
    np.testing.assert_allclose(ra[0]["w64"], w, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ra[0]["loss64"], hist["loss"], rtol=1e-12)
    np.testing.assert_array_equal(ra[0]["acc64"], hist["accuracy"])
    ws = [ra[0]["w32_" + k] for k in ("shm", "mpi", "shm_overlap", "mpi_overlap")]
    assert all(np.array_equal(ws[0], x) for x in ws[1:])
    assert [tuple(ra[0]["transport_" + k]) for k in ("shm", "mpi", "shm_overlap", "mpi_overlap")] == [
        ("shared memory", "False"), ("MPI all-to-all", "False"), ("shared memory", "True"), ("MPI all-to-all", "True")]
    assert np.all(np.isfinite(ws[0])) and not np.array_equal(ws[0][:10], np.zeros(10))


@pytest.mark.parametrize("n", [2, 3])
def test_uneven_shards_and_validation_on_some_ranks(tmp_path, n):
    """Shards of 150/97/64 rows: the shorter ones take empty steps, every row counts once, and the loss,
    metrics and validation (on the ranks that have validation rows) are those of all rows."""
    launch("uneven", n, tmp_path)
    res = load(tmp_path, "uneven", n)
    for r in range(1, n):
        for key in res[0]:
            assert np.array_equal(res[0][key], res[r][key]), key
    parts = jobs.shards(n)
    vals = [jobs.data(jobs.VAL[r], seed=10 + r) for r in range(n) if jobs.VAL[r]]
    val = (np.concatenate([v[0] for v in vals]), np.concatenate([v[1] for v in vals]))
    w, hist = oracle(parts, 16, 2, val=val)
    np.testing.assert_allclose(res[0]["w"], w, rtol=1e-12, atol=1e-13)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(res[0][key], hist[key], rtol=1e-12)
    for key in ("accuracy", "val_accuracy"):
        np.testing.assert_array_equal(res[0][key], hist[key])
    assert list(res[0]["samples_per_s"] > 0) == [True, True]


def test_one_rank_is_the_plain_fit(tmp_path):
    launch("single", 1, tmp_path)
    (res,) = load(tmp_path, "single", 1)
    X, y = jobs.data(300, dtype=np.float32)
    m = jobs.model("float32", dropout=0.3)
    h = m.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_split=0.2)
    assert np.array_equal(res["w"], jobs.flat(m))
    assert list(res["loss"]) == h.history["loss"] and list(res["val_loss"]) == h.history["val_loss"]


def test_rank0_decides_callbacks_checkpoints_and_stopping(tmp_path):
    launch("callbacks", 2, tmp_path)
    res = load(tmp_path, "callbacks", 2)
    for key in res[0]:
        assert np.array_equal(res[0][key], res[1][key]), key
    # EarlyStopping("loss", mode "max", patience 0): epoch 1 does not beat epoch 0: stop, restore epoch 0
    assert list(res[0]["epochs"]) == [0, 1]
    assert list(res[0]["epochs2"]) == [0, 1, 2]  # a callback's stop_training on rank 0 stops every rank
    np.testing.assert_allclose(res[0]["lr"], [0.05, 0.025])  # rank 0's schedule reached every rank
    files = sorted(f for f in os.listdir(tmp_path) if f.startswith("ckpt"))
    assert files == ["ckpt-rank0-1.safetensors", "ckpt-rank0-2.safetensors"]  # rank 0 alone writes
    import fastnn as fnn
    first = fnn.load(os.path.join(tmp_path, "ckpt-rank0-1.safetensors"))
    assert np.array_equal(jobs.flat(first), res[0]["w"])  # the restored best weights, on every rank


def test_disagreeing_shards_fail_on_every_rank_before_training(tmp_path):
    launch("mismatch", 2, tmp_path)
    errs = [json.load(open(os.path.join(tmp_path, f"mismatch-{r}.json"))) for r in range(2)]
    for r in range(2):
        e = errs[r]
        assert e["features"].startswith("ValueError: X: rank 1 has 13 features and rank 0 12"), e["features"]
        assert e["labels"].startswith("ValueError: y: rank 1's class labels differ from rank 0's "
                                      "(missing on rank 1: [2]"), e["labels"]
        assert e["nan"] == "ValueError: rank 1: X: contains NaN or Inf", e["nan"]
        assert e["epochs"].startswith("ValueError: epochs: rank 1 asks for 2 and rank 0 for 1"), e["epochs"]
        assert e["model"].startswith("ValueError: model: rank 1's model differs from rank 0's (layers)"), e["model"]
        assert e["steps"] == 0  # nothing trained before the errors
        assert e["ok_after"] is None  # and the ranks are still in step


def test_nonfinite_loss_on_one_rank_stops_every_rank(tmp_path):
    launch("nonfinite", 2, tmp_path)
    res = load(tmp_path, "nonfinite", 2)
    for r in range(2):
        assert "became NaN or Inf on rank 1 at epoch 1, step 3 of 4" in str(res[r]["err"])
        assert int(res[r]["epoch"]) == 0 and int(res[r]["batch"]) == 2
        assert int(res[r]["steps"]) == 2  # two good steps applied, not the third
    assert np.array_equal(res[0]["w"], res[1]["w"])


def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    launch("interrupt", 2, tmp_path)
    res = load(tmp_path, "interrupt", 2)
    for r in range(2):
        assert str(res[r]["err"]) == "KeyboardInterrupt: training interrupted on rank 1"
        assert str(res[r]["err2"]).startswith("KeyboardInterrupt")
        assert int(res[r]["epochs2"]) == 1  # epoch 0 recorded, epoch 1's callback interrupted
    for key in ("w", "epochs", "steps"):
        assert np.array_equal(res[0][key], res[1][key]), key


def test_a_dead_or_hung_rank_ends_the_job_instead_of_hanging(tmp_path):
    """Rank 1 killed mid-training: mpiexec ends the job.  Rank 1 stopped (SIGSTOP) mid-training: the
    launcher sees nothing wrong, and rank 0 raises DistributedError after its timeout (3 s)."""
    p = launch("death", 2, tmp_path, timeout=120, check=False)
    assert p.returncode != 0
    p = launch("hang", 2, tmp_path, timeout=120, check=False)
    assert p.returncode != 0
    with open(os.path.join(tmp_path, "hang-0.json")) as f:
        res = json.load(f)
    # in a step's exchange, or in an epoch's (the stop may come between epochs)
    assert res["error"].startswith("DistributedError: fit: "), res
    assert "waited 3 s for the other ranks (a process died, hangs or stopped calling fit)" in res["error"]
    assert res["seconds"] < 60
    assert not os.path.exists(os.path.join(tmp_path, "hang-1.json"))


def test_each_rank_trains_from_its_own_dask_blocks(tmp_path):
    pytest.importorskip("dask.array")
    launch("dask", 2, tmp_path)
    res = load(tmp_path, "dask", 2)
    for r in range(2):
        assert np.array_equal(res[r]["a"], res[r]["b"])
    assert np.array_equal(res[0]["a"], res[1]["a"])


def test_clipping_max_norm_schedules_and_batchnorm_after_the_exchange(tmp_path):
    """Global clipping, max_norm and a per-step schedule act on the averaged gradient, as one process
    on the global batches does; every exchange, and sparse shards, give the same bits.  A BatchNorm keeps the running
    statistics of its own rank's batches (rank 0's are the model's at the end), and a rank's empty
    steps leave them alone."""
    pytest.importorskip("scipy")
    launch("features", 2, tmp_path)
    res = load(tmp_path, "features", 2)
    for key in res[0]:
        assert np.array_equal(res[0][key], res[1][key]), key
    ws = [res[0]["w_" + k] for k in ("shm", "mpi", "shm_overlap", "sparse")]
    assert all(np.array_equal(ws[0], x) for x in ws[1:])
    parts = jobs.shards(2, rows=jobs.FEATURE_SHARDS)
    m = jobs.feature_model()
    for _ in range(2):
        for s in range(-(-max(len(x) for x, _ in parts) // 16)):
            m.train_on_batch(np.concatenate([x[s * 16:(s + 1) * 16] for x, _ in parts]),
                             np.concatenate([y[s * 16:(s + 1) * 16] for _, y in parts]))
    np.testing.assert_allclose(ws[0], jobs.flat(m), rtol=1e-10, atol=1e-12)
    assert np.linalg.norm(m.layers[0].weight, axis=0).max() <= 0.8 * (1 + 1e-12)
    alone = jobs.bn_model()  # rank 0's batches, without the empty steps
    alone.fit(*parts[0], epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert np.array_equal(res[0]["bn"], jobs.flat(alone))
    assert not np.array_equal(alone.layers[1].moving_mean, np.zeros(16))
