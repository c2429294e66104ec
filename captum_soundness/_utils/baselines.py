"""``baselines``: Captum's name for the values that replace removed features.

:func:`format_baselines` turns what a user may pass (Captum's forms, or a
:class:`~captum_soundness.fills.Fill`) into one :class:`~captum_soundness.fills.Fill` per
input tensor:

- ``None``: the constant 0 (Captum's default baseline);
- a number: that constant everywhere;
- a tensor with fewer dimensions than the input: a constant broadcastable to one example
  (e.g. a per-channel colour ``(C, 1, 1)``);
- a tensor with as many dimensions as the input: per example (``N`` rows) or one row for
  all (``1`` row), each broadcastable to one example;
- a :class:`~captum_soundness.fills.Fill`: "random dataset images", "blur", noise, ...;
- for a tuple of inputs, a tuple of the above, one per input (a number, ``None`` or a
  ``Fill`` alone applies to every input).

The deprecated ``fill=`` argument of 0.1 is resolved here too (:func:`resolve_baselines`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.validation import UNSET
from captum_soundness.fills import ConstantFill, Fill

__all__ = ["UNSET", "ExampleFill", "format_baselines", "per_input", "resolve_baselines"]


class ExampleFill(Fill):
    """A constant per example: row ``i`` of ``values`` fills example ``i`` (private).

    Consumers that work on a subset of the examples (chunks, label repetitions) call
    :meth:`select` with the example of each row.
    """

    deterministic = True

    def __init__(self, values: Tensor) -> None:
        self.values = values.detach()

    def select(self, examples: Tensor | Sequence[int]) -> ExampleFill:
        """The fill of the examples ``examples`` (one row each, in that order)."""
        index = torch.as_tensor(examples, dtype=torch.long, device=self.values.device)
        return ExampleFill(self.values.index_select(0, index))

    def check_compatible(self, inputs: Tensor, name: str = "baselines") -> None:
        if self.values.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"`{name}` has {self.values.shape[0]} rows (one per example) but the inputs "
                f"hold {inputs.shape[0]} examples."
            )

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        value = self.values.to(device=inputs.device, dtype=inputs.dtype)
        return value.expand(inputs.shape).unsqueeze(0)

    def __repr__(self) -> str:
        return f"ExampleFill(values=<tensor {tuple(self.values.shape)}>)"


def resolve_baselines(baselines: Any, fill: Any = UNSET, *, stacklevel: int = 3) -> Any:
    """``baselines``, or the deprecated ``fill`` (with a :class:`DeprecationWarning`)."""
    if fill is UNSET:
        return baselines
    if baselines is not None:
        raise TypeError("Give `baselines` or the deprecated `fill`, not both.")
    warnings.warn(
        "`fill` is deprecated; pass the same value as `baselines` (Captum's name for the "
        "replacement values; it takes every Fill).",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return fill


def format_baselines(
    baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines"
) -> tuple[Fill, ...]:
    """One checked :class:`~captum_soundness.fills.Fill` per input tensor (see the module).

    Raises:
        TypeError: For other kinds of objects.
        ValueError: For a tuple of the wrong length, shapes that do not broadcast to the
            inputs, a wrong number of rows, or non-finite values.
    """
    return tuple(_one(b, x, where) for b, x, where in per_input(baselines, inputs, name))


def per_input(
    baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines"
) -> list[tuple[Any, Tensor, str]]:
    """Splits Captum-style ``baselines`` into ``(baseline, input, name)`` per input tensor.

    A tuple gives one baseline per input (its length must match); a single tensor is
    refused for several inputs (ambiguous); anything else applies to every input.
    """
    if isinstance(baselines, tuple):
        if len(baselines) != len(inputs):
            raise ValueError(
                f"`{name}` is a tuple of {len(baselines)} but there are {len(inputs)} "
                "input tensors: give one baseline per input."
            )
        items = baselines
    elif isinstance(baselines, Tensor) and len(inputs) > 1:
        raise ValueError(
            f"`{name}` is a single tensor but there are {len(inputs)} input tensors: give "
            "a tuple with one baseline per input (a number or a Fill applies to all)."
        )
    else:
        items = (baselines,) * len(inputs)
    names = [f"{name}[{i}]" if len(inputs) > 1 else name for i in range(len(inputs))]
    return list(zip(items, inputs, names))


def _one(baseline: Any, x: Tensor, name: str) -> Fill:
    if baseline is None:
        return ConstantFill(0.0)
    if isinstance(baseline, Fill):
        baseline.check_compatible(x, name)
        return baseline
    if isinstance(baseline, Real) and not isinstance(baseline, bool):
        return ConstantFill(float(baseline)) if _finite(baseline, name) else ConstantFill()
    if not isinstance(baseline, Tensor):
        raise TypeError(
            f"`{name}` must be None, a number, a tensor or a Fill (ConstantFill, MeanFill, "
            f"BlurFill, NoiseFill, DatasetFill), got {type(baseline).__name__}."
        )
    if not (baseline.is_floating_point() or baseline.dtype in (torch.int64, torch.int32)):
        raise TypeError(f"`{name}` must be a numeric tensor, got dtype {baseline.dtype}.")
    per_example = baseline.dim() == x.dim() and baseline.shape[0] == x.shape[0]
    # rows of a per-example tensor are the examples named by the error
    check_finite(baseline if per_example else baseline.reshape(1, -1), f"`{name}`")
    if baseline.dim() < x.dim():
        fill = ConstantFill(baseline.to(x.dtype))
        fill.check_compatible(x, name)
        return fill
    if baseline.dim() > x.dim() or baseline.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"`{name}` of shape {tuple(baseline.shape)} does not fit inputs of shape "
            f"{tuple(x.shape)}: give one row per example ({x.shape[0]}), one row for all, "
            "or a tensor broadcastable to one example."
        )
    try:
        shape = torch.broadcast_shapes(baseline.shape[1:], x.shape[1:])
    except RuntimeError:
        shape = None
    if shape != x.shape[1:]:
        raise ValueError(
            f"`{name}` of shape {tuple(baseline.shape)} does not broadcast to inputs of "
            f"shape {tuple(x.shape)}."
        )
    if baseline.shape[0] == 1 and x.shape[0] != 1:
        return ConstantFill(baseline[0].to(x.dtype))
    return ExampleFill(baseline.to(x.dtype))


def _finite(value: float, name: str) -> bool:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    return True
