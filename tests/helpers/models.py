"""The toy models and data of the test suite, defined once.

Every builder returns a fresh model with the same weights as the per-file builders it
replaces (same seeds, same construction order), so tests keep their numbers. Builders that
seed torch's default generator to get reproducible default initialisations do so inside
:func:`torch.random.fork_rng`: building a toy model never changes the global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "PATCH",
    "TARGET",
    "A",
    "ContrastToy",
    "CountingModel",
    "GradCamToy",
    "ImageMetaModel",
    "PatchModel",
    "RowSums",
    "TwoInputNet",
    "X",
    "bn_dropout_cnn",
    "captum_model",
    "fullgrad_cnn",
    "init_params_",
    "patch_inputs",
    "seeded_cnn",
    "seeded_linear",
    "seeded_randn",
    "sigmoid",
    "small_cnn",
    "stateful_mlp",
    "tabular_net",
    "tanh_mlp",
    "tiny_cnn",
]


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def seeded_randn(*shape: int, seed: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.randn(*shape)`` from a fresh generator seeded with ``seed``."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def init_params_(
    net: nn.Module, seed: int = 0, scale: float = 1.0, dtype: torch.dtype | None = None
) -> nn.Module:
    """Overwrites every parameter (in ``net.parameters()`` order) with ``randn * scale`` drawn
    from one generator seeded with ``seed``; returns ``net``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * scale)
    return net


def _seeded_default_init(seed: int, build):
    """``build()`` with torch's default generator seeded with ``seed``, restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# ---------------------------------------------------------------------------------------
# hand-checkable models


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


class ContrastToy(nn.Module):
    r"""Two labels on a 1x2x2 input with fill 0 meaning "absent".

    z0 = x0 + x1 + x2 + x3 (amount of content), z1 = 6 * (x0 - x1) (a contrast detector).
    On the all-ones image, label 0 wins (z = (4, 0), p1 = sigmoid(-4) ~ 0.018). Keeping
    x0 while removing x1 *creates* a contrast that the image does not have.
    """

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2, bias=False).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [6.0, -6.0, 0.0, 0.0]]))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class PatchModel(nn.Module):
    """Three labels whose logits depend only on the 4x4 patch at rows/cols 4:8 of a 12x12
    one-channel input: ``(s, -s, 0) / 4`` with ``s`` the sum of the patch."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, 4:8, 4:8].sum(dim=(1, 2))
        return self.scale * torch.stack([s, -s, torch.zeros_like(s)], dim=1)


PATCH = torch.zeros(12, 12, dtype=torch.bool)
PATCH[4:8, 4:8] = True


def patch_inputs() -> torch.Tensor:
    """Two 12x12 images for :class:`PatchModel`: the patch supports label 0, then label 1."""
    x = seeded_randn(2, 1, 12, 12, seed=0)
    x[0, 0, 4:8, 4:8] = 1.0  # supports label 0
    x[1, 0, 4:8, 4:8] = -1.0  # supports label 1
    return x


class GradCamToy(nn.Module):
    """conv (2 channels, 3x3 maps) -> feat (identity) -> linear head; float64, 1x4x4 inputs.

    One head weight is zero: a zero gradient, hence a zero GradCAM++ denominator. (The head
    bias keeps its default initialisation, under seed 0; no GradCAM++ map depends on it.)
    """

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 2).double()
        self.feat = nn.Identity()
        self.head = _seeded_default_init(0, lambda: nn.Linear(2 * 3 * 3, 3).double())
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(2, 1, 2, 2, generator=g, dtype=torch.float64))
            self.conv.bias.copy_(torch.tensor([0.5, -0.2], dtype=torch.float64))
            w = torch.randn(3, 18, generator=g, dtype=torch.float64)
            w[0, 4] = 0.0  # a zero gradient: zero GradCAM++ denominator
            self.head.weight.copy_(w)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feat(self.conv(x)).flatten(1))


# ---------------------------------------------------------------------------------------
# small random networks (eval mode unless stated)


def seeded_cnn(
    in_channels: int = 3,
    height: int = 6,
    width: int = 5,
    classes: int = 7,
    activation: type[nn.Module] = nn.ReLU,
    seed: int = 0,
) -> nn.Module:
    """conv(3x3, 4 channels) -> activation -> linear, default initialisation under ``seed``.

    Defaults: the curves tests' model (3x6x5 inputs, 7 labels). The evaluation tests use
    ``seeded_cnn(2, 4, 3, 5, nn.Tanh)``.
    """

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1),
            activation(),
            nn.Flatten(),
            nn.Linear(4 * height * width, classes),
        )

    return _seeded_default_init(seed, build).eval()


def small_cnn(convs: int = 1) -> nn.Module:
    """1x8x8 inputs, 3 labels: ``convs`` conv(3x3, 4 channels)+ReLU blocks, then a linear head;
    weights ``randn * 0.3`` from generator seed 0.

    ``convs=1``: the half-precision tests' model; ``convs=2``: the sanity tests' model.
    """
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    return init_params_(net, seed=0, scale=0.3).eval()


