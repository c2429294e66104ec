"""Argument checking shared by every public entry point.

Each check raises a :class:`TypeError` (wrong kind of object) or :class:`ValueError`
(right kind, wrong value) whose message names the argument and says what was expected.
All checks are cheap and run before any heavy work.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.inputs import format_inputs

__all__ = [
    "UNSET",
    "check_choice",
    "check_inputs",
    "check_label_list",
    "check_label_range",
    "check_labels",
    "check_max_examples_per_batch",
    "check_nonnegative_float",
    "check_positive_float",
    "check_positive_int",
    "check_unit_interval",
]


class _Unset:
    """The default of a deprecated argument: "not given", told apart from every value."""

    def __repr__(self) -> str:
        return "<deprecated>"


#: The default of deprecated arguments (``fill``, ``apply_softmax``); shown as
#: ``<deprecated>`` in signatures.
UNSET: Any = _Unset()


def check_inputs(inputs: Any, name: str = "inputs", *, min_dim: int = 3) -> Tensor:
    """Checks a single batched input tensor ``(N, C, *spatial)`` and returns it.

    The per-tensor checks are :func:`~captum_soundness._utils.inputs.format_inputs`'s;
    this entry refuses tuples (for the places that take one tensor, e.g. a fill).

    Args:
        inputs: The object to check.
        name: Argument name used in error messages.
        min_dim: Minimum number of dimensions (batch, channel and at least one spatial
            dimension by default).
    """
    if isinstance(inputs, (tuple, list)):
        raise TypeError(
            f"`{name}` must be a single tensor of shape (N, C, *spatial) here, got a "
            f"{type(inputs).__name__}."
        )
    return format_inputs(inputs, name, min_dim=min_dim)[0][0]


def check_label_range(labels: Tensor, num_classes: int, name: str = "target") -> None:
    """Raises a :class:`ValueError` when a label lies outside ``[0, num_classes)``."""
    if labels.numel() == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"`{name}` contains label {bad}, outside the model's {num_classes} outputs "
            f"[0, {num_classes - 1}]."
        )


def check_label_list(
    labels: Any, name: str = "labels", *, num_classes: int | None = None, min_count: int = 1
) -> list[int]:
    """Checks a list of labels: distinct ints, at least ``min_count``, none negative.

    With ``num_classes`` the labels must also lie in ``[0, num_classes)``.
    """
    if isinstance(labels, Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dim() != 1:
            raise TypeError(f"`{name}` must be a 1-D integer tensor or a sequence of ints.")
        labels = labels.tolist()
    if not isinstance(labels, Iterable) or isinstance(labels, (str, bytes)):
        raise TypeError(f"`{name}` must be a sequence of ints, got {type(labels).__name__}.")
    labels = list(labels)
    if not all(isinstance(a, Integral) and not isinstance(a, bool) for a in labels):
        raise TypeError(f"`{name}` must contain ints only.")
    labels = [int(a) for a in labels]
    if not labels:
        raise ValueError(f"`{name}` is empty: name at least {min_count} label(s).")
    if len(labels) < min_count:
        raise ValueError(f"`{name}` must name at least {min_count} labels, got {len(labels)}.")
    if len(set(labels)) != len(labels):
        dupes = sorted({a for a in labels if labels.count(a) > 1})
        raise ValueError(f"`{name}` contains duplicates: {dupes}.")
    if num_classes is not None:
        check_label_range(torch.tensor(labels), num_classes, name)
    negative = [a for a in labels if a < 0]
    if negative:
        raise ValueError(f"`{name}` contains negative labels: {negative}.")
    return labels


def check_labels(labels: Any, num_classes: int, name: str = "labels") -> list[int]:
    """Checks a label subset: distinct ints in ``[0, num_classes)``, at least two.

    ``None`` means every label.
    """
    if labels is None:
        return list(range(num_classes))
    return check_label_list(labels, name, num_classes=num_classes, min_count=2)


def check_positive_int(value: Any, name: str) -> int:
    """Checks that ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"`{name}` must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value}.")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """Checks that ``value`` is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite positive number, got {value}.")
    return float(value)


def check_nonnegative_float(value: Any, name: str) -> float:
    """Checks that ``value`` is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must be a non-negative number, got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite non-negative number, got {value}.")
    return float(value)


def check_unit_interval(value: Any, name: str) -> float:
    """Checks that ``value`` is a real number in ``[0, 1]``."""
    value = check_nonnegative_float(value, name)
    if value > 1:
        raise ValueError(f"`{name}` must lie in [0, 1], got {value}.")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Checks that ``value`` is one of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}.")
    return value


def check_max_examples_per_batch(value: Any, name: str = "max_examples_per_batch") -> int | None:
    """Checks ``max_examples_per_batch``: ``None`` (no chunking) or a positive int."""
    if value is None:
        return None
    return check_positive_int(value, name)
