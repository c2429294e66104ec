r"""Explaining and scoring every (image, label) pair: the evaluation of Gupta et al. (2022).

Completeness and soundness are defined per label. The paper's evaluation computes a map
for *every* label of every image and reports, per image (paper.md, section 2):

- completeness at the predicted label :math:`\hat y = \arg\max_a p_a(x)`;
- soundness averaged over the other labels (divided by :math:`L - 1`);
- worst-case soundness over all labels; worst-case completeness over the wrong labels;
- soundness at the second most likely label;

and the averages of these over images are the headline numbers.
:func:`evaluate_all_labels` does all of it in two batched stages: the explanations of
all pairs (through ``explain_func``), then one batched pass of the curve engine for all
insertion curves (and deletion curves on request).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.explain import explain_signature
from captum_soundness._utils.forward import (
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
)
from captum_soundness._utils.maps import saliency_maps
from captum_soundness._utils.model_state import warn_if_training
from captum_soundness._utils.rng import SeedType
from captum_soundness._utils.validation import check_choice, check_labels, check_positive_int
from captum_soundness.fills import FillLike
from captum_soundness.labels import restrict_labels
from captum_soundness.masking import rank_positions
from captum_soundness.metrics._curves import (
    CurveJobs,
    batched_curves,
    check_curve_config,
    check_metric_constants,
    check_model_inputs,
    class_outputs,
    completeness_from_scores,
    soundness_from_scores,
    to_probabilities,
)

__all__ = ["DELETION_MODES", "HEADLINE_METRICS", "SoundnessReport", "evaluate_all_labels"]

#: Values of ``deletion`` in :func:`evaluate_all_labels`.
DELETION_MODES = ("none", "predicted", "all")

#: The headline per-image metrics of paper.md section 2, in report order, with
#: human-readable names.
HEADLINE_METRICS: dict[str, str] = {
    "completeness_at_prediction": "completeness at the prediction",
    "soundness_other_labels_mean": "soundness, mean over the other labels",
    "soundness_worst": "soundness, worst label",
    "completeness_worst_wrong_label": "completeness, worst wrong label",
    "soundness_second_label": "soundness at the second label",
}


@dataclass
class SoundnessReport:
    r"""Per-image x per-label results of :func:`evaluate_all_labels`.

    Label dimensions index :attr:`labels` (position ``j`` stands for label id
    ``labels[j]``); all tensors live on the CPU.

    Attributes:
        labels: The evaluated label ids (``L`` of them).
        fractions: ``(F,)`` the grid of kept fractions.
        probs: ``(N, L)`` clean probabilities :math:`p_a(x)` (softmax over the evaluated
            labels when a subset was given).
        insertion: ``(N, L, F)`` insertion curves.
        completeness: ``(N, L)`` completeness per pair.
        soundness: ``(N, L)`` soundness per pair.
        predicted: ``(N,)`` position in :attr:`labels` of the predicted label
            (:math:`\arg\max` of :attr:`probs`, ties to the lower position).
        second: ``(N,)`` position of the second most likely label.
        deletion: ``(N, L, F)`` deletion curves (only with ``deletion="all"``).
        deletion_at_prediction: ``(N, F)`` deletion curves at the predicted label (with
            ``deletion="predicted"`` or ``"all"``).
        settings: The settings of the run (constants, fill, grid...).
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
        summary = self.summary()
        per_image = self.per_image()
        lines = [
            f"SoundnessReport: {self.num_images} images x {self.num_labels} labels, "
            f"{self.fractions.numel()} fractions, fill {self.settings.get('fill', '?')}",
            "",
            "Headline (mean over images)",
        ]
        names = dict(HEADLINE_METRICS)
        names["insertion_score_at_prediction"] = "insertion score at the prediction"
        names["deletion_score_at_prediction"] = "deletion score at the prediction"
        width = max(len(v) for v in names.values())
        for key, value in summary.items():
            lines.append(f"  {names[key]:<{width}}  {value:7.4f}")

        lines += ["", "Per label (mean over images)"]
        header = (
            f"  {'label':>7}  {'prob':>7}  {'S':>7}  {'complete':>8}  {'sound':>7}  "
            f"{'predicted':>9}"
        )
        lines.append(header)
        counts = torch.bincount(self.predicted, minlength=self.num_labels)
        probs, score = self.probs.mean(0), self.insertion_score.mean(0)
        comp, sound = self.completeness.mean(0), self.soundness.mean(0)
        for j, label in enumerate(self.labels):
            lines.append(
                f"  {label:>7}  {probs[j]:7.4f}  {score[j]:7.4f}  {comp[j]:8.4f}  "
                f"{sound[j]:7.4f}  {int(counts[j]):>9}"
            )

        max_rows = 20
        lines += ["", "Per image"]
        short = [
            "pred",
            "p(pred)",
            "comp@pred",
            "sound oth",
            "sound min",
            "comp wrong",
            "sound 2nd",
        ]
        lines.append(f"  {'image':>5}  " + "  ".join(f"{h:>10}" for h in short))
        keys = list(HEADLINE_METRICS)
        pred_labels = self.predicted_labels
        rows = torch.arange(self.num_images)
        p_pred = self.probs[rows, self.predicted]
        for i in range(min(self.num_images, max_rows)):
            values = [f"{int(pred_labels[i]):>10}", f"{float(p_pred[i]):10.4f}"]
            values += [f"{float(per_image[k][i]):10.4f}" for k in keys]
            lines.append(f"  {i:>5}  " + "  ".join(values))
        if self.num_images > max_rows:
            lines.append(f"  ... {self.num_images - max_rows} more images")
        return "\n".join(lines)


