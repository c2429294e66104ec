"""The one rule for the values the package computes with: finite, and probabilities.

Every entry point checks its inputs, baselines, attributions, fill samples and model
outputs with :func:`check_finite` (and the outputs that ``head="probabilities"`` declares
to be probabilities with :func:`check_probabilities`) before they can reach a score, so
that a NaN or an infinity never turns into a number that looks right. The errors are
:class:`ValueError` s that name the offending value and the examples (batch indices)
that hold it.

Each check costs one reduction and one device synchronisation; the indices are only
computed on failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "bad_examples",
    "check_finite",
    "check_probabilities",
    "format_examples",
    "not_finite_error",
    "not_probabilities_error",
]

#: How many example indices an error message lists before it abbreviates.
_SHOWN = 8


def format_examples(indices: Sequence[int]) -> str:
    """``[0, 3, 5]``, or the first few and a count: ``[0, 1, ..., 7, ...] (12 in all)``."""
    indices = list(indices)
    if len(indices) <= _SHOWN:
        return str(indices)
    shown = ", ".join(str(i) for i in indices[:_SHOWN])
    return f"[{shown}, ...] ({len(indices)} in all)"


def bad_examples(flags: Tensor, examples: Tensor | Sequence[int] | None = None) -> list[int]:
    """Sorted distinct example indices of the rows where ``flags`` (bool, ``(R, ...)``) holds.

    ``examples[r]`` is the example that row ``r`` belongs to (rows are the examples
    themselves when ``None``).
    """
    rows = flags.reshape(flags.shape[0], -1).any(dim=1) if flags.dim() else flags.reshape(1)
    index = rows.nonzero().flatten().cpu()
    if examples is not None:
        examples = torch.as_tensor(examples).cpu()
        index = examples[index]
    return sorted(set(index.tolist()))


def check_finite(
    tensor: Tensor, what: str, examples: Tensor | Sequence[int] | None = None
) -> Tensor:
    """Raises a :class:`ValueError` if ``tensor`` holds NaN or infinite values.

    Args:
        tensor: A batched tensor ``(R, ...)`` (row ``r`` belongs to example
            ``examples[r]``, or to example ``r``), or any tensor of a single value.
        what: How the message names the tensor, e.g. ``"`inputs`"`` or ``"the outputs
            of `forward_func`"``.
        examples: The example of each row, when rows are not the examples themselves
            (masked inputs, fill samples of one image).

    Returns:
        ``tensor``, unchanged. Integer and boolean tensors always pass.

    Examples::

        >>> import torch
        >>> from captum_soundness._utils.finite import check_finite
        >>> check_finite(torch.tensor([[1.0], [float("nan")]]), "`inputs`")
        Traceback (most recent call last):
        ...
        ValueError: `inputs`: NaN or infinite values (examples [1]).
    """
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return tensor
    raise not_finite_error(what, bad_examples(~finite, examples))


def not_finite_error(what: str, examples: Sequence[int]) -> ValueError:
    """The error of :func:`check_finite` (for checks that flag rows themselves)."""
    return ValueError(f"{what}: NaN or infinite values (examples {format_examples(examples)}).")


def not_probabilities_error(what: str, examples: Sequence[int], detail: str = "") -> ValueError:
    """The error of :func:`check_probabilities` (``detail``: e.g. the range found)."""
    return ValueError(
        f"{what}: values outside [0, 1] (examples {format_examples(examples)}{detail}), "
        "but head='probabilities' (or the deprecated apply_softmax=False) declares them "
        "to be probabilities. Pass head='softmax' for logits of a multi-class model, "
        "'sigmoid' for one logit per label or 'binary' for a single logit."
    )


def check_probabilities(
    probs: Tensor, what: str, examples: Tensor | Sequence[int] | None = None
) -> Tensor:
    """Raises a :class:`ValueError` unless ``probs`` holds finite values in ``[0, 1]``.

    For the outputs that ``head="probabilities"`` declares to be probabilities. Each value
    is checked alone: per-label probabilities (a sigmoid per label, a label subset) need
    not sum to 1.

    Args:
        probs: ``(R, num_classes)`` declared probabilities.
        what: How the message names them.
        examples: As in :func:`check_finite`.

    Returns:
        ``probs``, unchanged.
    """
    check_finite(probs, what, examples)
    outside = (probs < 0) | (probs > 1)
    if not bool(outside.any()):
        return probs
    detail = f"; from {float(probs.min()):.4g} to {float(probs.max()):.4g}"
    raise not_probabilities_error(what, bad_examples(outside, examples), detail)
