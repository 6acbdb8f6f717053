"""Models of the study: an MLP and the small 1-D CNN of the MNIST-1D paper.

With ``width=25`` and no batch norm, the CNN on 40-sample MNIST-1D inputs has 5,210
parameters, the size used in the MNIST-1D paper and in STUDY.md's measurements.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from bsnb.remedies import GhostBatchNorm1d

MODELS = ("cnn", "mlp")


def _norm(width: int, ghost_batch: int) -> nn.Module:
    return GhostBatchNorm1d(width, ghost=ghost_batch) if ghost_batch else nn.BatchNorm1d(width)


class CNN1d(nn.Module):
    """Three strided 1-D convolutions (kernel 5, 3, 3; stride 2) with ReLU, then a linear layer."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 25, batch_norm: bool = False,
                 ghost_batch: int = 0):
        super().__init__()
        length = math.prod(input_shape)
        layers, channels = [], 1
        for kernel in (5, 3, 3):
            layers.append(nn.Conv1d(channels, width, kernel, stride=2, padding=1))
            if batch_norm:
                layers.append(_norm(width, ghost_batch))
            layers.append(nn.ReLU())
            channels = width
            length = (length + 2 - kernel) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * length, n_classes)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, -1)
        return self.head(self.features(x).flatten(1))


class MLP(nn.Module):
    """Two hidden layers of ``width`` units with ReLU (the MNIST-1D paper's MLP at width 100)."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 100, batch_norm: bool = False,
                 ghost_batch: int = 0):
        super().__init__()
        layers, fan_in = [], math.prod(input_shape)
        for _ in range(2):
            layers.append(nn.Linear(fan_in, width))
            if batch_norm:
                layers.append(_norm(width, ghost_batch))
            layers.append(nn.ReLU())
            fan_in = width
        layers.append(nn.Linear(fan_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


def build(model: str, input_shape: tuple, n_classes: int, width: int, batch_norm: bool = False,
          ghost_batch: int = 0) -> nn.Module:
    """A fresh model; initialisation follows torch's global seed. ``ghost_batch`` > 0 makes its
    batch norm ghost batch norm over chunks of that many examples."""
    classes = {"cnn": CNN1d, "mlp": MLP}
    if model not in classes:
        raise ValueError(f"model = {model!r} is not allowed: expected one of {', '.join(classes)}")
    return classes[model](input_shape, n_classes, width=width, batch_norm=batch_norm, ghost_batch=ghost_batch)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextmanager
def frozen(model: nn.Module):
    """Eval mode inside; afterwards the parameters, buffers and train/eval flag are as they were."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
