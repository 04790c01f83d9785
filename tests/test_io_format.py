"""The model-file format and its C reader (csrc/io.c) through fastnn._core.ModelFile: round trips,
the C model's predictions against NumPy, and one specific error for each kind of malformed file."""
import json
import math
import os
import struct

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _core, _format
from _io_util import (ACTIVATIONS, activation, architecture, dense, dropout, model_bytes, raw_file,
                      reference_predict, split, tensors_for)

ModelFile = _core.ModelFile
TOL = {"float32": 2e-5, "float64": 1e-12}


def load(data):
    return ModelFile.from_buffer(data)


def rejects(data, *fragments, reason="malformed model file"):
    with pytest.raises(fnn.ModelFormatError) as e:
        load(data)
    for f in fragments:
        assert f in str(e.value), str(e.value)
    assert e.value.reason == reason
    return str(e.value)


@pytest.fixture
def simple(rng):
    arch = architecture([dense(7, "relu"), dropout(0.3), dense(3)], loss="cross_entropy")
    data, tensors = model_bytes(arch, rng)
    return arch, data, tensors


# ---- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_round_trip_every_activation(act, dtype, rng):
    alpha = {"leaky_relu": 0.2, "elu": 0.7}.get(act)
    arch = architecture([dense(6, act, alpha), dropout(0.25), dense(4, "linear", use_bias=False),
                         activation(act, alpha), dense(3, act, alpha)], input_dim=5, dtype=dtype)
    data, tensors = model_bytes(arch, rng)
    m = load(data)
    assert m.dtype == np.dtype(dtype)
    assert (m.n_inputs, m.n_outputs) == (5, 3)
    got = m.tensors()
    assert list(got) == list(tensors)
    for name, a in tensors.items():
        assert got[name].dtype == a.dtype and np.array_equal(got[name], a)
    kinds = [(l["type"], l.get("activation")) for l in m.layers]
    assert kinds == [("dense", act), ("dropout", None), ("dense", "linear"), ("activation", act), ("dense", act)]
    if alpha is not None:
        assert m.layers[0]["alpha"] == alpha and m.layers[3]["alpha"] == alpha
    x = rng.normal(size=(9, 5))
    ref = reference_predict(arch, tensors, x)
    np.testing.assert_allclose(m.predict_native(x), ref, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(m.predict(x.astype(np.float32)), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss,link", [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid"),
                                       ("mse", "linear"), (None, "linear")])
@pytest.mark.parametrize("last", ["linear", "softmax", "sigmoid"])
def test_link_applied_once(loss, link, last, rng):
    arch = architecture([dense(8, "tanh"), dense(4, last)], loss=loss, dtype="float64")
    data, tensors = model_bytes(arch, rng)
    m = load(data)
    assert m.link == link and m.loss[0] == loss
    x = rng.normal(size=(6, 5))
    np.testing.assert_allclose(m.predict_native(x), reference_predict(arch, tensors, x), rtol=1e-12, atol=1e-12)


def test_defaults_and_optional_keys(rng):
    """Optional keys may be left out; an activation layer folds into the linear Dense below it."""
    layers = [{"type": "dense", "units": 4}, {"type": "activation", "activation": "leaky_relu"},
              {"type": "dense", "units": 2, "activation": None, "use_bias": False}]
    arch = {"input_dim": 3, "dtype": "float64", "layers": layers}
    tensors = tensors_for(dict(arch), rng)
    m = load(_format.encode(arch, tensors))
    assert m.loss == (None, 1.0) and m.link == "linear"
    assert m.layers[1]["alpha"] == 0.01 and m.layers[0]["use_bias"] and not m.layers[2]["use_bias"]
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(m.predict_native(x), reference_predict(dict(arch, link="linear"), dict(tensors), x),
                               rtol=1e-12)


