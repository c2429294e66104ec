"""Half-precision models and inputs (float16, bfloat16) on the CPU: metrics and attributions
run in the inputs' dtype and agree with float32 up to the precision of the format."""

import pytest
import torch
from helpers import seeded_randn, small_cnn

from captum_soundness.attr import FullGrad, LayerGradCamPlusPlus
from captum_soundness.fills import BlurFill
from captum_soundness.metrics import completeness, insertion_curve


def _x() -> torch.Tensor:
    return seeded_randn(3, 1, 8, 8, seed=1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_metrics_follow_half_precision_inputs(dtype):
    model, x = small_cnn(), _x()
    attr = seeded_randn(3, 1, 8, 8, seed=2)
    want = insertion_curve(model, x, attr, target=[0, 1, 2], fractions=8, baselines=BlurFill(1.0))
    half = model.to(dtype)
    got = insertion_curve(
        half, x.to(dtype), attr, target=[0, 1, 2], fractions=8, baselines=BlurFill(1.0)
    )
    assert got.dtype == torch.float32 and got.shape == (3, 8)
    assert torch.allclose(got, want, atol=0.03)
    c = completeness(half, x.to(dtype), attr, target=[0, 1, 2], fractions=8)
    assert c.shape == (3,) and bool(((c >= 0) & (c <= 1)).all())


# Relative tolerances: about twice the errors measured on this model. bfloat16 keeps 8
# significant bits (float16: 11), and GradCAM++'s alpha = g^2 / (2 g^2 + sum(A) g^3) is
# ill-conditioned where the two terms of its denominator nearly cancel.
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float16, 0.015), (torch.bfloat16, 0.15)])
def test_gradcam_plus_plus_and_fullgrad_in_half_precision(dtype, rtol):
    model, x = small_cnn(), _x()
    want_cam = LayerGradCamPlusPlus(model, model[0]).attribute(x, target=1)
    want_fg = FullGrad(model).attribute(x, target=1)
    half = model.to(dtype)
    cam = LayerGradCamPlusPlus(half, half[0]).attribute(x.to(dtype), target=1)
    fg = FullGrad(half).attribute(x.to(dtype), target=1)
    assert cam.dtype == dtype and fg.dtype == dtype
    scale = float(want_cam.abs().max())
    assert torch.allclose(cam.float(), want_cam, atol=rtol * scale)
    # FullGrad's terms are each rescaled to [0, 1]: an absolute tolerance.
    assert torch.allclose(fg.float(), want_fg, atol=rtol / 4)
