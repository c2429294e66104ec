r"""SimpleMasking's mask per input tensor: what a mask value covers, its regularisers,
and the masked inputs built from it.

:class:`MaskParams` holds the mask logits :math:`w` of a chunk of examples over formatted
inputs ``(x_1, ..., x_k)`` (see :class:`~captum_soundness._utils.features.FeatureLayout`)
and turns them into one mask per input tensor, broadcastable to it:

- an input of rank >= 3, ``(N, C, *spatial)``, without a ``feature_mask``: logits on a
  grid of :math:`\lceil \text{size} / s \rceil` cells per spatial dimension (``s`` =
  ``downsample``), :math:`m = \operatorname{upsample}(\sigma(w))` of shape ``(c, 1,
  *spatial)``, shared by the channels; total variation regularises it;
- a tabular input ``(N, F)`` without a ``feature_mask``: one logit per feature,
  :math:`m = \sigma(w)` of shape ``(c, F)``; no upsampling, no total variation;
- with a ``feature_mask``: one logit per group (over all input tensors, as Captum's
  group ids are), every element taking its group's value; no upsampling, no total
  variation.

The :math:`l_1` term is the sum of the mask over the *positions* (the paper's sum over
pixels): spatial positions of grids, features, groups; the area constraint sorts the
values of all positions of all inputs together.

:func:`compose` builds the masked inputs :math:`x \odot m + g \odot (1 - m)` of a step
from deterministic fills drawn once per chunk (:func:`fixed_fills`) and random fills
drawn afresh, example by example from the example's own stream (:func:`draw_fills`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.fill_samples import sample_fill
from captum_soundness.attr._common import UPSAMPLE_MODES, upsample
from captum_soundness.attr._recipes import area_penalty
from captum_soundness.fills import Fill

__all__ = [
    "MaskParams",
    "Masks",
    "add_regularisers",
    "check_mask_layout",
    "compose",
    "draw_fills",
    "fixed_fills",
    "groups_present",
    "param_dtype",
    "total_variation",
]


@dataclass(frozen=True)
class Masks:
    """The masks of one step.

    Attributes:
        inputs: One mask per input tensor, broadcastable to the chunk of that input.
        positions: Parts ``(c, ...)`` whose flattened concatenation is the value of every
            position (l1 and the area constraint).
        l1: Parts whose sum is the :math:`l_1` term (the positions, where every group is
            present in every example; else only the groups present in each example).
        grids: The ``(c, 1, *spatial)`` masks of grid inputs (total variation).
    """

    inputs: tuple[Tensor, ...]
    positions: tuple[Tensor, ...]
    l1: tuple[Tensor, ...]
    grids: tuple[Tensor, ...]


def check_mask_layout(inputs: tuple[Tensor, ...], layout: FeatureLayout, downsample: int) -> None:
    """Grid inputs with more than 3 spatial dimensions cannot be upsampled: refuse them
    unless their logit grid is the full resolution (or a ``feature_mask`` is given)."""
    if layout.grouped:
        return
    for i, x in enumerate(inputs):
        spatial = tuple(x.shape[2:])
        too_many = x.dim() >= 3 and len(spatial) not in UPSAMPLE_MODES
        if too_many and _low(spatial, downsample) != spatial:
            where = "inputs" if len(inputs) == 1 else f"inputs[{i}]"
            raise ValueError(
                f"`{where}` of shape {tuple(x.shape)} has {len(spatial)} spatial "
                "dimensions; the mask logits can be upsampled over 1, 2 or 3 spatial "
                "dimensions only: pass downsample=1 or a `feature_mask`."
            )


def groups_present(layout: FeatureLayout) -> Tensor | None:
    """``(N, G)`` flags of the groups present in each example (per-example feature
    masks), or ``None`` when every group is present in every example."""
    if not layout.grouped or all(ids.shape[0] == 1 for ids in layout.group_ids):
        return None
    n, g = layout.n, layout.num_positions
    device = layout.group_ids[0].device
    present = torch.zeros(n, g, dtype=torch.bool, device=device)
    for ids in layout.group_ids:
        flat = ids.expand(n, *ids.shape[1:]).reshape(n, -1)
        present.scatter_(1, flat, True)
    return None if bool(present.all()) else present


class MaskParams:
    """The mask logits of ``c`` examples, initialised to 0 (every mask value 0.5).

    Args:
        inputs: The chunk of the formatted inputs (``c`` rows each).
        layout: The positions of the inputs (with or without a ``feature_mask``).
        downsample: :math:`s`, the down-sampling factor of grid logits.
        dtype: The dtype of the logits (float32 for half-precision inputs).
        examples: The example of each row (per-example feature masks).
        present: ``(c, G)`` flags of the groups present in each example, or ``None``.

    Attributes:
        logits: The tensors to optimise (one per input tensor, or one for the groups).
    """

    def __init__(
        self,
        inputs: tuple[Tensor, ...],
        layout: FeatureLayout,
        downsample: int,
        dtype: torch.dtype,
        examples: Tensor,
        present: Tensor | None = None,
    ) -> None:
        c, device = inputs[0].shape[0], inputs[0].device
        self.layout, self.examples = layout, examples
        self.present = None if present is None else present.to(dtype)
        self.upsamplers: list[Callable[[Tensor], Tensor] | None] = []
        if layout.grouped:
            shapes = [(c, layout.num_positions)]
        else:
            shapes = []
            for x in inputs:
                if x.dim() >= 3:
                    spatial = tuple(x.shape[2:])
                    low = _low(spatial, downsample)
                    shapes.append((c, 1, *low))
                    self.upsamplers.append(_upsampler(low, spatial))
                else:
                    shapes.append((c, x.shape[1]))
                    self.upsamplers.append(None)
        self.logits = [
            torch.zeros(shape, dtype=dtype, device=device).requires_grad_(True) for shape in shapes
        ]

    def masks(self) -> Masks:
        """The masks of the current logits (differentiable)."""
        if self.layout.grouped:
            values = torch.sigmoid(self.logits[0])  # (c, G)
            per_input = self.layout.expand(values, self.examples)
            weighted = values if self.present is None else values * self.present
            return Masks(per_input, (values,), (weighted,), ())
        masks, grids = [], []
        for logits, up in zip(self.logits, self.upsamplers):
            if up is None:
                masks.append(torch.sigmoid(logits))
            else:
                masks.append(up(torch.sigmoid(logits)))
                grids.append(masks[-1])
        return Masks(tuple(masks), tuple(masks), tuple(masks), tuple(grids))


def add_regularisers(
    per_example: Tensor,
    masks: Masks,
    l1: float,
    tv: float,
    area_weight: float,
    area_ref: Tensor | None,
) -> Tensor:
    """``per_example`` plus the mask-size (l1), total-variation and area terms, in order."""
    if l1 > 0:
        per_example = per_example + l1 * _sum_parts([m.flatten(1).sum(dim=1) for m in masks.l1])
    if tv > 0 and masks.grids:
        per_example = per_example + tv * _sum_parts([total_variation(m) for m in masks.grids])
    if area_ref is not None:
        parts = masks.positions
        values = parts[0] if len(parts) == 1 else torch.cat([p.flatten(1) for p in parts], 1)
        per_example = per_example + area_weight * area_penalty(values, area_ref)
    return per_example


def total_variation(mask: Tensor) -> Tensor:
    r"""Per-example TV of ``(c, 1, *spatial)`` masks over the top-left block (reference):
    :math:`\sum_k \sum (m_{\dots i_k \dots} - m_{\dots i_k + 1 \dots})^2` over the
    positions whose every index is below its last value."""
    spatial = mask.shape[2:]
    if any(size < 2 for size in spatial):
        return mask.new_zeros(mask.shape[0])
    block = (slice(None), slice(None), *(slice(0, size - 1) for size in spatial))
    base = mask[block]
    total = None
    for k, size in enumerate(spatial):
        shifted = list(block)
        shifted[2 + k] = slice(1, size)
        term = (base - mask[tuple(shifted)]).square().flatten(1).sum(dim=1)
        total = term if total is None else total + term
    assert total is not None
    return total


def fixed_fills(
    xs: tuple[Tensor, ...], fills: tuple[Fill, ...], examples: Tensor
) -> list[tuple[Tensor, Tensor] | None]:
    """``(g, x - g)`` of the deterministic fills of a chunk (``None`` for random ones)."""
    fixed: list[tuple[Tensor, Tensor] | None] = []
    with torch.no_grad():
        for x, fill in zip(xs, fills):
            if fill.deterministic:
                g0 = sample_fill(fill, x, 1, examples=examples)[0]  # (c, *x.shape[1:])
                fixed.append((g0, x - g0))
            else:
                fixed.append(None)
    return fixed


def compose(
    xs: tuple[Tensor, ...],
    masks: tuple[Tensor, ...],
    fills: tuple[Fill, ...],
    fixed: list[tuple[Tensor, Tensor] | None],
    b: int,
    generators: list[torch.Generator] | None,
) -> tuple[tuple[Tensor, ...], list[Tensor]]:
    """The masked inputs ``x * m + g * (1 - m)`` of one step (``b * c`` rows each), and
    the random fill samples drawn for them (``(b, c, ...)`` each)."""
    masked, samples = [], []
    for x, mask, fill, fx in zip(xs, masks, fills, fixed):
        mask = mask if mask.dtype == x.dtype else mask.to(x.dtype)
        if fx is not None:
            part = torch.addcmul(fx[0], mask, fx[1])  # (c, ...)
            if b > 1:
                part = part.unsqueeze(0).expand(b, *part.shape).flatten(0, 1)
        else:
            assert generators is not None
            with torch.no_grad():
                g = draw_fills(fill, x, b, generators)  # (b, c, ...), unchecked
                diff = x.unsqueeze(0) - g
            part = torch.addcmul(g, mask, diff).flatten(0, 1)
            samples.append(g)
        masked.append(part)
    return tuple(masked), samples


def draw_fills(fill: Fill, x: Tensor, n_samples: int, generators: list[torch.Generator]) -> Tensor:
    """Draws ``(n_samples, c, *x.shape[1:])`` fills, example ``i`` from ``generators[i]``.

    One random stream per example makes the draws independent of how the examples are
    chunked, so chunked and unchunked runs see the same fills (the inputs of a tuple
    draw from the example's stream in turn).
    """
    parts = [
        sample_fill(fill, x[i : i + 1], n_samples, gen, check=False)
        for i, gen in enumerate(generators)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _sum_parts(parts: list[Tensor]) -> Tensor:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _low(spatial: tuple[int, ...], downsample: int) -> tuple[int, ...]:
    return tuple(math.ceil(size / downsample) for size in spatial)


def _upsampler(low: tuple[int, ...], spatial: tuple[int, ...]) -> Callable[[Tensor], Tensor]:
    """The map from low-resolution masks ``(c, 1, *low)`` to ``(c, 1, *spatial)``."""
    if low == spatial:
        return lambda m: m
    return lambda m: upsample(m, spatial, align_corners=False)


def param_dtype(xs: tuple[Tensor, ...]) -> torch.dtype:
    """The dtype of the mask logits: the inputs' (promoted), float32 for half precision."""
    dtype = None
    for x in xs:
        d = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        dtype = d if dtype is None else torch.promote_types(dtype, d)
    assert dtype is not None
    return dtype