def test_metadata_and_names(rng):
    arch = architecture([dense(3, name="première couche ✓"), dropout(0.1)], input_dim=2)
    data, _ = model_bytes(arch, rng)
    m = load(data)
    meta = m.metadata
    assert meta["format"] == "fastnn" and meta["fastnn_schema"] == "1.0" and meta["fastnn_version"] == fnn.__version__
    assert json.loads(meta["architecture"]) == arch == json.loads(m.architecture_json)
    assert m.layers[0]["name"] == "première couche ✓"


def test_header_is_padded_and_tiles(rng, simple):
    _, data, tensors = simple
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0 and data[8 + n - 1:8 + n] in (b" ", b"}")
    header, body = split(data)
    assert len(body) == sum(a.nbytes for a in tensors.values())


def test_parameterless_model(rng):
    arch = architecture([activation("softmax"), dropout(0.5)], input_dim=4)
    m = load(_format.encode(arch, []))
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(m.predict_native(x), reference_predict(arch, {}, x), rtol=1e-6)


def test_nan_weights_are_data(rng):
    arch = architecture([dense(2)], input_dim=2)
    t = tensors_for(arch, rng)
    t[0][1][0, 0] = np.nan
    m = load(_format.encode(arch, t))
    assert np.isnan(m.tensors()["layers.0.weight"][0, 0])


def test_many_rows_any_threads(rng):
    """Rows go through in chunks and threads: each row's result is that of a lone row."""
    arch = architecture([dense(37, "gelu"), dense(19, "softmax")], input_dim=23, loss="cross_entropy")
    data, _ = model_bytes(arch, rng)
    m = load(data)
    x = rng.normal(size=(2500, 23)).astype(np.float32)
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        one = m.predict(x)
        fnn.set_num_threads(2)
        two = m.predict(x)
    finally:
        fnn.set_num_threads(before)
    assert np.array_equal(one, two)
    for i in (0, 1, 1023, 1024, 2499):
        assert np.array_equal(m.predict(x[i:i + 1]), one[i:i + 1])


def test_load_from_path(tmp_path, simple):
    _, data, _ = simple
    p = tmp_path / "m.safetensors"
    p.write_bytes(data)
    m = ModelFile.from_path(p)
    assert m.n_outputs == 3
    with pytest.raises(FileNotFoundError):
        ModelFile.from_path(tmp_path / "missing.safetensors")
    with pytest.raises(IsADirectoryError):
        ModelFile.from_path(tmp_path)
    (tmp_path / "bad").write_bytes(data[:-1])
    with pytest.raises(fnn.ModelFormatError, match="bad"):
        ModelFile.from_path(tmp_path / "bad")


def test_writer_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "m.bin"
    _format.write_atomic(p, b"old")
    os.chmod(p, 0o640)
    _format.write_atomic(p, b"new")
    assert p.read_bytes() == b"new" and (os.stat(p).st_mode & 0o777) == 0o640

    def broken_fsync(fd):
        raise OSError(5, "disk on fire")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        _format.write_atomic(p, b"newer")
    assert p.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["m.bin"]  # no temporary file left behind


# ---- interoperability with the safetensors package -------------------------------------------------

def test_safetensors_reads_our_files(tmp_path, simple):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open
    _, data, tensors = simple
    p = tmp_path / "m.safetensors"
    p.write_bytes(data)
    got = st.load_file(str(p))
    assert set(got) == set(tensors)
    for k, a in tensors.items():
        assert got[k].dtype == a.dtype and np.array_equal(got[k], a)
    with safe_open(str(p), framework="numpy") as f:
        assert f.metadata()["format"] == "fastnn"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_files_written_by_safetensors_load(tmp_path, rng, dtype):
    st = pytest.importorskip("safetensors.numpy")
    arch = architecture([dense(6, "elu", 0.5), dropout(0.2), dense(2, "sigmoid")], dtype=dtype,
                        loss="binary_cross_entropy")
    tensors = dict(tensors_for(arch, rng))
    p = tmp_path / "st.safetensors"
    st.save_file(tensors, str(p), metadata=_format.metadata(arch))
    m = ModelFile.from_path(p)
    for k, a in tensors.items():
        assert np.array_equal(m.tensors()[k], a)
    x = rng.normal(size=(4, 5))
    np.testing.assert_allclose(m.predict_native(x), reference_predict(arch, tensors, x), rtol=TOL[dtype])


