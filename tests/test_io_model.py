"""Model files from the user's side: model.save / fnn.load with bitwise-equal predictions, pickle and
deepcopy through the same bytes, the C model against Sequential.predict, the safetensors package
both ways, and load_weights (fastnn and PyTorch layouts, strict and not)."""
import copy
import json
import os
import pickle
import struct

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core, _format, saving
from _io_util import activation, dense, dropout

ACTS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "silu"]


def act_kw(act):
    return fnn.Activation(act, alpha=0.15) if act in ("leaky_relu", "elu") else act


def zoo(act, dtype, loss=None, seed=0):
    layers = [fnn.Dense(12, act_kw(act), l2=1e-3, name="first"), fnn.Dropout(0.3), fnn.Dense(9),
              fnn.Activation(act, **({"alpha": 0.3} if act in ("leaky_relu", "elu") else {})),
              fnn.Dense(7, use_bias=False, l1=1e-4, trainable=False), fnn.Dense(4, act_kw(act))]
    m = fnn.Sequential(layers, input_dim=6, dtype=dtype, seed=seed)
    if loss:
        m.compile(loss, optimizer=fnn.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"] if loss == "cross_entropy" else [])
    return m


def same_model(a, b, x):
    assert [type(l) for l in a.layers] == [type(l) for l in b.layers]
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    assert [l.trainable for l in a.layers] == [l.trainable for l in b.layers]
    assert a.dtype == b.dtype and a.input_dim == b.input_dim and a.loss == b.loss
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    pa, pb = a.predict(x), b.predict(x)
    assert pa.dtype == pb.dtype and np.array_equal(pa, pb)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTS)
def test_save_load_round_trip(act, dtype, tmp_path, rng):
    m = zoo(act, dtype)
    path = tmp_path / "m.safetensors"
    m.save(path)
    x = rng.normal(size=(33, 6))
    back = fnn.load(path)
    same_model(m, back, x)
    assert back.layers[0].l2 == 1e-3 and back.layers[4].l1 == 1e-4 and not back.layers[4].use_bias
    if act in ("leaky_relu", "elu"):
        assert back.layers[0].alpha == 0.15 and back.layers[3].alpha == 0.3
    # the C model (fastnn.h) gives the bits of Sequential.predict
    c = _core.ModelFile.from_path(path)
    assert np.array_equal(c.predict_native(x), m.predict(x))
    assert saving.dumps(back) == path.read_bytes()


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse", "huber"])
@pytest.mark.parametrize("last", ["linear", "softmax", "sigmoid"])
def test_trained_model_with_link(loss, last, tmp_path, rng):
    m = fnn.Sequential([fnn.Dense(16, "relu"), fnn.Dropout(0.2), fnn.Dense(3, last)], input_dim=5, seed=3)
    m.compile(loss, optimizer=fnn.Adam(lr=0.01), huber_delta=0.5)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 3, 200) if loss == "cross_entropy" else rng.random((200, 3)).round()
    m.fit(X, y, epochs=2, batch_size=32, verbose=0)
    m.save(tmp_path / "t.safetensors")
    back = fnn.load(tmp_path / "t.safetensors")
    same_model(m, back, X)
    if loss == "huber":
        assert back.huber_delta == 0.5
    assert np.array_equal(_core.ModelFile.from_path(tmp_path / "t.safetensors").predict_native(X), m.predict(X))
    back.fit(X, y, epochs=1, verbose=0)  # a loaded model trains on


def test_pickle_and_deepcopy(rng):
    m = zoo("relu", "float32", loss="cross_entropy", seed=11)
    X, y = rng.normal(size=(64, 6)), rng.integers(0, 4, 64)
    m.fit(X, y, epochs=1, verbose=0)
    for other in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m), copy.copy(m)):
        same_model(m, other, X)
        assert other.seed == 11 and isinstance(other.optimizer, fnn.SGD) and other.optimizer.momentum == 0.9
        assert [n for n, _ in other.metrics] == ["accuracy"]
        other.layers[0].weight[0, 0] += 1  # an independent copy
        assert not np.array_equal(other.layers[0].weight, m.layers[0].weight)
        other.fit(X, y, epochs=1, verbose=0)
    assert copy.deepcopy(m).optimizer is not m.optimizer  # copy.copy shares it, as shallow copies do
    # the pickle holds the model file's bytes
    data = pickle.dumps(m)
    assert saving.dumps(m) in data


