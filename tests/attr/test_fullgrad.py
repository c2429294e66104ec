"""Tests for FullGrad."""

import pytest
import torch
from helpers import fullgrad_cnn, seeded_randn
from torch import nn

from captum_soundness.attr import FullGrad


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
        FullGrad(net).attribute(x, target=-1)
    with pytest.raises(ValueError, match="target"):
        FullGrad(net).attribute(x, target=5)
