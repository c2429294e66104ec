"""Validated settings of the curves and of every metric built on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.rng import SeedType, make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_max_examples_per_batch,
    check_positive_int,
)
from captum_soundness.fills import Fill, FillLike, as_fill
from captum_soundness.masking import REDUCTIONS, fraction_grid

__all__ = ["CURVE_KINDS", "CurveConfig", "check_curve_config", "check_model_inputs"]

#: The two kinds of curves.
CURVE_KINDS = ("insertion", "deletion")


@dataclass(frozen=True)
class CurveConfig:
    """Validated keyword arguments shared by the curves and the metrics built on them."""

    fill: Fill
    fractions: Tensor  # (F,) float64 on the CPU
    n_samples: int  # effective number of fill samples (1 for deterministic fills)
    apply_softmax: bool
    reduce: str
    max_examples_per_batch: int | None
    generator: torch.Generator | None  # None for deterministic fills

    def as_dict(self) -> dict[str, Any]:
        """Plain description of the settings (for reports)."""
        return {
            "fill": repr(self.fill),
            "fractions": [float(f) for f in self.fractions],
            "n_fill_samples": self.n_samples,
            "apply_softmax": self.apply_softmax,
            "reduce": self.reduce,
        }


def check_curve_config(
    inputs: Tensor,
    *,
    fill: FillLike,
    fractions: int | Sequence[float] | Tensor,
    n_fill_samples: int,
    apply_softmax: bool,
    reduce: str,
    max_examples_per_batch: int | None,
    seed: SeedType,
) -> CurveConfig:
    """Validates the curve keyword arguments against ``inputs``."""
    fill_obj = as_fill(fill, "fill")
    fill_obj.check_compatible(inputs, "fill")
    grid = fraction_grid(fractions, "fractions")
    n_fill_samples = check_positive_int(n_fill_samples, "n_fill_samples")
    if not isinstance(apply_softmax, bool):
        raise TypeError(f"`apply_softmax` must be a bool, got {apply_softmax!r}.")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    max_examples_per_batch = check_max_examples_per_batch(max_examples_per_batch)
    generator = make_generator(seed, inputs.device, "seed")
    deterministic = fill_obj.deterministic
    return CurveConfig(
        fill=fill_obj,
        fractions=grid,
        n_samples=1 if deterministic else n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        generator=None if deterministic else generator,
    )


def check_model_inputs(inputs: Any, name: str = "inputs") -> Tensor:
    """Checks a batched ``(N, C, *spatial)`` input tensor (finite values) and detaches it."""
    inputs = check_inputs(inputs, name)
    check_finite(inputs, f"`{name}`")
    return inputs.detach()
