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

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.explain import call_explain, explain_signature
from captum_soundness._utils.forward import (
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
)
from captum_soundness._utils.maps import saliency_maps
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType
from captum_soundness._utils.validation import check_choice, check_labels, check_positive_int
from captum_soundness.fills import FillLike
from captum_soundness.labels import restrict_labels
from captum_soundness.masking import rank_positions
from captum_soundness.metrics._config import CurveConfig, check_curve_config, check_model_inputs
from captum_soundness.metrics._engine import (
    CurveJobs,
    batched_curves,
    class_outputs,
    to_probabilities,
)
from captum_soundness.metrics._report import HEADLINE_METRICS, SoundnessReport
from captum_soundness.metrics._scores import (
    check_metric_constants,
    completeness_from_scores,
    soundness_from_scores,
)

__all__ = ["DELETION_MODES", "HEADLINE_METRICS", "SoundnessReport", "evaluate_all_labels"]

#: Values of ``deletion`` in :func:`evaluate_all_labels`.
DELETION_MODES = ("none", "predicted", "all")


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
        >>> from captum_soundness.metrics import evaluate_all_labels
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
    args = check_forward_args(additional_forward_args, inputs.shape[0])
    warn_if_training(forward_func, "evaluate_all_labels")

    with preserved_model(forward_func, freeze_parameters=False, devices=[inputs.device]):
        model, label_ids, probs = _clean_probabilities(forward_func, inputs, args, labels, config)
        rows = _PairRows(inputs.shape[0], label_ids, inputs.device)
        maps = _explain(
            explain_func, inputs, args, rows.image, rows.target, config.reduce, explain_batch_size
        )
        predicted = torch.sort(probs, dim=1, descending=True, stable=True).indices[:, :2]
        jobs = rows.jobs(predicted[:, 0], deletion)
        curves = batched_curves(model, inputs, args, rank_positions(maps), jobs, config).cpu()
    settings = config.as_dict()
    settings.update(
        epsilon=epsilon,
        alpha=alpha,
        beta=beta,
        label_subset=labels is not None,
        deletion=deletion,
    )
    return _report(label_ids, probs, predicted, curves, deletion, config, settings)


def _clean_probabilities(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    args: tuple[Any, ...] | None,
    labels: Sequence[int] | Tensor | None,
    config: CurveConfig,
) -> tuple[Callable[..., Any], list[int], Tensor]:
    """The model to evaluate, the label ids and the clean probabilities ``(N, L)``.

    One pass over the full model's outputs; with a label subset, the model is restricted
    to it and the softmax is taken over the subset.
    """
    outputs = class_outputs(
        forward_func, inputs, args, config.apply_softmax, config.max_examples_per_batch
    )
    if labels is None:
        if outputs.shape[1] < 2:
            raise ValueError(
                "evaluate_all_labels needs at least 2 labels; `forward_func` returns "
                f"{outputs.shape[1]} output per example."
            )
        return (
            forward_func,
            list(range(outputs.shape[1])),
            to_probabilities(outputs, config.apply_softmax),
        )
    label_ids = check_labels(labels, outputs.shape[1], "labels")
    model = restrict_labels(forward_func, label_ids)
    return model, label_ids, to_probabilities(outputs[:, label_ids], config.apply_softmax)


class _PairRows:
    """The (image, label) pairs of an evaluation, image-major.

    Rows ``i * L .. i * L + L - 1`` are the ``L`` labels of image ``i``; ``image``,
    ``label`` (position in the label list) and ``target`` (label id) give one value per
    row.
    """

    def __init__(self, n: int, label_ids: list[int], device: torch.device):
        self.n, self.num_labels, self.device = n, len(label_ids), device
        self.count = n * self.num_labels
        self.image = torch.arange(n, device=device).repeat_interleave(self.num_labels)
        self.label = torch.arange(self.num_labels, device=device).repeat(n)
        self.target = torch.tensor(label_ids, dtype=torch.long, device=device)[self.label]

    def jobs(self, predicted: Tensor, deletion: str) -> CurveJobs:
        """An insertion curve per pair, then the deletion curves asked for by ``deletion``."""
        device, rows = self.device, self.count
        all_rows = torch.arange(rows, device=device)
        map_index, image_index, target = [all_rows], [self.image], [self.label]
        is_deletion = [torch.zeros(rows, dtype=torch.bool, device=device)]
        if deletion == "predicted":
            images = torch.arange(self.n, device=device)
            pred = predicted.to(device)
            map_index.append(images * self.num_labels + pred)
            image_index.append(images)
            target.append(pred)
            is_deletion.append(torch.ones(self.n, dtype=torch.bool, device=device))
        elif deletion == "all":
            map_index.append(all_rows)
            image_index.append(self.image)
            target.append(self.label)
            is_deletion.append(torch.ones(rows, dtype=torch.bool, device=device))
        return CurveJobs(
            map_index=torch.cat(map_index),
            image_index=torch.cat(image_index),
            target=torch.cat(target),
            deletion=torch.cat(is_deletion),
        )


def _report(
    label_ids: list[int],
    probs: Tensor,
    predicted: Tensor,
    curves: Tensor,
    deletion: str,
    config: CurveConfig,
    settings: dict[str, Any],
) -> SoundnessReport:
    """Splits the batched curves into insertion and deletion curves and scores them.

    ``predicted`` holds the positions of the two most likely labels per image.
    """
    n, num_labels = probs.shape
    rows, n_frac = n * num_labels, curves.shape[1]
    predicted = predicted.cpu()
    insertion = curves[:rows].view(n, num_labels, n_frac)
    deletion_all = deletion_pred = None
    if deletion == "predicted":
        deletion_pred = curves[rows:]
    elif deletion == "all":
        deletion_all = curves[rows:].view(n, num_labels, n_frac)
        deletion_pred = deletion_all[torch.arange(n), predicted[:, 0]]
    probs = probs.cpu().to(insertion.dtype)
    score = insertion.mean(dim=-1)
    return SoundnessReport(
        labels=label_ids,
        fractions=config.fractions.clone(),
        probs=probs,
        insertion=insertion,
        completeness=completeness_from_scores(
            score, probs, settings["epsilon"], settings["alpha"]
        ),
        soundness=soundness_from_scores(score, probs, settings["beta"]),
        predicted=predicted[:, 0].contiguous(),
        second=predicted[:, 1].contiguous(),
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
    if args is not None and not explain_signature(explain_func)[1]:
        raise TypeError(
            "`explain_func` does not accept `additional_forward_args`, but "
            "additional_forward_args were given (it is called as explain_func(inputs, "
            "target=..., additional_forward_args=...))."
        )
    maps = []
    for chunk in chunk_slices(row_image.shape[0], batch_size):
        image = row_image[chunk]
        x = inputs.index_select(0, image)
        kwargs = {}
        if args is not None:
            kwargs["additional_forward_args"] = expand_additional_forward_args(args, image)
        attributions = call_explain(explain_func, x, row_target[chunk], **kwargs)
        what = (
            f"The attributions returned by `explain_func` (for a batch of {x.shape[0]} "
            "(image, label) pairs)"
        )
        maps.append(saliency_maps(attributions, x, reduce, what, examples=image))
    return maps[0] if len(maps) == 1 else torch.cat(maps, dim=0)
