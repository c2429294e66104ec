"""Sanity checks: model randomisation, class sensitivity, fill sensitivity."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor, nn

from captum_soundness._utils.explain import call_explain
from captum_soundness._utils.forward import run_forward
from captum_soundness._utils.maps import to_maps, unwrap_single
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_labels,
    check_targets,
)
from captum_soundness.fills import Fill, as_fill
from captum_soundness.labels import restrict_labels
from captum_soundness.masking import REDUCTIONS
from captum_soundness.metrics._curves import (
    check_metric_constants,
    check_model_inputs,
    completeness_from_scores,
    run_curves,
    soundness_from_scores,
)
from captum_soundness.metrics._evaluation import evaluate_all_labels
from captum_soundness.sanity._similarity import (
    check_similarity,
    map_similarity,
    rank_with_ties,
    spearman,
)

__all__ = [
    "RANDOMIZATION_MODES",
    "FillSensitivityReport",
    "ModelRandomizationResult",
    "class_sensitivity",
    "fill_sensitivity",
    "model_randomization",
]

#: Values of ``mode`` in :func:`model_randomization`.
RANDOMIZATION_MODES = ("cascading", "independent")


# ---- explanations ----------------------------------------------------------------------


def _first_explain(
    explain_func: Any, inputs: Tensor, target: Tensor, reduce: str, what: str, **kw: Any
) -> Tensor:
    if not callable(explain_func):
        raise TypeError(f"{what} must be callable, got {type(explain_func).__name__}.")
    return to_maps(call_explain(explain_func, inputs, target, **kw), inputs, reduce, what)


def _check_measures_fit(measures: Sequence[str], maps: Tensor, name: str) -> None:
    image_like = maps.dim() == 3 or (maps.dim() == 4 and maps.shape[1] == 1)
    for m in measures:
        if m in ("ssim", "hog") and not image_like:
            raise ValueError(
                f"`{name}` contains {m!r}, which needs 2-D maps (N, H, W); the explanations "
                f"give maps of shape {tuple(maps.shape)}."
            )


def _predicted(forward_func: Callable[..., Any], inputs: Tensor) -> Tensor:
    with preserved_model(forward_func, freeze_parameters=False), torch.no_grad():
        out = run_forward(forward_func, inputs)
    if out.dim() != 2 or out.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"`forward_func` must return (N, num_classes) scores, got shape "
            f"{tuple(out.shape)} for {inputs.shape[0]} inputs."
        )
    return out


# ---- model randomisation ---------------------------------------------------------------


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
        targets: ``(N,)`` the explained labels.
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


def _nanmean(t: Tensor) -> float:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else math.nan


def _tolist(t: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else v for v in t.double().tolist()]


def _has_parameters(module: nn.Module, recurse: bool) -> bool:
    return any(True for _ in module.parameters(recurse=recurse))


def _resolve_layers(model: nn.Module, layers: Any) -> list[str]:
    """Layer names in ``model`` (registration order kept for ``None``)."""
    named = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in model.named_modules() if _has_parameters(m, recurse=False)]
        if not names:
            raise ValueError("`model` has no parameters to randomise.")
        return names
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if not isinstance(layers, Sequence) or not layers:
        raise TypeError(
            "`layers` must be None, a layer (name or module) or a non-empty sequence of them."
        )
    by_id = {id(m): n for n, m in model.named_modules()}
    names = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in named:
                raise ValueError(
                    f"`layers`: {layer!r} is not a module name of `model` (names are those "
                    "of model.named_modules(), e.g. 'features.0')."
                )
            name = layer
        elif isinstance(layer, nn.Module):
            if id(layer) not in by_id:
                raise ValueError(
                    f"`layers`: the module {type(layer).__name__} is not part of `model`."
                )
            name = by_id[id(layer)]
        else:
            raise TypeError(
                f"`layers` must contain module names or modules, got {type(layer).__name__}."
            )
        if not _has_parameters(named[name], recurse=True):
            raise ValueError(f"`layers`: {name or '(the model)'!r} has no parameters.")
        if name in names:
            raise ValueError(f"`layers` names {name!r} twice.")
        names.append(name)
    return names


def _execution_order(model: nn.Module, inputs: Tensor) -> tuple[dict[str, int], Tensor]:
    """Runs ``model`` once; returns the first-call index of every module and the output."""
    order: dict[str, int] = {}
    handles = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inp: Any) -> None:
            order.setdefault(name, len(order))

        return hook

    try:
        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(make_hook(name)))
        with torch.no_grad():
            out = run_forward(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return order, out


def _layer_position(name: str, order: dict[str, int], recurse: bool = True) -> int:
    """Forward position of a layer: the last first-call among its submodules (``recurse``)
    or the first call of the module itself (its own parameters only)."""
    if not recurse:
        return order.get(name, -1)
    prefix = name + "." if name else ""
    hits = [i for n, i in order.items() if n == name or n.startswith(prefix)]
    return max(hits) if hits else -1


@torch.no_grad()
def _randomize(module: nn.Module, generator: torch.Generator, recurse: bool = True) -> None:
    """Seeded re-initialisation of the parameters of ``module``: all of them (``recurse``,
    a block given by name) or only its own (a layer found automatically).

    Weights with two or more dimensions (convolutions, linear layers) and the biases of
    their modules: :math:`U(-1/\\sqrt{\\text{fan\\_in}}, 1/\\sqrt{\\text{fan\\_in}})`, the
    distribution of PyTorch's ``reset_parameters`` for these layers. Other parameters
    (e.g. normalisation scales and shifts, which ``reset_parameters`` sets to constants):
    standard normal.
    """
    for sub in module.modules() if recurse else [module]:
        own = dict(sub.named_parameters(recurse=False))
        weight = own.get("weight")
        fan_in = weight[0].numel() if weight is not None and weight.dim() >= 2 else None
        for pname, p in own.items():
            if p.dim() >= 2:
                bound = 1.0 / math.sqrt(max(p[0].numel(), 1))
                new = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                new = (2 * new - 1) * bound
            elif fan_in is not None and pname == "bias":
                bound = 1.0 / math.sqrt(max(fan_in, 1))
                new = 2 * torch.rand(p.shape, generator=generator, dtype=torch.float64) - 1
                new = new * bound
            else:
                new = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.copy_(new.to(device=p.device, dtype=p.dtype))


def model_randomization(
    explain_factory: Callable[[nn.Module], Callable[..., Any]],
    model: nn.Module,
    inputs: Tensor,
    target: TargetType = None,
    *,
    mode: str = "cascading",
    layers: Any = None,
    similarity: str | Sequence[str] = ("spearman", "spearman_abs", "ssim"),
    seed: SeedType = None,
    reduce: str = "sum",
    return_maps: bool = False,
) -> ModelRandomizationResult:
    r"""Model parameter randomisation test (Adebayo et al., 2018).

    The maps of the trained model are compared with the maps of models whose layers were
    re-initialised:

    - ``"cascading"``: layers are randomised one after another from the output backwards
      (in reverse order of their first call in a forward pass), and the maps are
      recomputed after each step, with all layers randomised so far staying random;
    - ``"independent"``: each layer alone is randomised (the others keep their trained
      values).

    All of this happens on a deep copy of ``model``: the user's model, its parameters,
    buffers, flags and ``.grad`` are never touched (the copy costs one model's memory).
    Maps are computed as ``explain_factory(model_copy)(inputs, target)`` (target by
    keyword for Captum ``attribute`` methods), including the original maps, which use an
    un-randomised copy. For every randomised layer and every measure, the similarity
    between original and randomised maps is returned per example (:math:`N` values):
    ``"spearman"`` (rank correlation of the values), ``"spearman_abs"`` (of the absolute
    values), ``"ssim"`` and ``"hog"`` (on maps brought to ``[0, 1]`` by absolute value and
    per-map min-max, see :func:`~captum_soundness.sanity.normalize_maps`; ``"hog"``
    needs scikit-image) or ``"pearson"``. A method whose similarities stay near 1 does
    not depend on the randomised parameters.

    **Re-initialisation.** With ``layers=None`` the randomised layers are the modules
    with parameters of their own, and only those parameters are re-initialised (a module
    such as :class:`torch.nn.MultiheadAttention` and its child ``out_proj`` are two
    layers). Layers given in ``layers`` are randomised as blocks: every parameter below
    them. Each parameter is drawn from a :class:`torch.Generator` seeded from
    ``seed`` and the layer's position in the model (so a layer gets the same random values
    in both modes); the global RNG is neither read nor advanced. Weights with two or more
    dimensions and the biases of their modules are drawn from
    :math:`U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`, the distribution that
    PyTorch's ``reset_parameters`` uses for convolutions and linear layers; other
    parameters (normalisation scales and shifts, for which ``reset_parameters`` would set
    constants) are drawn from a standard normal. Buffers (e.g. batch-norm running
    statistics) keep their values.

    Args:
        explain_factory: ``explain_factory(model_copy) -> explain_func`` with
            ``explain_func(inputs, target) -> attributions``, e.g.
            ``lambda m: Saliency(m).attribute``. Attributions ``(N, C, *spatial)`` are
            reduced over channels with ``reduce``; ``(N, *map_spatial)`` or
            ``(N, 1, *map_spatial)`` maps are used as they are. Every call must return
            maps of the same shape.
        model: The trained model (:class:`torch.nn.Module`), returning
            ``(N, num_classes)`` scores. Use ``model.eval()``.
        inputs: Inputs ``(N, C, *spatial)``.
        target: Labels to explain (Captum's ``TargetType``); ``None`` explains the trained
            model's predicted label, kept for all randomised models.
        mode: ``"cascading"`` (default) or ``"independent"``.
        layers: ``None`` (every module with parameters of its own) or module names (as in
            ``model.named_modules()``) or modules of ``model``, one or a sequence. Their
            order does not matter: randomisation always proceeds from the output.
        similarity: A measure or a sequence of measures among ``"spearman"``,
            ``"spearman_abs"``, ``"ssim"``, ``"hog"``, ``"pearson"``.
        seed: ``None``, an int or a CPU :class:`torch.Generator` for the re-initialisation.
        reduce: Channel reduction of input-shaped attributions: ``"sum"`` (default),
            ``"abs"`` or ``"max"``.
        return_maps: Keep the original and randomised maps in the result.

    Returns:
        A :class:`ModelRandomizationResult`: ``result.similarity[measure][layer]`` is an
        ``(N,)`` tensor; ``result.summary()`` gives the means and ``str(result)`` a table.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> from captum_soundness.sanity._core import model_randomization
        >>> model = nn.Sequential(
        ...     nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
        ... ).eval()
        >>> x = torch.randn(2, 1, 8, 8)
        >>> result = model_randomization(lambda m: Saliency(m).attribute, model, x, seed=0)
        >>> result.layers, result.similarity["spearman"]["3"].shape
        (['3', '0'], torch.Size([2]))
    """
    if not callable(explain_factory):
        raise TypeError(
            f"`explain_factory` must be callable (model -> explain_func), got "
            f"{type(explain_factory).__name__}."
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    inputs = check_inputs(inputs, min_dim=2)
    n = inputs.shape[0]
    mode = check_choice(mode, "mode", RANDOMIZATION_MODES)
    measures = check_similarity(similarity, "similarity")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    if not isinstance(return_maps, bool):
        raise TypeError(f"`return_maps` must be a bool, got {return_maps!r}.")
    names = _resolve_layers(model, layers)
    # Layers found automatically are the modules with parameters of their own: only those
    # are randomised (a module such as nn.MultiheadAttention, or a model with a parameter
    # of its own, also has children in the list). Named layers are randomised as blocks.
    recurse = layers is not None
    targets = check_targets(target, n, device=inputs.device, allow_none=True)
    base = make_generator(seed, "cpu", "seed")
    warn_if_training(model, "model_randomization")

    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    order, out = _execution_order(work, inputs)
    if out.dim() != 2 or out.shape[0] != n:
        raise ValueError(
            f"`model` must return (N, num_classes) scores, got shape {tuple(out.shape)} "
            f"for {n} inputs."
        )
    if targets is None:
        targets = out.argmax(dim=1)
    elif int(targets.min()) < 0 or int(targets.max()) >= out.shape[1]:
        raise ValueError(f"`target` contains labels outside [0, {out.shape[1] - 1}].")
    # One seed per layer, in the model's registration order (independent of mode and of
    # the order in which `layers` was given).
    registered = [name for name, _ in model.named_modules() if name in set(names)]
    layer_seeds = dict(zip(registered, draw_seeds(base, len(registered))))
    names = sorted(names, key=lambda nm: -_layer_position(nm, order, recurse))

    what = "The attributions of `explain_factory(model)`"
    original = _first_explain(explain_factory(work), inputs, targets, reduce, what)
    _check_measures_fit(measures, original, "similarity")

    scores: dict[str, dict[str, Tensor]] = {m: {} for m in measures}
    randomized_maps: dict[str, Tensor] = {}
    for name in names:
        module = modules[name]
        saved = None
        if mode == "independent":
            saved = [p.detach().clone() for p in module.parameters(recurse=recurse)]
        _randomize(module, torch.Generator().manual_seed(int(layer_seeds[name])), recurse)
        try:
            explain = explain_factory(work)
            maps = _first_explain(
                explain,
                inputs,
                targets,
                reduce,
                f"The attributions of `explain_factory(model)` after randomising {name!r}",
            )
        finally:
            if saved is not None:
                with torch.no_grad():
                    for p, v in zip(module.parameters(recurse=recurse), saved):
                        p.copy_(v)
        if maps.shape != original.shape:
            raise ValueError(
                f"`explain_factory` returned maps of shape {tuple(maps.shape)} after "
                f"randomising {name!r} but {tuple(original.shape)} for the original model."
            )
        for m in measures:
            scores[m][name] = map_similarity(original, maps, m).double().cpu()
        if return_maps:
            randomized_maps[name] = maps.cpu()
    del work
    return ModelRandomizationResult(
        mode=mode,
        layers=names,
        similarity=scores,
        targets=targets.cpu(),
        original_maps=original.cpu() if return_maps else None,
        randomized_maps=randomized_maps if return_maps else None,
        settings={
            "mode": mode,
            "seed": seed if isinstance(seed, int) else None,
            "reduce": reduce,
            "reinit": "uniform(+-1/sqrt(fan_in)) for weights (dim >= 2) and their biases; "
            "standard normal for other parameters",
        },
    )


# ---- class sensitivity -----------------------------------------------------------------


def class_sensitivity(
    explain_func: Callable[..., Any],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    *,
    other: str | int | Sequence[int] | Tensor = "second",
    similarity: str = "spearman",
    reduce: str = "sum",
) -> Tensor:
    r"""Similarity between the maps for the predicted class and for another class.

    For each example, the map of the predicted label :math:`\hat y = \arg\max f(x)` and
    the map of another label are computed (in one call of ``explain_func`` on ``2N``
    rows) and compared with ``similarity``. A method that explains the *class* gives
    dissimilar maps (low values); similarities near 1 mean the map mostly shows the
    input, whatever the class (Adebayo et al., 2018; Khakzar et al., 2020).

    Args:
        explain_func: ``explain_func(inputs, target) -> attributions`` (e.g.
            ``Saliency(model).attribute``).
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Inputs ``(N, C, *spatial)``.
        other: The other label: ``"second"`` (second most likely, default), ``"least"``
            (least likely), an int, or one label per example (list or 1-D tensor). It must
            differ from the predicted label of every example.
        similarity: One measure among ``"spearman"`` (default), ``"spearman_abs"``,
            ``"ssim"``, ``"hog"``, ``"pearson"`` (see :func:`model_randomization`).
        reduce: Channel reduction of input-shaped attributions (``"sum"``, ``"abs"``,
            ``"max"``).

    Returns:
        Float64 tensor ``(N,)`` of similarities (CPU).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> from captum_soundness.sanity._core import class_sensitivity
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x = torch.randn(4, 1, 4, 4)
        >>> class_sensitivity(Saliency(model).attribute, model.eval(), x).shape
        torch.Size([4])
    """
    if not callable(explain_func):
        raise TypeError(f"`explain_func` must be callable, got {type(explain_func).__name__}.")
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_inputs(inputs, min_dim=2)
    if not isinstance(similarity, str):
        raise TypeError(f"`similarity` must be one measure name (a str), got {similarity!r}.")
    (measure,) = check_similarity(similarity, "similarity")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    n = inputs.shape[0]
    if isinstance(other, str):
        check_choice(other, "other", ("second", "least"))
    else:
        check_targets(other, n, name="other")
    warn_if_training(forward_func, "class_sensitivity")
    out = _predicted(forward_func, inputs)
    num_classes = out.shape[1]
    if num_classes < 2:
        raise ValueError("class_sensitivity needs a model with at least 2 outputs.")
    order = torch.sort(out, dim=1, descending=True, stable=True).indices
    predicted = order[:, 0]
    if isinstance(other, str):
        other_labels = order[:, 1] if other == "second" else order[:, -1]
    else:
        other_labels = check_targets(other, n, num_classes, name="other", device=inputs.device)
        same = (other_labels == predicted).nonzero().flatten().tolist()
        if same:
            raise ValueError(
                f"`other` equals the predicted label for examples {same}; choose a label "
                "that differs from the prediction (or other='second')."
            )
    x2 = torch.cat([inputs, inputs], dim=0)
    t2 = torch.cat([predicted, other_labels]).to(inputs.device)
    maps = _first_explain(
        explain_func, x2, t2, reduce, "The attributions returned by `explain_func`"
    )
    _check_measures_fit((measure,), maps, "similarity")
    return map_similarity(maps[:n], maps[n:], measure).double().cpu()


# ---- fill sensitivity ------------------------------------------------------------------

_FILL_KWARGS = frozenset(
    {
        "fractions",
        "n_fill_samples",
        "apply_softmax",
        "reduce",
        "max_examples_per_batch",
        "seed",
        "epsilon",
        "alpha",
        "beta",
        "explain_batch_size",
        "deletion",
    }
)

#: Values of ``evaluation`` in :func:`fill_sensitivity`.
FILL_EVALUATIONS = ("prediction", "all_labels")


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


class _RecordingExplain:
    """Wraps an explain_func: passes ``fill`` if wanted, records (or replays) its results."""

    def __init__(
        self, explain_func: Callable[..., Any], fill: Fill | None, replay: list[Any] | None
    ) -> None:
        self.explain_func = explain_func
        self.fill = fill
        self.replay = replay
        self.calls: list[Any] = []

    def __call__(self, inputs: Tensor, target: Tensor) -> Any:
        if self.replay is not None and len(self.calls) < len(self.replay):
            result = self.replay[len(self.calls)]
        else:
            kw = {} if self.fill is None else {"fill": self.fill}
            result = call_explain(self.explain_func, inputs, target, **kw)
        self.calls.append(result)
        return result


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


def _kendall_tau_b(x: Tensor, y: Tensor) -> float:
    dx = torch.sign(x.view(-1, 1) - x.view(1, -1))
    dy = torch.sign(y.view(-1, 1) - y.view(1, -1))
    iu = torch.triu_indices(x.numel(), x.numel(), offset=1)
    dx, dy = dx[iu[0], iu[1]], dy[iu[0], iu[1]]
    num = float((dx * dy).sum())
    den = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return num / den if den > 0 else math.nan


def fill_sensitivity(
    explain_funcs: Mapping[str, Callable[..., Any]],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    fills: Mapping[str, Any],
    *,
    labels: Sequence[int] | Tensor | None = None,
    evaluation: str = "prediction",
    rank_by: str = "insertion_score_at_prediction",
    **metric_kwargs: Any,
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
        **metric_kwargs: ``fractions``, ``n_fill_samples``, ``apply_softmax``, ``reduce``,
            ``max_examples_per_batch``, ``seed``, ``epsilon``, ``alpha``, ``beta`` (and, with
            ``evaluation="all_labels"``, ``explain_batch_size``, ``deletion``), as in
            :func:`~captum_soundness.metrics.evaluate_all_labels`.

    Returns:
        A :class:`FillSensitivityReport` (``str(report)`` is a readable table).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency, InputXGradient
        >>> from captum_soundness.fills import BlurFill, MeanFill
        >>> from captum_soundness.sanity._core import fill_sensitivity
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
    if not isinstance(explain_funcs, Mapping) or not explain_funcs:
        raise TypeError("`explain_funcs` must be a non-empty dict: name -> explain_func.")
    for name, fn in explain_funcs.items():
        if not isinstance(name, str):
            raise TypeError(f"`explain_funcs` keys must be str names, got {name!r}.")
        if not callable(fn):
            raise TypeError(f"`explain_funcs[{name!r}]` must be callable.")
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_model_inputs(inputs)
    if not isinstance(fills, Mapping) or not fills:
        raise TypeError("`fills` must be a non-empty dict: name -> fill.")
    fill_objs: dict[str, Fill] = {}
    for name, f in fills.items():
        if not isinstance(name, str):
            raise TypeError(f"`fills` keys must be str names, got {name!r}.")
        fill_objs[name] = as_fill(f, f"fills[{name!r}]")
        fill_objs[name].check_compatible(inputs, f"fills[{name!r}]")
    evaluation = check_choice(evaluation, "evaluation", FILL_EVALUATIONS)
    unknown = sorted(set(metric_kwargs) - _FILL_KWARGS)
    if "fill" in metric_kwargs:
        raise TypeError("fill_sensitivity() takes the fills through `fills`, not `fill`.")
    if unknown:
        raise TypeError(
            f"fill_sensitivity() got unexpected keyword argument(s) {unknown}; accepted: "
            f"{sorted(_FILL_KWARGS)}."
        )
    if evaluation == "prediction":
        extra = sorted({"explain_batch_size", "deletion"} & set(metric_kwargs))
        if extra:
            raise TypeError(f"{extra} only apply with evaluation='all_labels'.")
        available = (
            "insertion_score_at_prediction",
            "completeness_at_prediction",
            "soundness_second_label",
        )
    else:
        available = (
            "completeness_at_prediction",
            "soundness_other_labels_mean",
            "soundness_worst",
            "completeness_worst_wrong_label",
            "soundness_second_label",
            "insertion_score_at_prediction",
            "deletion_score_at_prediction",
        )
    rank_by = check_choice(rank_by, "rank_by", available)
    if rank_by == "deletion_score_at_prediction" and metric_kwargs.get("deletion", "none") == (
        "none"
    ):
        raise ValueError("`rank_by`='deletion_score_at_prediction' needs deletion='predicted'.")
    epsilon, alpha, beta = check_metric_constants(
        metric_kwargs.pop("epsilon", 0.1),
        metric_kwargs.pop("alpha", 1.0),
        metric_kwargs.pop("beta", 0.1),
    )
    reduce = check_choice(metric_kwargs.get("reduce", "sum"), "reduce", REDUCTIONS)
    warn_if_training(forward_func, "fill_sensitivity")

    methods, fill_names = list(explain_funcs), list(fill_objs)
    n = inputs.shape[0]
    metrics: dict[str, dict[str, dict[str, Tensor]]] = {m: {} for m in methods}
    dependent = {m: _accepts_fill(fn) for m, fn in explain_funcs.items()}
    pred_maps: dict[str, list[Tensor]] = {m: [] for m in methods}

    if evaluation == "prediction":
        out = _predicted(forward_func, inputs)
        label_ids = check_labels(labels, out.shape[1], "labels")
        model = forward_func if labels is None else restrict_labels(forward_func, label_ids)
        sub = out[:, label_ids]
        order = torch.sort(sub, dim=1, descending=True, stable=True).indices
        positions = torch.cat([order[:, 0], order[:, 1]]).to(inputs.device)
        ids = torch.tensor(label_ids, dtype=torch.long, device=inputs.device)[positions]
        x2 = torch.cat([inputs, inputs], dim=0)
        curve_kwargs = {k: v for k, v in metric_kwargs.items() if k != "reduce"}
        for m in methods:
            replay = None
            for fname, fill in fill_objs.items():
                rec = _RecordingExplain(explain_funcs[m], fill if dependent[m] else None, replay)
                maps = to_maps(
                    rec(x2, ids), x2, reduce, f"The attributions of `explain_funcs[{m!r}]`"
                )
                if not dependent[m]:
                    replay = rec.calls
                curve, prob = run_curves(
                    "insertion",
                    model,
                    x2,
                    maps,
                    positions,
                    fill=fill,
                    reduce=reduce,
                    return_clean=True,
                    caller="fill_sensitivity",
                    **curve_kwargs,
                )
                assert prob is not None
                score = curve.mean(dim=1)
                metrics[m][fname] = {
                    "insertion_score_at_prediction": score[:n].cpu(),
                    "completeness_at_prediction": completeness_from_scores(
                        score[:n], prob[:n], epsilon, alpha
                    ).cpu(),
                    "soundness_second_label": soundness_from_scores(
                        score[n:], prob[n:], beta
                    ).cpu(),
                }
                pred_maps[m].append(maps[:n])
    else:
        for m in methods:
            replay = None
            for fname, fill in fill_objs.items():
                rec = _RecordingExplain(explain_funcs[m], fill if dependent[m] else None, replay)
                report = evaluate_all_labels(
                    rec,
                    forward_func,
                    inputs,
                    labels,
                    fill=fill,
                    epsilon=epsilon,
                    alpha=alpha,
                    beta=beta,
                    **metric_kwargs,
                )
                if not dependent[m]:
                    replay = rec.calls
                metrics[m][fname] = report.per_image()
                num_labels = report.num_labels
                what = f"The attributions of `explain_funcs[{m!r}]`"
                all_maps = torch.cat(
                    [
                        to_maps(
                            a,
                            inputs[:1].expand(len(unwrap_single(a, what)), *inputs.shape[1:]),
                            reduce,
                            what,
                        )
                        for a in rec.calls
                    ]
                )
                rows = torch.arange(n) * num_labels + report.predicted
                pred_maps[m].append(all_maps[rows.to(all_maps.device)])

    map_corr: dict[str, Tensor | None] = {}
    num_fills = len(fill_names)
    for m in methods:
        if not dependent[m]:
            map_corr[m] = None
            continue
        corr = torch.ones(num_fills, num_fills, n, dtype=torch.float64)
        for i in range(num_fills):
            for j in range(i + 1, num_fills):
                c = spearman(pred_maps[m][i], pred_maps[m][j]).cpu()
                corr[i, j] = c
                corr[j, i] = c
        map_corr[m] = corr

    method_scores = torch.tensor(
        [[float(metrics[m][f][rank_by].mean()) for m in methods] for f in fill_names],
        dtype=torch.float64,
    )
    rank_sp = torch.full((num_fills, num_fills), math.nan, dtype=torch.float64)
    rank_kt = torch.full((num_fills, num_fills), math.nan, dtype=torch.float64)
    if len(methods) >= 2:
        ranks = rank_with_ties(method_scores)
        for i in range(num_fills):
            for j in range(num_fills):
                rank_sp[i, j] = spearman(ranks[i : i + 1], ranks[j : j + 1])[0]
                rank_kt[i, j] = _kendall_tau_b(method_scores[i], method_scores[j])
    settings = {
        "evaluation": evaluation,
        "labels": None
        if labels is None
        else [int(a) for a in (labels.tolist() if isinstance(labels, Tensor) else labels)],
        "fills": {k: repr(v) for k, v in fill_objs.items()},
        "epsilon": epsilon,
        "alpha": alpha,
        "beta": beta,
        **{
            k: (v if isinstance(v, (int, float, str, bool)) else repr(v))
            for k, v in metric_kwargs.items()
        },
    }
    return FillSensitivityReport(
        methods=methods,
        fills=fill_names,
        metrics=metrics,
        fill_dependent=dependent,
        map_correlation=map_corr,
        rank_by=rank_by,
        method_scores=method_scores,
        ranking_spearman=rank_sp,
        ranking_kendall=rank_kt,
        settings=settings,
    )