def test_pickle_unbuilt_model():
    m = fnn.Sequential([fnn.Dense(4, "elu", kernel_init="he_uniform"), fnn.Dense(2)], dtype="float64", seed=5)
    m.compile("mse")
    back = pickle.loads(pickle.dumps(m))
    assert not back.built and back.seed == 5 and back.loss == "mse" and back.layers[0].kernel_init == "he_uniform"
    X = np.ones((3, 7))
    assert np.array_equal(back.predict(X), m.predict(X))  # same seed: same initial weights


def test_pickles_of_earlier_versions_still_load(rng):
    """fastnn 0.1.0 pickled through fastnn.saving._unpickle/_unpickle_unbuilt: those names still load."""
    built = zoo("relu", "float32", loss="cross_entropy", seed=11)
    unbuilt = fnn.Sequential([fnn.Dense(4, "elu"), fnn.Dense(2)], dtype="float64", seed=5)
    for m in (built, unbuilt):
        data = pickle.dumps(m)
        assert b"fastnn.models" in data
        old = data.replace(b"fastnn.models", b"fastnn.saving")  # the same length: the stream stays valid
        back = pickle.loads(old)
        X = rng.normal(size=(5, 6 if m.built else 7))
        assert np.array_equal(back.predict(X), m.predict(X)) and back.seed == m.seed


