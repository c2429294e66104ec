"""Tests for FullGrad: the published maps, the decomposition, and Captum's conventions."""

import pytest
import torch
from captum.attr import InputXGradient
from captum.testing.helpers.basic_models import (
    BasicModel_ConvNet_MaxPool3d,
    BasicModel_MultiLayer,
    Conv1dSeqModel,
)
from helpers import ImageMetaModel, captum_model, fullgrad_cnn, seeded_randn
from torch import nn

from captum_soundness.attr import FullGrad

# Captum's InputXGradient sets requires_grad on the inputs it is given, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")


def _x() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=1, dtype=torch.float64)


def test_completeness_of_raw_decomposition():
    net, x = fullgrad_cnn(), _x()
    parts = FullGrad(net).decompose(x, target=[0, 3, 4])
    with torch.no_grad():
        logits = net(x)[torch.arange(3), torch.tensor([0, 3, 4])]
    assert torch.allclose(parts.output, logits)
    assert torch.allclose(parts.total(), logits, atol=1e-10)
    assert set(parts.bias_terms) == {"0", "1", "4", "7"}
    assert parts.input_term.shape == x.shape
    assert parts.bias_terms["1"].shape == (3, 4, 8, 8)
    # Without the bias terms the decomposition is incomplete (the check can fail).
    assert not torch.allclose(parts.input_term.flatten(1).sum(1), logits, atol=1e-3)


def test_map_matches_reference_formula_without_biases():
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(192, 4, bias=False),
    ).double()
    net.eval()
    x = _x().requires_grad_(True)
    score = net(x)[:, 2].sum()
    (grad,) = torch.autograd.grad(score, x)
    term = (grad * x).abs().detach()
    flat = term.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    want = ((term - lo) / (hi - lo)).sum(1, keepdim=True).expand(-1, 2, -1, -1)
    got = FullGrad(net).attribute(x.detach(), target=2)
    assert got.shape == x.shape
    assert torch.allclose(got, want)


def test_aggregations_differ_and_default_is_absolute():
    net, x = fullgrad_cnn(), _x()
    fg = FullGrad(net)
    default = fg.attribute(x, target=1)
    absolute = fg.attribute(x, target=1, aggregation="absolute")
    signed = fg.attribute(x, target=1, aggregation="signed")
    positive = fg.attribute(x, target=1, aggregation="positive")
    assert torch.equal(default, absolute)
    assert not torch.allclose(signed, absolute)
    assert not torch.allclose(signed, positive)
    # Each term is rescaled to [0, 1]: the map lies in [0, number of terms].
    assert bool((absolute >= 0).all())
    assert float(absolute.max()) <= 1 + 3 + 1e-9  # input term + 3 spatial bias layers


def test_model_left_as_found_and_hooks_removed():
    net, x = fullgrad_cnn(), _x()
    net[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fg = FullGrad(net)
    fg.attribute(x, target=0)
    with pytest.raises(ValueError, match="target"):  # raised inside the hooked pass
        fg.decompose(x, target=torch.tensor([0, 1, 9]))
    assert all(not m._forward_hooks for m in net.modules())
    assert not net[0].weight.requires_grad
    assert net[4].weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_default_target_is_prediction():
    net, x = fullgrad_cnn(), _x()
    fg = FullGrad(net)
    pred = net(x).argmax(1)
    assert torch.equal(fg.attribute(x), fg.attribute(x, target=pred))


def test_bad_arguments():
    net, x = fullgrad_cnn(), _x()
    with pytest.raises(TypeError, match="forward_func"):
        FullGrad(lambda t: net(t))
    with pytest.raises(ValueError, match="aggregation"):
        FullGrad(net).attribute(x, target=0, aggregation="abs")
    with pytest.raises(ValueError, match="target"):
        FullGrad(net).attribute(x, target=[0, 1])


def test_map_matches_hand_computation_with_bias_terms():
    """The map with bias terms: per-term abs, min-max, channel sum, bilinear upsampling."""
    net, x = fullgrad_cnn(), _x()
    target = torch.tensor([2, 0, 4])
    xg = x.clone().requires_grad_(True)
    z0 = net[0](xg)
    z1 = net[1](z0)
    z4 = net[4](net[3](net[2](z1.clone())))
    out = net[7](net[6](net[5](z4)))
    score = out.gather(1, target.view(-1, 1)).sum()
    g_x, g0, g1, g4 = torch.autograd.grad(score, [xg, z0, z1, z4])
    bn = net[1]
    bn_bias = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)

    def rescaled(t: torch.Tensor) -> torch.Tensor:
        t = t.abs().detach()
        flat = t.flatten(1)
        lo = flat.min(1).values.view(-1, 1, 1, 1)
        hi = flat.max(1).values.view(-1, 1, 1, 1)
        return ((t - lo) / (hi - lo)).sum(1, keepdim=True)

    want = rescaled(g_x * x)
    want = want + rescaled(g0 * net[0].bias.view(1, -1, 1, 1))
    want = want + rescaled(g1 * bn_bias.view(1, -1, 1, 1))
    small = rescaled(g4 * net[4].bias.view(1, -1, 1, 1))  # 4x4 -> 8x8
    want = want + torch.nn.functional.interpolate(
        small, size=(8, 8), mode="bilinear", align_corners=True
    )
    got = FullGrad(net).attribute(x, target=target)
    assert torch.allclose(got, want.expand_as(x), atol=1e-10)


