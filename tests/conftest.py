"""Fixtures of the test suite: fresh toy models (see :mod:`helpers.models`).

Each fixture builds a new model per test, so a test may change it freely.
"""

import pytest
from helpers import models
from torch import nn


@pytest.fixture
def row_sums() -> nn.Module:
    """:class:`helpers.models.RowSums` (float64, 1x2x2 inputs ``X``, maps ``A``)."""
    return models.RowSums()


@pytest.fixture
def contrast_toy() -> nn.Module:
    """:class:`helpers.models.ContrastToy` (float64, 1x2x2 inputs, 2 labels)."""
    return models.ContrastToy()


@pytest.fixture
def patch_model() -> nn.Module:
    """:class:`helpers.models.PatchModel` (1x12x12 inputs ``patch_inputs()``, 3 labels)."""
    return models.PatchModel()


@pytest.fixture
def gradcam_toy() -> nn.Module:
    """:class:`helpers.models.GradCamToy` (float64, 1x4x4 inputs, 3 labels)."""
    return models.GradCamToy()


@pytest.fixture
def seeded_cnn() -> nn.Module:
    """:func:`helpers.models.seeded_cnn` with its defaults (3x6x5 inputs, 7 labels)."""
    return models.seeded_cnn()


@pytest.fixture
def small_cnn() -> nn.Module:
    """:func:`helpers.models.small_cnn` with one conv block (1x8x8 inputs, 3 labels)."""
    return models.small_cnn()


@pytest.fixture
def fullgrad_cnn() -> nn.Module:
    """:func:`helpers.models.fullgrad_cnn` (float64, 2x8x8 inputs, 5 labels)."""
    return models.fullgrad_cnn()


@pytest.fixture
def tanh_mlp() -> nn.Module:
    """:func:`helpers.models.tanh_mlp` in eval mode (float64, 1x4x4 inputs, 3 labels)."""
    return models.tanh_mlp().eval()
