"""Whether the emitted PyTorch module asks PyTorch for the same work as the
model written by hand: every ATen call of a training step (forward,
cross-entropy, backward, SGD update) and of a batch-128 and a batch-1
inference, with the shapes, strides and arguments of each, recorded below
autograd (TorchDispatchMode) on the CPU, eager and channels-last.

A device runs the kernels these calls launch, so where the emitted stream is
the hand-written one (or the hand-written one with calls added), the
emitted module cannot be slower on any device by more than Python's cost of
making the calls: a gap that a benchmark shows is the benchmark's (its
order, its noise), not the module's.

usage: python3 same_ops.py --modules DIR [--models tuto,alex4,squeeze1,nin2]
DIR holds the emitted modules (tuto.py, alex4.py, ...). Prints one JSON line
per model and layout; exits 1 when an emitted stream is not the hand-written
one with calls left out.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sides import load  # noqa: E402  (beside this file)


def describe(a):
    if isinstance(a, torch.Tensor):
        # A dimension of size 1 is never stepped over: its stride means nothing.
        strides = tuple("-" if n == 1 else s for n, s in zip(a.shape, a.stride()))
        return f"{tuple(a.shape)}/{strides}/{a.dtype}"
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(describe(x) for x in a) + "]"
    if isinstance(a, torch.ScriptObject):  # the profiler's handles: identity only
        return "object"
    return repr(a)


class Calls(TorchDispatchMode):
    """Each ATen call as text: the operator, then its arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if not name.startswith("profiler."):
            if name == "aten.mean.dim":
                # Dimensions by index: [-1, -2] and [2, 3] are one call.
                x, dims = args[0], args[1]
                args = (x, sorted(d % x.dim() for d in dims), *args[2:])
            self.calls.append(f"{name} {describe(args)} {describe(sorted(kwargs.items()))}")
        return func(*args, **kwargs)


def calls(make, shape, classes, channels_last):
    torch.manual_seed(1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = make().to(memory_format=fmt)
    x = torch.randn(8, *shape).contiguous(memory_format=fmt)
    y = torch.arange(8) % classes
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    with Calls() as rec:
        model.train()
        optim.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optim.step()
        model.eval()
        with torch.no_grad():
            model(x)
            model(x[:1])
    return rec.calls


def left_out(emitted, hand):
    """The hand-written calls the emitted stream leaves out, in order, or
    None when the emitted stream is not the hand-written one with calls
    left out (a call of its own, or calls in another order)."""
    extra, i = [], 0
    for call in hand:
        if i < len(emitted) and emitted[i] == call:
            i += 1
        else:
            extra.append(call)
    return extra if i == len(emitted) else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", required=True)
    ap.add_argument("--handwritten", default=str(HERE.parents[1] / "compiler/templates/pytorch/handwritten.py"))
    ap.add_argument("--models", default="tuto,alex4,squeeze1,nin2")
    a = ap.parse_args()
    hand = load(a.handwritten, "handwritten")
    ok = True
    for m in a.models.split(","):
        emitted = load(Path(a.modules) / f"{m}.py", f"emitted_{m}")
        for cl in (False, True):
            e = calls(emitted.Model, hand.INPUT, hand.CLASSES, cl)
            h = calls(hand.MODELS[m], hand.INPUT, hand.CLASSES, cl)
            extra = left_out(e, h)
            row = {"model": m, "layout": "channels-last" if cl else "eager",
                   "emitted_calls": len(e), "handwritten_calls": len(h)}
            if extra is None:
                ok = False
                first = next(i for i, (x, y) in enumerate(zip(e + [None], h + [None])) if x != y)
                row.update(same=False, emitted=e[first] if first < len(e) else None,
                           handwritten=h[first] if first < len(h) else None)
            else:
                row.update(same=True, handwritten_only=sorted({c.split(" ")[0] for c in extra}))
            print(json.dumps(row), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