def test_labels_out_of_range_raise_value_error():
    net, x = fullgrad_cnn(), _x()
    with pytest.raises(ValueError, match="target"):
        FullGrad(net).attribute(x, target=-6)
    with pytest.raises(ValueError, match="target"):
        FullGrad(net).attribute(x, target=5)
    # Per-example labels may not be negative (Captum's gather refuses them too) ...
    with pytest.raises(ValueError, match="target"):
        FullGrad(net).attribute(x, target=[0, -1, 2])
    # ... but an int index may (Python indexing, as in Captum's output[:, t]).
    assert torch.equal(FullGrad(net).attribute(x, target=-1), FullGrad(net).attribute(x, target=4))


# ---- Captum's conventions: inputs, targets, containers --------------------------------


def _mlp() -> nn.Module:
    return captum_model(BasicModel_MultiLayer, seed=0)


def _tab() -> torch.Tensor:
    return seeded_randn(4, 3, seed=3)


def test_tabular_map_is_rescaled_absolute_input_x_gradient():
    """(N, F) inputs: one value per feature, the min-max rescaled |grad * x| (the MLP's bias
    terms have no positions of the inputs and stay out of the map)."""
    net, x = _mlp(), _tab()
    want = InputXGradient(net).attribute(x.clone(), target=1).detach().abs()
    lo, hi = want.min(1, keepdim=True).values, want.max(1, keepdim=True).values
    want = torch.where(hi > lo, (want - lo) / (hi - lo).clamp_min(1e-30), 0)
    got = FullGrad(net).attribute(x, target=1)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-6)
    parts = FullGrad(net).decompose(x, target=1)
    assert set(parts.bias_terms) == {"linear0", "linear1", "linear2"}
    assert torch.allclose(parts.total(), parts.output, atol=1e-5)


def test_tuple_target_into_multidimensional_output_matches_captum():
    """A tuple is one index into an (N, 2, 2, 2) output, read as Captum reads it."""
    net, x = _mlp(), _tab()
    args = (None, True)  # Captum's model: multidim_output=True
    parts = FullGrad(net).decompose(x, target=(1, 0, 1), additional_forward_args=args)
    want = InputXGradient(net).attribute(x.clone(), target=(1, 0, 1), additional_forward_args=args)
    assert torch.allclose(parts.input_term, want.detach(), atol=1e-6)
    per_example = [(1, 0, 1), (0, 1, 1), (1, 1, 0), (0, 0, 0)]
    parts = FullGrad(net).decompose(x, target=per_example, additional_forward_args=args)
    want = InputXGradient(net).attribute(
        x.clone(), target=per_example, additional_forward_args=args
    )
    assert torch.allclose(parts.input_term, want.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="target"):  # Captum needs a target here too
        FullGrad(net).attribute(x, additional_forward_args=args)