# ---- rejections: one specific message each -----------------------------------------------------------

def header_of(simple):
    _, data, _ = simple
    return split(data)


def rebuild(header, body, **kw):
    return raw_file(header, body, **kw)


def renamed(header, body, old, new):
    """The file with tensor `old` listed under the name `new`."""
    h = json.loads(json.dumps(header))
    h[new] = h.pop(old)
    return rebuild(h, body)


def test_reject_sizes(simple):
    _, data, _ = simple
    header, body = split(data)
    rejects(b"", "0 bytes, too short")
    rejects(data[:7], "too short")
    rejects(struct.pack("<Q", 100_000_001) + data[8:], "exceeds the limit")
    rejects(struct.pack("<Q", 2**64 - 1) + data[8:], "exceeds the limit")
    rejects(struct.pack("<Q", len(data)) + data[8:], "exceeds the", "bytes after it")
    rejects(struct.pack("<Q", 0) + data[8:], "does not start with '{'")
    rejects(data + b"\0\0\0\0", "trailing bytes", "larger than its header claims")
    rejects(data[:-4], "past the", "data section")
    n = struct.unpack("<Q", data[:8])[0]
    rejects(struct.pack("<Q", n - 8) + data[8:], "header JSON")  # the header cut short


def test_reject_tensor_layout(simple):
    header, body = header_of(simple)
    names = [k for k in header if k != "__metadata__"]
    a, b = names[0], names[1]

    h = json.loads(json.dumps(header))
    h[b]["data_offsets"] = [h[b]["data_offsets"][0] - 4, h[b]["data_offsets"][1] - 4]
    rejects(rebuild(h, body), "overlap")

    h = json.loads(json.dumps(header))  # a gap: every tensor after `a` moves 4 bytes on
    shift = h[a]["data_offsets"][1]
    for k in names:
        if h[k]["data_offsets"][0] >= shift:
            h[k]["data_offsets"] = [o + 4 for o in h[k]["data_offsets"]]
    body2 = body[:shift] + b"\0" * 4 + body[shift:]
    rejects(rebuild(h, body2), "4 unused bytes before tensor")

    h = json.loads(json.dumps(header))
    h[a]["shape"] = [2**40, 2**40, 2**40]
    rejects(rebuild(h, body), "over 2^64")
    h[a]["shape"] = [2**20, 2**20]
    rejects(rebuild(h, body), "more than the", "data section")
    h = json.loads(json.dumps(header))
    h[a]["shape"] = [h[a]["shape"][0], h[a]["shape"][1] - 1]
    rejects(rebuild(h, body), "data_offsets span")
    h = json.loads(json.dumps(header))
    h[a]["data_offsets"] = [8, 4]
    rejects(rebuild(h, body), "end before they begin")
    h[a]["data_offsets"] = [0, 2**70]
    rejects(rebuild(h, body), "not non-negative integers")
    h[a]["data_offsets"] = [0]
    rejects(rebuild(h, body), "pair")
    h = json.loads(json.dumps(header))
    h[a]["shape"] = [-1, 3]
    rejects(rebuild(h, body), "shape[0]")
    h[a]["shape"] = [1] * 9
    rejects(rebuild(h, body), "9 dimensions")
    h = json.loads(json.dumps(header))
    h[a]["extra"] = 1
    rejects(rebuild(h, body), 'unknown key "extra"')
    del h[a]["extra"], h[a]["dtype"]
    rejects(rebuild(h, body), 'missing "dtype"')
    h[a]["dtype"] = "F99"
    rejects(rebuild(h, body), 'unknown dtype "F99"')
    h = json.loads(json.dumps(header))
    h[a] = [1, 2]
    rejects(rebuild(h, body), "expected an object")


