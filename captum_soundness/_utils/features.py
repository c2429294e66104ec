r"""The features a mask keeps or removes, over one or several input tensors.

:class:`FeatureLayout` is the one home of "what is a position": the metrics rank
positions and keep the top :math:`k`, :class:`~captum_soundness.attr.SimpleMasking`
learns one mask value per position. For inputs ``(x_1, ..., x_m)`` the positions of all
tensors are ranked together:

- without a ``feature_mask``, a tensor of shape ``(N, C, *spatial)`` (rank >= 3)
  contributes its ``prod(spatial)`` spatial positions, shared by its channels (the
  attributions are reduced over channels with ``reduce``); a tabular tensor ``(N, F)``
  contributes its ``F`` features;
- with a ``feature_mask`` (Captum's, as in
  :class:`~captum.attr.FeatureAblation`: per input tensor an integer tensor with the
  input's number of dimensions, first dimension 1 or ``N``, broadcastable to the input;
  equal ids form one group, also across input tensors), the positions are the groups.
  A group's score is the mean of the attributions over its elements (of their absolute
  values for ``reduce="abs"``; the maximum for ``reduce="max"``), so a method that gives
  every element of a group the group's value (FeatureAblation) is ranked by that value.
  With per-example masks, a group absent from an example is ranked last in it, and the
  fractions of the curves count the groups present in the example
  (:meth:`FeatureLayout.present_counts`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.maps import saliency_maps

__all__ = ["FeatureLayout"]


class FeatureLayout:
    """Positions of formatted inputs, with or without Captum's ``feature_mask``.

    Args:
        inputs: The formatted inputs (a tuple of tensors, see ``format_inputs``).
        feature_mask: ``None``, an integer tensor (one input tensor) or a tuple of them.
        name: The argument named in error messages.

    Attributes:
        num_positions: :math:`P`, the number of positions ranked per example.
        grouped: ``True`` with a ``feature_mask``.
    """

    def __init__(
        self, inputs: tuple[Tensor, ...], feature_mask: Any = None, name: str = "feature_mask"
    ) -> None:
        self.shapes = [tuple(x.shape) for x in inputs]
        self.n = int(inputs[0].shape[0])
        self.grouped = feature_mask is not None
        if feature_mask is None:
            self.sizes = [math.prod(s[2:]) if len(s) >= 3 else s[1] for s in self.shapes]
            self.group_ids: list[Tensor] = []
            self.num_positions = sum(self.sizes)
            return
        masks = _format_masks(feature_mask, inputs, name)
        flat = torch.cat([m.reshape(-1) for m in masks])
        unique, inverse = torch.unique(flat, return_inverse=True)
        self.num_positions = int(unique.numel())
        ids, start = [], 0
        for m in masks:
            ids.append(inverse[start : start + m.numel()].view(m.shape))
            start += m.numel()
        self.group_ids = ids
        self.sizes = []

    def present_counts(self) -> Tensor | None:
        """The number of positions of every example ``(N,)``, where it differs between
        examples (per-example feature masks whose examples hold different groups), else
        ``None`` (every example has :attr:`num_positions`)."""
        if not self.grouped or all(ids.shape[0] == 1 for ids in self.group_ids):
            return None
        device = self.group_ids[0].device
        present = torch.zeros(self.n, self.num_positions, dtype=torch.bool, device=device)
        for ids in self.group_ids:
            flat = ids.expand(self.n, *ids.shape[1:]).reshape(self.n, -1)
            present.scatter_(1, flat, True)
        counts = present.sum(dim=1)
        return None if bool((counts == self.num_positions).all()) else counts

    def spatial(self, i: int) -> tuple[int, ...]:
        """The position shape of input ``i`` without groups: ``spatial`` or ``(F,)``."""
        s = self.shapes[i]
        return s[2:] if len(s) >= 3 else (s[1],)

    # ---- attributions -> scores per position ---------------------------------------

    def maps(
        self,
        attributions: Any,
        reduce: str = "sum",
        what: str = "`attributions`",
        examples: Tensor | None = None,
    ) -> Tensor:
        """Scores ``(R, P)`` of every position from attributions of ``R`` rows.

        ``attributions`` is a tensor (one input tensor) or a tuple with one tensor per
        input tensor, each shaped like its input (channels may be 1 or left out for
        inputs of rank >= 3, as for :func:`~captum_soundness._utils.maps.saliency_maps`).
        ``examples[r]`` is the example of row ``r`` (the rows themselves when ``None``).
        """
        parts = _as_tuple(attributions, len(self.shapes), what)
        rows = _rows(parts, what)
        scores = []
        for i, attr in enumerate(parts):
            name = what if len(parts) == 1 else f"{what}[{i}]"
            scores.append(self._input_scores(i, attr, rows, reduce, name, examples))
        if not self.grouped:
            return scores[0] if len(scores) == 1 else torch.cat(scores, dim=1)
        return self._group_scores(scores, rows, reduce, examples)

    def _input_scores(
        self, i: int, attr: Tensor, rows: int, reduce: str, name: str, examples: Tensor | None
    ) -> Tensor:
        shape = self.shapes[i]
        ref = torch.empty((rows, *shape[1:]), device="meta")
        if len(shape) >= 3:
            if not self.grouped:
                return saliency_maps(
                    attr, _Meta(ref, attr.device), reduce, name, examples
                ).flatten(1)
            saliency_maps(
                attr, _Meta(ref, attr.device), "sum", name, examples
            )  # shape checks only
            attr = attr if attr.dim() == len(shape) else attr.unsqueeze(1)
            values = attr.detach().expand(rows, *shape[1:])
        else:
            if tuple(attr.shape) != (rows, *shape[1:]):
                raise ValueError(
                    f"{name} has shape {tuple(attr.shape)}; expected {(rows, *shape[1:])} "
                    "like the inputs."
                )
            values = attr.detach()
        values = check_finite(values, name, examples)
        if not values.is_floating_point():
            values = values.double()
        if reduce == "abs":
            values = values.abs()
        return values

    def _group_scores(
        self, values: list[Tensor], rows: int, reduce: str, examples: Tensor | None
    ) -> Tensor:
        dtype = torch.promote_types(values[0].dtype, torch.float32)
        device = values[0].device
        g = self.num_positions
        total = torch.zeros(rows, g, dtype=dtype, device=device)
        count = torch.zeros(rows, g, dtype=dtype, device=device)
        for i, v in enumerate(values):
            ids = self._ids(i, rows, examples).to(device).expand(rows, *self.shapes[i][1:])
            ids, v = ids.reshape(rows, -1), v.to(dtype).reshape(rows, -1)
            if reduce == "max":
                total.scatter_reduce_(1, ids, v, "amax", include_self=i > 0)
            else:
                total.scatter_add_(1, ids, v)
            count.scatter_add_(1, ids, torch.ones_like(v))
        scores = total if reduce == "max" else total / count.clamp_min(1)
        return torch.where(count > 0, scores, torch.finfo(dtype).min)

    # ---- scores per position -> values per element ---------------------------------

    def expand(self, values: Tensor, examples: Tensor | None = None) -> tuple[Tensor, ...]:
        """Per-position values ``(R, P)`` as one tensor per input, broadcastable to it.

        Without groups, input ``i`` gets ``(R, 1, *spatial)`` (rank >= 3) or ``(R, F)``;
        with groups, the value of each element's group, shaped like the feature mask
        (first dimension ``R``). ``examples[r]`` is the example of row ``r`` (used with
        per-example feature masks; the rows themselves when ``None``).
        """
        rows = values.shape[0]
        out = []
        if not self.grouped:
            start = 0
            for i, size in enumerate(self.sizes):
                part = values[:, start : start + size]
                start += size
                shape = self.shapes[i]
                out.append(part.reshape(rows, 1, *shape[2:]) if len(shape) >= 3 else part)
            return tuple(out)
        for i in range(len(self.shapes)):
            ids = self._ids(i, rows, examples).to(values.device)
            rest = ids.shape[1:]
            ids = ids.expand(rows, *rest).reshape(rows, -1)
            out.append(values.gather(1, ids).view(rows, *rest))
        return tuple(out)

    def _ids(self, i: int, rows: int, examples: Tensor | None) -> Tensor:
        ids = self.group_ids[i]
        if ids.shape[0] == 1:
            return ids
        if examples is None:
            if rows != ids.shape[0]:
                raise AssertionError("per-example feature masks need the rows' examples")
            return ids
        return ids.index_select(0, examples.to(ids.device))


class _Meta:
    """A stand-in with the shape of the inputs, for the shape checks of saliency_maps."""

    def __init__(self, ref: Tensor, device: torch.device) -> None:
        self.shape = ref.shape
        self.device = device

    def dim(self) -> int:
        return len(self.shape)


def _as_tuple(attributions: Any, count: int, what: str) -> tuple[Any, ...]:
    if isinstance(attributions, (tuple, list)):
        if len(attributions) != count:
            raise ValueError(
                f"{what} is a {type(attributions).__name__} of {len(attributions)}, but "
                f"there are {count} input tensor(s): give one attribution per input."
            )
        return tuple(attributions)
    if count != 1:
        raise TypeError(
            f"{what} must be a tuple of {count} tensors, one per input tensor, got "
            f"{type(attributions).__name__}."
        )
    return (attributions,)


def _rows(parts: tuple[Any, ...], what: str) -> int:
    for part in parts:
        if not isinstance(part, Tensor):
            raise TypeError(f"{what} must hold torch.Tensors, got {type(part).__name__}.")
    return int(parts[0].shape[0]) if parts[0].dim() else 0


def _format_masks(feature_mask: Any, inputs: tuple[Tensor, ...], name: str) -> list[Tensor]:
    masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
    if len(masks) != len(inputs):
        raise ValueError(
            f"`{name}` has {len(masks)} tensor(s) but there are {len(inputs)} input "
            "tensors: give one mask per input (a tuple)."
        )
    out = []
    for i, (m, x) in enumerate(zip(masks, inputs)):
        where = name if len(inputs) == 1 else f"{name}[{i}]"
        if not isinstance(m, Tensor):
            raise TypeError(f"`{where}` must be an integer tensor, got {type(m).__name__}.")
        if m.is_floating_point() or m.is_complex() or m.dtype == torch.bool:
            raise TypeError(f"`{where}` must hold integer group ids, got dtype {m.dtype}.")
        ok = m.dim() == x.dim() and m.shape[0] in (1, x.shape[0])
        if ok:
            try:
                ok = torch.broadcast_shapes(m.shape[1:], x.shape[1:]) == x.shape[1:]
            except RuntimeError:
                ok = False
        if not ok:
            raise ValueError(
                f"`{where}` of shape {tuple(m.shape)} does not fit its input of shape "
                f"{tuple(x.shape)}: as in Captum's FeatureAblation it needs the input's "
                "number of dimensions, a first dimension of 1 or N, and a shape "
                "broadcastable to the input."
            )
        out.append(m.to(device=x.device, dtype=torch.long))
    return out
