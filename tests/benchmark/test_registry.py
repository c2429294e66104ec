"""The method registry: every registered method on a model other than the bundled one."""

import pytest
import torch
from helpers.models import seeded_cnn
from torch import nn

from captum_soundness.benchmark import (
    METHODS,
    QUICK_SETTINGS,
    BenchmarkContext,
    last_conv_layer,
    register,
)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_explains_any_model(name):
    """3-channel 6x5 inputs, 7 labels, the GradCAM layer named in the context."""
    model = seeded_cnn()
    inputs = torch.rand(3, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    pool = torch.rand(4, 3, 6, 5, generator=torch.Generator().manual_seed(1))
    context = BenchmarkContext(pool=pool, gradcam_layer=last_conv_layer(model))
    settings = QUICK_SETTINGS.replace(occlusion_window=2, occlusion_stride=2, show_progress=False)
    explain = METHODS[name].make_factory(settings, context)(model)
    attributions = explain(inputs, target=torch.tensor([0, 3, 6]))
    assert attributions.shape in ((3, 3, 6, 5), (3, 1, 6, 5))
    assert torch.isfinite(attributions).all()


def test_last_conv_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(2, 2, 1)))
    assert last_conv_layer(model) == "2.0"
    with pytest.raises(ValueError, match="no convolution"):
        last_conv_layer(nn.Linear(2, 2))


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register("saliency", label="x", description="y")(lambda model, settings, context: None)