def test_reject_dtype_mismatch(simple):
    header, body = header_of(simple)
    a = "layers.0.weight"
    h = json.loads(json.dumps(header))
    n = h[a]["shape"][0] * h[a]["shape"][1]
    # as F16 the tensor takes half the bytes: shrink the data section accordingly
    end = h[a]["data_offsets"][1]
    h[a]["dtype"] = "F16"
    h[a]["data_offsets"][1] = 2 * n
    for k in h:
        if k not in ("__metadata__", a):
            h[k]["data_offsets"] = [o - 2 * n for o in h[k]["data_offsets"]]
    rejects(rebuild(h, body[:2 * n] + body[end:]), "F16", reason="unsupported model file")
    h = json.loads(json.dumps(header))
    arch = json.loads(h["__metadata__"]["architecture"])
    arch["dtype"] = "float64"
    h["__metadata__"]["architecture"] = json.dumps(arch)
    rejects(rebuild(h, body), "is F32 but the model's dtype is float64")


def test_reject_tensors_vs_architecture(simple, rng):
    header, body = header_of(simple)
    rejects(renamed(header, body, "layers.2.weight", "layers.1.weight"), 'unexpected tensor "layers.1.weight"')
    rejects(renamed(header, body, "layers.2.bias", "layers.02.bias"), 'unexpected tensor "layers.02.bias"')
    rejects(renamed(header, body, "layers.2.bias", "extra"), 'unexpected tensor "extra"')
    # a missing tensor: drop the last one (its bytes too)
    h = json.loads(json.dumps(header))
    start = h["layers.2.bias"]["data_offsets"][0]
    assert h["layers.2.bias"]["data_offsets"][1] == len(body)
    del h["layers.2.bias"]
    rejects(rebuild(h, body[:start]), 'missing tensor "layers.2.bias"')
    # layer sizes inconsistent with input_dim
    h = json.loads(json.dumps(header))
    arch = json.loads(h["__metadata__"]["architecture"])
    arch["input_dim"] = 6
    h["__metadata__"]["architecture"] = json.dumps(arch)
    rejects(rebuild(h, body), 'tensor "layers.0.weight" has shape [5, 7]', "expected [6, 7]")
    arch["input_dim"] = 5
    arch["layers"][2]["units"] = 4
    h["__metadata__"]["architecture"] = json.dumps(arch)
    rejects(rebuild(h, body), "layers.2.weight", "expected [7, 4]")
    arch["layers"][2]["units"] = 3
    arch["layers"][2]["use_bias"] = False
    h["__metadata__"]["architecture"] = json.dumps(arch)
    rejects(rebuild(h, body), 'unexpected tensor "layers.2.bias"')


def test_reject_metadata(simple):
    header, body = header_of(simple)

    def with_meta(**kw):
        h = json.loads(json.dumps(header))
        for k, v in kw.items():
            if v is None:
                h["__metadata__"].pop(k, None)
            else:
                h["__metadata__"][k] = v
        return rebuild(h, body)

    h = json.loads(json.dumps(header))
    del h["__metadata__"]
    rejects(rebuild(h, body), "no __metadata__")
    rejects(with_meta(format="pt"), 'format is "pt"', "not a fastnn model")
    rejects(with_meta(format=None), "format is missing")
    rejects(with_meta(fastnn_schema=None), "no fastnn_schema")
    for bad in ("1", "1.", "x.0", "0.9", "1.0.0", " 1.0", "1234567890.0"):
        rejects(with_meta(fastnn_schema=bad), "is not a schema version")
    msg = rejects(with_meta(fastnn_schema="2.0"), "schema 2.0", "newer fastnn", reason="unsupported model file")
    assert "upgrade" in msg
    rejects(with_meta(fastnn_schema="17.3"), "newer", reason="unsupported model file")
    rejects(with_meta(architecture=None), "no architecture")
    h = json.loads(json.dumps(header))
    h["__metadata__"]["n"] = 3
    rejects(rebuild(h, body), '__metadata__ "n": not a string')
    h["__metadata__"] = ["format"]
    rejects(rebuild(h, body), "__metadata__ is not an object")


