"""Result classes of the sanity checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.validation import check_choice

__all__ = ["FillSensitivityReport", "ModelRandomizationResult"]


def _nanmean(t: Tensor) -> float:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else math.nan


def _tolist(t: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else v for v in t.double().tolist()]


@dataclass
class ModelRandomizationResult:
    r"""Result of :func:`model_randomization`.

    Attributes:
        mode: ``"cascading"`` or ``"independent"``.
        layers: Names of the randomised layers, in randomisation order (output first).
            In cascading mode, entry ``j`` is the model with layers ``0 .. j`` all
            randomised; in independent mode, only layer ``j``.
        similarity: Measure -> layer name -> ``(N,)`` tensor of similarities between the
            original map and the map after randomisation (float64, CPU; NaN where a
            measure is undefined, e.g. a rank correlation of a constant map).
        targets: ``(N,)`` the explained labels, or ``(N, k)`` the explained index tuples
            into a multi-dimensional output.
        original_maps: ``(N, *map_spatial)`` maps of the trained model (with
            ``return_maps=True``).
        randomized_maps: Layer name -> maps after that randomisation step (with
            ``return_maps=True``).
        settings: Mode, seed, reduction and the re-initialisation scheme.
    """

    mode: str
    layers: list[str]
    similarity: dict[str, dict[str, Tensor]]
    targets: Tensor
    original_maps: Tensor | None = None
    randomized_maps: dict[str, Tensor] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        return list(self.similarity)

    def scores(self, measure: str) -> Tensor:
        """``(num_layers, N)``: the similarities of one measure, rows in :attr:`layers` order."""
        check_choice(measure, "measure", self.measures)
        return torch.stack([self.similarity[measure][layer] for layer in self.layers])

    def summary(self) -> dict[str, dict[str, float]]:
        """Measure -> layer -> mean similarity over examples (NaNs ignored)."""
        return {
            m: {layer: _nanmean(v) for layer, v in per_layer.items()}
            for m, per_layer in self.similarity.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (per-example lists and means)."""
        return {
            "mode": self.mode,
            "layers": list(self.layers),
            "targets": self.targets.tolist(),
            "similarity": {
                m: {layer: _tolist(v) for layer, v in per_layer.items()}
                for m, per_layer in self.similarity.items()
            },
            "mean": self.summary(),
            "settings": dict(self.settings),
        }

    def __str__(self) -> str:
        summary = self.summary()
        width = max([len("layer")] + [len(x) for x in self.layers])
        lines = [
            f"Model randomisation ({self.mode}), {int(self.targets.numel())} examples: mean "
            "similarity to the original maps",
            f"  {'layer':<{width}}  " + "  ".join(f"{m:>12}" for m in self.measures),
        ]
        for layer in self.layers:
            values = "  ".join(f"{summary[m][layer]:12.4f}" for m in self.measures)
            lines.append(f"  {layer:<{width}}  {values}")
        return "\n".join(lines)


