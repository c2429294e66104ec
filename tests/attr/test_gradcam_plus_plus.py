"""Tests for LayerGradCamPlusPlus: the published maps and Captum's conventions."""

import pytest
import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import LayerAttribution, LayerGradCam
from captum.testing.helpers.basic_models import (
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)
from helpers import GradCamToy, captum_model, seeded_randn
from torch import nn

from captum_soundness.attr import LayerGradCamPlusPlus
from captum_soundness.attr._gradcam_plus_plus import gradcam_plus_plus_map


def _x() -> torch.Tensor:
    return seeded_randn(2, 1, 4, 4, seed=1, dtype=torch.float64)


def _hand(model: GradCamToy, x: torch.Tensor, label: int, agg: str, relu: bool) -> torch.Tensor:
    """GradCAM++ by explicit loops: the gradient of a linear head is its weight row."""
    with torch.no_grad():
        acts = model.conv(x)
    g = model.head.weight[label].detach().view(2, 3, 3)
    out = torch.zeros(x.shape[0], 1, 3, 3, dtype=torch.float64)
    for n in range(x.shape[0]):
        for i in range(3):
            for j in range(3):
                total = 0.0
                for k in range(2):
                    a_sum = float(acts[n, k].sum())
                    w_k = 0.0
                    for a in range(3):
                        for b in range(3):
                            gv = float(g[k, a, b])
                            den = 2 * gv**2 + a_sum * gv**3
                            alpha = gv**2 / den if den != 0 else 0.0
                            psi = {"signed": gv, "positive": max(gv, 0.0), "absolute": abs(gv)}
                            w_k += alpha * psi[agg]
                    total += w_k * float(acts[n, k, i, j])
                out[n, 0, i, j] = max(total, 0.0) if relu else total
    return out


@pytest.mark.parametrize("agg", ["signed", "positive", "absolute"])
@pytest.mark.parametrize("relu", [True, False])
def test_matches_hand_computation(agg, relu):
    model, x = GradCamToy(), _x()
    cam = LayerGradCamPlusPlus(model, model.feat)
    got = cam.attribute(x, target=[0, 2], aggregation=agg, relu_attributions=relu)
    want = torch.cat([_hand(model, x[:1], 0, agg, relu), _hand(model, x[1:], 2, agg, relu)], dim=0)
    assert got.shape == (2, 1, 3, 3)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, want, atol=1e-12)


def test_signed_and_positive_differ_with_mixed_gradients():
    model, x = GradCamToy(), _x()
    g = model.head.weight[1]
    assert bool((g > 0).any()) and bool((g < 0).any())
    cam = LayerGradCamPlusPlus(model, model.feat)
    signed = cam.attribute(x, target=1, aggregation="signed", relu_attributions=False)
    positive = cam.attribute(x, target=1, aggregation="positive", relu_attributions=False)
    assert not torch.allclose(signed, positive)
    # Default = the published method (positive aggregation, ReLU).
    default = cam.attribute(x, target=1)
    assert torch.equal(default, torch.relu(positive))
    assert bool((default >= 0).all())


def test_default_target_is_prediction_and_upsampling():
    model, x = GradCamToy(), _x()
    cam = LayerGradCamPlusPlus(model, model.feat)
    pred = model(x).argmax(dim=1)
    assert torch.equal(cam.attribute(x), cam.attribute(x, target=pred))
    up = LayerAttribution.interpolate(cam.attribute(x), (4, 4))
    assert up.shape == (2, 1, 4, 4)


def test_layer_input_and_model_left_as_found():
    model, x = GradCamToy(), _x()
    model.conv.weight.requires_grad_(False)
    model.train()
    cam = LayerGradCamPlusPlus(model, model.feat)
    with pytest.warns(UserWarning, match="training mode"):
        a = cam.attribute(x, target=0, attribute_to_layer_input=True)
    assert a.shape == (2, 1, 3, 3)
    assert model.training
    assert not model.conv.weight.requires_grad
    assert model.head.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_arguments():
    model, x = GradCamToy(), _x()
    cam = LayerGradCamPlusPlus(model, model.feat)
    with pytest.raises(ValueError, match="aggregation"):
        cam.attribute(x, target=0, aggregation="relu")
    with pytest.raises(TypeError, match="relu_attributions"):
        cam.attribute(x, target=0, relu_attributions="yes")
    with pytest.raises(TypeError, match="layer"):
        LayerGradCamPlusPlus(model, "feat")
    with pytest.raises(ValueError, match="target"):
        cam.attribute(x, target=[0, 1, 2])


