"""Exact resume: model.save(path, include_optimizer=True) + fnn.load(path) + fit for the remaining
epochs gives the bits of one uninterrupted fit (dropout, shuffling, BatchNorm statistics, clipping and
schedules on), for every optimizer; ModelCheckpoint(include_optimizer=True) likewise; and the reader
checks the training state as strictly as the rest of the file."""
import json

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core, _format
from fastnn.schedules import CosineDecay, CosineDecayByStep, StepDecay, WarmUp
from _io_util import raw_file, split

OPTIMIZERS = {
    "sgd-nesterov": lambda: fnn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fnn.Adam(lr=0.005, clipnorm=1.0),
    "adamw": lambda: fnn.AdamW(lr=0.005, weight_decay=0.05, global_clipnorm=2.0),
    "rmsprop": lambda: fnn.RMSprop(lr=0.002, momentum=0.5, centered=True, clipvalue=0.5),
    "sgd-epoch-schedule": lambda: fnn.SGD(lr=StepDecay(0.1, drop=0.5, every=2), momentum=0.8),
    "adam-step-schedule": lambda: fnn.Adam(lr=CosineDecayByStep(0.01, decay_steps=60, min_lr=1e-4, warmup_steps=5)),
    "sgd-cosine-epochs": lambda: fnn.SGD(lr=CosineDecay(0.1, total_epochs=4, warmup_epochs=1)),
}


def _data(dtype, n=230):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 12)).astype(dtype)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    return X, y


