"""Maps of the sanity checks: the explanation call, the measure fit, the model's scores.

The sanity checks compare the maps of one method under two conditions (two models, two
labels, two fills), example by example. :func:`attribution_maps` turns what an
explanation returns into one map per example:

- one input tensor of rank >= 3 ``(N, C, *spatial)``: input-shaped attributions are
  reduced over the channels (``reduce``); ``(N, 1, *spatial)`` and layer-shaped maps (an
  un-upsampled GradCAM map) are used as they are;
- one tabular input ``(N, F)``: attributions shaped like it are the map (absolute values
  with ``reduce="abs"``); other shapes are used as they are;
- several input tensors: a tuple with one attribution per input gives ``(N, P)`` scores
  over the positions of all inputs
  (:class:`~captum_soundness._utils.features.FeatureLayout`); a single (layer-shaped) map
  is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.explain import call_explain, expand_explain_kwargs
from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_output, run_forward
from captum_soundness._utils.inputs import format_like
from captum_soundness._utils.maps import to_maps, unwrap_single
from captum_soundness._utils.model_state import preserved_model
from captum_soundness._utils.targets import Targets

__all__ = [
    "attribution_maps",
    "check_measures_fit",
    "explain_maps",
    "explain_target",
    "predicted_scores",
    "repeat_inputs",
]


def repeat_inputs(
    inputs: tuple[Tensor, ...], times: int, explain_kwargs: Mapping[str, Any]
) -> tuple[tuple[Tensor, ...], Tensor, dict[str, Any]]:
    """The inputs ``times`` times over (``(times * N)`` rows, block after block), the example
    of every row, and ``explain_kwargs`` with their per-example tensors repeated alike."""
    n = int(inputs[0].shape[0])
    examples = torch.arange(n).repeat(times)
    rows = tuple(torch.cat([x] * times, dim=0) for x in inputs)
    kwargs = expand_explain_kwargs(dict(explain_kwargs), examples, inputs)
    return rows, examples, kwargs


def explain_maps(
    explain_func: Any,
    inputs: tuple[Tensor, ...],
    is_tuple: bool,
    target: Any,
    reduce: str,
    what: str,
    examples: Tensor | None = None,
    explain_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """Calls ``explain_func`` on the inputs (in their container) and ``target``, with
    ``explain_kwargs``; returns its finite maps (:func:`attribution_maps`; ``examples``:
    the example of each row, for the error messages)."""
    if not callable(explain_func):
        raise TypeError(f"{what} must be callable, got {type(explain_func).__name__}.")
    attributions = call_explain(
        explain_func, format_like(inputs, is_tuple), target, **(explain_kwargs or {})
    )
    return attribution_maps(attributions, inputs, reduce, what, examples)


def attribution_maps(
    attributions: Any,
    inputs: tuple[Tensor, ...],
    reduce: str,
    what: str,
    examples: Tensor | None = None,
) -> Tensor:
    """One map per example from attributions (see the module docstring for the rules)."""
    n = int(inputs[0].shape[0])
    if len(inputs) > 1:
        if isinstance(attributions, (tuple, list)) and len(attributions) == len(inputs):
            return FeatureLayout(inputs).maps(attributions, reduce, what, examples)
        attr = unwrap_single(attributions, what)
        if not isinstance(attr, Tensor) or attr.dim() < 2 or attr.shape[0] != n:
            raise ValueError(
                f"{what} must be a tuple with one attribution per input tensor "
                f"({len(inputs)}) or one (layer-shaped) map (N, ...) with N = {n}."
            )
        attr = check_finite(attr.detach(), what, examples)
        return attr if attr.is_floating_point() else attr.double()
    x = inputs[0]
    attr = unwrap_single(attributions, what)
    if x.dim() == 2 and isinstance(attr, Tensor) and tuple(attr.shape) == tuple(x.shape):
        return FeatureLayout(inputs).maps(attr, reduce, what, examples)
    return to_maps(attr, x, reduce, what, examples)


def explain_target(targets: Targets, output_shape: Sequence[int], predicted: Tensor) -> Any:
    """The target handed to the explanation functions, as Captum reads it.

    ``None`` becomes the ``predicted`` labels ``(N,)``; a target that selects one label
    of an ``(N, C)`` output becomes an ``(N,)`` tensor of non-negative labels; one into a
    multi-dimensional output a list of ``N`` index tuples.

    Raises:
        ValueError: If the target does not select one score per example of the output.
    """
    if targets.is_none:
        return predicted
    shape = tuple(int(s) for s in output_shape[1:])
    flat = targets.flat(output_shape).cpu()
    if len(shape) == 1:
        return flat.to(predicted.device)
    index = torch.stack(torch.unravel_index(flat, shape), dim=1)
    return [tuple(row) for row in index.tolist()]


def check_measures_fit(measures: Sequence[str], maps: Tensor, name: str) -> None:
    """Raises a ``ValueError`` when an image measure (SSIM, HOG) meets non-2-D maps."""
    image_like = maps.dim() == 3 or (maps.dim() == 4 and maps.shape[1] == 1)
    for m in measures:
        if m in ("ssim", "hog") and not image_like:
            raise ValueError(
                f"`{name}` contains {m!r}, which needs 2-D maps (N, H, W); the explanations "
                f"give maps of shape {tuple(maps.shape)}."
            )


def predicted_scores(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    additional_forward_args: Any = None,
) -> Tensor:
    """The ``(N, num_classes)`` scores of ``forward_func`` (model left as found)."""
    with (
        preserved_model(forward_func, freeze_parameters=False, devices=[inputs[0].device]),
        torch.no_grad(),
    ):
        out = run_forward(forward_func, inputs, additional_forward_args)
    return check_finite(check_output(out, inputs[0].shape[0]), "The outputs of `forward_func`")
