"""Whether PyTorch's convolution multiplies the padding's zeros: nin2's 5 x 5
convolution (96 -> 192 channels, 12 x 12 maps, batch 128, channels-last)
with `same` padding, beside the same work on a 16 x 16 input without
padding (also 12 x 12 out). Prints GFLOP/s counted both ways: every tap
(nominal), and only the taps that fall inside the input. oneDNN's brgemm
skips the others, so its nominal rate can exceed the cores' FMA peak
(bench/layers/fma_peak.c); netc's tiles multiply them.

usage: python3 bench/layers/torch_padding.py [THREADS]
"""

import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
K, CIN, COUT, N = 5, 96, 192, 128


def rate(size, pad):
    x = torch.randn(N, CIN, size, size).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(CIN, COUT, K, padding=pad).to(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(3):
            y = conv(x)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(5):
                y = conv(x)
            best = min(best, (time.perf_counter() - start) / 5)
    out = y.shape[2]
    nominal = 2 * N * out * out * COUT * CIN * K * K
    inside = sum(1 for o in range(out) for k in range(K) if 0 <= o - pad + k < size) / (out * K)
    print(
        f"input {size}x{size}, padding {pad}: {best * 1e3:.1f} ms, "
        f"{nominal / best / 1e9:.0f} GFLOP/s nominal, "
        f"{nominal * inside**2 / best / 1e9:.0f} counting only the taps inside "
        f"({inside**2:.0%} of them)"
    )


for _ in range(2):
    rate(12, 2)
    rate(16, 0)