def test_newer_minor_schema_is_read(simple, rng):
    arch, data, tensors = simple
    header, body = split(data)
    a = json.loads(header["__metadata__"]["architecture"])
    a["future_option"] = {"x": [1, 2]}
    a["layers"][0]["future_flag"] = True
    header["__metadata__"]["architecture"] = json.dumps(a)
    rejects(rebuild(header, body), 'unknown key "future_option"')
    header["__metadata__"]["fastnn_schema"] = "1.9"
    m = load(rebuild(header, body))
    x = rng.normal(size=(3, 5))
    np.testing.assert_allclose(m.predict(x), reference_predict(arch, tensors, x), rtol=1e-5, atol=1e-6)
    a["layers"][0]["future_flag"] = "yes"
    header["__metadata__"]["fastnn_schema"] = "1.0"
    del a["future_option"]
    header["__metadata__"]["architecture"] = json.dumps(a)
    rejects(rebuild(header, body), 'layers[0] (dense) has an unknown key "future_flag"')


ARCH_CASES = [
    (lambda a: a.pop("input_dim"), "no input_dim", "malformed"),
    (lambda a: a.update(input_dim=0), "input_dim = 0 is outside", "malformed"),
    (lambda a: a.update(input_dim=2**40), "is outside", "malformed"),
    (lambda a: a.update(input_dim=5.0), "input_dim is not a non-negative integer", "malformed"),
    (lambda a: a.update(input_dim="5"), "input_dim is not a non-negative integer", "malformed"),
    (lambda a: a.update(dtype="float16"), 'dtype "float16"', "unsupported"),
    (lambda a: a.update(dtype=None), "dtype is not a string", "malformed"),
    (lambda a: a.update(loss="hinge"), 'unknown loss "hinge"', "unsupported"),
    (lambda a: a.update(link="sigmoid"), 'link "sigmoid" does not match loss cross_entropy', "malformed"),
    (lambda a: a.update(link="relu"), 'link "relu"', "malformed"),
    (lambda a: a.update(huber_delta=0), "huber_delta", "malformed"),
    (lambda a: a.update(layers=[]), "0 layers", "malformed"),
    (lambda a: a.update(layers={}), "layers is not an array", "malformed"),
    (lambda a: a.update(layers=[dropout()] * 4097), "4097 layers", "malformed"),
    (lambda a: a["layers"].__setitem__(1, {"type": "conv2d"}), 'unknown type "conv2d"', "unsupported"),
    (lambda a: a["layers"].__setitem__(1, {"p": 0.5}), "layers[1] has no type", "malformed"),
    (lambda a: a["layers"].__setitem__(1, dropout(1.0)), "layers[1] p = 1 is outside [0, 1)", "malformed"),
    (lambda a: a["layers"].__setitem__(1, dropout(-0.1)), "is outside", "malformed"),
    (lambda a: a["layers"].__setitem__(1, {"type": "dropout"}), "layers[1] has no p", "malformed"),
    (lambda a: a["layers"][0].update(activation="swish"), 'unknown activation "swish"', "unsupported"),
    (lambda a: a["layers"][0].update(activation="log_softmax"), 'unknown activation "log_softmax"', "unsupported"),
    (lambda a: a["layers"][0].update(activation=3), "activation is not a string", "malformed"),
    (lambda a: a["layers"][0].update(units=0), "units = 0", "malformed"),
    (lambda a: a["layers"][0].update(units=-7), "units is not a non-negative integer", "malformed"),
    (lambda a: a["layers"][0].pop("units"), "has no units", "malformed"),
    (lambda a: a["layers"][0].update(use_bias=1), "use_bias is not true or false", "malformed"),
    (lambda a: a["layers"][0].update(l2=-1.0), "l2 = -1 is outside", "malformed"),
    (lambda a: a["layers"][0].update(l1="x"), "l1 is not a number", "malformed"),
    (lambda a: a["layers"][0].update(name=3), "name is not a string", "malformed"),
    (lambda a: a["layers"][0].update(trainable=None), "trainable is not true or false", "malformed"),
    (lambda a: a["layers"].__setitem__(1, {"type": "activation"}), "layers[1] has no activation", "malformed"),
]