def test_tuple_target_on_two_dimensional_output_raises_as_in_captum():
    net, x = _mlp(), _tab()[:2]
    with pytest.raises(AssertionError):  # Captum: "Cannot choose target column"
        InputXGradient(net).attribute(x.clone(), target=(1, 0))
    with pytest.raises(ValueError, match="tuple is one index"):
        FullGrad(net).attribute(x, target=(1, 0))


@pytest.mark.parametrize(
    "target", [2, torch.tensor(2), torch.tensor([2]), [2, 2, 2], torch.tensor([2, 2, 2])]
)
def test_every_target_form_gives_the_same_map(target):
    net, x = fullgrad_cnn(), _x()
    assert torch.equal(FullGrad(net).attribute(x, target=target), FullGrad(net).attribute(x, 2))


def test_tensor_and_one_tuple_inputs_give_the_same_map_in_their_container():
    net, x = fullgrad_cnn(), _x()
    single = FullGrad(net).attribute(x, target=[2, 0, 4])
    (one,) = FullGrad(net).attribute((x,), target=[2, 0, 4])
    assert isinstance(single, torch.Tensor)
    assert torch.equal(single, one)
    assert torch.equal(FullGrad(net).attribute(x[:1], target=2), single[:1])  # batch of one


def test_two_inputs_image_and_metadata():
    """Each input gets its own rescaled input term; the conv bias goes to the image."""
    net = ImageMetaModel()
    image, meta = seeded_randn(3, 2, 6, 6, seed=4), seeded_randn(3, 4, seed=5)
    a_image, a_meta = FullGrad(net).attribute((image, meta), target=1, additional_forward_args=2.0)
    assert a_image.shape == image.shape and a_meta.shape == meta.shape
    parts = FullGrad(net).decompose((image, meta), target=1, additional_forward_args=(2.0,))
    g_image, g_meta = parts.input_term
    assert torch.allclose(parts.total(), parts.output, atol=1e-5)

    def rescaled(t):
        flat = t.abs().flatten(1)
        lo, hi = flat.min(1).values, flat.max(1).values
        shape = (-1,) + (1,) * (t.dim() - 1)
        span = (hi - lo).view(shape)
        return torch.where(span > 0, (t.abs() - lo.view(shape)) / span.clamp_min(1e-30), 0)

    assert torch.allclose(a_meta, rescaled(g_meta), atol=1e-6)
    want = rescaled(g_image).sum(1, keepdim=True) + rescaled(parts.bias_terms["conv"]).sum(
        1, keepdim=True
    )
    assert torch.allclose(a_image, want.expand_as(image), atol=1e-6)


def test_bias_terms_that_fit_several_inputs_raise():
    class TwoImages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.head = nn.Linear(2 * 4 * 4, 2)

        def forward(self, a, b):
            return self.head(torch.relu(self.conv(a + b)).flatten(1))

    net = captum_model(TwoImages)
    a, b = seeded_randn(2, 1, 4, 4, seed=1), seeded_randn(2, 1, 4, 4, seed=2)
    with pytest.raises(ValueError, match="cannot tell which"):
        FullGrad(net).attribute((a, b), target=0)
    assert FullGrad(net).decompose((a, b), target=0).output.shape == (2,)


def test_sequences_and_volumes():
    seq = captum_model(Conv1dSeqModel)
    x = seeded_randn(2, 4, 1000, seed=1)
    a = FullGrad(seq).attribute(x, target=(1, 0))  # outputs (N, 2, 1): a tuple target
    assert a.shape == x.shape and bool(torch.isfinite(a).all())
    parts = FullGrad(seq).decompose(x, target=(1, 0))
    assert torch.allclose(parts.total(), parts.output, atol=1e-4)
    vol = captum_model(BasicModel_ConvNet_MaxPool3d)
    v = seeded_randn(2, 1, 10, 10, 10, seed=2)
    a = FullGrad(vol).attribute(v, target=[3, 7])
    assert a.shape == v.shape and float(a.max()) > 0


def test_rank_one_and_list_inputs_raise():
    net = _mlp()
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        FullGrad(net).attribute(torch.randn(3), target=0)
    with pytest.raises(TypeError, match="tuple"):
        FullGrad(net).attribute([_tab()], target=0)
