"""Drawing fill values as consumers need them: checked and broadcast to every sample."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from captum_soundness.fills import Fill

__all__ = ["sample_fill"]


def sample_fill(
    fill: Fill, inputs: Tensor, n_samples: int, generator: torch.Generator | None = None
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

    Returns:
        Tensor ``(n_samples, *inputs.shape)``.

    Raises:
        ValueError: If the fill returned another shape than ``(n_samples or 1,
            *inputs.shape)``.
    """
    samples = fill.sample(inputs, n_samples, generator)
    shape = (n_samples, *inputs.shape)
    if samples.dim() != inputs.dim() + 1 or samples.shape[0] not in (1, n_samples):
        raise ValueError(
            f"`fill` returned samples of shape {tuple(samples.shape)}; expected {shape} "
            "(or a leading dimension of 1)."
        )
    samples = samples.to(device=inputs.device, dtype=inputs.dtype)
    return samples if tuple(samples.shape) == shape else samples.expand(shape)
