"""Attributions -> saliency maps: validation, one-tensor tuples, channel reduction.

Multi-input attributions (a tuple per input tensor) are scored by
:class:`~captum_soundness._utils.features.FeatureLayout`; :func:`check_attribution_rows`
checks their container and number of rows first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness.masking import reduce_channels

__all__ = ["check_attribution_rows", "saliency_maps", "to_maps", "unwrap_single"]


def unwrap_single(attributions: Any, what: str) -> Any:
    """The tensor of a one-tensor tuple or list (Captum returns tuples); others unchanged."""
    if isinstance(attributions, (tuple, list)):
        if len(attributions) == 1 and isinstance(attributions[0], Tensor):
            return attributions[0]
        raise TypeError(
            f"{what} must be a single tensor; tuples of attributions (multi-input models) "
            f"are not supported, got a {type(attributions).__name__} of {len(attributions)}."
        )
    return attributions


def check_attribution_rows(attributions: Any, count: int, rows: int, what: str) -> None:
    """Checks the container and batch size of attributions for ``count`` input tensors.

    A tensor is accepted for one input tensor; a tuple (or a list of tensors) must hold
    one tensor per input tensor. Every tensor needs ``rows`` rows (its first dimension).

    Raises:
        TypeError: For other objects, or a single tensor for several input tensors.
        ValueError: For a tuple of another length, or another number of rows.
    """
    if isinstance(attributions, list) and not all(isinstance(a, Tensor) for a in attributions):
        raise TypeError(
            f"{what} must be a torch.Tensor or a tuple of tensors, got a list of "
            f"{', '.join(sorted({type(a).__name__ for a in attributions})) or 'nothing'}."
        )
    if isinstance(attributions, (tuple, list)):
        if len(attributions) != count:
            raise ValueError(
                f"{what} is a {type(attributions).__name__} of {len(attributions)}, but "
                f"there are {count} input tensor(s): give one attribution per input."
            )
        parts = tuple(attributions)
    elif count != 1:
        raise TypeError(
            f"{what} must be a tuple of {count} tensors (one per input tensor, Captum's "
            f"convention), got {type(attributions).__name__}."
        )
    else:
        parts = (attributions,)
    for i, part in enumerate(parts):
        name = what if count == 1 else f"{what}[{i}]"
        if not isinstance(part, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(part).__name__}.")
        if part.dim() == 0 or part.shape[0] != rows:
            got = "no batch dimension" if part.dim() == 0 else f"batch size {part.shape[0]}"
            raise ValueError(
                f"{name} has {got} but the inputs hold {rows} examples "
                f"(shape {tuple(part.shape)})."
            )


def saliency_maps(
    attributions: Any,
    inputs: Tensor,
    reduce: str = "sum",
    what: str = "`attributions`",
    examples: Tensor | None = None,
) -> Tensor:
    """Validates attributions against ``inputs`` and reduces them to maps ``(N, *spatial)``.

    Accepted shapes, for inputs of shape ``(N, C, *spatial)``:

    - ``(N, C, *spatial)``: a Captum attribution of the inputs' shape, reduced over
      channels with ``reduce``;
    - ``(N, 1, *spatial)``: one channel broadcast over all channels (e.g. an upsampled
      GradCAM map); ``reduce`` applies to the single channel (``"abs"`` takes absolute
      values, ``"sum"`` and ``"max"`` keep it as is);
    - ``(N, *spatial)``: an already reduced map, treated like ``(N, 1, *spatial)``.

    Args:
        attributions: The attributions to check.
        inputs: The checked inputs.
        reduce: ``"sum"``, ``"abs"`` or ``"max"``.
        what: How error messages name the attributions.
        examples: The example index of each row, named by the error for non-finite
            attributions (the rows themselves when ``None``).

    Returns:
        Maps of shape ``(N, *spatial)`` on the inputs' device (floating point).
    """
    attributions = _as_tensor(attributions, what)
    if attributions.dtype == torch.bool or attributions.is_complex():
        raise TypeError(f"{what} must be a real-valued tensor, got dtype {attributions.dtype}.")
    n, channels, spatial = inputs.shape[0], inputs.shape[1], tuple(inputs.shape[2:])
    shape = tuple(attributions.shape)
    expected = (
        f"expected ({n}, {channels}, {', '.join(map(str, spatial))}) like the inputs, "
        f"({n}, 1, {', '.join(map(str, spatial))}) or ({n}, {', '.join(map(str, spatial))})"
    )
    with_channels = attributions.dim() == inputs.dim()
    if not with_channels and attributions.dim() != inputs.dim() - 1:
        raise ValueError(f"{what} has shape {shape}; {expected}.")
    if shape[0] != n:
        raise ValueError(
            f"{what} has batch size {shape[0]} but the inputs hold {n} examples "
            f"(shape {shape}; {expected})."
        )
    map_spatial = shape[2:] if with_channels else shape[1:]
    if map_spatial != spatial:
        raise ValueError(
            f"{what} has spatial size {map_spatial} but the inputs have {spatial} "
            f"(shape {shape}; {expected})."
        )
    if with_channels and shape[1] not in (channels, 1):
        raise ValueError(
            f"{what} has {shape[1]} channels but the inputs have {channels} "
            f"(shape {shape}; {expected})."
        )
    attr = _finite_floating(attributions, what, examples).to(inputs.device)
    return reduce_channels(attr if with_channels else attr.unsqueeze(1), reduce)


def to_maps(
    attributions: Any, inputs: Tensor, reduce: str, what: str, examples: Tensor | None = None
) -> Tensor:
    """Attributions -> maps ``(N, *map_spatial)``: channel-reduced when input-shaped
    (``examples`` as in :func:`saliency_maps`)."""
    attributions = _as_tensor(attributions, what)
    n = inputs.shape[0]
    if attributions.dim() < 2 or attributions.shape[0] != n:
        raise ValueError(
            f"{what} must have shape (N, ...) with N = {n} examples, got "
            f"{tuple(attributions.shape)}."
        )
    attr = _finite_floating(attributions, what, examples)
    if attr.dim() == inputs.dim() and attr.shape[1] == inputs.shape[1]:
        return reduce_channels(attr, reduce)  # input-shaped: reduced over channels
    if attr.dim() == inputs.dim() and attr.shape[1] == 1:
        return attr[:, 0]  # one map broadcast over channels: used as it is
    return attr


def _as_tensor(attributions: Any, what: str) -> Tensor:
    """Attributions as one tensor (a one-tensor tuple unwrapped), else a ``TypeError``."""
    attributions = unwrap_single(attributions, what)
    if not isinstance(attributions, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(attributions).__name__}.")
    return attributions


def _finite_floating(attributions: Tensor, what: str, examples: Tensor | None) -> Tensor:
    """Detached attributions, checked finite; integer tensors become float64."""
    attr = check_finite(attributions.detach(), what, examples)
    return attr if attr.is_floating_point() else attr.double()
