"""A model defined outside bsnb, as a profile names one: ``model: examples.nets:residual_mlp``.

bsnb calls the function with the data's input shape and number of classes, and with ``width``, ``batch_norm``
and ``ghost_batch`` where its signature names them; it must return a ``torch.nn.Module`` that maps a batch
[B, *input_shape] to [B, n_classes] logits. Before any job runs, ``bsnb validate`` imports it, builds it, and
trains it one step, alone and (where the profile stacks seeds) two seeds stacked. Its file is part of its jobs'
cache key: edit it and they run again. See docs/contributing.md ("Your own model").
"""

import math

from torch import nn


class ResidualBlock(nn.Module):
    """x + W2 relu(W1 LayerNorm(x)): a pre-norm residual block (layer norm, unlike batch norm, reads one example)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.inner(self.norm(x))


def residual_mlp(input_shape: tuple, n_classes: int, width: int = 64, blocks: int = 2) -> nn.Module:
    """A residual MLP: a linear layer to ``width`` units, ``blocks`` residual blocks, layer norm and a linear head."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width),
                         *[ResidualBlock(width) for _ in range(blocks)],
                         nn.LayerNorm(width), nn.Linear(width, n_classes))
