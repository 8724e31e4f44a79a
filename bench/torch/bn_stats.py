"""A run's averaged weights evaluated two ways: (a) with the batch-norm
running statistics its checkpoint holds under `ema/`, and (b) with
statistics recomputed for the averaged weights over N augmented training
batches, a plain mean, as SWA's `update_bn` does. Runs written before netc
measured those statistics itself (November 2026) hold the live weights'
under `ema/`, as the seed's TensorFlow did; this script evaluates such runs
both ways, and shows on newer runs how the number of batches matters.
A model without batch norm gets (a) alone. See docs/xception.md.

usage (from the repository root):
    target/release/netc emit --target pytorch-train zoo/xception.net > /tmp/xception_train.py
    python3 bench/torch/bn_stats.py /tmp/xception_train.py runs/xception/1/checkpoint.safetensors \
        --data DATA [--batches 100]
"""

import argparse
import importlib.util
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script", help="the model's `netc emit --target pytorch-train` script")
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("engine", args.script)
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)

    model = engine.Model()
    engine.load_netc(model, args.checkpoint, average=True)
    train_x, train_y, _ = engine.load(args.data, "train")
    test_x, test_y, _ = engine.load(args.data, "test")
    train_x, train_y = torch.from_numpy(train_x), torch.from_numpy(train_y)
    test_x, test_y = torch.from_numpy(test_x), torch.from_numpy(test_y)
    h, w = engine.INPUT[1], engine.INPUT[2]
    # Batches of their own (seed 7), not the run's: any sample of the
    # training distribution measures the statistics.
    plan = {"height": h, "width": w, "bf16": False, "augment": True, "batch": 128,
            "sampler": engine.Sampler(len(train_y), 7), "seed": 7}
    cpu = torch.device("cpu")
    live = engine.evaluate(model, test_x, test_y, plan, cpu, torch.contiguous_format)
    norms = [m for m in model.modules() if isinstance(m, getattr(engine, "BatchNorm", ()))]
    if not norms:
        print(f"{args.checkpoint}: {100 * live:.2f} % (no batch norm)")
        return
    for m in norms:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
    model.train()
    with torch.no_grad():
        for k in range(args.batches):
            for m in norms:
                # TensorFlow's momentum is the share kept: k / (k + 1) makes
                # the running statistic the plain mean of the k + 1 batches.
                m.momentum = k / (k + 1.0)
            x, _ = engine.train_batch(train_x, train_y, plan, k, slice(None))
            model(x.permute(0, 3, 1, 2).contiguous())
    recomputed = engine.evaluate(model, test_x, test_y, plan, cpu, torch.contiguous_format)
    print(f"{args.checkpoint}: the checkpoint's statistics {100 * live:.2f} %, "
          f"recomputed over {args.batches} batches {100 * recomputed:.2f} %")


if __name__ == "__main__":
    main()
