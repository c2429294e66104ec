"""Tiny hand-checkable models and data shared by the tests."""

import math

import torch
from torch import nn


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


class RowSums(nn.Module):
    """Tiny linear model on 1x2x2 inputs (float64): z0 = top row sum, z1 = bottom row sum."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2, bias=False).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


# Example A: x = [[1, 2], [3, 4]], map [[.4, .1], [.3, .2]] -> order pos0, pos2, pos3, pos1.
# Example B: x = [[2, -1], [0, 1]], map [[0, 0], [1, 0]] -> order pos2, then ties in
# reading order: pos0, pos1, pos3.
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[2.0, -1.0], [0.0, 1.0]]]], dtype=torch.float64)
A = torch.tensor([[[[0.4, 0.1], [0.3, 0.2]]], [[[0.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
TARGET = [0, 1]
