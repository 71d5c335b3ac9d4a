#!/usr/bin/env python3
"""Predictions of a sparse-alm model with numpy alone.

    python3 examples/predict.py MODEL DATA.csv [--out predictions.csv]

MODEL is what `sparse-alm export` wrote (a directory holding model.safetensors and
model.json, or either file); any saved sparse-alm model works the same way. DATA.csv has a
header: the model's input columns are found by name (`feature_names` in model.json), so
their order does not matter and other columns are ignored. The output is the CSV that
`sparse-alm predict` prints: for a classifier the predicted label and one score per class,
for a regression model the predicted target values in the target's own units.

The weights are read with the safetensors format's documented layout: an 8-byte
little-endian header length, a JSON header (tensor name -> dtype, shape, byte offsets), then
the raw little-endian data. model.json says the rest: `sizes`, `alpha` (hidden layers are
leaky ReLU max(u, alpha*u), the output layer is linear), `preprocess` and `feature_names`
for the inputs, `class_names` or the target scaling for the outputs.
"""

import argparse
import csv
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    """Tensor name -> numpy array (float32), from the file's own header."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(info["shape"])
    return tensors


def model_files(path):
    if os.path.isdir(path):
        return os.path.join(path, "model.safetensors"), os.path.join(path, "model.json")
    stem, _ = os.path.splitext(path)
    return stem + ".safetensors", stem + ".json"


def load_model(path):
    weights, meta_path = model_files(path)
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    tensors = read_safetensors(weights)
    layers = []
    for l in range(1, len(meta["sizes"])):
        w = tensors[f"w{l}"].astype(np.float64)
        b = tensors[f"b{l}"].astype(np.float64)
        layers.append((w, b))
    return meta, layers


def read_features(path, meta):
    """The model's input features of every row of a CSV file, as an N x d array."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f)]
    rows = [r for r in rows if r and r != [""]]
    if not rows:
        sys.exit(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    names = meta.get("feature_names") or []
    if names:
        missing = [n for n in names if n not in header]
        if missing:
            sys.exit(f"{path}: missing columns {', '.join(missing)}")
        idx = [header.index(n) for n in names]
    else:
        # No stored names: every column but the targets, by position.
        targets = meta.get("target") or (["label"] if meta["task"] == "classification" else [])
        idx = [i for i, h in enumerate(header) if h not in targets]
    return np.array([[float(r[i]) for i in idx] for r in body], dtype=np.float64)


def preprocess(x, pre):
    x = x / pre.get("feature_scale", 1.0)
    if pre.get("mean") is not None:
        x = (x - np.asarray(pre["mean"])) / np.asarray(pre["std"])
    return x


def forward(layers, alpha, x):
    """x: N x d -> outputs N x m; leaky ReLU hidden layers, linear output layer."""
    h = x
    for k, (w, b) in enumerate(layers):
        u = h @ w.T + b
        h = np.where(u > 0, u, alpha * u) if k + 1 < len(layers) else u
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--out", help="write the CSV here instead of standard output")
    args = ap.parse_args()

    meta, layers = load_model(args.model)
    pre = meta["preprocess"]
    x = preprocess(read_features(args.data, meta), pre)
    y = forward(layers, meta["alpha"], x)
    m = y.shape[1]

    if meta["task"] == "classification":
        classes = meta.get("class_names") or []
        if len(classes) != m:
            classes = [str(k) for k in range(m)]
        label = (meta.get("target") or ["label"])[0]
        columns = [label] + [f"score_{c}" for c in classes]
        rows = [[classes[int(np.argmax(s))]] + [repr(float(v)) for v in s] for s in y]
    else:
        if pre.get("target_mean") is not None:
            y = y * np.asarray(pre["target_std"]) + np.asarray(pre["target_mean"])
        targets = meta.get("target") or []
        columns = targets if len(targets) == m else [f"y{k}" for k in range(m)]
        rows = [[repr(float(v)) for v in s] for s in y]

    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    if args.out:
        out.close()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        # `predict.py ... | head`: stop quietly, like sparse-alm predict.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
