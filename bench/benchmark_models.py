"""Models the speed benchmarks run on (random weights: speed does not depend on them)."""

from __future__ import annotations

import torch
from torch import nn


class MnistCNN(nn.Module):
    """The PyTorch MNIST example network (two convolutions, two linear layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet18_random() -> nn.Module:
    """A torchvision ResNet-18 with random weights (224x224 inputs, 1000 classes)."""
    from torchvision.models import resnet18

    return resnet18(weights=None)
