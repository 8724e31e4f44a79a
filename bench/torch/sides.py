"""The emitted module against the hand-written one, every side in one
process, taking turns round after round: on a GPU, where a batch-128 step
of these models takes a few milliseconds and launches dominate, separate
30-step processes (bench.py) vary by tens of percent from start-up alone.

usage: python3 sides.py --modules DIR [--device cuda] [--rounds 5] [--steps 50]
DIR holds the emitted modules (tuto.py, alex4.py, ...), bench.py's
handwritten.py beside this repository's compiler/templates/pytorch.
Prints one JSON line per side and round, then the medians.
"""

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", required=True)
    ap.add_argument("--handwritten", default=str(HERE.parents[1] / "compiler/templates/pytorch/handwritten.py"))
    ap.add_argument("--models", default="tuto,alex4,squeeze1,nin2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--latency-runs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    hand = load(a.handwritten, "handwritten")
    sides = []
    for m in a.models.split(","):
        emitted = load(Path(a.modules) / f"{m}.py", f"emitted_{m}")
        # Each emitted side next to its hand-written twin: emitted,
        # hand-written, hand-written channels-last, emitted channels-last.
        for kind, make, cl in (("emitted", emitted.Model, False), ("handwritten", hand.MODELS[m], False),
                               ("handwritten", hand.MODELS[m], True), ("emitted", emitted.Model, True)):
            torch.manual_seed(1)
            fmt = torch.channels_last if cl else torch.contiguous_format
            model = make().to(device).to(memory_format=fmt)
            optim = torch.optim.SGD(model.parameters(), lr=0.01)
            x = torch.randn(a.batch_size, *hand.INPUT, device=device).contiguous(memory_format=fmt)
            y = torch.arange(a.batch_size, device=device) % hand.CLASSES
            sides.append((m, kind + ("-channels-last" if cl else ""), model, optim, x, y))

    def measure(model, optim, x, y, steps):
        model.train()
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            optim.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optim.step()
        sync()
        train = steps * len(x) / (time.perf_counter() - t)
        model.eval()
        with torch.no_grad():
            sync()
            t = time.perf_counter()
            for _ in range(steps):
                model(x)
            sync()
            infer = steps * len(x) / (time.perf_counter() - t)
            times = []
            for _ in range(a.latency_runs):
                t = time.perf_counter()
                model(x[:1])
                sync()
                times.append((time.perf_counter() - t) * 1e3)
        return train, infer, statistics.median(times)

    for side in sides:  # warm-up: allocator, cuDNN's algorithm search
        measure(*side[2:], steps=3)
    results = {}
    for r in range(a.rounds):
        # Even rounds run the sides the other way round, so that a drift
        # (clocks, the allocator's cache) favours each twin in turn.
        for m, kind, *rest in (sides if r % 2 == 0 else sides[::-1]):
            train, infer, latency = measure(*rest, steps=a.steps)
            results.setdefault((m, kind), []).append((train, infer, latency))
            print(json.dumps({"round": r + 1, "model": m, "side": kind, "train": train,
                              "infer": infer, "latency_ms": latency}), flush=True)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    for (m, kind), v in results.items():
        print(json.dumps({"median": True, "model": m, "side": kind, "device": name, "torch": torch.__version__,
                          "train": statistics.median(t for t, _, _ in v),
                          "infer": statistics.median(i for _, i, _ in v),
                          "latency_ms": statistics.median(l for _, _, l in v)}))


if __name__ == "__main__":
    main()
