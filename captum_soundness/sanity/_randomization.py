"""Model parameter randomisation (Adebayo et al., 2018): layers, order, re-initialisation."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from torch import Tensor, nn

from captum_soundness._utils.explain import check_explain_kwargs
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_output, run_forward
from captum_soundness._utils.inputs import format_inputs, num_examples
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.targets import Targets, resolve_targets
from captum_soundness._utils.validation import check_choice
from captum_soundness.masking import REDUCTIONS
from captum_soundness.sanity._maps import check_measures_fit, explain_maps, explain_target
from captum_soundness.sanity._results import ModelRandomizationResult
from captum_soundness.sanity._similarity import check_similarity, map_similarity

__all__ = ["RANDOMIZATION_MODES", "model_randomization"]

#: Values of ``mode`` in :func:`model_randomization`.
RANDOMIZATION_MODES = ("cascading", "independent")

_REINIT = (
    "uniform(+-1/sqrt(fan_in)) for weights (dim >= 2) and their biases; "
    "standard normal for other parameters"
)


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


def _execution_order(
    model: nn.Module, inputs: tuple[Tensor, ...]
) -> tuple[dict[str, int], Tensor]:
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


@dataclass
class _Setup:
    """The checked arguments of :func:`model_randomization`."""

    inputs: tuple[Tensor, ...]
    is_tuple: bool
    targets: Targets
    mode: str
    measures: tuple[str, ...]
    reduce: str
    explain_kwargs: dict[str, Any]

    def explain(self, explain_func: Any, target: Any, what: str) -> Tensor:
        """The maps of ``explain_func`` on the inputs."""
        return explain_maps(
            explain_func,
            self.inputs,
            self.is_tuple,
            target,
            self.reduce,
            what,
            explain_kwargs=self.explain_kwargs,
        )


def _check_arguments(
    explain_factory: Any,
    model: Any,
    inputs: Any,
    target: Any,
    options: dict[str, Any],
) -> _Setup:
    if not callable(explain_factory):
        raise TypeError(
            f"`explain_factory` must be callable (model -> explain_func), got "
            f"{type(explain_factory).__name__}."
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
    for i, x in enumerate(xs):
        check_finite(x, "`inputs`" if len(xs) == 1 else f"`inputs[{i}]`")
    if not isinstance(options["return_maps"], bool):
        raise TypeError(f"`return_maps` must be a bool, got {options['return_maps']!r}.")
    return _Setup(
        inputs=xs,
        is_tuple=is_tuple,
        targets=resolve_targets(target, num_examples(xs), device=xs[0].device),
        mode=check_choice(options["mode"], "mode", RANDOMIZATION_MODES),
        measures=check_similarity(options["similarity"], "similarity"),
        reduce=check_choice(options["reduce"], "reduce", REDUCTIONS),
        explain_kwargs=check_explain_kwargs(options["explain_kwargs"], inputs=xs),
    )


def _plan(
    model: nn.Module,
    work: nn.Module,
    setup: _Setup,
    names: list[str],
    base: torch.Generator,
    recurse: bool,
) -> tuple[Any, list[str], dict[str, int]]:
    """Runs the copy once: explained targets, layers from the output backwards, seeds."""
    order, out = _execution_order(work, setup.inputs)
    n = num_examples(setup.inputs)
    if setup.targets.is_none:
        out = check_output(out, n, "model")
    elif not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != n:
        raise ValueError(f"`model` must return one row of scores per input (N = {n}).")
    check_finite(out, "The outputs of `model`")
    targets = explain_target(setup.targets, out.shape, out.argmax(dim=-1))
    # One seed per layer, in the model's registration order (independent of mode and of
    # the order in which `layers` was given).
    registered = [name for name, _ in model.named_modules() if name in set(names)]
    layer_seeds = dict(zip(registered, draw_seeds(base, len(registered))))
    names = sorted(names, key=lambda nm: -_layer_position(nm, order, recurse))
    return targets, names, layer_seeds


def _maps_after_randomizing(
    explain_factory: Callable[[nn.Module], Any],
    work: nn.Module,
    name: str,
    seed: int,
    setup: _Setup,
    targets: Any,
    recurse: bool,
) -> Tensor:
    """Randomises layer ``name`` of ``work`` and explains; puts it back in independent mode."""
    module = dict(work.named_modules())[name]
    restore = setup.mode == "independent"
    saved = [p.detach().clone() for p in module.parameters(recurse=recurse)] if restore else None
    _randomize(module, torch.Generator().manual_seed(int(seed)), recurse)
    try:
        what = f"The attributions of `explain_factory(model)` after randomising {name!r}"
        return setup.explain(explain_factory(work), targets, what)
    finally:
        if saved is not None:
            with torch.no_grad():
                for p, v in zip(module.parameters(recurse=recurse), saved):
                    p.copy_(v)


def _check_same_shape(maps: Tensor, original: Tensor, name: str) -> None:
    if maps.shape != original.shape:
        raise ValueError(
            f"`explain_factory` returned maps of shape {tuple(maps.shape)} after "
            f"randomising {name!r} but {tuple(original.shape)} for the original model."
        )


def _targets_tensor(targets: Any) -> Tensor:
    """The explained targets as a CPU tensor: ``(N,)`` labels or ``(N, k)`` index tuples."""
    if isinstance(targets, Tensor):
        return targets.cpu()
    return torch.tensor(targets, dtype=torch.long)


def model_randomization(
    explain_factory: Callable[[nn.Module], Callable[..., Any]],
    model: nn.Module,
    inputs: TensorOrTupleOfTensorsGeneric,
    target: TargetType = None,
    *,
    mode: str = "cascading",
    layers: Any = None,
    similarity: str | Sequence[str] = ("spearman", "spearman_abs", "ssim"),
    seed: SeedType = None,
    reduce: str = "sum",
    return_maps: bool = False,
    explain_kwargs: dict[str, Any] | None = None,
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
    Maps are computed as ``explain_factory(model_copy)(inputs, target, **explain_kwargs)``
    (target by keyword for Captum ``attribute`` methods; the inputs in the container they
    were given in), including the original maps, which use an un-randomised copy. For every
    randomised layer and every measure, the similarity between original and randomised maps
    is returned per example (:math:`N` values): ``"spearman"`` (rank correlation of the
    values), ``"spearman_abs"`` (of the absolute values), ``"ssim"`` and ``"hog"`` (on maps
    brought to ``[0, 1]`` by absolute value and per-map min-max, see
    :func:`~captum_soundness.sanity.normalize_maps`; ``"hog"`` needs scikit-image) or
    ``"pearson"``. A method whose similarities stay near 1 does not depend on the randomised
    parameters.

    **Re-initialisation.** With ``layers=None`` the randomised layers are the modules
    with parameters of their own, and only those parameters are re-initialised (a module
    such as :class:`torch.nn.MultiheadAttention` and its child ``out_proj`` are two
    layers). Layers given in ``layers`` are randomised as blocks: every parameter below
    them. Each parameter is drawn from a :class:`torch.Generator` seeded from
    ``seed`` and the layer's position in the model (so a layer gets the same random values
    in both modes). An int seed or a generator leaves the global RNG untouched;
    ``seed=None`` draws one seed from it (PyTorch's rule, as in
    :class:`~torch.utils.data.DataLoader`), so ``torch.manual_seed`` makes the call
    repeatable. Weights with two or more
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
            ``(N, num_classes)`` scores (other output shapes need a ``target`` that
            selects one score per example). Use ``model.eval()``.
        inputs: A tensor or a tuple of tensors (rank >= 2, batch first; Captum's
            convention); ``model(*inputs)`` for a tuple. Attributions of several inputs
            (a tuple, one per input) are compared over the positions of all of them
            (see :mod:`captum_soundness.sanity`); SSIM and HOG then do not apply.
        target: What to explain, Captum's ``TargetType`` resolved as Captum resolves it
            (an int, a tuple index into a multi-dimensional output, a tensor of one or
            ``N`` labels, a list of ``N`` ints or tuples); checked against the trained
            model's outputs and handed to every explanation as a tensor of ``N`` labels
            (or, for multi-dimensional outputs, a list of ``N`` index tuples). ``None``
            explains the trained model's predicted label, kept for all randomised
            models.
        mode: ``"cascading"`` (default) or ``"independent"``.
        layers: ``None`` (every module with parameters of its own) or module names (as in
            ``model.named_modules()``) or modules of ``model``, one or a sequence. Their
            order does not matter: randomisation always proceeds from the output.
        similarity: A measure or a sequence of measures among ``"spearman"``,
            ``"spearman_abs"``, ``"ssim"``, ``"hog"``, ``"pearson"``.
        seed: ``None`` (one seed drawn from the global RNG), an int or a CPU
            :class:`torch.Generator` for the re-initialisation.
        reduce: Channel reduction of input-shaped attributions: ``"sum"`` (default),
            ``"abs"`` or ``"max"``.
        return_maps: Keep the original and randomised maps in the result.
        explain_kwargs: Further keyword arguments of every ``explain_func`` (e.g.
            ``baselines``, ``feature_mask``), passed as given (the inputs are not
            repeated here).

    Returns:
        A :class:`ModelRandomizationResult`: ``result.similarity[measure][layer]`` is an
        ``(N,)`` tensor; ``result.summary()`` gives the means and ``str(result)`` a table.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> from captum_soundness.sanity import model_randomization
        >>> model = nn.Sequential(
        ...     nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
        ... ).eval()
        >>> x = torch.randn(2, 1, 8, 8)
        >>> result = model_randomization(lambda m: Saliency(m).attribute, model, x, seed=0)
        >>> result.layers, result.similarity["spearman"]["3"].shape
        (['3', '0'], torch.Size([2]))
    """
    options = {
        "mode": mode,
        "similarity": similarity,
        "reduce": reduce,
        "return_maps": return_maps,
        "explain_kwargs": explain_kwargs,
    }
    setup = _check_arguments(explain_factory, model, inputs, target, options)
    names = _resolve_layers(model, layers)
    # Layers found automatically are the modules with parameters of their own: only those
    # are randomised (a module such as nn.MultiheadAttention, or a model with a parameter
    # of its own, also has children in the list). Named layers are randomised as blocks.
    recurse = layers is not None
    base = make_generator(seed, "cpu", "seed")  # before the guard: seed=None draws once
    warn_if_training(model, "model_randomization")

    # The user's model is only copied; the guard keeps the global RNG (dropout in the copy).
    with preserved_model(model, freeze_parameters=False, devices=[setup.inputs[0].device]):
        work = copy.deepcopy(model)
        targets, names, layer_seeds = _plan(model, work, setup, names, base, recurse)
        original = setup.explain(
            explain_factory(work), targets, "The attributions of `explain_factory(model)`"
        )
        check_measures_fit(setup.measures, original, "similarity")
        scores: dict[str, dict[str, Tensor]] = {m: {} for m in setup.measures}
        randomized_maps: dict[str, Tensor] = {}
        for name in names:
            maps = _maps_after_randomizing(
                explain_factory, work, name, layer_seeds[name], setup, targets, recurse
            )
            _check_same_shape(maps, original, name)
            for m in setup.measures:
                scores[m][name] = map_similarity(original, maps, m).double().cpu()
            if return_maps:
                randomized_maps[name] = maps.cpu()
        del work
    return ModelRandomizationResult(
        mode=setup.mode,
        layers=names,
        similarity=scores,
        targets=_targets_tensor(targets),
        original_maps=original.cpu() if return_maps else None,
        randomized_maps=randomized_maps if return_maps else None,
        settings={
            "mode": setup.mode,
            "seed": seed if isinstance(seed, int) else None,
            "reduce": setup.reduce,
            "reinit": _REINIT,
        },
    )
