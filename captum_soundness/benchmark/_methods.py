"""The registered methods: Captum's, GradCAM++ / FullGrad, SimpleMasking and its ablations,
and the random floor. Report order is the order of this file.

Every builder takes any model (the GradCAM layer and the fill pool come from the
:class:`~captum_soundness.benchmark._registry.BenchmarkContext`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from captum.attr import (
    DeepLift,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from captum_soundness.attr import PRESETS, FullGrad, LayerGradCamPlusPlus, SimpleMasking
from captum_soundness.benchmark._registry import BenchmarkContext, ExplainFunc, register
from captum_soundness.fills import DatasetFill

if TYPE_CHECKING:
    from captum_soundness.benchmark._settings import BenchmarkSettings

__all__: list[str] = []


def _upsampled_cam(method: Any, **attribute_kwargs: Any) -> ExplainFunc:
    """A layer CAM's ``attribute`` with its map bilinearly upsampled to the inputs' size."""

    def explain(inputs: Tensor, target: Any = None) -> Tensor:
        cam = method.attribute(inputs, target=target, **attribute_kwargs)
        return LayerAttribution.interpolate(
            cam, tuple(inputs.shape[2:]), interpolate_mode="bilinear"
        )

    return explain


def _layer(model: nn.Module, context: BenchmarkContext) -> nn.Module:
    return model.get_submodule(context.gradcam_layer)


@register("saliency", label="Saliency", description="Captum Saliency (absolute gradient)")
def _saliency(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return Saliency(model).attribute


@register("input_x_gradient", label="InputXGradient", description="Captum InputXGradient")
def _input_x_gradient(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return InputXGradient(model).attribute


@register(
    "integrated_gradients",
    label="IntegratedGradients",
    description="Captum IntegratedGradients, zero baseline",
)
def _integrated_gradients(
    model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext
):
    steps = settings.ig_steps
    return partial(
        IntegratedGradients(model).attribute,
        n_steps=steps,
        internal_batch_size=max(steps, 4096),
    )


@register(
    "smoothgrad", label="SmoothGrad", description="Captum NoiseTunnel (smoothgrad) over Saliency"
)
def _smoothgrad(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    method = NoiseTunnel(Saliency(model))
    calls = [0]

    def explain(inputs: Tensor, target: Any = None) -> Tensor:
        # NoiseTunnel draws its noise from the global RNG: fork the generators it uses
        # (the CPU's and the inputs' device's) and seed them, so that the benchmark
        # neither depends on nor changes the caller's RNG state. Each call of a
        # factory's explain_func gets its own seed (chunks do not repeat the noise).
        seed = settings.seed + calls[0]
        calls[0] += 1
        device = inputs.device
        devices = [device] if device.type != "cpu" else []
        device_type = device.type if device.type != "cpu" else "cuda"
        with torch.random.fork_rng(devices=devices, device_type=device_type):
            torch.random.default_generator.manual_seed(seed)
            if device.type == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            elif device.type != "cpu":
                getattr(torch, device.type).manual_seed(seed)
            return method.attribute(
                inputs,
                target=target,
                nt_type="smoothgrad",
                nt_samples=settings.smoothgrad_samples,
                nt_samples_batch_size=settings.smoothgrad_samples,
                stdevs=settings.smoothgrad_stdev,
            )

    return explain


@register("guided_backprop", label="GuidedBackprop", description="Captum GuidedBackprop")
def _guided_backprop(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return GuidedBackprop(model).attribute


@register(
    "gradcam",
    label="LayerGradCam",
    description="Captum LayerGradCam on the last conv layer (ReLU), bilinearly upsampled",
    needs_layer=True,
)
def _gradcam(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return _upsampled_cam(LayerGradCam(model, _layer(model, context)), relu_attributions=True)


@register(
    "guided_gradcam",
    label="GuidedGradCam",
    description="Captum GuidedGradCam (last conv)",
    needs_layer=True,
)
def _guided_gradcam(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return GuidedGradCam(model, _layer(model, context)).attribute


@register(
    "gradcam_plus_plus",
    label="GradCAM++",
    description="GradCAM++ (positive aggregation, as published) on the last conv layer, upsampled",
    needs_layer=True,
)
def _gradcam_plus_plus(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    method = LayerGradCamPlusPlus(model, _layer(model, context))
    return _upsampled_cam(method, aggregation="positive")


@register(
    "gradcam_plus_plus_signed",
    label="GradCAM++ signed",
    description="GradCAM++ with signed aggregation of the gradients (Khakzar et al. 2020)",
    needs_layer=True,
)
def _gradcam_plus_plus_signed(
    model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext
):
    method = LayerGradCamPlusPlus(model, _layer(model, context))
    return _upsampled_cam(method, aggregation="signed")


@register(
    "fullgrad", label="FullGrad", description="FullGrad (absolute aggregation, as published)"
)
def _fullgrad(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return partial(FullGrad(model).attribute, aggregation="absolute")


@register(
    "fullgrad_signed",
    label="FullGrad signed",
    description="FullGrad with signed aggregation of its terms (Khakzar et al. 2020)",
)
def _fullgrad_signed(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return partial(FullGrad(model).attribute, aggregation="signed")


@register("deeplift", label="DeepLift", description="Captum DeepLift, zero baseline")
def _deeplift(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    return DeepLift(model).attribute


@register("occlusion", label="Occlusion", description="Captum Occlusion, zero baseline")
def _occlusion(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    method = Occlusion(model)
    window, stride = settings.occlusion_window, settings.occlusion_stride

    def explain(inputs: Tensor, target: Any = None) -> Tensor:
        channels = inputs.shape[1]
        return method.attribute(
            inputs,
            target=target,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=0.0,
            perturbations_per_eval=64,
        )

    return explain


def _simple_masking(
    model: nn.Module,
    settings: BenchmarkSettings,
    context: BenchmarkContext,
    *,
    tv: bool = True,
    upsampling: bool = True,
) -> ExplainFunc:
    """SimpleMasking with the settings' recipe; the ablations switch TV or upsampling off."""
    return partial(
        SimpleMasking(model).attribute,
        baselines=DatasetFill(context.pool),
        preset=settings.preset,
        n_fill_samples=settings.n_fill_samples,
        steps=settings.steps,
        lr=settings.lr,
        downsample=settings.downsample if upsampling else 1,
        l1=settings.l1,
        tv=settings.tv if tv else 0.0,
        seed=settings.seed,
        max_examples_per_batch=_masking_rows(settings.masking_batch, settings.n_fill_samples),
        show_progress=settings.show_progress,
    )


