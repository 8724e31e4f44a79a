"""PyTorch's side of `netc bench`: the same measurements as a netc program's
`bench` command, on a module emitted by `netc emit --target pytorch`.

usage: python3 bench.py MODULE.py --threads N --batch-size 128 --steps 10 --latency-runs 50

Prints one JSON object with the fields of netc's bench.
"""

import argparse
import importlib.util
import json
import resource
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--latency-runs", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    spec = importlib.util.spec_from_file_location("netc_model", args.module)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    n = args.batch_size
    x = torch.randn(n, *module.INPUT)
    y = torch.arange(n) % module.CLASSES
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
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    train = args.steps * n / (time.perf_counter() - start)

    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        infer = args.steps * n / (time.perf_counter() - start)
        one = x[:1]
        model(one)
        times = []
        for _ in range(max(args.latency_runs, 1)):
            t = time.perf_counter()
            model(one)
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    pick = lambda p: times[round((len(times) - 1) * p)]
    print(json.dumps({
        "model": type(model).__name__,
        "batch_size": n,
        "threads": torch.get_num_threads(),
        "train_examples_per_second": train,
        "infer_examples_per_second": infer,
        "latency_ms_median": pick(0.5),
        "latency_ms_p95": pick(0.95),
        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
