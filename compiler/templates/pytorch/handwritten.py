"""The seed's models written by hand in idiomatic PyTorch: the reference of
`netc bench`, which measures netc against what a skilled PyTorch user would
write, not only against the module netc emits.

Stock modules only: nn.Conv2d with symmetric padding (TensorFlow's `same`
for odd kernels at stride 1), nn.MaxPool2d with ceil_mode (TensorFlow's
`same` 3x3/2 pooling, whose extra cell is at the end), nn.LocalResponseNorm
(TensorFlow's radius 4 and alpha 0.001/9 as size 9, alpha 0.001),
nn.Linear, nn.AdaptiveAvgPool2d. Inputs are 24 x 24 x 3, 10 classes.
"""

import torch
from torch import nn

INPUT = (3, 24, 24)
CLASSES = 10


def pool():
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def lrn():
    return nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)


def conv(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


def tuto():
    return nn.Sequential(
        conv(3, 64, 5), pool(), lrn(),
        conv(64, 64, 5), lrn(), pool(),
        nn.Flatten(),
        nn.Linear(64 * 6 * 6, 384), nn.ReLU(inplace=True),
        nn.Linear(384, 192), nn.ReLU(inplace=True),
        nn.Linear(192, CLASSES),
    )


def alex4():
    return nn.Sequential(
        conv(3, 96, 5), pool(),
        conv(96, 96, 3), pool(),
        nn.Flatten(),
        nn.Linear(96 * 6 * 6, 384), nn.ReLU(inplace=True),
        nn.Linear(384, 192), nn.ReLU(inplace=True),
        nn.Linear(192, CLASSES),
    )


class Fire(nn.Module):
    def __init__(self, cin, s, e1, e3):
        super().__init__()
        self.squeeze = conv(cin, s, 1)
        self.e1x1 = conv(s, e1, 1)
        self.e3x3 = conv(s, e3, 3)

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.e1x1(x), self.e3x3(x)], 1)


def squeeze1():
    return nn.Sequential(
        conv(3, 64, 3), pool(),
        Fire(64, 32, 64, 64), Fire(128, 32, 64, 64), pool(),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        conv(256, CLASSES, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def nin(cin, k, f1, f2, f3):
    return nn.Sequential(conv(cin, f1, k), conv(f1, f2, 1), conv(f2, f3, 1))


def nin2():
    return nn.Sequential(
        nin(3, 5, 192, 160, 96), pool(), nn.Dropout(0.5),
        nin(96, 5, 192, 192, 192), pool(), nn.Dropout(0.5),
        nin(192, 3, 192, 192, CLASSES),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


MODELS = {"tuto": tuto, "alex4": alex4, "squeeze1": squeeze1, "nin2": nin2}
