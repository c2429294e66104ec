"""Fill sensitivity (Brunke et al., 2020): metrics, maps and method rankings per fill.

Both evaluations are built on :mod:`captum_soundness.metrics`: ``"all_labels"`` runs
:func:`~captum_soundness.metrics.evaluate_all_labels`; ``"prediction"`` computes the
insertion curves of two labels per image (predicted and second) and reads the per-image
metrics off a two-label :class:`~captum_soundness.metrics.SoundnessReport`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.maps import to_maps, unwrap_single
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.recording import ExplainRecorder
from captum_soundness._utils.rng import SeedType
from captum_soundness._utils.validation import check_choice, check_labels
from captum_soundness.fills import Fill, as_fill
from captum_soundness.labels import restrict_labels
from captum_soundness.masking import REDUCTIONS, fraction_grid
from captum_soundness.metrics import (
    SUMMARY_METRICS,
    SoundnessReport,
    completeness_from_scores,
    evaluate_all_labels,
    soundness_from_scores,
)
from captum_soundness.metrics._config import check_model_inputs
from captum_soundness.metrics._engine import run_curves
from captum_soundness.metrics._scores import check_metric_constants
from captum_soundness.sanity._maps import predicted_scores
from captum_soundness.sanity._rank import kendall_tau_b, rank_with_ties
from captum_soundness.sanity._results import FillSensitivityReport
from captum_soundness.sanity._similarity import spearman

__all__ = ["FILL_EVALUATIONS", "fill_sensitivity"]

#: Values of ``evaluation`` in :func:`fill_sensitivity`.
FILL_EVALUATIONS = ("prediction", "all_labels")

#: The metrics of ``evaluation="prediction"``, in report order.
_PREDICTION_METRICS = (
    "insertion_score_at_prediction",
    "completeness_at_prediction",
    "soundness_second_label",
)


@dataclass
class _Setup:
    """The checked arguments shared by the steps of :func:`fill_sensitivity`."""

    forward_func: Callable[..., Any]
    inputs: Tensor
    labels: Sequence[int] | Tensor | None
    fills: dict[str, Fill]
    reduce: str
    epsilon: float
    alpha: float
    beta: float
    curve_kwargs: dict[str, Any]  # fractions, n_fill_samples, apply_softmax, batch, seed
    all_labels_kwargs: dict[str, Any]  # explain_batch_size, deletion

    def what(self, method: str) -> str:
        return f"The attributions of `explain_funcs[{method!r}]`"


def _accepts_fill(explain_func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(explain_func).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("fill")
    return p is not None and p.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _check_explain_funcs(explain_funcs: Any, forward_func: Any) -> None:
    if not isinstance(explain_funcs, Mapping) or not explain_funcs:
        raise TypeError("`explain_funcs` must be a non-empty dict: name -> explain_func.")
    for name, fn in explain_funcs.items():
        if not isinstance(name, str):
            raise TypeError(f"`explain_funcs` keys must be str names, got {name!r}.")
        if not callable(fn):
            raise TypeError(f"`explain_funcs[{name!r}]` must be callable.")
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")


def _check_fills(fills: Any, inputs: Tensor) -> dict[str, Fill]:
    if not isinstance(fills, Mapping) or not fills:
        raise TypeError("`fills` must be a non-empty dict: name -> fill.")
    fill_objs: dict[str, Fill] = {}
    for name, f in fills.items():
        if not isinstance(name, str):
            raise TypeError(f"`fills` keys must be str names, got {name!r}.")
        fill_objs[name] = as_fill(f, f"fills[{name!r}]")
        fill_objs[name].check_compatible(inputs, f"fills[{name!r}]")
    return fill_objs


def _check_rank_by(
    rank_by: str, evaluation: str, explain_batch_size: int | None, deletion: str
) -> str:
    if evaluation == "prediction":
        extra = [
            name
            for name, given in (
                ("deletion", deletion != "none"),
                ("explain_batch_size", explain_batch_size is not None),
            )
            if given
        ]
        if extra:
            raise TypeError(f"{extra} only apply with evaluation='all_labels'.")
        available: Sequence[str] = _PREDICTION_METRICS
    else:
        available = tuple(SUMMARY_METRICS)
    rank_by = check_choice(rank_by, "rank_by", available)
    if rank_by == "deletion_score_at_prediction" and deletion == "none":
        raise ValueError("`rank_by`='deletion_score_at_prediction' needs deletion='predicted'.")
    return rank_by


def _recorder(
    explain_func: Callable[..., Any], fill: Fill, dependent: bool, replay: list[Any] | None
) -> ExplainRecorder:
    """Passes ``fill`` to a fill-dependent method; replays the maps of the others."""
    kwargs = {"fill": fill} if dependent else None
    return ExplainRecorder(explain_func, explain_kwargs=kwargs, replay=replay)


Evaluate = Callable[[str, ExplainRecorder, Fill], tuple[dict[str, Tensor], Tensor]]


def _two_label_report(curve: Tensor, prob: Tensor, setup: _Setup) -> SoundnessReport:
    """The insertion curves of ``2N`` rows (predicted labels, then second labels) as a
    report with two label columns: position 0 the predicted label, 1 the second one."""
    n = curve.shape[0] // 2
    score = curve.mean(dim=1)

    def pairs(t: Tensor) -> Tensor:  # (2N, ...) -> (N, 2, ...) on the CPU
        return t.view(2, n, *t.shape[1:]).transpose(0, 1).contiguous().cpu()

    return SoundnessReport(
        labels=[0, 1],  # column positions: the label ids differ per image
        fractions=fraction_grid(setup.curve_kwargs["fractions"]),
        probs=pairs(prob),
        insertion=pairs(curve),
        completeness=pairs(completeness_from_scores(score, prob, setup.epsilon, setup.alpha)),
        soundness=pairs(soundness_from_scores(score, prob, setup.beta)),
        predicted=torch.zeros(n, dtype=torch.long),
        second=torch.ones(n, dtype=torch.long),
    )


class _PredictionEvaluator:
    """``evaluation="prediction"``: two maps per image, at the predicted and second label."""

    def __init__(self, setup: _Setup) -> None:
        inputs = setup.inputs
        out = predicted_scores(setup.forward_func, inputs)
        label_ids = check_labels(setup.labels, out.shape[1], "labels")
        self.model = (
            setup.forward_func
            if setup.labels is None
            else restrict_labels(setup.forward_func, label_ids)
        )
        order = torch.sort(out[:, label_ids], dim=1, descending=True, stable=True).indices
        self.positions = torch.cat([order[:, 0], order[:, 1]]).to(inputs.device)
        ids = torch.tensor(label_ids, dtype=torch.long, device=inputs.device)
        self.ids = ids[self.positions]
        self.x2 = torch.cat([inputs, inputs], dim=0)
        self.examples = torch.arange(inputs.shape[0]).repeat(2)  # the example of each row
        self.setup = setup

    def __call__(
        self, method: str, recorder: ExplainRecorder, fill: Fill
    ) -> tuple[dict[str, Tensor], Tensor]:
        setup = self.setup
        attributions = recorder(self.x2, self.ids)
        maps = to_maps(attributions, self.x2, setup.reduce, setup.what(method), self.examples)
        curve, prob = run_curves(
            "insertion",
            self.model,
            self.x2,
            maps,
            self.positions,
            fill=fill,
            reduce=setup.reduce,
            return_clean=True,
            caller="fill_sensitivity",
            **setup.curve_kwargs,
        )
        assert prob is not None
        per_image = _two_label_report(curve, prob, setup).per_image()
        return {k: per_image[k] for k in _PREDICTION_METRICS}, maps[: setup.inputs.shape[0]]


def _evaluate_all_labels(
    setup: _Setup, method: str, recorder: ExplainRecorder, fill: Fill
) -> tuple[dict[str, Tensor], Tensor]:
    """``evaluation="all_labels"``: :func:`evaluate_all_labels`; maps at the prediction."""
    inputs, what = setup.inputs, setup.what(method)
    report = evaluate_all_labels(
        recorder,
        setup.forward_func,
        inputs,
        setup.labels,
        fill=fill,
        reduce=setup.reduce,
        epsilon=setup.epsilon,
        alpha=setup.alpha,
        beta=setup.beta,
        **setup.curve_kwargs,
        **setup.all_labels_kwargs,
    )
    all_maps = torch.cat(
        [
            to_maps(
                a,
                inputs[:1].expand(len(unwrap_single(a, what)), *inputs.shape[1:]),
                setup.reduce,
                what,
            )
            for a in recorder.records
        ]
    )
    rows = torch.arange(inputs.shape[0]) * report.num_labels + report.predicted
    return report.per_image(), all_maps[rows.to(all_maps.device)]


def _per_method_and_fill(
    explain_funcs: Mapping[str, Callable[..., Any]],
    dependent: dict[str, bool],
    fills: dict[str, Fill],
    evaluate: Evaluate,
) -> tuple[dict[str, dict[str, dict[str, Tensor]]], dict[str, list[Tensor]]]:
    """Metrics (method -> fill -> name -> ``(N,)``) and maps at the prediction per fill;
    a fill-independent method is explained once and its results replayed."""
    metrics: dict[str, dict[str, dict[str, Tensor]]] = {m: {} for m in explain_funcs}
    pred_maps: dict[str, list[Tensor]] = {m: [] for m in explain_funcs}
    for m, explain_func in explain_funcs.items():
        replay = None
        for fname, fill in fills.items():
            recorder = _recorder(explain_func, fill, dependent[m], replay)
            metrics[m][fname], maps = evaluate(m, recorder, fill)
            if not dependent[m]:
                replay = recorder.records
            pred_maps[m].append(maps)
    return metrics, pred_maps


def _map_correlations(
    pred_maps: dict[str, list[Tensor]], dependent: dict[str, bool]
) -> dict[str, Tensor | None]:
    """Method -> ``(F, F, N)`` Spearman correlation of its maps between two fills."""
    map_corr: dict[str, Tensor | None] = {}
    for m, maps in pred_maps.items():
        if not dependent[m]:
            map_corr[m] = None
            continue
        num_fills, n = len(maps), maps[0].shape[0]
        corr = torch.ones(num_fills, num_fills, n, dtype=torch.float64)
        for i in range(num_fills):
            for j in range(i + 1, num_fills):
                c = spearman(maps[i], maps[j]).cpu()
                corr[i, j] = c
                corr[j, i] = c
        map_corr[m] = corr
    return map_corr


def _ranking_correlations(method_scores: Tensor) -> tuple[Tensor, Tensor]:
    """``(F, F)`` Spearman and Kendall tau-b between the method scores of two fills."""
    num_fills, num_methods = method_scores.shape
    rank_sp = torch.full((num_fills, num_fills), math.nan, dtype=torch.float64)
    rank_kt = torch.full((num_fills, num_fills), math.nan, dtype=torch.float64)
    if num_methods >= 2:
        ranks = rank_with_ties(method_scores)
        for i in range(num_fills):
            for j in range(num_fills):
                rank_sp[i, j] = spearman(ranks[i : i + 1], ranks[j : j + 1])[0]
                rank_kt[i, j] = kendall_tau_b(method_scores[i], method_scores[j])
    return rank_sp, rank_kt


def _settings(evaluation: str, setup: _Setup) -> dict[str, Any]:
    labels = setup.labels
    options = {"reduce": setup.reduce, **setup.curve_kwargs, **setup.all_labels_kwargs}
    return {
        "evaluation": evaluation,
        "labels": None
        if labels is None
        else [int(a) for a in (labels.tolist() if isinstance(labels, Tensor) else labels)],
        "fills": {k: repr(v) for k, v in setup.fills.items()},
        "epsilon": setup.epsilon,
        "alpha": setup.alpha,
        "beta": setup.beta,
        **{
            k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v))
            for k, v in options.items()
        },
    }


def fill_sensitivity(
    explain_funcs: Mapping[str, Callable[..., Any]],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    fills: Mapping[str, Any],
    *,
    labels: Sequence[int] | Tensor | None = None,
    evaluation: str = "prediction",
    rank_by: str = "insertion_score_at_prediction",
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
) -> FillSensitivityReport:
    r"""Metric values, map correlations and method rankings under several fills.

    "Neutral" fills are not neutral (Brunke et al., 2020): the same method and metric can
    give different maps, values and rankings of methods under black, mean, blurred and
    noise fills. For every method and every fill :math:`g` this function

    1. computes the maps; **protocol**: a method whose ``explain_func`` has a ``fill``
       keyword parameter (e.g. ``SimpleMasking(model).attribute``, which learns its masks
       against a fill) is called with ``fill=fills[name]`` for every fill, so its maps
       depend on the fill; any other method is called once and its maps are reused for
       every fill (to run a method with another per-fill setting, pass
       ``functools.partial`` objects under different names or a wrapper with a ``fill``
       parameter);
    2. evaluates the metrics with the same fill :math:`g` replacing removed positions;
    3. compares the maps of each fill-dependent method across fills (Spearman rank
       correlation per image, at the predicted label); fill-independent methods have
       identical maps and get ``None``;
    4. ranks the methods by the mean of ``rank_by`` under each fill and correlates the
       rankings between fills (Spearman and Kendall's :math:`\tau_b` of the method
       means).

    **Metrics.** ``evaluation="prediction"`` (default, cheap: two maps per image) explains
    the predicted label and the second most likely label and reports
    ``insertion_score_at_prediction`` (insertion AUC :math:`S_{\hat y}`),
    ``completeness_at_prediction`` and ``soundness_second_label`` (the Gupta et al.
    metrics; soundness at the prediction is nearly always 1, so the second label is where
    unsound maps show). ``evaluation="all_labels"`` runs
    :func:`~captum_soundness.metrics.evaluate_all_labels` per method and fill (one map per
    label and image) and reports every per-image headline metric of
    :meth:`~captum_soundness.metrics.SoundnessReport.per_image`.

    Args:
        explain_funcs: Method name -> ``explain_func(inputs, target[, fill=...])``.
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Inputs ``(N, C, *spatial)``.
        fills: Fill name -> a :class:`~captum_soundness.fills.Fill`, a number or a tensor
            (constant fill), or ``None`` (constant 0).
        labels: ``None`` (all outputs) or a label subset (at least 2): the softmax of the
            metrics is restricted to it and the predicted and second labels are taken
            within it; ``explain_func`` receives the original label ids.
        evaluation: ``"prediction"`` (default) or ``"all_labels"``.
        rank_by: The metric that ranks the methods (higher is better, except
            ``deletion_*`` metrics).
        fractions: Kept fractions (an int for an even grid), as in
            :func:`~captum_soundness.metrics.evaluate_all_labels`.
        n_fill_samples: Fill draws per curve point for random fills.
        apply_softmax: Softmax over the (evaluated) outputs.
        reduce: Channel reduction of the attributions (``"sum"``, ``"abs"``, ``"max"``).
        max_examples_per_batch: Masked inputs per forward pass (``None``: all at once).
        seed: Seed of the random fills.
        epsilon: :math:`\varepsilon` of completeness.
        alpha: :math:`\alpha` of completeness.
        beta: :math:`\beta` of soundness.
        explain_batch_size: (Image, label) pairs per explanation call, only with
            ``evaluation="all_labels"``.
        deletion: ``"none"``, ``"predicted"`` or ``"all"`` deletion curves, only with
            ``evaluation="all_labels"``.
    Returns:
        A :class:`FillSensitivityReport` (``str(report)`` is a readable table).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency, InputXGradient
        >>> from captum_soundness.fills import BlurFill, MeanFill
        >>> from captum_soundness.sanity import fill_sensitivity
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x = torch.randn(4, 1, 4, 4)
        >>> report = fill_sensitivity(
        ...     {"saliency": Saliency(model).attribute, "ixg": InputXGradient(model).attribute},
        ...     model.eval(), x, {"zero": 0.0, "mean": MeanFill(), "blur": BlurFill(1.0)},
        ...     fractions=4,
        ... )
        >>> report.method_scores.shape
        torch.Size([3, 2])
    """
    _check_explain_funcs(explain_funcs, forward_func)
    inputs = check_model_inputs(inputs)
    fill_objs = _check_fills(fills, inputs)
    evaluation = check_choice(evaluation, "evaluation", FILL_EVALUATIONS)
    rank_by = _check_rank_by(rank_by, evaluation, explain_batch_size, deletion)
    epsilon, alpha, beta = check_metric_constants(epsilon, alpha, beta)
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    warn_if_training(forward_func, "fill_sensitivity")
    prediction = evaluation == "prediction"
    setup = _Setup(
        forward_func=forward_func,
        inputs=inputs,
        labels=labels,
        fills=fill_objs,
        reduce=reduce,
        epsilon=epsilon,
        alpha=alpha,
        beta=beta,
        curve_kwargs={
            "fractions": fractions,
            "n_fill_samples": n_fill_samples,
            "apply_softmax": apply_softmax,
            "max_examples_per_batch": max_examples_per_batch,
            "seed": seed,
        },
        all_labels_kwargs={}
        if prediction
        else {"explain_batch_size": explain_batch_size, "deletion": deletion},
    )
    dependent = {m: _accepts_fill(fn) for m, fn in explain_funcs.items()}
    evaluate: Evaluate = (
        _PredictionEvaluator(setup)
        if prediction
        else functools.partial(_evaluate_all_labels, setup)
    )
    with preserved_model(forward_func, freeze_parameters=False, devices=[inputs.device]):
        metrics, pred_maps = _per_method_and_fill(explain_funcs, dependent, fill_objs, evaluate)
    methods, fill_names = list(explain_funcs), list(fill_objs)
    method_scores = torch.tensor(
        [[float(metrics[m][f][rank_by].mean()) for m in methods] for f in fill_names],
        dtype=torch.float64,
    )
    rank_sp, rank_kt = _ranking_correlations(method_scores)
    return FillSensitivityReport(
        methods=methods,
        fills=fill_names,
        metrics=metrics,
        fill_dependent=dependent,
        map_correlation=_map_correlations(pred_maps, dependent),
        rank_by=rank_by,
        method_scores=method_scores,
        ranking_spearman=rank_sp,
        ranking_kendall=rank_kt,
        settings=_settings(evaluation, setup),
    )
