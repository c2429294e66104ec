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
from numbers import Integral
from typing import Any

import torch
from captum._utils.typing import TensorOrTupleOfTensorsGeneric
from torch import Tensor

from captum_soundness._utils.baselines import format_baselines
from captum_soundness._utils.explain import (
    call_explain,
    check_explain_kwargs,
    expand_explain_kwargs,
)
from captum_soundness._utils.heads import UNSET as SOFTMAX_UNSET
from captum_soundness._utils.heads import num_labels, resolve_head
from captum_soundness._utils.inputs import format_like
from captum_soundness._utils.maps import unwrap_single
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.validation import check_choice, check_labels
from captum_soundness.attr import SimpleMasking
from captum_soundness.labels import restrict_labels
from captum_soundness.masking import REDUCTIONS, fraction_grid
from captum_soundness.metrics import (
    SUMMARY_METRICS,
    SoundnessReport,
    completeness_from_scores,
    evaluate_all_labels,
    soundness_from_scores,
)
from captum_soundness.metrics._config import DEFAULT_MAX_EXAMPLES_PER_BATCH, format_model_inputs
from captum_soundness.metrics._engine import run_curves
from captum_soundness.metrics._outputs import class_outputs, to_probabilities
from captum_soundness.metrics._scores import check_metric_constants
from captum_soundness.sanity._maps import attribution_maps
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
    inputs: tuple[Tensor, ...]
    is_tuple: bool
    labels: Sequence[int] | Tensor | None
    fills: dict[str, Any]  # name -> baselines, as given (checked)
    reduce: str
    epsilon: float
    alpha: float
    beta: float
    curve_kwargs: dict[str, Any]  # fractions, n_fill_samples, head, batch, seed (an int)
    all_labels_kwargs: dict[str, Any]  # explain_batch_size, deletion
    explain_kwargs: dict[str, dict[str, Any]]  # method -> keyword arguments

    def what(self, method: str) -> str:
        return f"The attributions of `explain_funcs[{method!r}]`"


def _fill_keyword(explain_func: Callable[..., Any]) -> str | None:
    """How a method receives the fill: ``"baselines"`` for SimpleMasking's ``attribute``
    (also in a :func:`functools.partial`), ``"fill"`` for other callables with a ``fill``
    keyword parameter, ``None`` for fill-independent methods."""
    func = explain_func
    while isinstance(func, functools.partial):
        func = func.func
    if isinstance(getattr(func, "__self__", None), SimpleMasking):
        return "baselines"
    try:
        params = inspect.signature(explain_func).parameters
    except (TypeError, ValueError):
        return None
    p = params.get("fill")
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return "fill" if p is not None and p.kind in kinds else None


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


def _check_fills(fills: Any, inputs: tuple[Tensor, ...]) -> dict[str, Any]:
    if not isinstance(fills, Mapping) or not fills:
        raise TypeError("`fills` must be a non-empty dict: name -> fill (baselines).")
    for name, f in fills.items():
        if not isinstance(name, str):
            raise TypeError(f"`fills` keys must be str names, got {name!r}.")
        format_baselines(f, inputs, f"fills[{name!r}]")
    return dict(fills)


def _check_method_kwargs(
    explain_kwargs: Any,
    explain_funcs: Mapping[str, Any],
    keywords: dict[str, str | None],
    inputs: tuple[Tensor, ...],
) -> dict[str, dict[str, Any]]:
    """``explain_kwargs``: method name -> keyword arguments of that method (checked)."""
    if explain_kwargs is None:
        return {m: {} for m in explain_funcs}
    if not isinstance(explain_kwargs, Mapping):
        raise TypeError(
            "`explain_kwargs` must be a dict: method name -> dict of keyword arguments, got "
            f"{type(explain_kwargs).__name__}."
        )
    unknown = [m for m in explain_kwargs if m not in explain_funcs]
    if unknown:
        raise ValueError(
            f"`explain_kwargs` names {unknown}, which are not in `explain_funcs` "
            f"({list(explain_funcs)}): its keys are method names."
        )
    out = {}
    for m in explain_funcs:
        kwargs = check_explain_kwargs(explain_kwargs.get(m), f"explain_kwargs[{m!r}]", inputs)
        if keywords[m] is not None and keywords[m] in kwargs:
            raise TypeError(
                f"`explain_kwargs[{m!r}]` contains {keywords[m]!r}, which fill_sensitivity "
                "sets to each fill in turn for this method."
            )
        out[m] = kwargs
    return out


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