@pytest.mark.parametrize("edit,fragment,reason", ARCH_CASES)
def test_reject_architecture(simple, edit, fragment, reason):
    header, body = header_of(simple)
    a = json.loads(header["__metadata__"]["architecture"])
    edit(a)
    header["__metadata__"]["architecture"] = json.dumps(a)
    rejects(rebuild(header, body), fragment, reason=reason + " model file")


def test_reject_architecture_text(simple):
    header, body = header_of(simple)
    for text, fragment in [("[1]", "architecture: not a JSON object"), ("{", "architecture JSON: unexpected end"),
                           ("", "architecture JSON: unexpected end"),
                           ('{"input_dim": 1e999}', "architecture: input_dim is not a non-negative integer")]:
        header["__metadata__"]["architecture"] = text
        rejects(rebuild(header, body), fragment)
    a = json.loads(split(simple[1])[0]["__metadata__"]["architecture"])
    a["layers"][0]["l2"] = 1e999
    header["__metadata__"]["architecture"] = json.dumps(a).replace("Infinity", "1e999")
    rejects(rebuild(header, body), "layers[0] l2 is out of range")


JSON_CASES = [
    (b'{"a":1,"a":2}', 'duplicate key "a"'),
    (b'{"__metadata__":{"x":"1","x":"2"}}', 'duplicate key "x"'),
    (b'{"a":NaN}', "unexpected character 'N'"),
    (b'{"a":[1,2,]}', "unexpected character ']'"),
    (b"{'a':1}", "expected a string key"),
    (b'{"a":01}', "leading zero"),
    (b'{"a":-}', "bad number"),
    (b'{"a":1.}', "no digit after '.'"),
    (b'{"a":1e}', "no digit in the exponent"),
    (b'{"a":"\\u0000"}', "NUL character"),
    (b'{"a":"\\ud800"}', "lone high surrogate"),
    (b'{"a":"\\udc00"}', "lone low surrogate"),
    (b'{"a":"\\x"}', "bad escape"),
    (b'{"a":"\\u12"}', "bad \\u escape"),
    (b'{"a":"tab\there"}', "unescaped control character 0x09"),
    (b'{"a":"\xff"}', "not valid UTF-8 (byte 0xff)"),
    (b'{"a":"\xc0\xaf"}', "not valid UTF-8"),
    (b'{"a":"\xed\xa0\x80"}', "not valid UTF-8"),
    (b'{"a":"\xf4\x90\x80\x80"}', "not valid UTF-8"),
    (b'{"a":"abc}', "unterminated string"),
    (b'{"a":1} x', "trailing characters"),
    (b'{"a":1}{}', "trailing characters"),
    (b'{"a":tru}', "unexpected character 't'"),
    (b'{"a" 1}', "expected ':'"),
    (b'{"a":1 "b":2}', "expected ',' or '}'"),
    (b'{"a":[' + b"[" * 20 + b"]" * 20 + b"]}", "nesting deeper than 16"),
    (b'["a"]', "does not start with '{'"),
    (b'{"a":\x00}', "unexpected byte 0x00"),
]


@pytest.mark.parametrize("text,fragment", JSON_CASES)
def test_reject_json(text, fragment):
    rejects(raw_file(text), fragment)


