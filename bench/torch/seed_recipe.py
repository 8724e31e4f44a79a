"""The seed's tuto recipe written by hand in PyTorch, as a skilled user would:
the reference that netc's torch engine is timed against (bench/torch/speed.py).

Model: TensorFlow's CIFAR-10 tutorial network with stock modules (nn.Conv2d
with padding, ceil_mode max pooling for TensorFlow's `same`,
nn.LocalResponseNorm, nn.Linear). Recipe: SGD at 0.1, batch 128, weight
decay on fc1 and fc2 through the optimizer's parameter groups, an EMA of the
weights with torch.optim.swa_utils, and the seed's augmentation (random
24x24 crop, flip, brightness, contrast, per-image standardization) done on
whole batches with tensor operations.

usage: python3 seed_recipe.py --data cifar10-jpg --steps 200 [--channels-last]
Prints one JSON object: the median examples/s over windows of 10 steps.
"""

import argparse
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def load(split):
    dirs = sorted(p for p in split.iterdir() if p.is_dir())
    files = [(f, label) for label, d in enumerate(dirs) for f in sorted(d.glob("*.jpg"))]
    read = lambda f: np.asarray(Image.open(f[0]).convert("RGB"))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        images = np.stack(list(pool.map(read, files, chunksize=256)))
    return torch.from_numpy(images), torch.tensor([l for _, l in files])


def augment(images, size=24):
    n = images.shape[0]
    top = torch.randint(0, 33 - size, (n,))
    left = torch.randint(0, 33 - size, (n,))
    rows = (top[:, None] + torch.arange(size))[:, :, None]
    cols = (left[:, None] + torch.arange(size))[:, None, :]
    x = images[torch.arange(n)[:, None, None], rows, cols].float()
    x = torch.where(torch.rand(n, 1, 1, 1) < 0.5, x.flip(2), x)
    x = x + torch.empty(n, 1, 1, 1).uniform_(-63, 63)
    mean = x.mean((1, 2), keepdim=True)
    x = (x - mean) * torch.empty(n, 1, 1, 1).uniform_(0.2, 1.8) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    std = x.std((1, 2, 3), correction=0, keepdim=True).clamp_min(1 / math.sqrt(x[0].numel()))
    return ((x - mean) / std).permute(0, 3, 1, 2)


def tuto():
    lrn = lambda: nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(2304, 384), nn.ReLU(),
        nn.Linear(384, 192), nn.ReLU(),
        nn.Linear(192, 10),
    )
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(1)
    root = Path(args.data)
    images, labels = load(root / "train")
    model = tuto()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    decayed = [model[9].weight, model[11].weight]
    rest = [p for p in model.parameters() if all(p is not d for d in decayed)]
    optim = torch.optim.SGD(
        [{"params": decayed, "weight_decay": 0.004}, {"params": rest}], lr=0.1
    )
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9999))
    order = torch.randperm(len(labels))
    rates, window = [], (time.perf_counter(), 0)
    for step in range(args.steps):
        idx = order[(step * args.batch_size + torch.arange(args.batch_size)) % len(labels)]
        x = augment(images[idx]).contiguous(memory_format=fmt)
        loss = F.cross_entropy(model(x), labels[idx])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        ema.update_parameters(model)
        window = (window[0], window[1] + args.batch_size)
        if (step + 1) % 10 == 0:
            rates.append(window[1] / (time.perf_counter() - window[0]))
            window = (time.perf_counter(), 0)
    rates.sort()
    print(json.dumps({
        "examples_per_second": rates[len(rates) // 2],
        "loss": float(loss),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