def _run_seed(seed: SeedType, device: torch.device) -> int:
    """The one seed of every metric call: an int as given, else drawn once (from the
    generator, or from the global RNG for ``None``), so all methods and fills share the
    same fill samples (common random numbers)."""
    if isinstance(seed, Integral) and not isinstance(seed, bool):
        return int(seed)
    return draw_seeds(make_generator(seed, device, "seed"), 1)[0]


class _Recorder:
    """Calls an explanation function (``target`` as :func:`call_explain` passes it, the
    keyword arguments as given) and keeps every result; ``replay`` returns the results
    of an earlier recorder instead of calling it again."""

    def __init__(self, explain_func: Callable[..., Any], replay: list[Any] | None) -> None:
        self.explain_func, self.replay = explain_func, replay
        self.records: list[Any] = []

    def __call__(self, inputs: Any, target: Any, **kwargs: Any) -> Any:
        index = len(self.records)
        if self.replay is not None and index < len(self.replay):
            result = self.replay[index]
        else:
            result = call_explain(self.explain_func, inputs, target, **kwargs)
        self.records.append(result)
        return result


Evaluate = Callable[[str, _Recorder, dict[str, Any], Any], tuple[dict[str, Tensor], Tensor]]


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
        xs, head = setup.inputs, setup.curve_kwargs["head"]
        out = class_outputs(
            setup.forward_func, xs, None, head, setup.curve_kwargs["max_examples_per_batch"]
        )
        label_ids = check_labels(setup.labels, num_labels(out.shape, head)[0], "labels")
        # Scores restricted to the labels (a softmax over the subset), the paper's setting.
        restrict = setup.labels is not None and head != "binary"
        subset = torch.tensor(label_ids, dtype=torch.long, device=out.device)
        probs = to_probabilities(out, head, subset)
        if probs.dim() != 2:
            raise ValueError(
                "fill_sensitivity needs (N, L) label scores; `forward_func` returns "
                f"shape {tuple(out.shape)}."
            )
        self.model = (
            restrict_labels(setup.forward_func, label_ids) if restrict else setup.forward_func
        )
        order = torch.sort(probs, dim=1, descending=True, stable=True).indices
        positions = torch.cat([order[:, 0], order[:, 1]]).to(xs[0].device)
        self.ids = subset.to(positions.device)[positions]  # label ids, for the methods
        self.targets = positions if restrict else self.ids  # columns the curves read
        n = xs[0].shape[0]
        self.examples = torch.arange(n).repeat(2)  # the example of each row
        self.x2 = tuple(torch.cat([x, x], dim=0) for x in xs)
        self.setup = setup

    def __call__(
        self, method: str, recorder: _Recorder, kwargs: dict[str, Any], fill: Any
    ) -> tuple[dict[str, Tensor], Tensor]:
        setup, xs = self.setup, self.setup.inputs
        inputs = format_like(self.x2, setup.is_tuple)
        attributions = recorder(
            inputs, self.ids, **expand_explain_kwargs(kwargs, self.examples, xs)
        )
        what = setup.what(method)
        maps = attribution_maps(attributions, self.x2, setup.reduce, what, self.examples)
        baselines = expand_explain_kwargs({"baselines": fill}, self.examples, xs)["baselines"]
        curve, prob = run_curves(
            "insertion",
            self.model,
            inputs,
            attributions,
            self.targets,
            baselines=baselines,
            reduce=setup.reduce,
            return_clean=True,
            caller="fill_sensitivity",
            **setup.curve_kwargs,
        )
        assert prob is not None
        per_image = _two_label_report(curve, prob, setup).per_image()
        return {k: per_image[k] for k in _PREDICTION_METRICS}, maps[: xs[0].shape[0]]


