"""LayerGradCamPlusPlus and FullGrad inside Captum's wrappers and metrics: NoiseTunnel,
``captum.metrics.sensitivity_max`` and ``infidelity``; DataParallel and TorchScript models."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, NoiseTunnel
from captum.metrics import infidelity, sensitivity_max
from helpers import ImageMetaModel, fullgrad_cnn, seeded_randn
from torch import nn

from captum_soundness.attr import FullGrad, LayerGradCamPlusPlus

TARGET = [2, 0, 4]


def _x() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=1, dtype=torch.float64)


def _methods(net: nn.Module) -> dict[str, object]:
    return {"gradcam++": LayerGradCamPlusPlus(net, net[4]), "fullgrad": FullGrad(net)}


@pytest.mark.parametrize("name", ["gradcam++", "fullgrad"])
@pytest.mark.parametrize("as_tuple", [False, True])
def test_noise_tunnel_without_noise_gives_the_plain_maps(name, as_tuple):
    net, x = fullgrad_cnn(), _x()
    method = _methods(net)[name]
    inputs = (x,) if as_tuple else x
    plain = method.attribute(inputs, target=TARGET)
    smooth = NoiseTunnel(method).attribute(
        inputs, nt_samples=3, nt_samples_batch_size=2, stdevs=0.0, target=TARGET
    )
    assert type(smooth) is type(plain)
    if as_tuple:
        (plain,), (smooth,) = plain, smooth
    assert torch.allclose(smooth, plain, atol=1e-10)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        noisy = NoiseTunnel(method).attribute(
            inputs, nt_type="smoothgrad_sq", nt_samples=3, stdevs=0.5, target=TARGET
        )
    noisy = noisy[0] if as_tuple else noisy
    assert noisy.shape == plain.shape and bool(torch.isfinite(noisy).all())
    assert not torch.allclose(noisy, plain**2)


@pytest.mark.parametrize("name", ["gradcam++", "fullgrad"])
def test_sensitivity_max_runs_on_tensor_and_tuple_inputs(name):
    net, x = fullgrad_cnn(), _x()
    method = _methods(net)[name]
    for inputs in (x, (x,)):
        zero = sensitivity_max(method.attribute, inputs, perturb_radius=0.0, target=TARGET)
        assert zero.shape == (3,) and bool((zero == 0).all())
        with torch.random.fork_rng():
            torch.manual_seed(0)
            sens = sensitivity_max(
                method.attribute, inputs, perturb_radius=0.3, n_perturb_samples=3, target=TARGET
            )
        assert sens.shape == (3,) and bool(torch.isfinite(sens).all())
        assert float(sens.max()) > 0


def _fixed_perturbation(inputs):
    """A deterministic perturbation I (Captum's perturb_func: returns I and x - I)."""
    noise = 0.1 * torch.cos(torch.arange(inputs[0].numel(), dtype=inputs.dtype))
    noise = noise.view(inputs.shape[1:]).expand_as(inputs)
    return noise, inputs - noise


@pytest.mark.parametrize("name", ["gradcam++", "fullgrad"])
def test_infidelity_with_the_maps(name):
    """Captum's infidelity of the maps (GradCAM++ upsampled to the inputs, as for Captum's
    LayerGradCam) equals its definition E[(I . a - (f(x) - f(x - I)))^2]."""
    net, x = fullgrad_cnn(), _x()
    method = _methods(net)[name]
    maps = method.attribute(x, target=TARGET)
    if name == "gradcam++":
        maps = LayerAttribution.interpolate(maps, (8, 8)).expand_as(x)
    got = infidelity(net, _fixed_perturbation, x, maps, target=TARGET, n_perturb_samples=2)
    noise, moved = _fixed_perturbation(x)
    with torch.no_grad():
        index = torch.arange(3), torch.tensor(TARGET)
        drop = net(x)[index] - net(moved)[index]
    want = ((noise * maps).flatten(1).sum(1) - drop) ** 2
    assert torch.allclose(got.double(), want, rtol=1e-5)


def test_tuple_inputs_in_captum_metrics():
    net = ImageMetaModel()
    inputs = (seeded_randn(3, 2, 6, 6, seed=4), seeded_randn(3, 4, seed=5))
    fg = FullGrad(net)
    sens = sensitivity_max(fg.attribute, inputs, perturb_radius=0.0, target=[0, 1, 2])
    assert bool((sens == 0).all())

    def perturb(inputs):
        image, meta = inputs
        return (0.1 * torch.ones_like(image), 0.1 * torch.ones_like(meta)), (
            image - 0.1,
            meta - 0.1,
        )

    maps = fg.attribute(inputs, target=1)
    got = infidelity(net, perturb, inputs, maps, target=1, n_perturb_samples=1)
    with torch.no_grad():
        drop = net(*inputs)[:, 1] - net(inputs[0] - 0.1, inputs[1] - 0.1)[:, 1]
    dot = 0.1 * (maps[0].flatten(1).sum(1) + maps[1].sum(1))
    assert torch.allclose(got, (dot - drop) ** 2, rtol=1e-4)


def test_data_parallel_gives_the_same_maps():
    net, x = fullgrad_cnn(), _x()
    wrapped = nn.DataParallel(net).eval()
    assert torch.equal(FullGrad(wrapped).attribute(x, TARGET), FullGrad(net).attribute(x, TARGET))
    cam = LayerGradCamPlusPlus(wrapped, net[4]).attribute(x, TARGET)
    assert torch.equal(cam, LayerGradCamPlusPlus(net, net[4]).attribute(x, TARGET))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated
def test_torchscript_models_raise_a_clear_error():
    """Traced and scripted models run no forward hooks: FullGrad would silently lose its
    bias terms, so both methods refuse them."""
    net, x = fullgrad_cnn(), _x()
    traced = torch.jit.trace(net, x)
    with pytest.raises(TypeError, match="TorchScript"):
        FullGrad(traced)
    with pytest.raises(TypeError, match="TorchScript"):
        FullGrad(torch.jit.script(net))
    with pytest.raises(TypeError, match="TorchScript"):
        LayerGradCamPlusPlus(traced, traced.get_submodule("4"))


@pytest.mark.parametrize("name", ["gradcam++", "fullgrad"])
def test_training_mode_warning_points_at_the_callers_line_through_log_usage(name):
    net, x = fullgrad_cnn(), _x()
    method = _methods(net)[name]
    net.train()
    with pytest.warns(UserWarning, match="training mode") as record:
        method.attribute(x, target=TARGET)
    assert record[0].filename == __file__
    assert net.training