def test_save_errors_and_atomicity(tmp_path, monkeypatch, rng):
    with pytest.raises(fnn.NotFittedError):
        fnn.Sequential([fnn.Dense(2)]).save(tmp_path / "x")
    m = zoo("tanh", "float32")
    path = tmp_path / "m.safetensors"
    m.save(path)
    old = path.read_bytes()
    m.layers[0].weight[...] = 0

    def crash(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        m.save(path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.safetensors"]
    monkeypatch.undo()
    m.save(path)
    assert path.read_bytes() != old
    with pytest.raises(FileNotFoundError):
        fnn.load(tmp_path / "nope")
    (tmp_path / "torn").write_bytes(old[: len(old) // 2])
    with pytest.raises(fnn.ModelFormatError, match="torn"):
        fnn.load(tmp_path / "torn")


def test_newer_major_schema_is_refused(tmp_path):
    m = zoo("relu", "float32")
    data = saving.dumps(m).replace(b'"fastnn_schema":"1.0"', b'"fastnn_schema":"2.0"')
    with pytest.raises(fnn.ModelFormatError, match="newer fastnn") as e:
        saving.loads(data)
    assert e.value.reason == "unsupported model file"


def test_layer_specs_are_the_file_format(rng):
    """Each layer's spec() is what docs/FORMAT.md describes (the dicts built independently by the
    tests' own helpers), from_spec() inverts it, and it inverts the C reader's layer dicts too."""
    m = zoo("leaky_relu", "float32", loss="cross_entropy")
    want = [dense(12, "leaky_relu", 0.15, l2=1e-3, name="first"), dict(dropout(0.3), name="dropout"),
            dense(9, name="dense"), dict(activation("leaky_relu", 0.3), name="activation"),
            dense(7, use_bias=False, l1=1e-4, trainable=False, name="dense_1"),
            dense(4, "leaky_relu", 0.15, name="dense_2")]
    assert [layer.spec() for layer in m.layers] == want
    assert m.spec() == {"input_dim": 6, "dtype": "float32", "loss": "cross_entropy", "link": "softmax",
                        "layers": want}
    assert json.loads(_core.ModelFile.from_buffer(saving.dumps(m)).architecture_json) == m.spec()
    for d, read in zip(want, _core.ModelFile.from_buffer(saving.dumps(m)).layers):
        assert type(fnn.layers.Layer.from_spec(d)) is type(fnn.layers.Layer.from_spec(read))
        assert fnn.layers.Layer.from_spec(d).spec() == d == fnn.layers.Layer.from_spec(read).spec()
    with pytest.raises(ValueError, match="layer type 'conv' is unknown; expected one of dense, dropout, activation"):
        fnn.layers.Layer.from_spec({"type": "conv"})


def read_header_metadata(data):
    """The __metadata__ of a safetensors file, read with struct and json (independently of fastnn)."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])["__metadata__"]


def test_extra_metadata_round_trip(tmp_path, rng):
    m = zoo("relu", "float32", loss="cross_entropy")
    assert m.metadata == {}
    extra = {"owner": "équipe ✓", "notes": '{"json": [1, 2]}', "empty": ""}
    m.save(tmp_path / "a.safetensors", extra_metadata=extra)
    data = (tmp_path / "a.safetensors").read_bytes()
    meta = read_header_metadata(data)
    assert {k: meta[k] for k in extra} == extra
    assert set(meta) == set(extra) | {"format", "fastnn_schema", "fastnn_version", "architecture"}
    assert m.metadata == {}  # saving with extra metadata does not change the model
    X = rng.normal(size=(9, 6))
    assert np.array_equal(_core.ModelFile.from_buffer(data).predict_native(X), m.predict(X))  # the C API reads it
    for back in (fnn.load(tmp_path / "a.safetensors"), saving.loads(data)):
        assert back.metadata == extra
        same_model(m, back, X)
        assert pickle.loads(pickle.dumps(back)).metadata == extra
        assert copy.deepcopy(back).metadata == extra
    back = fnn.load(tmp_path / "a.safetensors")
    back.save(tmp_path / "b.safetensors")  # written back as it came
    assert read_header_metadata((tmp_path / "b.safetensors").read_bytes()) == meta
    back.save(tmp_path / "c.safetensors", extra_metadata={"notes": "new", "more": "x"})  # key by key over it
    assert fnn.load(tmp_path / "c.safetensors").metadata == dict(extra, notes="new", more="x")
    back.metadata = {}
    back.save(tmp_path / "d.safetensors")
    assert fnn.load(tmp_path / "d.safetensors").metadata == {}
    unbuilt = fnn.Sequential([fnn.Dense(2)])
    unbuilt.metadata["k"] = "v"
    assert pickle.loads(pickle.dumps(unbuilt)).metadata == {"k": "v"}
    for bad, exc, msg in (({"format": "x"}, ValueError, "key 'format' is reserved"),
                          ({"fastnn_schema": "9.0"}, ValueError, "reserved"),
                          ({"k": 1.5}, TypeError, r"extra_metadata\['k'\]: values must be str"),
                          ({b"k": "v"}, TypeError, "keys must be str"),
                          ("k=v", TypeError, "expected a dict")):
        with pytest.raises(exc, match=msg):
            m.save(tmp_path / "e.safetensors", extra_metadata=bad)
        with pytest.raises(exc, match=msg):
            saving.dumps(m, extra_metadata=bad)
    assert not (tmp_path / "e.safetensors").exists()


def test_safetensors_package_both_ways(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    m = zoo("gelu", "float64", loss="binary_cross_entropy")
    path = tmp_path / "m.safetensors"
    m.save(path)
    tensors = st.load_file(str(path))
    assert set(tensors) == {f"layers.{i}.{k}" for i, k in [(0, "weight"), (0, "bias"), (2, "weight"), (2, "bias"),
                                                            (4, "weight"), (5, "weight"), (5, "bias")]}
    assert np.array_equal(tensors["layers.0.weight"], m.layers[0].weight)
    other = tmp_path / "by_safetensors.safetensors"
    st.save_file(tensors, str(other), metadata=_format.metadata(saving.architecture(m)))
    same_model(m, fnn.load(other), rng.normal(size=(10, 6)))


# ---- load_weights: fastnn layout -------------------------------------------------------------------------

def test_load_weights_fastnn(tmp_path, rng):
    src = zoo("relu", "float64", seed=1)
    dst = zoo("relu", "float64", seed=2)
    path = tmp_path / "w.safetensors"
    src.save(path)
    r = dst.load_weights(path)
    assert r.loaded == ["first", "dense", "dense_1", "dense_2"] and not r.skipped and not r.unexpected
    x = rng.normal(size=(5, 6))
    assert np.array_equal(dst.predict(x), src.predict(x))
    dst2 = zoo("relu", "float32", seed=3)  # float64 weights into a float32 model: converted
    dst2.load_weights({k: v for k, v in src._named_parameters()})
    assert np.array_equal(dst2.layers[0].weight, src.layers[0].weight.astype(np.float32))


def test_load_weights_fastnn_errors_and_new_head(rng):
    src = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dense(3)], input_dim=4, seed=1)
    weights = dict(src._named_parameters())
    dst = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dense(5)], input_dim=4, seed=2)
    before = dst.get_weights()
    with pytest.raises(fnn.ModelFormatError, match=r"'layers.1.weight' has shape \(8, 3\) but layer 1 .* expects \(8, 5\)"):
        dst.load_weights(weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, dst.get_weights()))  # nothing changed
    r = dst.load_weights(weights, strict=False)
    assert r.loaded == ["dense"] and r.skipped[0][0] == "dense_1"
    assert sorted(r.unexpected) == ["layers.1.bias", "layers.1.weight"]
    assert np.array_equal(dst.layers[0].weight, src.layers[0].weight)
    assert np.array_equal(dst.layers[1].weight, before[2])
    with pytest.raises(fnn.ModelFormatError, match="missing tensor 'layers.0.bias'"):
        src.load_weights({"layers.0.weight": weights["layers.0.weight"]})
    with pytest.raises(fnn.ModelFormatError, match="unexpected tensor 'extra'"):
        src.load_weights(dict(weights, extra=np.zeros(2)))
    with pytest.raises(ValueError, match="'layers.0.bias' contains NaN"):
        src.load_weights(dict(weights, **{"layers.0.bias": np.full(8, np.nan)}))
    with pytest.raises(TypeError, match="dtype"):
        src.load_weights(dict(weights, **{"layers.0.bias": np.array(["a"] * 8)}))
    with pytest.raises(ValueError, match="layout"):
        src.load_weights(weights, layout="keras")
    with pytest.raises(TypeError, match="source"):
        src.load_weights(42)


# ---- load_weights: PyTorch layout ------------------------------------------------------------------------

torch = None


@pytest.fixture
def tnn():
    global torch
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_mlp_same_predictions(tnn, dtype, tmp_path, rng):
    net = tnn.Sequential(tnn.Linear(20, 32), tnn.ReLU(), tnn.Linear(32, 16), tnn.Tanh(), tnn.Linear(16, 5),
                         tnn.Softmax(dim=1))
    net = net.double() if dtype == "float64" else net
    m = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dense(16, "tanh"), fnn.Dense(5, "softmax")], input_dim=20,
                       dtype=dtype, seed=0)
    r = m.load_weights(net.state_dict(), layout="torch")
    assert r.loaded == ["dense", "dense_1", "dense_2"]
    x = rng.normal(size=(50, 20)).astype(dtype)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(m.predict(x), want, rtol=tol * 10, atol=tol)
    # the same through a .safetensors file written by safetensors.torch
    pytest.importorskip("safetensors.torch")
    from safetensors.torch import save_file
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    m2 = fnn.Sequential([fnn.Dense(32, "relu"), fnn.Dense(16, "tanh"), fnn.Dense(5, "softmax")], input_dim=20,
                        dtype=dtype, seed=1)
    m2.load_weights(tmp_path / "net.safetensors", layout="torch")
    assert np.array_equal(m2.predict(x), m.predict(x))


def test_torch_bfloat16_and_module_order(tnn, tmp_path):
    """Linear layers map in module order: a dict's own order; a file's names in natural order
    ("10.weight" after "2.weight", which a lexical sort would put first).  bfloat16 widens exactly."""
    layers = []
    for _ in range(12):
        layers += [tnn.Linear(6, 6), tnn.ReLU()]
    sd = {k: v.to(torch.bfloat16) for k, v in tnn.Sequential(*layers).state_dict().items()}
    want = [sd[f"{2 * i}.weight"].float().numpy().T for i in range(12)]
    m = fnn.Sequential([fnn.Dense(6, "relu") for _ in range(12)], input_dim=6)
    m.load_weights(sd, layout="torch")
    assert all(np.array_equal(m.layers[i].weight, want[i]) for i in range(12))
    pytest.importorskip("safetensors.torch")
    from safetensors.torch import save_file
    save_file(sd, str(tmp_path / "bf16.safetensors"))
    m2 = fnn.Sequential([fnn.Dense(6, "relu") for _ in range(12)], input_dim=6, dtype="float64")
    m2.load_weights(tmp_path / "bf16.safetensors", layout="torch")
    assert all(np.array_equal(m2.layers[i].weight, want[i]) for i in range(12))


def test_torch_fine_tune_last_layer(tnn, rng):
    """Transfer learning: pretrained torch features, frozen; a new task trains the head only."""
    net = tnn.Sequential(tnn.Linear(10, 24), tnn.ReLU(), tnn.Linear(24, 12), tnn.ReLU(), tnn.Linear(12, 4))
    # pretrain in torch: 4 classes from the signs of x0 + x1 and x2 - x3
    Xp = torch.from_numpy(rng.normal(size=(512, 10)).astype(np.float32))
    yp = ((Xp[:, 0] + Xp[:, 1] > 0).long() * 2 + (Xp[:, 2] - Xp[:, 3] > 0).long())
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        tnn.functional.cross_entropy(net(Xp), yp).backward()
        opt.step()
    m = fnn.Sequential([fnn.Dense(24, "relu"), fnn.Dense(12, "relu"), fnn.Dense(2)], input_dim=10, seed=0)
    with pytest.raises(fnn.ModelFormatError, match=r"'4.weight' has shape \(4, 12\) but Dense layer 2 .* needs \(2, 12\)"):
        m.load_weights(net.state_dict(), layout="torch")
    r = m.load_weights(net.state_dict(), layout="torch", strict=False)
    assert r.loaded == ["dense", "dense_1"] and r.skipped[0][0] == "dense_2"
    assert r.unexpected == ["4.weight", "4.bias"]
    frozen = [m.layers[i].weight.copy() for i in (0, 1)] + [m.layers[i].bias.copy() for i in (0, 1)]
    m.freeze(-1)
    assert [l.trainable for l in m.layers] == [False, False, True]
    X = rng.normal(size=(400, 10))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    m.compile("cross_entropy", optimizer=fnn.Adam(lr=0.05), metrics=["accuracy"])
    head = m.layers[2].weight.copy()
    h = m.fit(X, y, epochs=10, batch_size=32, verbose=0)
    assert h.history["accuracy"][-1] > 0.9  # the pretrained features carry the new task
    after = [m.layers[i].weight for i in (0, 1)] + [m.layers[i].bias for i in (0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, after))
    assert not np.array_equal(head, m.layers[2].weight)


def test_torch_strict_errors(tnn):
    net = tnn.Sequential(tnn.Linear(4, 3, bias=False), tnn.BatchNorm1d(3), tnn.Linear(3, 2))
    m = fnn.Sequential([fnn.Dense(3, use_bias=False), fnn.Dense(2)], input_dim=4)
    with pytest.raises(fnn.ModelFormatError, match="'1.weight' is not the weight or bias of an nn.Linear"):
        m.load_weights(net.state_dict(), layout="torch")
    r = m.load_weights(net.state_dict(), layout="torch", strict=False)
    assert r.loaded == ["dense", "dense_1"] and "1.running_mean" in r.unexpected
    m2 = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)], input_dim=4)
    with pytest.raises(fnn.ModelFormatError, match="missing tensor '0.bias'"):
        m2.load_weights({k: v for k, v in net.state_dict().items() if not k.startswith("1.")}, layout="torch")
    m3 = fnn.Sequential([fnn.Dense(3, use_bias=False)], input_dim=4)
    with pytest.raises(fnn.ModelFormatError, match="2 Linear layers .* but the model has 1 Dense"):
        m3.load_weights({k: v for k, v in net.state_dict().items() if not k.startswith("1.")}, layout="torch")


def test_model_checkpoint_writes_loadable_files(tmp_path, rng):
    m = fnn.Sequential([fnn.Dense(8, "relu"), fnn.Dense(2)], input_dim=3, seed=2)
    m.compile("cross_entropy")
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    m.fit(X, y, epochs=3, verbose=0, callbacks=[
        fnn.ModelCheckpoint(str(tmp_path / "ep{epoch}.safetensors"), monitor="loss", save_best_only=False)])
    assert sorted(os.listdir(tmp_path)) == ["ep1.safetensors", "ep2.safetensors", "ep3.safetensors"]
    same_model(m, fnn.load(tmp_path / "ep3.safetensors"), X)