def _record_maps(record: Any, setup: _Setup, what: str) -> Tensor:
    """Maps of one recorded call of ``evaluate_all_labels`` (rows of any examples)."""
    first = record[0] if isinstance(record, (tuple, list)) and record else record
    rows = int(unwrap_single(first, what).shape[0]) if isinstance(first, Tensor) else 0
    reference = tuple(x[:1].expand(rows, *x.shape[1:]) for x in setup.inputs)
    return attribution_maps(record, reference, setup.reduce, what)


def _evaluate_all_labels(
    setup: _Setup, method: str, recorder: _Recorder, kwargs: dict[str, Any], fill: Any
) -> tuple[dict[str, Tensor], Tensor]:
    """``evaluation="all_labels"``: :func:`evaluate_all_labels`; maps at the prediction."""
    report = evaluate_all_labels(
        recorder,
        setup.forward_func,
        format_like(setup.inputs, setup.is_tuple),
        setup.labels,
        explain_kwargs=kwargs,
        baselines=fill,
        reduce=setup.reduce,
        epsilon=setup.epsilon,
        alpha=setup.alpha,
        beta=setup.beta,
        **setup.curve_kwargs,
        **setup.all_labels_kwargs,
    )
    what = setup.what(method)
    all_maps = torch.cat([_record_maps(a, setup, what) for a in recorder.records])
    rows = torch.arange(setup.inputs[0].shape[0]) * report.num_labels + report.predicted
    return report.per_image(), all_maps[rows.to(all_maps.device)]


def _per_method_and_fill(
    explain_funcs: Mapping[str, Callable[..., Any]],
    keywords: dict[str, str | None],
    setup: _Setup,
    evaluate: Evaluate,
) -> tuple[dict[str, dict[str, dict[str, Tensor]]], dict[str, list[Tensor]]]:
    """Metrics (method -> fill -> name -> ``(N,)``) and maps at the prediction per fill;
    a fill-independent method is explained once and its results replayed."""
    metrics: dict[str, dict[str, dict[str, Tensor]]] = {m: {} for m in explain_funcs}
    pred_maps: dict[str, list[Tensor]] = {m: [] for m in explain_funcs}
    for m, explain_func in explain_funcs.items():
        replay = None
        for fname, fill in setup.fills.items():
            kwargs = dict(setup.explain_kwargs[m])
            if keywords[m] is not None:
                kwargs[keywords[m]] = fill
            recorder = _Recorder(explain_func, replay)
            metrics[m][fname], maps = evaluate(m, recorder, kwargs, fill)
            if keywords[m] is None:
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


def _describe(value: Any) -> str:
    """A short description of a fill for the settings (tensors by their shape)."""
    if isinstance(value, Tensor):
        return f"<tensor {tuple(value.shape)}>"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    return repr(value)


def _settings(evaluation: str, setup: _Setup) -> dict[str, Any]:
    labels = setup.labels
    options = {"reduce": setup.reduce, **setup.curve_kwargs, **setup.all_labels_kwargs}
    return {
        "evaluation": evaluation,
        "labels": None
        if labels is None
        else [int(a) for a in (labels.tolist() if isinstance(labels, Tensor) else labels)],
        "fills": {k: _describe(v) for k, v in setup.fills.items()},
        "epsilon": setup.epsilon,
        "alpha": setup.alpha,
        "beta": setup.beta,
        **{
            k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v))
            for k, v in options.items()
        },
    }


