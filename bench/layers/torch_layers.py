"""The layers that `cargo run --release -p netc-runtime --example layers`
times in netc's kernels, here in PyTorch as a user would write them
(nn.Conv2d with padding and an in-place ReLU, nn.MaxPool2d with ceil_mode
for TensorFlow's `same` pooling), contiguous and channels-last, inference
(no_grad): the median of 15 timed calls, as CSV.

    python3 bench/layers/torch_layers.py [batch] [threads]
"""
import sys
import time

import torch
import torch.nn as nn

n = int(sys.argv[1]) if len(sys.argv) > 1 else 128
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)


def median_ms(module, x):
    with torch.no_grad():
        module(x)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def conv(cin, h, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True)), (cin, h)


def pool(c, h):
    return nn.MaxPool2d(3, 2, ceil_mode=True), (c, h)


LAYERS = [
    ("alex4.conv1", conv(3, 24, 96, 5)),
    ("alex4.pool1", pool(96, 24)),
    ("alex4.conv2", conv(96, 12, 96, 3)),
    ("alex4.pool2", pool(96, 12)),
    ("squeeze1.conv1", conv(3, 24, 64, 3)),
    ("squeeze1.pool1", pool(64, 24)),
    ("squeeze1.fire1.e1x1", conv(32, 12, 64, 1)),
    ("squeeze1.fire1.e3x3", conv(32, 12, 64, 3)),
    ("squeeze1.pool2", pool(128, 12)),
    ("squeeze1.fire3.e3x3", conv(32, 6, 128, 3)),
    ("squeeze1.fire3.e1x1", conv(32, 6, 128, 1)),
    ("nin2.nin1.conv", conv(3, 24, 192, 5)),
    ("nin2.nin1.mlp1", conv(192, 24, 160, 1)),
    ("nin2.nin1.mlp2", conv(160, 24, 96, 1)),
    ("nin2.nin2.conv", conv(96, 12, 192, 5)),
    ("nin2.nin2.mlp1", conv(192, 12, 192, 1)),
    ("nin2.nin3.conv", conv(192, 6, 192, 3)),
]

print("layer,contiguous_ms,channels_last_ms")
for name, (module, (c, h)) in LAYERS:
    x = torch.randn(n, c, h, h)
    row = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        m = module.to(memory_format=fmt) if fmt == torch.channels_last else module
        row.append(median_ms(m, x.to(memory_format=fmt)))
    print(f"{name},{row[0]:.3f},{row[1]:.3f}")
