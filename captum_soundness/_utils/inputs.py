"""Captum's input convention: a tensor or a tuple of tensors, answered in the same container."""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["format_inputs", "format_like", "num_examples"]


def format_inputs(
    inputs: Any, name: str = "inputs", *, min_dim: int = 2
) -> tuple[tuple[Tensor, ...], bool]:
    """Checks ``inputs`` (a tensor or a tuple of tensors) and returns ``(tuple, is_tuple)``.

    Every tensor must be floating point, have at least ``min_dim`` dimensions (batch
    first: ``(N, F)`` tabular, ``(N, C, L)``, ``(N, C, H, W)``, ``(N, C, D, H, W)``), the
    same number ``N >= 1`` of examples and no zero-sized dimension. A list is refused, as
    Captum refuses it (it is not one of Captum's ``TensorOrTupleOfTensorsGeneric``).

    Raises:
        TypeError: For anything but a tensor or a non-empty tuple of tensors, and for
            non-floating tensors.
        ValueError: For too few dimensions, empty tensors or different batch sizes.
    """
    is_tuple = isinstance(inputs, tuple)
    if isinstance(inputs, list):
        raise TypeError(
            f"`{name}` must be a tensor or a tuple of tensors (Captum's convention), got a "
            "list: pass tuple(...)."
        )
    items = inputs if is_tuple else (inputs,)
    if not items:
        raise ValueError(f"`{name}` is an empty tuple: give at least one input tensor.")
    for i, item in enumerate(items):
        where = f"`{name}`" if not is_tuple else f"`{name}[{i}]`"
        if not isinstance(item, Tensor):
            raise TypeError(
                f"{where} must be a torch.Tensor (or `{name}` a tuple of tensors), got "
                f"{type(item).__name__}."
            )
        if not item.is_floating_point():
            raise TypeError(f"{where} must be a floating point tensor, got dtype {item.dtype}.")
        if item.dim() < min_dim:
            raise ValueError(
                f"{where} must have at least {min_dim} dimensions with the batch first "
                f"((N, F) tabular, (N, C, *spatial) ...), got shape {tuple(item.shape)}."
            )
        if item.shape[0] == 0:
            raise ValueError(f"{where} is empty: the batch dimension has size 0.")
        if item.numel() == 0:
            raise ValueError(f"{where} has a zero-sized dimension: shape {tuple(item.shape)}.")
        if item.shape[0] != items[0].shape[0]:
            raise ValueError(
                f"`{name}`: every input tensor needs the same number of examples; "
                f"`{name}[0]` has {items[0].shape[0]} and `{name}[{i}]` has {item.shape[0]}."
            )
        if item.device != items[0].device:
            raise ValueError(
                f"`{name}`: all input tensors must be on one device; `{name}[0]` is on "
                f"{items[0].device} and `{name}[{i}]` on {item.device}."
            )
    return tuple(items), is_tuple


def format_like(values: tuple[Any, ...], is_tuple: bool) -> Any:
    """Answers in the container of the inputs: the tuple, or its single element."""
    if is_tuple:
        return tuple(values)
    if len(values) != 1:
        raise AssertionError(f"expected one value for a single input tensor, got {len(values)}")
    return values[0]


def num_examples(inputs: tuple[Tensor, ...]) -> int:
    """The number of examples ``N`` of formatted inputs."""
    return int(inputs[0].shape[0])