def test_layer_input_differs_from_layer_output():
    """With a ReLU as the layer, its input (conv output) and output differ."""
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    model.eval()
    x = _x()
    cam = LayerGradCamPlusPlus(model, model[1])
    a_in = cam.attribute(x, target=1, relu_attributions=False, attribute_to_layer_input=True)
    a_out = cam.attribute(x, target=1, relu_attributions=False)
    # Reference: the conv output and its gradient (the ReLU's input), by autograd.
    acts = model[0](x).detach().requires_grad_(True)
    score = model[3](model[2](model[1](acts)))[:, 1].sum()
    (grads,) = torch.autograd.grad(score, acts)
    g2, g3 = grads**2, grads**3
    den = 2 * g2 + acts.detach().sum((2, 3), keepdim=True) * g3
    alpha = torch.where(den != 0, g2 / torch.where(den != 0, den, 1), 0)
    w = (alpha * torch.relu(grads)).sum((2, 3), keepdim=True)
    want = (w * acts.detach()).sum(1, keepdim=True)
    assert torch.allclose(a_in, want, atol=1e-12)
    assert not torch.allclose(a_in, a_out)


def test_layer_outside_model_and_labels_out_of_range():
    model, x = GradCamToy(), _x()
    with pytest.raises(ValueError, match="`layer`"):
        LayerGradCamPlusPlus(model, nn.Conv2d(1, 2, 2))
    cam = LayerGradCamPlusPlus(model, model.feat)
    with pytest.raises(ValueError, match="target"):
        cam.attribute(x, target=3)
    with pytest.raises(ValueError, match="target"):
        cam.attribute(x, target=[0, -1])
    # A plain function: the layer is checked when the forward pass does not call it.
    other = GradCamToy()
    cam = LayerGradCamPlusPlus(lambda t: other(t), model.feat)
    with pytest.raises(ValueError, match="not called"):
        cam.attribute(x, target=0)


# ---- Captum's conventions: inputs, targets, containers --------------------------------


def _captum_reference(model, layer, inputs, target, args=None):
    """GradCAM++ from the layer gradients and activations as Captum computes them for the
    same target (``captum._utils.gradient.compute_layer_gradients_and_eval``)."""
    with torch.enable_grad():
        (grads,), (acts,) = compute_layer_gradients_and_eval(model, layer, inputs, target, args)
    return gradcam_plus_plus_map(grads.detach(), acts.detach())


def test_tuple_target_into_multidimensional_output_matches_captum_gradients():
    model = captum_model(BasicModel_MultiLayer)
    x = seeded_randn(4, 3, seed=2)
    cam = LayerGradCamPlusPlus(model, model.linear1)
    args = (None, True)  # Captum's model: multidim_output=True, outputs (N, 2, 2, 2)
    for target in [(1, 0, 1), [(1, 0, 1), (0, 1, 1), (1, 1, 0), (0, 0, 0)]]:
        got = cam.attribute(x, target=target, additional_forward_args=args)
        want = _captum_reference(model, model.linear1, (x,), target, args)
        assert got.shape == (4, 1)
        assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="target"):  # one score per example is needed
        cam.attribute(x, target=1, additional_forward_args=args)


def test_tuple_target_on_two_dimensional_output_raises_as_in_captum():
    model, x = GradCamToy(), _x()
    with pytest.raises(AssertionError):  # Captum: "Cannot choose target column"
        LayerGradCam(model, model.feat).attribute(x, target=(1, 0))
    with pytest.raises(ValueError, match="tuple is one index"):
        LayerGradCamPlusPlus(model, model.feat).attribute(x, target=(1, 0))


@pytest.mark.parametrize(
    "target", [2, torch.tensor(2), torch.tensor([2]), [2, 2], torch.tensor([2, 2]), -1]
)
def test_every_target_form_gives_the_same_map(target):
    model, x = GradCamToy(), _x()
    cam = LayerGradCamPlusPlus(model, model.feat)
    assert torch.equal(cam.attribute(x, target=target), cam.attribute(x, target=2))


def test_multi_input_model_and_input_container():
    model = captum_model(BasicModel_MultiLayer_MultiInput)
    xs = tuple(seeded_randn(3, 3, seed=s) for s in (1, 2, 3))
    cam = LayerGradCamPlusPlus(model, model.model.linear1)
    (got,) = cam.attribute(xs, target=[0, 1, 0], additional_forward_args=(2,))
    want = _captum_reference(model, model.model.linear1, xs, [0, 1, 0], (2,))
    assert torch.allclose(got, want, atol=1e-6)
    # A tensor answers with a tensor, a 1-tuple with a 1-tuple; a batch of one works.
    toy, x = GradCamToy(), _x()
    toy_cam = LayerGradCamPlusPlus(toy, toy.feat)
    single = toy_cam.attribute(x, target=[0, 2])
    (one,) = toy_cam.attribute((x,), target=[0, 2])
    assert isinstance(single, torch.Tensor) and torch.equal(single, one)
    assert torch.equal(toy_cam.attribute(x[1:], target=2), single[1:])