@dataclass
class FillSensitivityReport:
    r"""Result of :func:`fill_sensitivity`.

    Attributes:
        methods: Method names (keys of ``explain_funcs``).
        fills: Fill names (keys of ``fills``).
        metrics: Method -> fill -> metric name -> ``(N,)`` tensor.
        fill_dependent: Method -> whether its maps were recomputed per fill (it takes a
            ``fill`` keyword).
        map_correlation: Method -> ``(F, F, N)`` Spearman rank correlation between its
            maps (at the predicted label) under fill ``i`` and fill ``j``, or ``None`` for
            fill-independent methods (identical maps, correlation 1 by construction).
        rank_by: The metric that ranks the methods.
        method_scores: ``(F, M)`` mean of ``rank_by`` over images, per fill and method.
        ranking_spearman: ``(F, F)`` Spearman correlation between the method scores under
            two fills (NaN with fewer than two methods or constant scores).
        ranking_kendall: ``(F, F)`` Kendall's :math:`\tau_b` between them.
        settings: Evaluation mode and metric settings.
    """

    methods: list[str]
    fills: list[str]
    metrics: dict[str, dict[str, dict[str, Tensor]]]
    fill_dependent: dict[str, bool]
    map_correlation: dict[str, Tensor | None]
    rank_by: str
    method_scores: Tensor
    ranking_spearman: Tensor
    ranking_kendall: Tensor
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics[self.methods[0]][self.fills[0]])

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Method -> fill -> metric -> mean over images."""
        return {
            m: {f: {k: float(v.mean()) for k, v in per.items()} for f, per in by_fill.items()}
            for m, by_fill in self.metrics.items()
        }

    def rankings(self) -> dict[str, list[str]]:
        """Fill -> method names, best first (by :attr:`rank_by`)."""
        descending = not self.rank_by.startswith("deletion")
        out = {}
        for i, f in enumerate(self.fills):
            order = torch.sort(
                self.method_scores[i], descending=descending, stable=True
            ).indices.tolist()
            out[f] = [self.methods[j] for j in order]
        return out

    @property
    def ranking_changes(self) -> bool:
        """Whether the order of the methods differs between any two fills."""
        orders = list(self.rankings().values())
        return any(o != orders[0] for o in orders[1:])

    def mean_map_correlation(self) -> dict[str, list[list[float | None]] | None]:
        """Method -> ``(F, F)`` mean (over images) map rank correlation, or ``None``."""
        out: dict[str, list[list[float | None]] | None] = {}
        for m, corr in self.map_correlation.items():
            if corr is None:
                out[m] = None
            else:
                out[m] = [
                    [_nanmean(corr[i, j]) for j in range(corr.shape[1])]
                    for i in range(corr.shape[0])
                ]
        return out

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict."""
        return {
            "methods": list(self.methods),
            "fills": list(self.fills),
            "metrics": {
                m: {f: {k: _tolist(v) for k, v in per.items()} for f, per in by_fill.items()}
                for m, by_fill in self.metrics.items()
            },
            "mean": self.summary(),
            "fill_dependent": dict(self.fill_dependent),
            "map_correlation": self.mean_map_correlation(),
            "rank_by": self.rank_by,
            "rankings": self.rankings(),
            "ranking_changes": self.ranking_changes,
            "ranking_spearman": [_tolist(r) for r in self.ranking_spearman],
            "ranking_kendall": [_tolist(r) for r in self.ranking_kendall],
            "settings": dict(self.settings),
        }

    def __str__(self) -> str:
        summary = self.summary()
        mw = max([len("method")] + [len(m) for m in self.methods])
        fw = max([10] + [len(f) for f in self.fills])
        lines = [
            f"Fill sensitivity: {len(self.methods)} methods x {len(self.fills)} fills "
            f"({self.settings.get('evaluation', '')} evaluation), mean over images",
        ]
        for metric in self.metric_names:
            lines += ["", metric]
            lines.append(f"  {'method':<{mw}}  " + "  ".join(f"{f:>{fw}}" for f in self.fills))
            for m in self.methods:
                vals = "  ".join(f"{summary[m][f][metric]:{fw}.4f}" for f in self.fills)
                lines.append(f"  {m:<{mw}}  {vals}")
        lines += ["", "Map rank correlation across fills (mean Spearman, predicted label)"]
        for m, corr in self.mean_map_correlation().items():
            if corr is None:
                lines.append(f"  {m}: maps do not depend on the fill")
                continue
            lines.append(f"  {m}:")
            lines.append(f"    {'':<{fw}}  " + "  ".join(f"{f:>{fw}}" for f in self.fills))
            for f, row in zip(self.fills, corr):
                vals = "  ".join(
                    f"{'nan':>{fw}}" if v is None or math.isnan(v) else f"{v:{fw}.4f}" for v in row
                )
                lines.append(f"    {f:<{fw}}  {vals}")
        lines += ["", f"Method ranking by {self.rank_by} (best first)"]
        for f, order in self.rankings().items():
            lines.append(f"  {f:<{fw}}  " + " > ".join(order))
        lines.append(f"  ranking changes across fills: {'yes' if self.ranking_changes else 'no'}")
        return "\n".join(lines)
