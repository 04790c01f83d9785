"""Write the seed corpus and the token dictionary of the model-file fuzz target (fuzz_reader.c).

    python csrc/tests/fuzz_seeds.py SEED_DIR DICT_FILE

Plain Python (no fastnn import): the seeds are small valid model files (docs/FORMAT.md) covering each
layer type, activation, loss and both dtypes, plus a few near misses; the dictionary holds the
format's JSON keys and values, bare and as they appear escaped inside the architecture string.
"""
import json
import os
import random
import struct
import sys

ACTS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "silu"]
LOSSES = [None, "cross_entropy", "binary_cross_entropy", "mse", "mae", "huber"]
LINKS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def model_file(layers, input_dim, dtype="float32", loss=None, rnd=random.Random(0), **extra):
    code, fmt, size = ("F32", "<f", 4) if dtype == "float32" else ("F64", "<d", 8)
    arch = {"input_dim": input_dim, "dtype": dtype, "loss": loss, "link": LINKS.get(loss, "linear"),
            "layers": layers, **extra}
    lowp = any(layer.get("precision") for layer in layers)
    header = {"__metadata__": {"format": "fastnn", "fastnn_schema": "1.1" if lowp else "1.0",
                               "fastnn_version": "0.1.0", "architecture": json.dumps(arch, separators=(",", ":"))}}
    data, width = b"", input_dim
    for i, layer in enumerate(layers):
        if layer["type"] != "dense":
            continue
        prec = layer.get("precision")
        shapes = [("weight", [width, layer["units"]], {"int8": "I8", "bfloat16": "BF16"}.get(prec, code))]
        if layer.get("use_bias", True):
            shapes.append(("bias", [layer["units"]], code))
        if prec == "int8":  # docs/FORMAT.md, schema 1.1
            shapes.append(("weight_scale", [layer["units"]], "F32"))
            if layer.get("input_scales") == "calibrated":
                shapes.append(("input_range", [2], "F32"))
        for what, shape, dt in shapes:
            n = shape[0] * (shape[1] if len(shape) > 1 else 1)
            if dt == "I8":
                raw = struct.pack(f"<{n}b", *(rnd.randint(-63, 63) for _ in range(n)))
            elif dt == "BF16":
                raw = b"".join(struct.pack("<f", rnd.uniform(-1, 1))[2:] for _ in range(n))
            elif what == "input_range":
                raw = struct.pack("<2f", -rnd.uniform(0, 2), rnd.uniform(0, 2))
            elif what == "weight_scale":
                raw = struct.pack(f"<{n}f", *(rnd.uniform(0, 0.1) for _ in range(n)))
            else:
                raw = struct.pack(f"<{n}{fmt[1]}", *(rnd.uniform(-1, 1) for _ in range(n)))
            header[f"layers.{i}.{what}"] = {"dtype": dt, "shape": shape,
                                            "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        width = layer["units"]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def dense(units, act="linear", alpha=None, **kw):
    return {"type": "dense", "units": units, "activation": act, "alpha": alpha, "use_bias": True, "l1": 0.0,
            "l2": 0.0, "trainable": True, "name": None, **kw}


def seeds():
    out = []
    for k, act in enumerate(ACTS):
        loss = LOSSES[k % len(LOSSES)]
        extra = {"huber_delta": 0.5} if loss == "huber" else {}
        out.append(model_file([dense(3, act, 0.2 if act in ("leaky_relu", "elu") else None),
                               {"type": "dropout", "p": 0.25, "name": "d"},
                               {"type": "activation", "activation": ACTS[(k + 3) % len(ACTS)], "alpha": None},
                               dense(2, use_bias=k % 2 == 0)],
                              input_dim=2 + k % 3, dtype=("float32", "float64")[k % 2], loss=loss, **extra))
    out.append(model_file([{"type": "activation", "activation": "softmax", "alpha": None}], input_dim=3))
    # low precision (schema 1.1): int8 per row and calibrated, bfloat16
    out.append(model_file([dense(5, "relu", precision="int8", input_scales="per_row", trainable=False),
                           dense(3, "tanh", precision="int8", input_scales="calibrated", trainable=False),
                           dense(2, precision="bfloat16", use_bias=False, trainable=False)],
                          input_dim=4, loss="cross_entropy"))
    good = out[0]
    out += [b"", good[:8], good[:-1], good + b"\0"]
    return out


def tokens():
    words = ["__metadata__", "format", "fastnn", "fastnn_schema", "fastnn_version", "architecture", "dtype",
             "shape", "data_offsets", "F32", "F64", "F16", "BF16", "I64", "input_dim", "float32", "float64",
             "loss", "link", "huber_delta", "layers", "type", "dense", "dropout", "activation", "units", "alpha",
             "use_bias", "l1", "l2", "trainable", "name", "p", "layers.0.weight", "layers.0.bias", "1.0", "2.0",
             "1.1", "precision", "input_scales", "int8", "bfloat16", "per_row", "calibrated", "I8",
             "layers.0.weight_scale", "layers.0.input_range"]
    words += ACTS + [x for x in LOSSES if x]
    out = []
    for w in words:
        out.append(json.dumps(w))          # "word" in the header
        out.append(json.dumps(w)[1:-1])    # word
        out.append(json.dumps(json.dumps(w))[1:-1])  # \"word\" inside the architecture string
    out += ["null", "true", "false", "-1", "0", "1e308", "18446744073709551615", "[", "]", "{", "}", ":", ","]
    return out


def dict_line(tok):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\x{ord(c):02x}" for c in tok) + '"'


def main(seed_dir, dict_path):
    os.makedirs(seed_dir, exist_ok=True)
    for i, data in enumerate(seeds()):
        with open(os.path.join(seed_dir, f"seed{i:02d}.safetensors"), "wb") as f:
            f.write(data)
    with open(dict_path, "w") as f:
        f.writelines(dict_line(t) + "\n" for t in dict.fromkeys(tokens()))


if __name__ == "__main__":
    main(*sys.argv[1:3])
