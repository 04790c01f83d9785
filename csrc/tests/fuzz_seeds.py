"""Write the seed corpus and the token dictionary of the model-file fuzz target (fuzz_reader.c).

    python csrc/tests/fuzz_seeds.py SEED_DIR DICT_FILE

Plain Python (no fastnn import): the seeds are small valid model files (docs/FORMAT.md) covering each
layer type, activation, loss, both dtypes and training states, plus a few near misses; the dictionary holds the
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


# The tensors of each layer type, as csrc/plan.c lists them (a matrix is in x out, a vector one value per unit).
TENSORS = {"dense": [("weight", 2), ("bias", 1)], "batch_norm": [("gamma", 1), ("beta", 1), ("moving_mean", 1),
                                                               ("moving_variance", 1)],
           "layer_norm": [("gamma", 1), ("beta", 1)]}
STATES = {"sgd": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"], "rmsprop": ["square_avg"]}


def training(optimizer, **kw):
    """A training state (docs/FORMAT.md): every key, with the given values."""
    t = {"optimizer": optimizer, "lr": 0.01, "momentum": 0.9 if optimizer == "sgd" else 0.0, "nesterov": False,
         "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "alpha": 0.99, "centered": False,
         "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "schedule": None, "seed": 7,
         "epochs_seen": 2, "step": 10, "opt_step": 10}
    t.update(kw)
    return t


def model_file(layers, input_dim, dtype="float32", loss=None, rnd=random.Random(0), train=None, **extra):
    code, fmt, size = ("F32", "<f", 4) if dtype == "float32" else ("F64", "<d", 8)
    arch = {"input_dim": input_dim, "dtype": dtype, "loss": loss, "link": LINKS.get(loss, "linear"),
            "layers": layers, **extra}
    newer = train or any(layer["type"] != "dense" and layer["type"] in TENSORS or "max_norm" in layer
                         for layer in layers)
    header = {"__metadata__": {"format": "fastnn", "fastnn_schema": "1.1" if newer else "1.0",
                               "fastnn_version": "0.1.0", "architecture": json.dumps(arch, separators=(",", ":"))}}
    if train:
        header["__metadata__"]["training"] = json.dumps(train, separators=(",", ":"))
    data, width = b"", input_dim
    states = [""] + [f"optimizer.{s}." for s in STATES[train["optimizer"]]] if train else [""]
    for prefix in states:
        width = input_dim
        for i, layer in enumerate(layers):
            units = layer.get("units", width)
            for what, ndim in TENSORS.get(layer["type"], []):
                if what == "bias" and not layer.get("use_bias", True):
                    continue
                shape = [width, units] if ndim == 2 else [units]
                n = shape[0] * (shape[1] if len(shape) > 1 else 1)
                raw = struct.pack(f"<{n}{fmt[1]}", *(rnd.uniform(0.1, 1) for _ in range(n)))
                header[f"{prefix}layers.{i}.{what}"] = {"dtype": code, "shape": shape,
                                                        "data_offsets": [len(data), len(data) + len(raw)]}
                data += raw
            width = units
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
    bn = {"type": "batch_norm", "momentum": 0.9, "epsilon": 0.001, "trainable": True, "name": None}
    ln = {"type": "layer_norm", "epsilon": 1e-5, "trainable": False, "name": "ln"}
    out.append(model_file([dense(4, max_norm=3.0), bn, {"type": "activation", "activation": "relu", "alpha": None}, ln,
                           dense(2)], input_dim=3, loss="mse"))
    out.append(model_file([bn, dense(3, "tanh"), ln], input_dim=2, dtype="float64"))
    sched = {"kind": "cosine", "per": "step", "initial_lr": 0.1, "warmup": 5, "period": 100, "factor": 0.001,
             "staircase": False}
    out.append(model_file([dense(3), bn, dense(2)], input_dim=2, loss="cross_entropy",
                          train=training("adam", clipnorm=1.0, schedule=sched)))
    out.append(model_file([dense(3, "relu"), dense(2)], input_dim=2, loss="mse", train=training("sgd")))
    good = out[0]
    out += [b"", good[:8], good[:-1], good + b"\0"]
    return out


def tokens():
    words = ["__metadata__", "format", "fastnn", "fastnn_schema", "fastnn_version", "architecture", "dtype",
             "shape", "data_offsets", "F32", "F64", "F16", "BF16", "I64", "input_dim", "float32", "float64",
             "loss", "link", "huber_delta", "layers", "type", "dense", "dropout", "activation", "units", "alpha",
             "use_bias", "l1", "l2", "trainable", "name", "p", "layers.0.weight", "layers.0.bias", "1.0", "2.0",
             "1.1", "batch_norm", "layer_norm", "momentum", "epsilon", "max_norm", "gamma", "beta", "moving_mean",
             "moving_variance", "training", "optimizer", "lr", "nesterov", "weight_decay", "beta1", "beta2", "eps",
             "centered", "clipnorm", "global_clipnorm", "clipvalue", "schedule", "per", "step", "epoch",
             "initial_lr", "warmup", "period", "factor", "staircase", "seed", "epochs_seen", "opt_step", "sgd", "adam",
             "adamw", "rmsprop", "cosine", "exponential", "constant", "momentum_buffer", "exp_avg", "exp_avg_sq",
             "square_avg", "grad_avg", "optimizer.exp_avg.layers.0.weight"]
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