def _make_setup(
    explain_funcs: Mapping[str, Callable[..., Any]],
    forward_func: Callable[..., Any],
    inputs: Any,
    fills: Any,
    keywords: dict[str, str | None],
    options: dict[str, Any],
) -> _Setup:
    """Checks the arguments of :func:`fill_sensitivity` (the seed drawn here, first)."""
    xs, is_tuple = format_model_inputs(inputs)
    head = resolve_head(options["head"], options["apply_softmax"], stacklevel=4)
    epsilon, alpha, beta = check_metric_constants(
        options["epsilon"], options["alpha"], options["beta"]
    )
    prediction = options["evaluation"] == "prediction"
    return _Setup(
        forward_func=forward_func,
        inputs=xs,
        is_tuple=is_tuple,
        labels=options["labels"],
        fills=_check_fills(fills, xs),
        reduce=check_choice(options["reduce"], "reduce", REDUCTIONS),
        epsilon=epsilon,
        alpha=alpha,
        beta=beta,
        curve_kwargs={
            "fractions": options["fractions"],
            "n_fill_samples": options["n_fill_samples"],
            "head": head,
            "max_examples_per_batch": options["max_examples_per_batch"],
            "seed": _run_seed(options["seed"], xs[0].device),
        },
        all_labels_kwargs={}
        if prediction
        else {
            "explain_batch_size": options["explain_batch_size"],
            "deletion": options["deletion"],
        },
        explain_kwargs=_check_method_kwargs(
            options["explain_kwargs"], explain_funcs, keywords, xs
        ),
    )


