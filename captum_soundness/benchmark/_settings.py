"""Benchmark settings: the knobs, the presets, the one place they are validated."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.rng import SEED_SPACE
from captum_soundness._utils.validation import check_max_examples_per_batch, check_positive_int
from captum_soundness.attr import PRESETS
from captum_soundness.benchmark import _methods  # noqa: F401  (fills the registry)
from captum_soundness.benchmark._registry import METHODS
from captum_soundness.fills import BlurFill, ConstantFill, DatasetFill, Fill, MeanFill, NoiseFill

__all__ = [
    "DEFAULT_SETTINGS",
    "EVAL_POOL_SIZE",
    "FILL_NAMES",
    "FULL_SETTINGS",
    "QUICK_SETTINGS",
    "BenchmarkSettings",
    "check_device",
    "check_method_settings",
    "check_settings",
    "parse_fill",
    "resolve_methods",
]

#: Names accepted by ``--fill`` besides a number (a constant fill).
FILL_NAMES = ("zero", "mean", "blur", "noise", "dataset")

#: Training digits in the pool of the ``"dataset"`` evaluation fill (taken from the
#: training digits that SimpleMasking's pool leaves out).
EVAL_POOL_SIZE = 1000

#: Settings that must be positive integers.
_POSITIVE_INTS = (
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
)


@dataclass(frozen=True)
class BenchmarkSettings:
    """All knobs of a benchmark run (see :data:`DEFAULT_SETTINGS` for the defaults).

    Attributes:
        images: Number of held-out images (balanced over the digits, chosen by ``seed``).
        methods: Method names (keys of :data:`METHODS`), in report order.
        preset: SimpleMasking's recipe (:data:`~captum_soundness.attr.PRESETS`):
            ``"fast"`` by default, ``"paper"`` with ``--full``. ``steps``,
            ``n_fill_samples``, ``lr``, ``l1``, ``tv`` and ``downsample`` below are given
            to SimpleMasking explicitly and so override the preset's values (the
            presets set them to the preset's).
        steps: Adam steps of SimpleMasking (paper 2000, fast 5).
        n_fill_samples: Fill samples per example and step of SimpleMasking (paper 10,
            fast 5).
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
    preset: str = "fast"
    steps: int = PRESETS["fast"]["steps"]
    n_fill_samples: int = PRESETS["fast"]["n_fill_samples"]
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
    masking_batch: int | None = 20
    curve_batch: int | None = 128
    explain_batch: int | None = None
    sanity: bool = True
    sanity_images: int = 5
    show_progress: bool = True

    def replace(self, **changes: Any) -> BenchmarkSettings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (``methods`` as a list)."""
        out = dataclasses.asdict(self)
        out["methods"] = list(self.methods)
        return out


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

#: ``--full``: the paper's SimpleMasking recipe (preset ``"paper"``: 2000 steps, 10 fill
#: samples; a pool of 1000 training images) on 100 images (10 per digit).
FULL_SETTINGS = DEFAULT_SETTINGS.replace(
    images=100,
    preset="paper",
    steps=PRESETS["paper"]["steps"],
    n_fill_samples=PRESETS["paper"]["n_fill_samples"],
    smoothgrad_samples=50,
    sanity_images=20,
    explain_batch=200,
)


def resolve_methods(names: Iterable[str]) -> tuple[str, ...]:
    """Method names from their command-line spelling, in order, each once.

    ``"all"`` adds every registered method (in report order) after the names given
    beside it. Unknown names are kept (:func:`check_settings` reports them).

    Examples::

        >>> from captum_soundness.benchmark._settings import resolve_methods
        >>> resolve_methods(["random", "saliency", "random"])
        ('random', 'saliency')
    """
    names = [name for name in names if name != "all"] + (list(METHODS) if "all" in names else [])
    return tuple(dict.fromkeys(names))


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

        >>> from captum_soundness.benchmark import parse_fill
        >>> parse_fill("zero"), parse_fill("0.5")
        (ConstantFill(value=0.0), ConstantFill(value=0.5))
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return ConstantFill(float(spec))
    text = str(spec).strip().lower()
    named = {
        "zero": lambda: ConstantFill(0.0),
        "mean": MeanFill,
        "blur": lambda: BlurFill(sigma=5.0),
        "noise": lambda: NoiseFill("uniform", low=0.0, high=1.0),
    }
    if text in named:
        return named[text]()
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


def check_device(spec: str) -> torch.device:
    """The torch device ``spec`` names, if it is available here.

    Raises:
        ValueError: An unknown device string, or a device this machine lacks.
    """
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise ValueError(f"Invalid device {spec!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {spec!r} requested but CUDA is not available.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"Device {spec!r} requested but only {torch.cuda.device_count()} "
            "CUDA device(s) are available."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {spec!r} requested but MPS is not available.")
    return device


def _check_methods(methods: tuple[str, ...]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(
            f"`methods`: unknown method name(s): {', '.join(unknown)}. "
            f"Valid names: {', '.join(METHODS)}."
        )
    if not methods:
        raise ValueError("`methods`: no methods selected.")
    if len(set(methods)) != len(methods):
        raise ValueError(f"`methods` are listed more than once: {', '.join(methods)}.")


def check_method_settings(settings: BenchmarkSettings) -> BenchmarkSettings:
    """Validates the settings that apply to any model and data set (methods, method
    knobs, evaluation, seed, device): :func:`check_settings` without the limits of the
    bundled digits.

    Raises:
        ValueError: A setting out of range, naming it.
        TypeError: A setting of the wrong type, naming it.
    """
    _check_methods(settings.methods)
    for name in _POSITIVE_INTS:
        check_positive_int(getattr(settings, name), name)
    for name in ("masking_batch", "curve_batch", "explain_batch"):
        check_max_examples_per_batch(getattr(settings, name), name)
    if not isinstance(settings.seed, int) or isinstance(settings.seed, bool):
        raise TypeError(f"`seed` must be an int, got {settings.seed!r}.")
    if not 0 <= settings.seed < SEED_SPACE - 16:
        raise ValueError(f"`seed` must lie in [0, 2**62 - 16), got {settings.seed}.")
    for name in ("lr", "smoothgrad_stdev"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"`{name}` must be positive, got {getattr(settings, name)!r}.")
    for name in ("l1", "tv"):
        if not getattr(settings, name) >= 0:
            raise ValueError(f"`{name}` must be non-negative, got {getattr(settings, name)!r}.")
    try:
        parse_fill(settings.fill, torch.zeros(1, 1, 28, 28))
    except ValueError as error:
        raise ValueError(f"`fill`: {error}") from None
    check_device(settings.device)
    return settings


def check_settings(settings: BenchmarkSettings) -> BenchmarkSettings:
    """Validates benchmark settings before any work (the one place they are checked).

    Returns:
        ``settings`` unchanged.

    Raises:
        ValueError: A setting out of range, naming it.
        TypeError: A setting of the wrong type, naming it.
    """
    check_method_settings(settings)
    if settings.preset not in PRESETS:
        raise ValueError(
            f"`preset` must be one of {', '.join(map(repr, PRESETS))}, got {settings.preset!r}."
        )
    if settings.images > 1000:
        raise ValueError(
            f"`images` must be at most 1000 (the held-out set), got {settings.images}."
        )
    if settings.pool_size > 3000:
        raise ValueError(
            f"`pool_size` must be at most 3000 (of the 4000 training digits; 1000 are kept "
            f"for the 'dataset' evaluation fill), got {settings.pool_size}."
        )
    return settings
