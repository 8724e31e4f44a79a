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
    # The engine's own measurement (measure_statistics), its batches drawn
    # from seed 7 rather than the run's: any sample of the training
    # distribution measures the statistics.
    plan = {"height": h, "width": w, "bf16": False, "augment": True, "batch": 128, "seed": 7}
    cpu = torch.device("cpu")
    live = engine.evaluate(model, test_x, test_y, plan, cpu, torch.contiguous_format)
    if not engine.measure_statistics(model, train_x, train_y, plan, cpu, torch.contiguous_format,
                                     batches=args.batches):
        print(f"{args.checkpoint}: {100 * live:.2f} % (no batch norm)")
        return
    recomputed = engine.evaluate(model, test_x, test_y, plan, cpu, torch.contiguous_format)
    print(f"{args.checkpoint}: the checkpoint's statistics {100 * live:.2f} %, "
          f"recomputed over {args.batches} batches {100 * recomputed:.2f} %")


if __name__ == "__main__":
    main()
