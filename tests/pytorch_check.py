"""Cross-check of netc's PyTorch back end against its burn back end.

usage: python3 pytorch_check.py MODULE.py WEIGHTS INPUT LOGITS

Loads the emitted module, puts netc's weights in it, runs the input that the
burn program ran, and compares with the burn program's logits (1e-4,
relative to the size of each logit). Exits 1 on any difference.
"""

import importlib.util
import sys

import torch


def main(module_path, weights, inputs, logits):
    spec = importlib.util.spec_from_file_location("netc_model", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_netc(module.Model(), weights, average=False).eval()
    x = module.read_safetensors(inputs)["input"]
    want = module.read_safetensors(logits)["logits"]
    with torch.no_grad():
        got = model(x)
    if got.shape != want.shape:
        print(f"shape: pytorch {tuple(got.shape)}, burn {tuple(want.shape)}")
        return 1
    err = ((got - want).abs() / (1 + want.abs())).max().item()
    print(f"largest difference {err:.2e} over {want.numel()} logits")
    return 0 if err <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
