"""Check of `netc export`'s files with the ONNX project's tools.

usage: python3 onnx_check.py (MODEL.onnx INPUT LOGITS)...

For each model: `onnx.checker` with full shape inference, the metadata netc
writes, then onnxruntime (CPU) on the input that netc's program ran,
compared with the program's logits (1e-4 of the largest logit). Prints
one `NAME ok: ...` line per model; exits 1 on any problem.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime

DTYPES = {"F32": "<f4", "U8": "u1"}


def read_safetensors(path):
    """Every tensor of a safetensors file, by name, as numpy arrays."""
    with open(path, "rb") as f:
        data = f.read()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"])
    return out


def check(path, inputs, logits):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("netc.source", "netc.classes", "netc.preprocessing", "netc.weights"):
        if not meta.get(key):
            return f"{path}: no {key} in the metadata"
    classes = json.loads(meta["netc.classes"])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    x = read_safetensors(inputs)["input"]
    want = read_safetensors(logits)["logits"]
    (got,) = session.run(None, {feed.name: x})
    if got.shape != want.shape or got.shape[1] != len(classes):
        return f"{path}: onnxruntime gives {got.shape}, netc {want.shape}, {len(classes)} classes"
    err = float(np.abs(got - want).max() / np.abs(want).max())
    if err > 1e-4:
        return f"{path}: onnxruntime differs from netc's program by {err:.2e}"
    name = meta["netc.model"]
    print(f"{name} ok: checker passed, onnxruntime within {err:.1e} of the largest logit over {want.size} logits")
    return None


def main(args):
    problems = [check(*args[i : i + 3]) for i in range(0, len(args), 3)]
    problems = [p for p in problems if p]
    for p in problems:
        print(p)
    return 1 if problems or not args else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
