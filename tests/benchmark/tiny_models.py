"""A tiny CNN for the ``captum-soundness evaluate`` tests, importable as
``tiny_models:tiny_cnn`` (the tests put this folder on ``PYTHONPATH``)."""

import torch
from torch import nn


def tiny_cnn(num_classes: int = 3, seed: int = 0) -> nn.Module:
    """3-channel images of any size -> ``num_classes`` logits; weights from ``seed``."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval()
