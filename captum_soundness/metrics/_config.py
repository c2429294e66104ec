"""Validated settings of the curves and of every metric built on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.baselines import UNSET as FILL_UNSET
from captum_soundness._utils.baselines import format_baselines, resolve_baselines
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import DEFAULT_MAX_EXAMPLES_PER_BATCH
from captum_soundness._utils.heads import UNSET as SOFTMAX_UNSET
from captum_soundness._utils.heads import resolve_head
from captum_soundness._utils.inputs import format_inputs
from captum_soundness._utils.rng import SeedType, make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_max_examples_per_batch,
    check_positive_int,
)
from captum_soundness.fills import Fill
from captum_soundness.masking import REDUCTIONS, fraction_grid

__all__ = [
    "CURVE_KINDS",
    "DEFAULT_MAX_EXAMPLES_PER_BATCH",
    "CurveConfig",
    "check_curve_config",
    "format_model_inputs",
]


#: The two kinds of curves.
CURVE_KINDS = ("insertion", "deletion")


@dataclass(frozen=True)
class CurveConfig:
    """Validated keyword arguments shared by the curves and the metrics built on them.

    Attributes:
        baselines: One :class:`~captum_soundness.fills.Fill` per input tensor.
        fractions: ``(F,)`` float64 grid on the CPU.
        n_samples: Effective number of fill samples (1 when every fill is deterministic).
        head: How outputs become probabilities (see ``_utils.heads``).
        reduce: Channel reduction of the attributions.
        max_examples_per_batch: Maximum number of model inputs (rows) per forward pass.
        generator: The call's generator (``None`` when every fill is deterministic).
    """

    baselines: tuple[Fill, ...]
    fractions: Tensor
    n_samples: int
    head: str
    reduce: str
    max_examples_per_batch: int | None
    generator: torch.Generator | None

    @property
    def fill(self) -> Fill | tuple[Fill, ...]:
        """The fill of a single input tensor, or the tuple of fills of several."""
        return self.baselines[0] if len(self.baselines) == 1 else self.baselines

    def as_dict(self) -> dict[str, Any]:
        """Plain description of the settings (for reports)."""
        return {
            "baselines": repr(self.fill),
            "fill": repr(self.fill),  # the 0.1 key, kept for readers of saved reports
            "fractions": [float(f) for f in self.fractions],
            "n_fill_samples": self.n_samples,
            "head": self.head,
            "reduce": self.reduce,
        }


def check_curve_config(
    inputs: Tensor | tuple[Tensor, ...],
    *,
    baselines: Any = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    head: str | None = None,
    reduce: str = "sum",
    max_examples_per_batch: int | None = DEFAULT_MAX_EXAMPLES_PER_BATCH,
    seed: SeedType = None,
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> CurveConfig:
    """Validates the curve keyword arguments against formatted ``inputs``.

    ``fill`` and ``apply_softmax`` are the deprecated aliases of ``baselines`` and
    ``head`` (a :class:`DeprecationWarning`; both names together raise a
    :class:`TypeError`). The generator is made here (``seed=None`` draws one seed from
    the global RNG), so call this before ``preserved_model``.
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    baselines = resolve_baselines(baselines, fill, stacklevel=4)
    head = resolve_head(head, apply_softmax, stacklevel=4)
    fills = format_baselines(baselines, inputs, "baselines")
    grid = fraction_grid(fractions, "fractions")
    n_fill_samples = check_positive_int(n_fill_samples, "n_fill_samples")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    max_examples_per_batch = check_max_examples_per_batch(max_examples_per_batch)
    generator = make_generator(seed, inputs[0].device, "seed")
    deterministic = all(f.deterministic for f in fills)
    return CurveConfig(
        baselines=fills,
        fractions=grid,
        n_samples=1 if deterministic else n_fill_samples,
        head=head,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        generator=None if deterministic else generator,
    )


def format_model_inputs(inputs: Any, name: str = "inputs") -> tuple[tuple[Tensor, ...], bool]:
    """Captum's inputs (a tensor or a tuple of tensors of rank >= 2), checked finite and
    detached: ``(tuple_of_tensors, is_tuple)``."""
    items, is_tuple = format_inputs(inputs, name, min_dim=2)
    for i, x in enumerate(items):
        check_finite(x, f"`{name}`" if not is_tuple else f"`{name}[{i}]`")
    return tuple(x.detach() for x in items), is_tuple