def fill_sensitivity(
    explain_funcs: Mapping[str, Callable[..., Any]],
    forward_func: Callable[..., Any],
    inputs: TensorOrTupleOfTensorsGeneric,
    fills: Mapping[str, Any],
    *,
    labels: Sequence[int] | Tensor | None = None,
    evaluation: str = "prediction",
    rank_by: str = "insertion_score_at_prediction",
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
    explain_kwargs: Mapping[str, dict[str, Any]] | None = None,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> FillSensitivityReport:
    r"""Metric values, map correlations and method rankings under several fills.

    "Neutral" fills are not neutral (Brunke et al., 2020): the same method and metric can
    give different maps, values and rankings of methods under black, mean, blurred and
    noise fills. For every method and every fill :math:`g` this function

    1. computes the maps; **protocol**: SimpleMasking's ``attribute`` (also inside a
       :func:`functools.partial`), which learns its masks against a fill, is called with
       ``baselines=fills[name]`` for every fill, and any other callable with a ``fill``
       keyword parameter with ``fill=fills[name]``, so their maps depend on the fill;
       any other method (Captum's, whose ``baselines`` are not fills) is called once
       and its maps are reused for every fill (to run a method with another per-fill
       setting, pass ``functools.partial`` objects under different names or a wrapper
       with a ``fill`` parameter);
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
        explain_funcs: Method name -> ``explain_func(inputs, target, **kwargs)``, called
            with the inputs in their container and a 1-D tensor of label ids.
        forward_func: The model, returning ``(N, L)`` scores (or one logit with
            ``head="binary"``); ``forward_func(*inputs)`` for a tuple of inputs.
        inputs: A tensor or a tuple of tensors (rank >= 2, batch first; Captum's
            convention).
        fills: Fill name -> the ``baselines`` of the metrics under that fill, in any form
            :func:`~captum_soundness.metrics.insertion_curve` takes (a
            :class:`~captum_soundness.fills.Fill`, a number, a tensor broadcastable to
            one example or one per example, a tuple of these per input, or ``None`` for
            0); per-example tensors are repeated with the inputs.
        labels: ``None`` (all outputs) or a label subset (at least 2): the softmax of the
            metrics is restricted to it and the predicted and second labels are taken
            within it; ``explain_func`` receives the original label ids.
        evaluation: ``"prediction"`` (default) or ``"all_labels"``.
        rank_by: The metric that ranks the methods (higher is better, except
            ``deletion_*`` metrics).
        fractions: Kept fractions (an int for an even grid), as in
            :func:`~captum_soundness.metrics.evaluate_all_labels`.
        n_fill_samples: Fill draws per curve point for random fills.
        head: How scores become probabilities: ``"softmax"`` (default, over the
            evaluated labels), ``"probabilities"``, ``"sigmoid"`` (per label) or
            ``"binary"`` (one logit), as in :func:`~captum_soundness.metrics.insertion_curve`.
        reduce: Channel reduction of the attributions (``"sum"``, ``"abs"``, ``"max"``).
        max_examples_per_batch: Model inputs (rows) per forward pass (``None``: all at
            once; default 256).
        seed: Seed of the random fills: one seed serves every method and fill (common
            random numbers). An int is used as it is; a :class:`torch.Generator` gives
            one draw; ``None`` draws one seed from the global RNG (so
            ``torch.manual_seed`` makes the call repeatable).
        epsilon: :math:`\varepsilon` of completeness.
        alpha: :math:`\alpha` of completeness.
        beta: :math:`\beta` of soundness.
        explain_batch_size: (Image, label) pairs per explanation call, only with
            ``evaluation="all_labels"``.
        deletion: ``"none"``, ``"predicted"`` or ``"all"`` deletion curves, only with
            ``evaluation="all_labels"``.
        explain_kwargs: Method name -> further keyword arguments of that method (e.g.
            ``{"ig": {"baselines": x * 0, "n_steps": 16}}``); per-example tensors
            (``N`` rows) are repeated with the inputs, as in
            :func:`~captum_soundness.metrics.evaluate_all_labels`.
        apply_softmax: Deprecated alias of ``head`` (``True``: ``"softmax"``, ``False``:
            ``"probabilities"``), with a :class:`DeprecationWarning`.
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
    evaluation = check_choice(evaluation, "evaluation", FILL_EVALUATIONS)
    rank_by = _check_rank_by(rank_by, evaluation, explain_batch_size, deletion)
    keywords = {m: _fill_keyword(fn) for m, fn in explain_funcs.items()}
    options = {
        "labels": labels,
        "evaluation": evaluation,
        "fractions": fractions,
        "n_fill_samples": n_fill_samples,
        "head": head,
        "apply_softmax": apply_softmax,
        "reduce": reduce,
        "max_examples_per_batch": max_examples_per_batch,
        "seed": seed,
        "epsilon": epsilon,
        "alpha": alpha,
        "beta": beta,
        "explain_batch_size": explain_batch_size,
        "deletion": deletion,
        "explain_kwargs": explain_kwargs,
    }
    setup = _make_setup(explain_funcs, forward_func, inputs, fills, keywords, options)
    warn_if_training(forward_func, "fill_sensitivity")
    device = setup.inputs[0].device
    with preserved_model(forward_func, freeze_parameters=False, devices=[device]):
        evaluate: Evaluate = (
            _PredictionEvaluator(setup)
            if evaluation == "prediction"
            else functools.partial(_evaluate_all_labels, setup)
        )
        metrics, pred_maps = _per_method_and_fill(explain_funcs, keywords, setup, evaluate)
    return _report(metrics, pred_maps, keywords, rank_by, evaluation, setup)


def _report(
    metrics: dict[str, dict[str, dict[str, Tensor]]],
    pred_maps: dict[str, list[Tensor]],
    keywords: dict[str, str | None],
    rank_by: str,
    evaluation: str,
    setup: _Setup,
) -> FillSensitivityReport:
    """The report: method scores per fill, their ranking correlations, map correlations."""
    methods, fill_names = list(metrics), list(setup.fills)
    method_scores = torch.tensor(
        [[float(metrics[m][f][rank_by].mean()) for m in methods] for f in fill_names],
        dtype=torch.float64,
    )
    rank_sp, rank_kt = _ranking_correlations(method_scores)
    dependent = {m: k is not None for m, k in keywords.items()}
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
