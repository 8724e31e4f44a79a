"""The ONNX files of random valid programs (tests/onnx.rs) beside their
PyTorch modules.

usage: python3 onnx_random.py MANIFEST

MANIFEST has one JSON object per line: {"id", "onnx", "module", "weights",
"input", "logits"}, where `logits` are tract's for `input`. For each:
`onnx.checker` (full check), onnxruntime on the input, and the module that
`netc emit --target pytorch` writes with the same weights (`load_netc`),
both compared with tract's logits (1e-4 of the largest). Prints one JSON
object per file: {"id", "onnxruntime", "pytorch"} (the differences) or
{"id", "error"}; the Rust side judges.
"""

import importlib.util
import json
import sys

import numpy as np
import onnx
import onnxruntime
import torch

from onnx_check import read_safetensors


def difference(got, want):
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shape {got.shape}, tract {want.shape}")
    scale = max(float(np.abs(want).max()), 1e-3)
    return float(np.abs(got - want).max()) / scale


def run(entry):
    onnx.checker.check_model(onnx.load(entry["onnx"]), full_check=True)
    x = read_safetensors(entry["input"])["input"]
    want = read_safetensors(entry["logits"])["logits"].astype(np.float64)
    session = onnxruntime.InferenceSession(entry["onnx"], providers=["CPUExecutionProvider"])
    (ort,) = session.run(None, {"input": x})
    spec = importlib.util.spec_from_file_location("m_" + entry["id"], entry["module"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_netc(module.Model(), entry["weights"], average=False).eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x.copy())).numpy()
    return {"onnxruntime": difference(ort, want), "pytorch": difference(torch_out, want)}


def main(manifest):
    with open(manifest, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f if line.strip()]
    for entry in entries:
        try:
            out = run(entry)
        except Exception as e:  # every failure is reported, none stops the run
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps({"id": entry["id"], **out}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