def _masking_rows(masking_batch: int | None, n_fill_samples: int) -> int | None:
    """SimpleMasking's ``max_examples_per_batch`` (model rows per forward pass) for chunks
    of ``masking_batch`` examples: each example is evaluated on ``n_fill_samples`` fill
    samples (DatasetFill is random) per step."""
    return None if masking_batch is None else masking_batch * n_fill_samples


for _name, _label, _description, _options in (
    (
        "simple_masking",
        "SimpleMasking",
        "Gupta et al. simple masking (DatasetFill, TV, upsampling)",
        {},
    ),
    ("simple_masking_no_tv", "SimpleMasking -TV", "SimpleMasking ablation: tv = 0", {"tv": False}),
    (
        "simple_masking_no_upsampling",
        "SimpleMasking -up",
        "SimpleMasking ablation: downsample = 1 (no upsampling)",
        {"upsampling": False},
    ),
    (
        "simple_masking_no_tv_no_upsampling",
        "SimpleMasking -TV -up",
        "SimpleMasking ablation: tv = 0 and downsample = 1",
        {"tv": False, "upsampling": False},
    ),
):
    register(_name, label=_label, description=_description, needs_pool=True)(
        partial(_simple_masking, **_options)
    )


def _simple_masking_preset(
    preset: str, model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext
) -> ExplainFunc:
    """A SimpleMasking preset as it is (the settings' recipe knobs do not apply)."""
    return partial(
        SimpleMasking(model).attribute,
        baselines=DatasetFill(context.pool),
        preset=preset,
        seed=settings.seed,
        max_examples_per_batch=_masking_rows(
            settings.masking_batch, PRESETS[preset]["n_fill_samples"]
        ),
        show_progress=settings.show_progress,
    )


#: The presets that are benchmark methods of their own, with their own recipes.
PRESET_METHODS = {
    "simple_masking_area": (
        "area",
        "SimpleMasking area",
        "SimpleMasking, preset 'area' (area constraint 0.1, weight 3; 50 steps x 5)",
    ),
    "simple_masking_sharp": (
        "sharp",
        "SimpleMasking sharp",
        "SimpleMasking, preset 'sharp' (full resolution, area 0.01, weight 10; 20 steps x 5)",
    ),
}

for _name, (_preset, _label, _description) in PRESET_METHODS.items():
    register(_name, label=_label, description=_description, needs_pool=True)(
        partial(_simple_masking_preset, _preset)
    )


@register("random", label="Random", description="Uniform random map (the floor)", sanity=False)
def _random(model: nn.Module, settings: BenchmarkSettings, context: BenchmarkContext):
    generator = torch.Generator().manual_seed(settings.seed)

    def explain(inputs: Tensor, target: Any = None) -> Tensor:
        noise = torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype)
        return noise.to(inputs.device)

    return explain