def test_json_limits_and_escapes(simple, rng):
    arch, data, tensors = simple
    header, body = split(data)
    # nesting of exactly 16 is fine (then rejected for what it is: an unknown tensor key)
    deep = b'{"a":' + b"[" * 15 + b"]" * 15 + b"}"
    rejects(raw_file(deep), "tensor \"a\": expected an object")
    # escapes, including surrogate pairs, decode to the same names
    text = json.dumps(header, ensure_ascii=True).replace('"layers.0.weight"', '"\\u006cayers.0.weight"')
    a = json.loads(header["__metadata__"]["architecture"])
    a["layers"][0]["name"] = "\U0001F600 é"
    text = text.replace(json.dumps(header["__metadata__"]["architecture"], ensure_ascii=True),
                        json.dumps(json.dumps(a, ensure_ascii=True), ensure_ascii=True))
    m = load(raw_file(text, body))
    assert m.layers[0]["name"] == "\U0001F600 é"
    # whitespace of every JSON kind around the values
    spaced = json.dumps(header, indent="\t").replace("\n", "\r\n")
    assert load(raw_file(spaced, body)).n_outputs == 3
    # too many values
    many = b'{"a":[' + b"0," * (1 << 20) + b"0]}"
    rejects(raw_file(many), "more than 1048576 values")


def test_plain_safetensors_container(rng):
    """Weights from elsewhere: the container checks alone, every tensor's bytes located exactly."""
    st = pytest.importorskip("safetensors.numpy")
    arrays = {"0.weight": rng.normal(size=(4, 3)).astype(np.float32), "0.bias": np.arange(4, dtype=np.float16),
              "steps": np.array([7], dtype=np.int64), "big.x": rng.normal(size=(2, 2, 2))}
    data = st.save(arrays, metadata={"k": "v"})
    entries, meta = _core.read_safetensors(data)
    assert meta == {"k": "v"}
    assert {e[0] for e in entries} == set(arrays)
    codes = {"float32": "F32", "float16": "F16", "int64": "I64", "float64": "F64"}
    for name, dtype, shape, begin, end in entries:
        a = arrays[name]
        assert dtype == codes[str(a.dtype)] and shape == a.shape
        assert data[begin:end] == a.astype(a.dtype.newbyteorder("<")).tobytes()
    with pytest.raises(fnn.ModelFormatError, match="trailing bytes"):
        _core.read_safetensors(data + b"x", "w.safetensors")
    assert _core.read_safetensors(raw_file(b"{}")) == ([], {})


def test_numbers_parse_in_any_c_locale(rng):
    """strtod reads the C locale's decimal point; the reader must not care (an embedding app may set it)."""
    import locale
    before = locale.setlocale(locale.LC_NUMERIC)
    for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8"):
        try:
            locale.setlocale(locale.LC_NUMERIC, name)
            break
        except locale.Error:
            continue
    else:
        pytest.skip("no locale with a decimal comma installed")
    try:
        arch = architecture([dense(3, "leaky_relu", 0.15), dropout(0.25)], input_dim=2)
        m = load(model_bytes(arch, rng)[0])
        assert m.layers[0]["alpha"] == 0.15 and m.layers[1]["p"] == 0.25
    finally:
        locale.setlocale(locale.LC_NUMERIC, before)


# ---- schema 1.1: normalization layers and max_norm ---------------------------------------------------------

