"""PyTorch's side of `netc bench`: the same measurements as a netc program's
`bench` command, on a module emitted by `netc emit --target pytorch`, or on
a model written by hand (handwritten.py, beside this file), eager,
channels-last or compiled.

usage: python3 bench.py MODULE.py --threads N --batch-size 128 --steps 10 --latency-runs 50
       python3 bench.py --handwritten tuto [--channels-last] [--compile] --threads N ...
       python3 bench.py ... --device cuda   (a GPU: every timer waits for the GPU)

Prints one JSON object with the fields of netc's bench.
"""

import argparse
import importlib.util
import json
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module", nargs="?")
    ap.add_argument("--handwritten", help="a model of handwritten.py instead of MODULE.py")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--count", action="store_true", help="print the parameter count and stop")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--latency-runs", type=int, default=50)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    path = args.module or str(Path(__file__).with_name("handwritten.py"))
    spec = importlib.util.spec_from_file_location("netc_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if args.handwritten and args.handwritten not in module.MODELS:
        raise SystemExit(f"handwritten.py has no model {args.handwritten}")
    model = module.MODELS[args.handwritten]() if args.handwritten else module.Model()
    if args.count:
        print(sum(p.numel() for p in model.parameters()))
        return
    device = torch.device(args.device)
    # A GPU runs asynchronously: a timer must wait for the work it times.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = model.to(device)
    n = args.batch_size
    x = torch.randn(n, *module.INPUT, device=device)
    y = torch.arange(n, device=device) % module.CLASSES
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if args.compile:
        model = torch.compile(model)
    optim = torch.optim.SGD(model.parameters(), lr=0.01)

    # As netc's bench: forward, backward, update, and a batch-1 forward.
    def step():
        optim.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optim.step()
        with torch.no_grad():
            model(x[:1])

    model.train()
    step()
    step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    train = args.steps * n / (time.perf_counter() - start)

    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        sync()
        infer = args.steps * n / (time.perf_counter() - start)
        one = x[:1]
        model(one)
        sync()
        times = []
        for _ in range(max(args.latency_runs, 1)):
            t = time.perf_counter()
            model(one)
            sync()
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    pick = lambda p: times[round((len(times) - 1) * p)]
    print(json.dumps({
        "model": args.handwritten or type(model).__name__,
        "batch_size": n,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "train_examples_per_second": train,
        "infer_examples_per_second": infer,
        "latency_ms_median": pick(0.5),
        "latency_ms_p95": pick(0.95),
        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
