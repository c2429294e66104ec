r"""Output heads: how a model's scores become the probabilities the paper's metrics use.

One argument, ``head``, shared by :class:`~captum_soundness.attr.SimpleMasking` and every
metric, names the head of the model:

================== ====================================================================
``head``           probabilities :math:`p` of an output :math:`z` of shape ``(N, *S)``
================== ====================================================================
``"softmax"``      :math:`p = \operatorname{softmax}(z)` over the last dimension (the
                   classes): logits of a multi-class model. The default.
``"probabilities"`` :math:`p = z`: the model already returns probabilities (each value
                   must lie in :math:`[0, 1]`, else a :class:`ValueError`).
``"sigmoid"``      :math:`p = \sigma(z)` per label: a multi-label model with one logit
                   per label; label :math:`a` is a yes/no question with probabilities
                   :math:`(p_a, 1 - p_a)`, independent of the other labels' heads.
``"binary"``       a single logit per example (``(N,)`` or ``(N, 1)``): two labels with
                   :math:`p = (1 - \sigma(z), \sigma(z))`.
================== ====================================================================

``apply_softmax`` (the 0.1 argument) is a deprecated alias: ``True`` is ``"softmax"``,
``False`` is ``"probabilities"``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite, check_probabilities
from captum_soundness._utils.validation import UNSET

__all__ = [
    "HEADS",
    "check_head",
    "check_head_values",
    "head_output",
    "log_probabilities",
    "num_labels",
    "per_label",
    "probabilities",
    "resolve_head",
    "warn_if_probabilities",
]

#: The accepted values of ``head``.
HEADS = ("softmax", "probabilities", "sigmoid", "binary")


def check_head(head: Any, name: str = "head") -> str:
    """Checks ``head`` against :data:`HEADS`."""
    if not isinstance(head, str) or head not in HEADS:
        options = ", ".join(repr(h) for h in HEADS)
        raise ValueError(f"`{name}` must be one of {options}, got {head!r}.")
    return head


def resolve_head(head: Any, apply_softmax: Any = UNSET, *, stacklevel: int = 3) -> str:
    """The head of a call that may still use the deprecated ``apply_softmax``.

    ``apply_softmax`` given (anything but :data:`UNSET`) warns with a
    :class:`DeprecationWarning` and maps ``True`` to ``"softmax"``, ``False`` to
    ``"probabilities"``; given together with a ``head`` other than ``None`` it raises.
    ``head=None`` means ``"softmax"``.
    """
    if apply_softmax is UNSET:
        return "softmax" if head is None else check_head(head)
    if head is not None:
        raise TypeError("Give `head` or the deprecated `apply_softmax`, not both.")
    if not isinstance(apply_softmax, bool):
        raise TypeError(f"`apply_softmax` must be a bool, got {apply_softmax!r}.")
    new = "softmax" if apply_softmax else "probabilities"
    warnings.warn(
        f"`apply_softmax` is deprecated; pass head={new!r} instead.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return new


def per_label(head: str) -> bool:
    """``True`` for heads whose labels are independent yes/no questions (``"sigmoid"``)."""
    return head == "sigmoid"


def head_output(output: Any, n: int | None, head: str, name: str = "forward_func") -> Tensor:
    """Checks the shape of a model output for ``head``; returns it as ``(n, *S)``.

    ``"binary"`` outputs ``(n,)`` or ``(n, 1)`` come back as ``(n, 1)``; the other heads
    need at least one non-batch dimension, and ``"softmax"`` at least 2 classes.
    """
    if not isinstance(output, Tensor):
        raise TypeError(
            f"`{name}` must return a tensor of scores, got {type(output).__name__}. Wrap "
            "models that return tuples or dicts so that they return one tensor."
        )
    rows = "" if n is None else f" for {n} inputs"
    if output.dim() == 0 or (n is not None and output.shape[0] != n):
        raise ValueError(
            f"`{name}` must return one row of scores per input, got shape "
            f"{tuple(output.shape)}{rows} (head={head!r})."
        )
    if head == "binary":
        if output.dim() > 2 or (output.dim() == 2 and output.shape[1] != 1):
            raise ValueError(
                f"head='binary' needs one logit per example, (N,) or (N, 1), but "
                f"`{name}` returns shape {tuple(output.shape)}{rows}; use head='softmax' "
                "or 'sigmoid' for several outputs."
            )
        return output.reshape(output.shape[0], 1)
    if output.dim() == 1:
        raise ValueError(
            f"`{name}` returns one score per example (shape {tuple(output.shape)}); "
            f"head={head!r} needs (N, num_classes) scores. For a single logit pass "
            "head='binary'."
        )
    if head == "softmax" and output.shape[-1] < 2:
        raise ValueError(
            f"`{name}` returns {output.shape[-1]} score per example; a softmax over one "
            "class is constantly 1. For a single logit pass head='binary'."
        )
    return output


def num_labels(output_shape: tuple[int, ...] | torch.Size, head: str) -> tuple[int, ...]:
    """The shape ``S'`` of the probabilities of an output of shape ``(N, *S)``."""
    if head == "binary":
        return (2,)
    return tuple(int(s) for s in output_shape[1:])


def log_probabilities(output: Tensor, head: str) -> Tensor:
    """Log-probabilities ``(n, *S')`` of a checked output (at least float32), stably."""
    z = output.to(torch.promote_types(output.dtype, torch.float32))
    if head == "softmax":
        return torch.log_softmax(z, dim=-1)
    if head == "sigmoid":
        return torch.nn.functional.logsigmoid(z)
    if head == "binary":
        z = z.reshape(z.shape[0], 1)
        return torch.cat(
            [torch.nn.functional.logsigmoid(-z), torch.nn.functional.logsigmoid(z)], 1
        )
    return torch.log(z)


def probabilities(output: Tensor, head: str) -> Tensor:
    """Probabilities ``(n, *S')`` of a checked output (at least float32)."""
    z = output.to(torch.promote_types(output.dtype, torch.float32))
    if head == "softmax":
        return torch.softmax(z, dim=-1)
    if head == "sigmoid":
        return torch.sigmoid(z)
    if head == "binary":
        s = torch.sigmoid(z.reshape(z.shape[0], 1))
        return torch.cat([1 - s, s], dim=1)
    return z


def check_head_values(
    output: Tensor, head: str, what: str, examples: Tensor | None = None
) -> Tensor:
    """Finite outputs, and values in ``[0, 1]`` where ``head="probabilities"`` declares them."""
    if head == "probabilities":
        return check_probabilities(output, what, examples)
    return check_finite(output, what, examples)


def warn_if_probabilities(output: Tensor, head: str, caller: str) -> None:
    """Warns when ``head="softmax"`` is asked of outputs that are clearly probabilities.

    Clearly: every row is non-negative and sums to 1 (within 1e-4) over the classes. A
    softmax of probabilities flattens them towards uniform, which no error would show.
    """
    if head != "softmax" or output.numel() == 0:
        return
    z = output.detach().to(torch.promote_types(output.dtype, torch.float32))
    if bool((z >= 0).all()) and bool(((z.sum(dim=-1) - 1).abs() <= 1e-4).all()):
        warnings.warn(
            f"{caller}: the model's outputs are non-negative and sum to 1 over the "
            "classes: they look like probabilities already, and head='softmax' applies "
            "another softmax. Pass head='probabilities' if they are.",
            UserWarning,
            stacklevel=3,
        )