def _model(opt, dtype):
    m = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dropout(0.3), fnn.Dense(16), fnn.BatchNorm(momentum=0.9),
                        fnn.Activation("elu"), fnn.Dense(3)], input_dim=12, dtype=dtype, seed=11)
    m.compile("cross_entropy", optimizer=opt, metrics=["accuracy"])
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_load_and_fit_continues_with_the_same_bits(opt, dtype, tmp_path):
    X, y = _data(dtype)
    whole = _model(OPTIMIZERS[opt](), dtype)
    h_whole = whole.fit(X, y, epochs=5, batch_size=32, validation_split=0.1, verbose=0)

    first = _model(OPTIMIZERS[opt](), dtype)
    h1 = first.fit(X, y, epochs=2, batch_size=32, validation_split=0.1, verbose=0)
    first.train_on_batch(X[:40], y[:40])  # a step outside fit is part of the state too
    whole_tb = _model(OPTIMIZERS[opt](), dtype)  # the uninterrupted run with that same step
    whole_tb.fit(X, y, epochs=2, batch_size=32, validation_split=0.1, verbose=0)
    whole_tb.train_on_batch(X[:40], y[:40])
    whole_tb.fit(X, y, epochs=3, batch_size=32, validation_split=0.1, verbose=0)

    path = tmp_path / "ckpt.safetensors"
    first.save(path, include_optimizer=True)
    resumed = fnn.load(path)
    assert type(resumed.optimizer) is type(first.optimizer)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert resumed.seed == first.seed
    resumed.fit(X, y, epochs=3, batch_size=32, validation_split=0.1, verbose=0)
    for a, b in zip(whole_tb.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(whole_tb.predict(X), resumed.predict(X))
    assert len(h_whole.history["loss"]) == 5 and len(h1.history["loss"]) == 2


def test_fit_split_in_two_equals_one_fit(tmp_path):
    """Without a step between them, two fits around a save and load equal one fit of all the epochs."""
    X, y = _data("float32")
    whole = _model(OPTIMIZERS["adam-step-schedule"](), "float32")
    hw = whole.fit(X, y, epochs=4, batch_size=32, verbose=0)
    part = _model(OPTIMIZERS["adam-step-schedule"](), "float32")
    h1 = part.fit(X, y, epochs=1, batch_size=32, verbose=0)
    data = fnn.saving.dumps(part, include_optimizer=True)
    resumed = fnn.saving.loads(data)
    h2 = resumed.fit(X, y, epochs=3, batch_size=32, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert h1.history["loss"] + h2.history["loss"] == hw.history["loss"]
    assert h1.history["lr"] + h2.history["lr"] == hw.history["lr"]


def test_checkpoint_with_include_optimizer_resumes(tmp_path):
    X, y = _data("float64")
    whole = _model(OPTIMIZERS["rmsprop"](), "float64")
    whole.fit(X, y, epochs=4, batch_size=40, verbose=0)
    m = _model(OPTIMIZERS["rmsprop"](), "float64")
    ckpt = fnn.ModelCheckpoint(str(tmp_path / "e{epoch}.safetensors"), save_best_only=False, include_optimizer=True)
    m.fit(X, y, epochs=4, batch_size=40, verbose=0, callbacks=[ckpt])
    resumed = fnn.load(tmp_path / "e2.safetensors")
    resumed.fit(X, y, epochs=2, batch_size=40, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    plain = fnn.ModelCheckpoint(str(tmp_path / "plain.safetensors"), save_best_only=False)
    m.fit(X, y, epochs=1, batch_size=40, verbose=0, callbacks=[plain])
    assert "training" not in split((tmp_path / "plain.safetensors").read_bytes())[0]["__metadata__"]


def test_the_file_holds_the_state_under_names_any_reader_sees(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    X, y = _data("float32")
    m = _model(fnn.Adam(lr=0.01), "float32")
    m.fit(X, y, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "m.safetensors"
    m.save(path, include_optimizer=True)
    header, _ = split(path.read_bytes())
    meta = header["__metadata__"]
    assert meta["fastnn_schema"] == "1.1"
    training = json.loads(meta["training"])
    assert training["optimizer"] == "adam" and training["seed"] == 11 and training["epochs_seen"] == 1
    assert training["step"] == training["opt_step"] == 4  # ceil(230 / 64) steps
    tensors = st.load_file(str(path))
    for s, name in enumerate(["exp_avg", "exp_avg_sq"]):
        for i, layer in enumerate(m.layers):
            for pname, a in layer.parameters():
                at = s * m._params.size + layer._offsets[pname]
                want = m._state[at:at + a.size].reshape(a.shape)
                assert np.array_equal(tensors[f"optimizer.{name}.layers.{i}.{pname}"], want)
    assert np.abs(tensors["optimizer.exp_avg.layers.0.weight"]).max() > 0
    # a plain save of the same model stays schema 1.0 where it can (no normalization layer)
    plain = fnn.Sequential([fnn.Dense(3)], input_dim=2, seed=0)
    plain.compile("mse")
    assert split(fnn.saving.dumps(plain))[0]["__metadata__"]["fastnn_schema"] == "1.0"
    assert split(fnn.saving.dumps(plain, include_optimizer=True))[0]["__metadata__"]["fastnn_schema"] == "1.1"
    # without include_optimizer the file has no state, and loads with a fresh default optimizer
    m.save(path)
    assert "training" not in split(path.read_bytes())[0]["__metadata__"]
    assert type(fnn.load(path).optimizer) is fnn.SGD


def test_include_optimizer_needs_a_storable_optimizer():
    m = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(ValueError, match="include_optimizer: the model has no optimizer"):
        fnn.saving.dumps(m, include_optimizer=True)
    m.compile("mse", optimizer=fnn.SGD(lr=lambda epoch: 0.1))
    with pytest.raises(ValueError, match="include_optimizer: the optimizer's lr is a function"):
        fnn.saving.dumps(m, include_optimizer=True)
    m.compile("mse", optimizer=fnn.SGD(lr=WarmUp(0.1, 10)))
    again = fnn.saving.loads(fnn.saving.dumps(m, include_optimizer=True))
    assert again.optimizer.lr == WarmUp(0.1, 10)


# ---- the reader's checks of the training state ---------------------------------------------------------

def _saved():
    X, y = _data("float32", 60)
    m = fnn.Sequential([fnn.Dense(4, "relu"), fnn.Dense(3)], input_dim=12, seed=5)
    m.compile("cross_entropy", optimizer=fnn.SGD(lr=0.1, momentum=0.9))
    m.fit(X, y, epochs=1, batch_size=30, verbose=0)
    return fnn.saving.dumps(m, include_optimizer=True)


def _rebuild(header, body):
    return raw_file(header, body)


def _with_training(data, change):
    header, body = split(data)
    t = json.loads(header["__metadata__"]["training"])
    change(t)
    header["__metadata__"]["training"] = json.dumps(t)
    return _rebuild(header, body)


def _rejects(data, *fragments):
    with pytest.raises(fnn.ModelFormatError) as e:
        fnn.saving.loads(data)
    for f in fragments:
        assert f in str(e.value), str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("opt_step"), "training: no opt_step"),
    (lambda t: t.update(extra=1), 'training: unknown key "extra"'),
    (lambda t: t.update(optimizer="lbfgs"), "training: unknown optimizer lbfgs"),
    (lambda t: t.update(optimizer=3), "training: unknown optimizer (not a string)"),
    (lambda t: t.update(lr=-0.1), "training: lr = -0.10000000000000001 is outside [0, inf]"),
    (lambda t: t.update(lr="fast"), "training: lr is not a number"),
    (lambda t: t.update(beta1=1.0), "training: beta1 = 1 is outside [0, 1)"),
    (lambda t: t.update(nesterov=1), "training: nesterov is not true or false"),
    (lambda t: t.update(clipnorm=1.0, clipvalue=2.0), "more than one of clipnorm, global_clipnorm and clipvalue"),
    (lambda t: t.update(clipnorm=0), "training: clipnorm = 0 is outside (0, inf]"),
    (lambda t: t.update(seed=-1), "training: seed is not an integer"),
    (lambda t: t.update(step=2**63), "training: step is not an integer in [0, 9223372036854775807]"),
    (lambda t: t.update(epochs_seen=1.5), "training: epochs_seen is not an integer"),
    (lambda t: t.update(schedule={"kind": "cosine"}), "training: schedule has no per"),
    (lambda t: t.update(schedule={"kind": "wavy", "per": "step", "initial_lr": 0.1, "warmup": 0, "period": 5,
                                  "factor": 0, "staircase": False}), 'unknown schedule kind "wavy"'),
    (lambda t: t.update(schedule={"kind": "cosine", "per": "step", "initial_lr": 0.1, "warmup": 0, "period": 5,
                                  "factor": 0.5, "staircase": False}), "schedule factor 0.5 is outside [0, initial_lr]"),
    (lambda t: t.update(schedule={"kind": "constant", "per": "epoch", "initial_lr": 0.1, "warmup": 3, "period": 1,
                                  "factor": 1, "staircase": False}), "a per-epoch schedule is step, exponential or cosine"),
    (lambda t: t.update(schedule={"kind": "step", "per": "hour", "initial_lr": 0.1, "warmup": 0, "period": 1,
                                  "factor": 1, "staircase": False}), 'schedule per is not "step" or "epoch"'),
    (lambda t: t.update(momentum=0.0), 'unexpected tensor "optimizer.momentum_buffer.layers.0.weight"'),
    (lambda t: t.update(optimizer="adam"), 'unexpected tensor "optimizer.momentum_buffer.layers.0.weight"'),
])
def test_bad_training_states_are_named(change, message):
    _rejects(_with_training(_saved(), change), message)


def test_training_tensors_are_checked():
    data = _saved()
    header, body = split(data)
    # a missing state tensor (drop the last tensor: it is the last one written)
    name = max(header, key=lambda k: header[k]["data_offsets"][1] if k != "__metadata__" else -1)
    start = header[name]["data_offsets"][0]
    h = dict(header)
    del h[name]
    _rejects(_rebuild(h, body[:start]), f'missing tensor "{name}"', "(layer 1 is dense)")
    # a state tensor of the wrong shape
    h = json.loads(json.dumps(header))
    h["optimizer.momentum_buffer.layers.0.bias"]["shape"] = [2, 2]
    _rejects(_rebuild(h, body), 'tensor "optimizer.momentum_buffer.layers.0.bias" has shape [2, 2]')
    # state in a file without a training state, and a training state in a schema 1.0 file
    h = json.loads(json.dumps(header))
    del h["__metadata__"]["training"]
    _rejects(_rebuild(h, body), 'unexpected tensor "optimizer.momentum_buffer.layers.0.weight"', "optimizer state")
    h = json.loads(json.dumps(header))
    h["__metadata__"]["fastnn_schema"] = "1.0"
    _rejects(_rebuild(h, body), "training needs schema 1.1")
    # a newer minor schema: unknown keys are ignored, the rest still checked
    h = json.loads(json.dumps(header))
    t = json.loads(h["__metadata__"]["training"])
    t["future"] = True
    h["__metadata__"]["training"] = json.dumps(t)
    h["__metadata__"]["fastnn_schema"] = "1.9"
    assert fnn.saving.loads(_rebuild(h, body)).optimizer.momentum == 0.9
    assert "training" in _format.RESERVED_KEYS
    with pytest.raises(ValueError, match="reserved"):
        fnn.saving.dumps(fnn.saving.loads(data), extra_metadata={"training": "{}"})
    mf = _core.ModelFile.from_buffer(data)
    assert mf.training["optimizer"]["kind"] == "sgd" and set(mf.optimizer_tensors()) == {
        f"optimizer.momentum_buffer.layers.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}
