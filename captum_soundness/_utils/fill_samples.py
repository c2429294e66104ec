"""Drawing fill values as consumers need them: checked and broadcast to every sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite

if TYPE_CHECKING:
    from captum_soundness.fills import Fill

__all__ = ["check_fill_samples", "sample_fill"]


def sample_fill(
    fill: Fill,
    inputs: Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    *,
    examples: Tensor | Sequence[int] | None = None,
    check: bool = True,
) -> Tensor:
    """``fill.sample(inputs, n_samples, generator)``, checked and broadcast.

    A fill (possibly a user's subclass) may return one sample that broadcasts; consumers
    get exactly ``(n_samples, *inputs.shape)`` values on the inputs' device and in their
    dtype (an expanded view for a single sample).

    Args:
        fill: The fill distribution.
        inputs: ``(N, C, *spatial)`` inputs to fill.
        n_samples: Samples per example.
        generator: Passed to :meth:`~captum_soundness.fills.Fill.sample`.
        examples: The example index of each row of ``inputs`` (for error messages, and
            to pick the rows of per-example baselines; the rows themselves when ``None``).
        check: Check that the samples are finite (one synchronisation). Hot loops that
            check their results anyway pass ``False`` and call :func:`check_fill_samples`
            when a result is not finite.

    Returns:
        Tensor ``(n_samples, *inputs.shape)``.

    Raises:
        ValueError: If the fill returned another shape than ``(n_samples or 1,
            *inputs.shape)``, or NaN or infinite values.
    """
    from captum_soundness._utils.baselines import ExampleFill  # fills import this module

    if isinstance(fill, ExampleFill) and examples is not None:
        fill = fill.select(examples)  # per-example baselines of the rows at hand
    samples = fill.sample(inputs, n_samples, generator)
    shape = (n_samples, *inputs.shape)
    if samples.dim() != inputs.dim() + 1 or samples.shape[0] not in (1, n_samples):
        raise ValueError(
            f"`fill` returned samples of shape {tuple(samples.shape)}; expected {shape} "
            "(or a leading dimension of 1)."
        )
    samples = samples.to(device=inputs.device, dtype=inputs.dtype)
    if check:
        check_fill_samples(samples, examples)
    return samples if tuple(samples.shape) == shape else samples.expand(shape)


def check_fill_samples(samples: Tensor, examples: Tensor | Sequence[int] | None = None) -> None:
    """Raises a ``ValueError`` naming the examples whose fill samples ``(S, N, ...)`` are
    not finite (``examples``: the example index of each of the ``N`` rows)."""
    check_finite(samples.transpose(0, 1), "The samples of `fill`", examples)
