r"""The result of the all-label evaluation, and the names of its headline metrics.

:class:`SoundnessReport` holds the per-image x per-label results of
:func:`~captum_soundness.metrics.evaluate_all_labels` and derives the headline metrics
of paper.md (section 2). Their names are defined here once: :data:`HEADLINE_METRICS`,
:data:`SUMMARY_METRICS` (every key of :meth:`SoundnessReport.summary`) and
:data:`SUMMARY_RENAMES` (the short names of the benchmark tables).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["HEADLINE_METRICS", "SUMMARY_METRICS", "SUMMARY_RENAMES", "SoundnessReport"]

#: The headline per-image metrics of paper.md section 2, in report order, with
#: human-readable names.
HEADLINE_METRICS: dict[str, str] = {
    "completeness_at_prediction": "completeness at the prediction",
    "soundness_other_labels_mean": "soundness, mean over the other labels",
    "soundness_worst": "soundness, worst label",
    "completeness_worst_wrong_label": "completeness, worst wrong label",
    "soundness_second_label": "soundness at the second label",
}

#: Every key of :meth:`SoundnessReport.summary` (and ``per_image``), in report order,
#: with human-readable names: :data:`HEADLINE_METRICS`, then the insertion score at the
#: prediction and, when deletion curves were computed, the deletion score.
SUMMARY_METRICS: dict[str, str] = {
    **HEADLINE_METRICS,
    "insertion_score_at_prediction": "insertion score at the prediction",
    "deletion_score_at_prediction": "deletion score at the prediction",
}

#: Short names of summary keys in the benchmark's tables and files (the mean of a curve
#: over the fraction grid is its AUC); other keys keep their names.
SUMMARY_RENAMES: dict[str, str] = {
    "insertion_score_at_prediction": "insertion_auc",
    "deletion_score_at_prediction": "deletion_auc",
}


@dataclass
class SoundnessReport:
    r"""Per-image x per-label results of :func:`evaluate_all_labels`.

    Label dimensions index :attr:`labels` (position ``j`` stands for label id
    ``labels[j]``); all tensors live on the CPU.

    Attributes:
        labels: The evaluated label ids (``L`` of them).
        fractions: ``(F,)`` the grid of kept fractions.
        probs: ``(N, L)`` clean probabilities :math:`p_a(x)` under the ``head``
            (``"softmax"``: over the evaluated labels when a subset was given;
            ``"sigmoid"``: per label, not summing to 1; ``"binary"``: labels 0 and 1).
        insertion: ``(N, L, F)`` insertion curves.
        completeness: ``(N, L)`` completeness per pair.
        soundness: ``(N, L)`` soundness per pair.
        predicted: ``(N,)`` position in :attr:`labels` of the predicted label
            (:math:`\arg\max` of :attr:`probs`, ties to the lower position).
        second: ``(N,)`` position of the second most likely label.
        deletion: ``(N, L, F)`` deletion curves (only with ``deletion="all"``).
        deletion_at_prediction: ``(N, F)`` deletion curves at the predicted label (with
            ``deletion="predicted"`` or ``"all"``).
        settings: The settings of the run (constants, ``baselines`` (also under the
            0.1 key ``fill``), ``head``, grid...).
    """

    labels: list[int]
    fractions: Tensor
    probs: Tensor
    insertion: Tensor
    completeness: Tensor
    soundness: Tensor
    predicted: Tensor
    second: Tensor
    deletion: Tensor | None = None
    deletion_at_prediction: Tensor | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    # ---- derived quantities ------------------------------------------------------------

    @property
    def num_images(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def predicted_labels(self) -> Tensor:
        """``(N,)`` label ids of the predictions."""
        return torch.tensor(self.labels, dtype=torch.long)[self.predicted]

    @property
    def insertion_score(self) -> Tensor:
        """``(N, L)`` insertion scores :math:`S_a(x)` (means of the insertion curves)."""
        return self.insertion.mean(dim=-1)

    def per_image(self) -> dict[str, Tensor]:
        """The headline metrics per image: a dict of ``(N,)`` tensors.

        Keys: ``completeness_at_prediction``, ``soundness_other_labels_mean`` (sum over
        the labels other than the prediction divided by ``L - 1``), ``soundness_worst``
        (minimum over all labels), ``completeness_worst_wrong_label`` (minimum over the
        labels other than the prediction), ``soundness_second_label``,
        ``insertion_score_at_prediction`` and, when deletion curves were computed,
        ``deletion_score_at_prediction`` (mean of the deletion curve).
        """
        n, num = self.num_images, self.num_labels
        rows = torch.arange(n)
        pred = self.predicted
        at_pred = torch.zeros(n, num, dtype=torch.bool)
        at_pred[rows, pred] = True
        comp, sound = self.completeness, self.soundness
        other_sum = sound.masked_fill(at_pred, 0.0).sum(dim=1)
        out = {
            "completeness_at_prediction": comp[rows, pred],
            "soundness_other_labels_mean": other_sum / (num - 1),
            "soundness_worst": sound.min(dim=1).values,
            "completeness_worst_wrong_label": comp.masked_fill(at_pred, math.inf)
            .min(dim=1)
            .values,
            "soundness_second_label": sound[rows, self.second],
            "insertion_score_at_prediction": self.insertion_score[rows, pred],
        }
        if self.deletion_at_prediction is not None:
            out["deletion_score_at_prediction"] = self.deletion_at_prediction.mean(dim=-1)
        return out

    def summary(self) -> dict[str, float]:
        """Headline averages over images (paper.md, section 2).

        Returns:
            A dict of floats, in order: ``completeness_at_prediction``,
            ``soundness_other_labels_mean``, ``soundness_worst``,
            ``completeness_worst_wrong_label``, ``soundness_second_label``,
            ``insertion_score_at_prediction`` (insertion AUC at the prediction) and,
            when computed, ``deletion_score_at_prediction``.
        """
        return {key: float(value.mean()) for key, value in self.per_image().items()}

    # ---- conversion --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of lists, floats and ints (JSON-serialisable)."""
        out: dict[str, Any] = {
            "num_images": self.num_images,
            "num_labels": self.num_labels,
            "labels": list(self.labels),
            "fractions": self.fractions.tolist(),
            "predicted": self.predicted.tolist(),
            "predicted_labels": self.predicted_labels.tolist(),
            "second": self.second.tolist(),
            "probs": self.probs.tolist(),
            "insertion": self.insertion.tolist(),
            "completeness": self.completeness.tolist(),
            "soundness": self.soundness.tolist(),
            "deletion": None if self.deletion is None else self.deletion.tolist(),
            "deletion_at_prediction": (
                None
                if self.deletion_at_prediction is None
                else self.deletion_at_prediction.tolist()
            ),
            "summary": self.summary(),
            "settings": dict(self.settings),
        }
        return out

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """Serialises :meth:`to_dict` to JSON; also writes it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    # ---- display -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"SoundnessReport({self.num_images} images x {self.num_labels} labels, "
            f"{self.fractions.numel()} fractions)"
        )

    def __str__(self) -> str:
        header = (
            f"SoundnessReport: {self.num_images} images x {self.num_labels} labels, "
            f"{self.fractions.numel()} fractions, fill {self.settings.get('fill', '?')}"
        )
        lines = [header, "", *self._headline_lines(), "", *self._label_lines()]
        return "\n".join([*lines, "", *self._image_lines()])

    def _headline_lines(self) -> list[str]:
        width = max(len(v) for v in SUMMARY_METRICS.values())
        lines = ["Headline (mean over images)"]
        for key, value in self.summary().items():
            lines.append(f"  {SUMMARY_METRICS[key]:<{width}}  {value:7.4f}")
        return lines

    def _label_lines(self) -> list[str]:
        header = (
            f"  {'label':>7}  {'prob':>7}  {'S':>7}  {'complete':>8}  {'sound':>7}  "
            f"{'predicted':>9}"
        )
        lines = ["Per label (mean over images)", header]
        counts = torch.bincount(self.predicted, minlength=self.num_labels)
        probs, score = self.probs.mean(0), self.insertion_score.mean(0)
        comp, sound = self.completeness.mean(0), self.soundness.mean(0)
        for j, label in enumerate(self.labels):
            lines.append(
                f"  {label:>7}  {probs[j]:7.4f}  {score[j]:7.4f}  {comp[j]:8.4f}  "
                f"{sound[j]:7.4f}  {int(counts[j]):>9}"
            )
        return lines

    def _image_lines(self, max_rows: int = 20) -> list[str]:
        short = ["pred", "p(pred)", "comp@pred", "sound oth", "sound min", "comp wrong"]
        short.append("sound 2nd")
        lines = ["Per image", f"  {'image':>5}  " + "  ".join(f"{h:>10}" for h in short)]
        per_image = self.per_image()
        pred_labels = self.predicted_labels
        p_pred = self.probs[torch.arange(self.num_images), self.predicted]
        for i in range(min(self.num_images, max_rows)):
            values = [f"{int(pred_labels[i]):>10}", f"{float(p_pred[i]):10.4f}"]
            values += [f"{float(per_image[k][i]):10.4f}" for k in HEADLINE_METRICS]
            lines.append(f"  {i:>5}  " + "  ".join(values))
        if self.num_images > max_rows:
            lines.append(f"  ... {self.num_images - max_rows} more images")
        return lines
