"""How big the signal is through a model at initialization: the root mean
square of every convolution's output on a batch of unit-variance inputs, the
spread of the class scores, the first loss and conv1's gradient relative to
its weights, with the module's own initialization and with He-normal
weights. See docs/study.md, "Why squeeze1 learns slowly".

usage (from the repository root):
    target/release/netc emit --target pytorch zoo/squeeze1.net > /tmp/squeeze1.py
    python3 bench/torch/init_probe.py /tmp/squeeze1.py
"""

import importlib.util
import sys

import torch
import torch.nn.functional as F
from torch import nn


def probe(module, he):
    torch.manual_seed(1)
    net = module.Model()
    if he:
        for c in net.modules():
            if isinstance(c, nn.Conv2d):
                nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
    rms = {}
    for name, c in net.named_modules():
        if isinstance(c, nn.Conv2d):
            c.register_forward_hook(
                lambda mod, i, o, name=name: rms.__setitem__(name, o.detach().pow(2).mean().sqrt().item())
            )
    torch.manual_seed(0)
    x = torch.randn(256, *module.INPUT)
    y = torch.arange(256) % module.CLASSES
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    first = next(c for c in net.modules() if isinstance(c, nn.Conv2d))
    print(f"{'he' if he else 'as emitted'}: loss {loss.item():.4f}, "
          f"score spread {logits.std(1).mean().item():.4f}, "
          f"first convolution |grad|/|w| {first.weight.grad.norm().item() / first.weight.norm().item():.2e}")
    print("  rms of each convolution's output: " + ", ".join(f"{k} {v:.3g}" for k, v in rms.items()))


def main():
    spec = importlib.util.spec_from_file_location("model", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probe(module, he=False)
    probe(module, he=True)


if __name__ == "__main__":
    main()