def evaluate_all_labels(
    explain_func: Callable[..., Any],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    labels: Sequence[int] | Tensor | None = None,
    *,
    additional_forward_args: Any = None,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
    epsilon: float = 0.1,
    alpha: float = 1.0,
    beta: float = 0.1,
    explain_batch_size: int | None = None,
    deletion: str = "none",
) -> SoundnessReport:
    r"""Explains every (image, label) pair and scores completeness and soundness of each.

    For every image :math:`x` and every evaluated label :math:`a`, the map
    :math:`M_a = \mathrm{explain\_func}(x, a)` is computed, and then its insertion curve,
    insertion score :math:`S_a(x)`, the clean probability :math:`p_a(x)`, and

    .. math::

        \mathrm{completeness}_a(x) = \min\!\Big(1,
            \frac{\max(\varepsilon, S_a(x))}{\min(\alpha, p_a(x))}\Big), \qquad
        \mathrm{soundness}_a(x) = \min\!\Big(1, \frac{\max(\beta, p_a(x))}{S_a(x)}\Big)

    (soundness 1 when :math:`S_a(x) = 0`). :meth:`SoundnessReport.summary` gives the
    paper's headline averages.

    **Batching.** ``explain_func`` is called on batches of (image, label) pairs: the
    images repeated once per label (image-major: rows ``i * L .. i * L + L - 1`` are the
    ``L`` labels of image ``i``) with the matching targets, ``explain_batch_size`` pairs
    per call (all at once by default), so that methods like
    :class:`~captum_soundness.attr.SimpleMasking` optimise the maps of all labels
    together. All curves are then computed in one batched pass of
    ``max_examples_per_batch`` masked inputs per forward.

    **Label subsets.** ``labels=None`` evaluates every output label. A list restricts both
    the explained labels and the softmax to that subset (the model is wrapped with
    :func:`~captum_soundness.labels.restrict_labels` for the metrics), e.g.
    ``labels=PAPER_IMAGENET_LABELS`` for the paper's 6-label ImageNet setting.
    ``explain_func`` receives the *original* label ids, so it explains the full model's
    outputs; to have the attribution method itself see the restricted softmax (as the
    paper's masks do), build it on the restricted model and leave ``labels=None``::

        model6 = restrict_labels(model, PAPER_IMAGENET_LABELS)
        report = evaluate_all_labels(SimpleMasking(model6).attribute, model6, images)

    With ``apply_softmax=False`` the subset's outputs are used as they are (no
    renormalisation).

    Args:
        explain_func: ``explain_func(inputs, target) -> attributions``, e.g.
            ``IntegratedGradients(model).attribute`` or
            ``SimpleMasking(model).attribute``. ``target`` is a 1-D ``LongTensor`` of
            label ids, one per row of ``inputs``; it is passed by keyword
            (``target=...``) when ``explain_func`` has a parameter named ``target``
            (Captum's ``attribute`` methods, whose second positional parameter is often
            ``baselines``), by position otherwise. The attributions must have shape
            ``(B, C, *spatial)``, ``(B, 1, *spatial)`` or ``(B, *spatial)`` for ``B`` rows.
            With ``additional_forward_args``, ``explain_func`` also receives
            ``additional_forward_args=...`` (rows matched to its inputs).
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Tensor of shape ``(N, C, *spatial)``.
        labels: ``None`` (every output label) or distinct label ids (at least 2).
        additional_forward_args: Extra arguments for ``forward_func``; tensors with a
            leading dimension are indexed per example.
        fill: As in :func:`~captum_soundness.metrics.insertion_curve` (the same fill
            draws of an image serve all its labels and fractions).
        fractions: As in :func:`~captum_soundness.metrics.insertion_curve`.
        n_fill_samples: As in :func:`~captum_soundness.metrics.insertion_curve`.
        apply_softmax: As in :func:`~captum_soundness.metrics.insertion_curve`.
        reduce: As in :func:`~captum_soundness.metrics.insertion_curve`.
        max_examples_per_batch: As in :func:`~captum_soundness.metrics.insertion_curve`.
        seed: As in :func:`~captum_soundness.metrics.insertion_curve`.
        epsilon: :math:`\varepsilon \ge 0` of completeness (reference 0.1).
        alpha: :math:`\alpha > 0` of completeness (reference 1).
        beta: :math:`0 \le \beta \le 1` of soundness (reference 0.1).
        explain_batch_size: Maximum number of (image, label) pairs per ``explain_func``
            call (``None``: all ``N * L`` pairs in one call).
        deletion: ``"none"`` (default), ``"predicted"`` (deletion curves at the predicted
            label, ``N`` extra curves in the same batched pass) or ``"all"`` (every pair).

    Returns:
        A :class:`SoundnessReport`.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> from captum_soundness.metrics._scores import evaluate_all_labels
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x = torch.randn(4, 1, 4, 4)
        >>> report = evaluate_all_labels(Saliency(model).attribute, model, x, fractions=4)
        >>> report.completeness.shape, report.insertion.shape
        (torch.Size([4, 3]), torch.Size([4, 3, 4]))
        >>> sorted(report.summary())[:2]
        ['completeness_at_prediction', 'completeness_worst_wrong_label']
    """
    if not callable(explain_func):
        raise TypeError(f"`explain_func` must be callable, got {type(explain_func).__name__}.")
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_model_inputs(inputs)
    n = inputs.shape[0]
    device = inputs.device
    config = check_curve_config(
        inputs,
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    epsilon, alpha, beta = check_metric_constants(epsilon, alpha, beta)
    if explain_batch_size is not None:
        explain_batch_size = check_positive_int(explain_batch_size, "explain_batch_size")
    deletion = check_choice(deletion, "deletion", DELETION_MODES)
    args = check_forward_args(additional_forward_args, n)
    warn_if_training(forward_func, "evaluate_all_labels")

    # Clean probabilities, under the (possibly restricted) softmax: one pass over the
    # full model's outputs.
    outputs = class_outputs(
        forward_func, inputs, args, config.apply_softmax, config.max_examples_per_batch
    )
    if labels is None:
        model = forward_func
        label_ids = list(range(outputs.shape[1]))
        if len(label_ids) < 2:
            raise ValueError(
                "evaluate_all_labels needs at least 2 labels; `forward_func` returns "
                f"{len(label_ids)} output per example."
            )
    else:
        label_ids = check_labels(labels, outputs.shape[1], "labels")
        model = restrict_labels(forward_func, label_ids)
        outputs = outputs[:, label_ids]
    probs = to_probabilities(outputs, config.apply_softmax)
    num_labels = len(label_ids)
    order = torch.sort(probs, dim=1, descending=True, stable=True).indices
    predicted, second = order[:, 0], order[:, 1]

    # Explanations of every (image, label) pair, image-major.
    rows = n * num_labels
    row_image = torch.arange(n, device=device).repeat_interleave(num_labels)
    row_label = torch.arange(num_labels, device=device).repeat(n)
    row_target = torch.tensor(label_ids, dtype=torch.long, device=device)[row_label]
    maps = _explain(
        explain_func, inputs, args, row_image, row_target, config.reduce, explain_batch_size
    )

    # One batched pass over all curves.
    ranks = rank_positions(maps)
    all_rows = torch.arange(rows, device=device)
    map_index, image_index, target = [all_rows], [row_image], [row_label]
    is_deletion = [torch.zeros(rows, dtype=torch.bool, device=device)]
    if deletion == "predicted":
        images = torch.arange(n, device=device)
        pred = predicted.to(device)
        map_index.append(images * num_labels + pred)
        image_index.append(images)
        target.append(pred)
        is_deletion.append(torch.ones(n, dtype=torch.bool, device=device))
    elif deletion == "all":
        map_index.append(all_rows)
        image_index.append(row_image)
        target.append(row_label)
        is_deletion.append(torch.ones(rows, dtype=torch.bool, device=device))
    jobs = CurveJobs(
        map_index=torch.cat(map_index),
        image_index=torch.cat(image_index),
        target=torch.cat(target),
        deletion=torch.cat(is_deletion),
    )
    curves = batched_curves(model, inputs, args, ranks, jobs, config).cpu()
    n_frac = curves.shape[1]
    insertion = curves[:rows].view(n, num_labels, n_frac)
    deletion_all = deletion_pred = None
    if deletion == "predicted":
        deletion_pred = curves[rows:]
    elif deletion == "all":
        deletion_all = curves[rows:].view(n, num_labels, n_frac)
        deletion_pred = deletion_all[torch.arange(n), predicted.cpu()]

    probs = probs.cpu().to(insertion.dtype)
    score = insertion.mean(dim=-1)
    settings = config.as_dict()
    settings.update(
        epsilon=epsilon,
        alpha=alpha,
        beta=beta,
        label_subset=labels is not None,
        deletion=deletion,
    )
    return SoundnessReport(
        labels=label_ids,
        fractions=config.fractions.clone(),
        probs=probs,
        insertion=insertion,
        completeness=completeness_from_scores(score, probs, epsilon, alpha),
        soundness=soundness_from_scores(score, probs, beta),
        predicted=predicted.cpu(),
        second=second.cpu(),
        deletion=deletion_all,
        deletion_at_prediction=deletion_pred,
        settings=settings,
    )


def _explain(
    explain_func: Callable[..., Any],
    inputs: Tensor,
    args: tuple[Any, ...] | None,
    row_image: Tensor,
    row_target: Tensor,
    reduce: str,
    batch_size: int | None,
) -> Tensor:
    """Calls ``explain_func`` on chunks of (image, label) rows; returns ``(R, *spatial)`` maps."""
    by_keyword, takes_args = explain_signature(explain_func)
    if args is not None and not takes_args:
        raise TypeError(
            "`explain_func` does not accept `additional_forward_args`, but "
            "additional_forward_args were given (it is called as explain_func(inputs, "
            "target=..., additional_forward_args=...))."
        )
    total = row_image.shape[0]
    maps = []
    for chunk in chunk_slices(total, batch_size):
        image = row_image[chunk]
        x = inputs.index_select(0, image)
        target = row_target[chunk]
        kwargs = {}
        if args is not None:
            kwargs["additional_forward_args"] = expand_additional_forward_args(args, image)
        if by_keyword:
            attributions = explain_func(x, target=target, **kwargs)
        else:
            attributions = explain_func(x, target, **kwargs)
        what = (
            f"The attributions returned by `explain_func` (for a batch of {x.shape[0]} "
            "(image, label) pairs)"
        )
        maps.append(saliency_maps(attributions, x, reduce, what=what))
    return maps[0] if len(maps) == 1 else torch.cat(maps, dim=0)
