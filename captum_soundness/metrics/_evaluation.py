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

from captum_soundness._utils.baselines import UNSET as FILL_UNSET
from captum_soundness._utils.baselines import resolve_baselines
from captum_soundness._utils.explain import (
    call_explain,
    check_explain_kwargs,
    expand_explain_kwargs,
    explain_signature,
)
from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.forward import (
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
)
from captum_soundness._utils.heads import UNSET as SOFTMAX_UNSET
from captum_soundness._utils.heads import resolve_head
from captum_soundness._utils.inputs import format_like
from captum_soundness._utils.maps import check_attribution_rows
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType
from captum_soundness._utils.validation import check_choice, check_labels, check_positive_int
from captum_soundness.masking import rank_positions
from captum_soundness.metrics._config import (
    DEFAULT_MAX_EXAMPLES_PER_BATCH,
    CurveConfig,
    check_curve_config,
    format_model_inputs,
)
from captum_soundness.metrics._engine import CurveJobs, batched_curves
from captum_soundness.metrics._outputs import class_outputs, to_probabilities
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
    inputs: Tensor | tuple[Tensor, ...],
    labels: Sequence[int] | Tensor | None = None,
    *,
    additional_forward_args: Any = None,
    explain_kwargs: dict[str, Any] | None = None,
    baselines: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    head: str | None = None,
    reduce: str = "sum",
    max_examples_per_batch: int | None = DEFAULT_MAX_EXAMPLES_PER_BATCH,
    seed: SeedType = None,
    epsilon: float = 0.1,
    alpha: float = 1.0,
    beta: float = 0.1,
    explain_batch_size: int | None = None,
    deletion: str = "none",
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> SoundnessReport:
    r"""Explains every (image, label) pair and scores completeness and soundness of each.

    For every example :math:`x` and every evaluated label :math:`a`, the map
    :math:`M_a = \mathrm{explain\_func}(x, a)` is computed, and then its insertion curve,
    insertion score :math:`S_a(x)`, the clean probability :math:`p_a(x)`, and

    .. math::

        \mathrm{completeness}_a(x) = \min\!\Big(1,
            \frac{\max(\varepsilon, S_a(x))}{\min(\alpha, p_a(x))}\Big), \qquad
        \mathrm{soundness}_a(x) = \min\!\Big(1, \frac{\max(\beta, p_a(x))}{S_a(x)}\Big)

    (soundness 1 when :math:`S_a(x) = 0`). :meth:`SoundnessReport.summary` gives the
    paper's headline averages.

    **Labels.** The model must return ``(N, L)`` scores (``L >= 2`` labels), or a single
    logit ``(N,)``/``(N, 1)`` with ``head="binary"`` (2 labels: 0 and 1, with
    :math:`p_1 = \sigma(z)`); other outputs raise a :class:`ValueError`. With
    ``head="sigmoid"`` every label is its own yes/no question (the probabilities need
    not sum to 1) and the "predicted" label is the most probable one.

    **Batching.** ``explain_func`` is called on batches of (image, label) pairs: the
    examples repeated once per label (image-major: rows ``i * L .. i * L + L - 1`` are the
    ``L`` labels of example ``i``) with the matching targets, ``explain_batch_size`` pairs
    per call (all at once by default), so that methods like
    :class:`~captum_soundness.attr.SimpleMasking` optimise the maps of all labels
    together. Per-example tensors of ``additional_forward_args`` and of
    ``explain_kwargs`` (``baselines``, ``feature_mask``, ...) are repeated the same way.
    All curves are then computed in one batched pass of ``max_examples_per_batch``
    model inputs (rows) per forward pass.

    **Label subsets.** ``labels=None`` evaluates every output label. A list restricts the
    explained labels and, with ``head="softmax"``, the softmax to that subset (the
    paper's 6-label ImageNet setting: ``labels=PAPER_IMAGENET_LABELS``); with the other
    heads the subset's per-label probabilities are used as they are (no
    renormalisation). ``explain_func`` receives the *original* label ids, so it explains
    the full model's outputs; to have the attribution method itself see the restricted
    softmax (as the paper's masks do), build it on the restricted model and leave
    ``labels=None``::

        model6 = restrict_labels(model, PAPER_IMAGENET_LABELS)
        report = evaluate_all_labels(SimpleMasking(model6).attribute, model6, images)

    Args:
        explain_func: ``explain_func(inputs, target, **explain_kwargs) ->
            attributions``, e.g. ``IntegratedGradients(model).attribute`` or
            ``SimpleMasking(model).attribute``. ``inputs`` come in the container of
            ``inputs`` (a tuple stays a tuple); ``target`` is a 1-D ``LongTensor`` of
            label ids, one per row; it is passed by keyword (``target=...``) when
            ``explain_func`` has a parameter named ``target`` (Captum's ``attribute``
            methods, whose second positional parameter is often ``baselines``), by
            position otherwise. The attributions come in the same container, each
            shaped like its input (see :func:`~captum_soundness.metrics.insertion_curve`).
            With ``additional_forward_args``, ``explain_func`` also receives
            ``additional_forward_args=...`` (rows matched to its inputs). With
            ``head="binary"`` the targets are the labels 0 and 1 of the single logit:
            :class:`~captum_soundness.attr.SimpleMasking` with ``head="binary"``
            understands them; Captum's methods know only the logit (target 0), so
            explain those through a two-logit view ``[0, z]`` of the model (its softmax
            is ``(1 - sigmoid(z), sigmoid(z))``) with the default head (the *Using with
            Captum* page shows one).
        forward_func: The model, returning ``(N, L)`` scores (see **Labels**).
        inputs: A tensor or a tuple of tensors of rank >= 2 (Captum's convention).
        labels: ``None`` (every output label) or distinct label ids (at least 2).
        additional_forward_args: Extra arguments for ``forward_func``; tensors with a
            leading dimension are indexed per example.
        explain_kwargs: Further keyword arguments of ``explain_func`` (``None``: none),
            e.g. ``{"baselines": inputs * 0}`` for Integrated Gradients or
            ``{"feature_mask": masks}`` for FeatureAblation. Tensors with ``N > 1`` rows
            (also inside tuples) are per example and repeated across labels like
            ``additional_forward_args`` (for ``baselines`` and ``feature_mask``: tensors
            with the input's number of dimensions); tensors with 1 row, non-tensors and
            Fills pass unchanged.
        baselines: The replacement values of the curves, as in
            :func:`~captum_soundness.metrics.insertion_curve` (the same fill draws of an
            example serve all its labels and fractions).
        feature_mask: Groups ranked and inserted by the curves, as in
            :func:`~captum_soundness.metrics.insertion_curve`.
        fractions: As in :func:`~captum_soundness.metrics.insertion_curve`.
        n_fill_samples: As in :func:`~captum_soundness.metrics.insertion_curve`.
        head: As in :func:`~captum_soundness.metrics.insertion_curve` (``None``:
            ``"softmax"``).
        reduce: As in :func:`~captum_soundness.metrics.insertion_curve`.
        max_examples_per_batch: Maximum number of model inputs (rows: masked or clean
            examples) per forward pass, as in Captum's metrics (``None``: all at once).
            Default 256, the fastest measured on CPU (on a GPU, a larger value may
            pay). Does not change the results.
        seed: As in :func:`~captum_soundness.metrics.insertion_curve` (``None`` draws
            one seed from the global RNG).
        epsilon: :math:`\varepsilon \ge 0` of completeness (reference 0.1).
        alpha: :math:`\alpha > 0` of completeness (reference 1).
        beta: :math:`0 \le \beta \le 1` of soundness (reference 0.1).
        explain_batch_size: Maximum number of (image, label) pairs per ``explain_func``
            call (``None``: all ``N * L`` pairs in one call).
        deletion: ``"none"`` (default), ``"predicted"`` (deletion curves at the predicted
            label, ``N`` extra curves in the same batched pass) or ``"all"`` (every pair).
        fill, apply_softmax: Deprecated aliases of ``baselines`` and ``head``.

    Returns:
        A :class:`SoundnessReport`.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import IntegratedGradients, Saliency
        >>> from captum_soundness.metrics import evaluate_all_labels
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x = torch.randn(4, 1, 4, 4)
        >>> report = evaluate_all_labels(Saliency(model).attribute, model, x, fractions=4)
        >>> report.completeness.shape, report.insertion.shape
        (torch.Size([4, 3]), torch.Size([4, 3, 4]))
        >>> sorted(report.summary())[:2]
        ['completeness_at_prediction', 'completeness_worst_wrong_label']

        Per-example keyword arguments of the explanation are repeated across labels::

        >>> ig = IntegratedGradients(model).attribute
        >>> report = evaluate_all_labels(
        ...     ig, model, x, explain_kwargs={"baselines": x * 0, "n_steps": 8}, fractions=4
        ... )
        >>> report.soundness.shape
        torch.Size([4, 3])
    """
    for name, func in (("explain_func", explain_func), ("forward_func", forward_func)):
        if not callable(func):
            raise TypeError(f"`{name}` must be callable, got {type(func).__name__}.")
    xs, is_tuple = format_model_inputs(inputs)
    config = check_curve_config(
        xs,
        baselines=resolve_baselines(baselines, fill),
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        head=resolve_head(head, apply_softmax),
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    layout = FeatureLayout(xs, feature_mask)
    settings = config.as_dict()
    settings.update(
        zip(("epsilon", "alpha", "beta"), check_metric_constants(epsilon, alpha, beta))
    )
    if explain_batch_size is not None:
        explain_batch_size = check_positive_int(explain_batch_size, "explain_batch_size")
    deletion = check_choice(deletion, "deletion", DELETION_MODES)
    settings.update(label_subset=labels is not None, deletion=deletion)
    args = check_forward_args(additional_forward_args, xs[0].shape[0])
    explainer = _Explainer(explain_func, xs, is_tuple, args, explain_kwargs, layout)
    warn_if_training(forward_func, "evaluate_all_labels")

    with preserved_model(forward_func, freeze_parameters=False, devices=[xs[0].device]):
        label_ids, probs, predicted, curves = _evaluate(
            explainer, forward_func, args, labels, config, deletion, explain_batch_size
        )
    return _report(label_ids, probs, predicted, curves, deletion, config, settings)


def _evaluate(
    explainer: _Explainer,
    forward_func: Callable[..., Any],
    args: tuple[Any, ...] | None,
    labels: Sequence[int] | Tensor | None,
    config: CurveConfig,
    deletion: str,
    explain_batch_size: int | None,
) -> tuple[list[int], Tensor, Tensor, Tensor]:
    """The two stages: the clean pass and the explanations of every pair, then one
    batched pass of the curve engine. Returns the label ids, the clean probabilities
    ``(N, L)``, the two most likely positions ``(N, 2)`` and the curves on the CPU."""
    xs = explainer.inputs
    label_ids, subset, probs, shape = _clean_probabilities(forward_func, xs, args, labels, config)
    rows = _PairRows(xs[0].shape[0], label_ids, xs[0].device)
    scores = explainer(rows.image, rows.target, config.reduce, explain_batch_size)
    predicted = torch.sort(probs, dim=1, descending=True, stable=True).indices[:, :2]
    jobs = rows.jobs(predicted[:, 0], deletion)
    curves = batched_curves(
        forward_func,
        xs,
        args,
        rank_positions(scores),
        jobs,
        config,
        explainer.layout,
        label_ids=subset,
        output_shape=shape,
    )
    return label_ids, probs, predicted, curves.cpu()


def _clean_probabilities(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    labels: Sequence[int] | Tensor | None,
    config: CurveConfig,
) -> tuple[list[int], Tensor | None, Tensor, tuple[int, ...]]:
    """The label ids, the subset (``None`` for all labels), the clean probabilities
    ``(N, L)`` and the outputs' non-batch shape.

    One pass over the full model's outputs; with a label subset and ``head="softmax"``
    the softmax is taken over the subset.
    """
    outputs = class_outputs(
        forward_func,
        inputs,
        args,
        config.head,
        config.max_examples_per_batch,
        "evaluate_all_labels",
    )
    if outputs.dim() != 2:
        raise ValueError(
            "evaluate_all_labels needs (N, num_labels) outputs (or a single logit with "
            f"head='binary'); `forward_func` returns shape {tuple(outputs.shape)}. Wrap "
            "the model so that it returns one score per label."
        )
    num = 2 if config.head == "binary" else int(outputs.shape[1])
    if labels is None:
        if num < 2:
            raise ValueError(
                "evaluate_all_labels needs at least 2 labels; `forward_func` returns "
                f"{outputs.shape[1]} output per example (head={config.head!r}; for a "
                "single logit pass head='binary')."
            )
        return list(range(num)), None, to_probabilities(outputs, config.head), _shape(outputs)
    label_ids = check_labels(labels, num, "labels")
    subset = torch.tensor(label_ids, dtype=torch.long, device=outputs.device)
    return label_ids, subset, to_probabilities(outputs, config.head, subset), _shape(outputs)


def _shape(outputs: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in outputs.shape[1:])


class _Explainer:
    """Calls ``explain_func`` on chunks of (image, label) rows and scores the positions.

    Each call gets the rows' inputs in the user's container, the rows' targets, the
    rows of ``additional_forward_args`` and ``explain_kwargs``; the attributions are
    checked (container, rows) and turned into ``(R, P)`` scores by the layout.
    """

    def __init__(
        self,
        explain_func: Callable[..., Any],
        inputs: tuple[Tensor, ...],
        is_tuple: bool,
        args: tuple[Any, ...] | None,
        explain_kwargs: Any,
        layout: FeatureLayout,
    ):
        if args is not None and not explain_signature(explain_func)[1]:
            raise TypeError(
                "`explain_func` does not accept `additional_forward_args`, but "
                "additional_forward_args were given (it is called as explain_func(inputs, "
                "target=..., additional_forward_args=...))."
            )
        self.explain_func, self.inputs, self.is_tuple = explain_func, inputs, is_tuple
        self.args, self.layout = args, layout
        self.kwargs = check_explain_kwargs(explain_kwargs, inputs=inputs)

    def __call__(
        self, row_image: Tensor, row_target: Tensor, reduce: str, batch_size: int | None
    ) -> Tensor:
        """``(R, P)`` scores of the positions, one row per (image, label) pair."""
        scores = []
        for chunk in chunk_slices(row_image.shape[0], batch_size):
            image = row_image[chunk]
            x = tuple(t.index_select(0, image) for t in self.inputs)
            kwargs = expand_explain_kwargs(self.kwargs, image, self.inputs)
            if self.args is not None:
                kwargs["additional_forward_args"] = expand_additional_forward_args(
                    self.args, image
                )
            attributions = call_explain(
                self.explain_func, format_like(x, self.is_tuple), row_target[chunk], **kwargs
            )
            what = (
                f"The attributions returned by `explain_func` (for a batch of {x[0].shape[0]} "
                "(image, label) pairs)"
            )
            check_attribution_rows(attributions, len(x), x[0].shape[0], what)
            scores.append(self.layout.maps(attributions, reduce, what, examples=image))
        return scores[0] if len(scores) == 1 else torch.cat(scores, dim=0)


class _PairRows:
    """The (image, label) pairs of an evaluation, image-major.

    Rows ``i * L .. i * L + L - 1`` are the ``L`` labels of image ``i``; ``image``,
    ``label`` (position in the label list, the column of the probabilities read) and
    ``target`` (label id, given to ``explain_func``) give one value per row.
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
