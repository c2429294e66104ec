"""Captum's ``TargetType``, resolved exactly as Captum resolves it, and never reinterpreted.

Captum (``captum._utils.common._select_targets``) reads a target by its *type*:

=================================  ===================================================
target                             selects, for an output of shape ``(N, *S)``
=================================  ===================================================
``None``                           nothing: the output must hold one score per example
                                   (here: the predicted label of an ``(N, C)`` output)
``int`` ``t``                      ``output[:, t]``, the same for every example
``tuple`` ``(t1, ..., tk)``        ``output[:, t1, ..., tk]``: one index into a
                                   multi-dimensional output, the same for every example
tensor of one element              as its ``int``, the same for every example
1-D tensor of ``N`` elements       ``output[i, t[i]]`` (``(N, C)`` outputs only)
list of ``N`` ints                 ``output[i, t[i]]`` (``(N, C)`` outputs only)
list of ``N`` tuples               ``output[(i, *t[i])]``
=================================  ===================================================

Anything else raises where Captum raises (an assertion there, a clear
:class:`ValueError`/:class:`TypeError` here). In particular ``target=(1, 0)`` is *one*
index into a 3-D output, never one label per example: on an ``(N, C)`` output it raises.
Where an index must select a single score per example, the tuple must index every
non-batch dimension. Integer and tuple indices may be negative (Python indexing, as in
Captum); the per-example labels of tensors and lists may not (Captum's ``gather``
refuses them too).

:class:`Targets` stores the resolved target as one index tuple per example and turns it
into flat indices into ``output.flatten(1)`` once the output's shape is known, so every
consumer gathers one score per example the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

import torch
from torch import Tensor

__all__ = ["Targets", "resolve_targets"]

_KINDS = "an int, a tuple of ints, a tensor of 1 or N integers, or a list of N ints or tuples"


@dataclass(frozen=True)
class Targets:
    """A checked Captum target for ``n`` examples.

    Attributes:
        n: The number of examples.
        index: ``(n, k)`` long tensor, the index tuple of every example into the output's
            non-batch dimensions, or ``None`` (no target).
        labels_only: ``True`` for per-example labels (1-D tensors, lists of ints), which
            Captum allows on 2-D outputs only.
        name: The argument named in error messages.
    """

    n: int
    index: Tensor | None
    labels_only: bool = False
    name: str = "target"

    @property
    def is_none(self) -> bool:
        """``True`` when no target was given."""
        return self.index is None

    def rows(self, rows: Tensor) -> Targets:
        """The targets of examples ``rows`` (in that order and multiplicity)."""
        if self.index is None:
            return Targets(int(rows.numel()), None, self.labels_only, self.name)
        index = self.index.index_select(0, rows.to(self.index.device))
        return Targets(int(rows.numel()), index, self.labels_only, self.name)

    def flat(self, output_shape: tuple[int, ...] | torch.Size, device: Any = None) -> Tensor:
        """Flat indices ``(n,)`` into ``output.flatten(1)`` for an output of this shape.

        Raises:
            ValueError: If there is no target, if the index does not select one score per
                example of this output (Captum raises too), or if it lies outside it.
        """
        shape = tuple(int(s) for s in output_shape[1:])
        if self.index is None:
            raise ValueError(
                f"`{self.name}` is required for outputs of shape (N, *{shape}): give {_KINDS}."
            )
        if self.labels_only and len(shape) != 1:
            raise ValueError(
                f"`{self.name}`: a tensor or list of per-example labels selects from "
                f"(N, C) outputs only (as in Captum), but the outputs have shape "
                f"(N, *{shape}); give a list of N index tuples."
            )
        k = self.index.shape[1]
        if k != len(shape):
            raise ValueError(
                f"`{self.name}` holds {k} index(es) per example, but the outputs have "
                f"shape (N, *{shape}): {len(shape)} index(es) select one score per "
                "example. A tuple is one index into a multi-dimensional output (Captum's "
                "rule); for one label per example pass a list of ints or a 1-D tensor."
            )
        sizes = torch.tensor(shape, dtype=torch.long, device=self.index.device)
        index = self.index
        if not self.labels_only:
            index = torch.where(index < 0, index + sizes, index)  # Python indexing
        bad = (index < 0) | (index >= sizes)
        if bool(bad.any()):
            example = int(bad.any(dim=1).nonzero()[0])
            raise ValueError(
                f"`{self.name}` of example {example} is "
                f"{tuple(self.index[example].tolist())}, outside the outputs of shape "
                f"(N, *{shape})."
            )
        strides = torch.ones(k, dtype=torch.long, device=index.device)
        for d in range(k - 2, -1, -1):
            strides[d] = strides[d + 1] * shape[d + 1]
        flat = (index * strides).sum(dim=1)
        return flat if device is None else flat.to(device)


def resolve_targets(target: Any, n: int, *, name: str = "target", device: Any = None) -> Targets:
    """Checks a Captum ``TargetType`` for ``n`` examples (no model call: run it first).

    Args:
        target: ``None``, an ``int``, a tuple of ints, a tensor of one or ``n`` integer
            elements, or a list of ``n`` ints or of ``n`` tuples of ints.
        n: The number of examples.
        name: The argument named in error messages.
        device: Device of the stored indices.

    Raises:
        TypeError: For other kinds (floats, bools, mixed lists).
        ValueError: For a tensor or list of another length than ``n``, or a tensor of
            more than one dimension.
    """
    if target is None:
        return Targets(n, None, name=name)
    if _is_int(target):
        return _same(n, (int(target),), name, device)
    if isinstance(target, tuple):
        if not target or not all(_is_int(t) for t in target):
            raise TypeError(
                f"`{name}` is a tuple, which Captum reads as one index into a "
                f"multi-dimensional output: it must hold ints, got {target!r}."
            )
        return _same(n, tuple(int(t) for t in target), name, device)
    if isinstance(target, Tensor):
        return _from_tensor(target, n, name, device)
    if isinstance(target, list):
        return _from_list(target, n, name, device)
    raise TypeError(f"`{name}` must be {_KINDS}, got {type(target).__name__}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _same(n: int, index: tuple[int, ...], name: str, device: Any) -> Targets:
    rows = torch.tensor(index, dtype=torch.long, device=device).expand(n, len(index))
    return Targets(n, rows, name=name)


def _from_tensor(target: Tensor, n: int, name: str, device: Any) -> Targets:
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"`{name}` tensor must have an integer dtype, got {target.dtype}.")
    if target.numel() == 1:
        return _same(n, (int(target.reshape(()).item()),), name, device)
    if target.dim() == 1 and target.numel() == n:
        labels = target.to(device=device if device is not None else target.device)
        return Targets(n, labels.long().view(n, 1), labels_only=True, name=name)
    raise ValueError(
        f"`{name}` tensor of shape {tuple(target.shape)} is not valid for {n} examples: "
        f"give one element (the same label for all) or a 1-D tensor of {n} labels."
    )


def _from_list(target: list[Any], n: int, name: str, device: Any) -> Targets:
    if len(target) != n:
        raise ValueError(
            f"`{name}` list has {len(target)} entries but the inputs hold {n} examples "
            "(Captum requires one entry per example; an int is the same label for all)."
        )
    if all(_is_int(t) for t in target):
        labels = torch.tensor([int(t) for t in target], dtype=torch.long, device=device)
        return Targets(n, labels.view(n, 1), labels_only=True, name=name)
    if all(isinstance(t, tuple) and t and all(_is_int(u) for u in t) for t in target):
        lengths = {len(t) for t in target}
        if len(lengths) != 1:
            raise ValueError(f"`{name}`: the index tuples have different lengths {lengths}.")
        rows = torch.tensor([list(t) for t in target], dtype=torch.long, device=device)
        return Targets(n, rows, name=name)
    raise TypeError(
        f"`{name}` list must hold ints only or tuples of ints only (one per example), got "
        f"{[type(t).__name__ for t in target[:4]]}."
    )