def tiny_cnn(num_classes: int = 3, seed: int = 0) -> nn.Module:
    """3-channel images of any size -> ``num_classes`` logits: two conv(3x3, 4 channels)+ReLU
    blocks, adaptive pool to 4x4, linear; weights ``randn * 0.5`` from generator ``seed``.
    Importable by a command line as ``helpers.models:tiny_cnn`` (``tests`` on the path)."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    return init_params_(net, seed=seed, scale=0.5).eval()


def tanh_mlp() -> nn.Module:
    """1x4x4 inputs (float64), 3 labels: flatten -> 12 tanh units -> linear; weights
    ``randn * 0.5`` from generator seed 0. Returned in *training* mode (as the axiom tests
    expect): call ``.eval()``."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    return init_params_(net, seed=0, scale=0.5, dtype=torch.float64)


def fullgrad_cnn() -> nn.Module:
    """Piecewise-linear CNN with biases everywhere and an eval-mode batch-norm (float64);
    2x8x8 inputs, 5 labels."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
        bn = net[1]
        bn.running_mean.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(4, generator=g, dtype=torch.float64) + 0.5)
    return net.eval()


def seeded_linear(
    c: int = 2, h: int = 6, w: int = 5, classes: int = 4, seed: int = 0
) -> nn.Module:
    """flatten -> linear on ``c x h x w`` inputs, default initialisation under ``seed``."""

    def build() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, classes))

    return _seeded_default_init(seed, build).eval()


def bn_dropout_cnn(seed: int = 0) -> nn.Module:
    """2-channel inputs of any size, 3 labels: conv -> batch-norm -> ReLU -> dropout ->
    adaptive pool -> linear; default initialisation under ``seed``. Its batch-norm and
    dropout make a model left in training mode visible."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, 3),
        )

    return _seeded_default_init(seed, build).eval()


class CountingModel(nn.Module):
    """Wraps ``net`` (default: ``seeded_linear(classes=out_classes)``) and counts forwards."""

    def __init__(self, out_classes: int = 3, net: nn.Module | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.net = seeded_linear(classes=out_classes) if net is None else net
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


def stateful_mlp() -> nn.Module:
    """3 features -> linear -> batch-norm -> dropout -> linear (2 labels), default
    (unseeded) initialisation, training mode: for model-state tests."""
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.1), nn.Linear(4, 2))


# ---------------------------------------------------------------------------------------
# Captum's own test models, and a multi-input model


def captum_model(cls: type[nn.Module], *args, seed: int = 0, **kwargs) -> nn.Module:
    """One of Captum's test models (``captum.testing.helpers.basic_models``), built with
    torch's default initialisation under ``seed`` (global RNG restored), in eval mode."""
    return _seeded_default_init(seed, lambda: cls(*args, **kwargs)).eval()


class ImageMetaModel(nn.Module):
    """A two-input model: an image ``(N, 2, 6, 6)`` through conv(3x3, 3 channels, bias) +
    ReLU + pool, and tabular metadata ``(N, 4)`` through a linear layer; 3 labels.
    ``forward(image, meta, scale=1.0)``. Weights ``randn * 0.5`` from generator ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.meta = nn.Linear(4, 3)
        self.head = nn.Linear(3 * 3 * 3 + 3, 3)
        init_params_(self, seed=seed, scale=0.5)
        self.eval()

    def forward(self, image: torch.Tensor, meta: torch.Tensor, scale: float = 1.0):
        feats = nn.functional.max_pool2d(torch.relu(self.conv(image)), 2).flatten(1)
        return self.head(torch.cat([feats, torch.relu(self.meta(meta))], dim=1)) * scale


class TwoInputNet(nn.Module):
    """A two-input model with batch-norm and dropout (mode changes show): an image
    ``(N, 2, 8, 8)`` through conv -> batch-norm -> ReLU -> dropout -> pool(4), tabular
    metadata ``(N, 3)`` through linear + ReLU, then a linear head (3 labels). Default
    initialisation under ``seed``; eval mode. ``cam_layer`` is the conv layer."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()

        def build() -> tuple[nn.Module, nn.Module, nn.Module]:
            image = nn.Sequential(
                nn.Conv2d(2, 3, 3, padding=1),
                nn.BatchNorm2d(3),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
            )
            return image, nn.Linear(3, 4), nn.Linear(12 + 4, 3)

        self.image, self.meta, self.head = _seeded_default_init(seed, build)
        self.cam_layer = self.image[0]
        self.eval()

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), torch.relu(self.meta(meta))], dim=1))


def tabular_net(seed: int = 0) -> nn.Module:
    """5 features -> linear -> batch-norm -> ReLU -> dropout -> linear (3 labels), default
    initialisation under ``seed``, eval mode."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3)
        )

    return _seeded_default_init(seed, build).eval()