from _io_util import batch_norm, layer_norm  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalization_layers_round_trip_and_predict(dtype, rng):
    arch = architecture([dense(6, max_norm=2.5), batch_norm(momentum=0.8, epsilon=0.01), activation("relu"),
                         layer_norm(epsilon=1e-3), dense(4, "tanh"), batch_norm(), dense(3)], dtype=dtype,
                        loss="cross_entropy")
    data, tensors = model_bytes(arch, rng)
    assert split(data)[0]["__metadata__"]["fastnn_schema"] == "1.1"
    m = load(data)
    assert list(m.tensors()) == list(tensors)
    assert all(np.array_equal(m.tensors()[k], a) for k, a in tensors.items())
    layers = m.layers
    assert layers[0]["max_norm"] == 2.5 and layers[4]["max_norm"] is None
    assert (layers[1]["momentum"], layers[1]["epsilon"], layers[3]["epsilon"]) == (0.8, 0.01, 1e-3)
    x = rng.normal(size=(11, 5))
    np.testing.assert_allclose(m.predict_native(x), reference_predict(arch, tensors, x), rtol=TOL[dtype],
                               atol=TOL[dtype])
    model = fnn.saving.loads(data)
    assert np.array_equal(model.predict(x.astype(dtype)), m.predict_native(x.astype(dtype)))


def test_normalization_defaults(rng):
    """momentum and epsilon may be left out: Keras's BatchNormalization defaults, PyTorch's LayerNorm epsilon."""
    arch = architecture([{"type": "batch_norm"}, {"type": "layer_norm"}], dtype="float64")
    data, _ = model_bytes(arch, rng)
    bn, ln = load(data).layers
    assert (bn["momentum"], bn["epsilon"], ln["epsilon"]) == (0.99, 1e-3, 1e-5)


def test_reject_normalization_layers(rng):
    arch = architecture([dense(4), batch_norm(), layer_norm(), dense(2)])
    data, _ = model_bytes(arch, rng)
    header, body = split(data)

    def with_arch(change, schema="1.1"):
        h = json.loads(json.dumps(header))
        a = json.loads(h["__metadata__"]["architecture"])
        change(a)
        h["__metadata__"]["architecture"] = json.dumps(a)
        h["__metadata__"]["fastnn_schema"] = schema
        return rebuild(h, body)

    rejects(with_arch(lambda a: None, "1.0"), "layers[1] is a batch_norm layer, which needs schema 1.1")
    rejects(with_arch(lambda a: a["layers"][0].update(max_norm=1.0), "1.0"), "layers[0] max_norm needs schema 1.1")
    rejects(with_arch(lambda a: a["layers"][0].update(max_norm=0)), "layers[0] max_norm = 0 is outside (0, inf]")
    rejects(with_arch(lambda a: a["layers"][1].update(momentum=1.5)), "layers[1] momentum = 1.5 is outside [0, 1]")
    rejects(with_arch(lambda a: a["layers"][1].update(epsilon=0)), "layers[1] epsilon = 0 is outside (0, inf]")
    rejects(with_arch(lambda a: a["layers"][2].update(epsilon=-1)), "layers[2] epsilon")
    rejects(with_arch(lambda a: a["layers"][2].update(momentum=0.9)), 'layers[2] (layer_norm) has an unknown key "momentum"')
    rejects(with_arch(lambda a: a["layers"][1].update(units=4)), 'layers[1] (batch_norm) has an unknown key "units"')
    # the tensors: each one present, shaped (units,), in the model's dtype
    for name in ("layers.1.moving_variance", "layers.2.beta"):
        h = json.loads(json.dumps(header))
        h[name]["shape"] = [2, 2]
        rejects(rebuild(h, body), f'tensor "{name}" has shape [2, 2] but layer', "expected [4]")
    rejects(renamed(header, body, "layers.1.moving_variance", "layers.1.moving_var"),
            'unexpected tensor "layers.1.moving_var"')
    rejects(renamed(header, body, "layers.2.beta", "layers.2.moving_mean"), 'unexpected tensor "layers.2.moving_mean"')
    # a newer minor schema: unknown keys of a normalization layer are ignored
    h = json.loads(json.dumps(header))
    a = json.loads(h["__metadata__"]["architecture"])
    a["layers"][1]["renorm"] = True
    h["__metadata__"]["architecture"] = json.dumps(a)
    h["__metadata__"]["fastnn_schema"] = "1.7"
    assert load(rebuild(h, body)).layers[1]["type"] == "batch_norm"
