r"""Insertion and deletion curves.

For an input :math:`x`, a saliency map :math:`M_a` for label :math:`a` over the
:math:`P` spatial positions of :math:`x`, and a fill distribution :math:`G`, the masked
input keeps the top-:math:`k` positions of :math:`M_a` (Gupta et al., 2022):

.. math::

    \tilde x(a, k, g) = x \odot T_k(M_a) + g \odot (1 - T_k(M_a)).

Over a grid of fractions :math:`f_1 < \dots < f_F` in :math:`(0, 1]` with
:math:`k_j = \max(1, \operatorname{round}(f_j P))` kept positions:

- the **insertion curve** is
  :math:`I_j = \mathbb{E}_{g \sim G}\, p_a(\tilde x(a, k_j, g))`, the probability of
  :math:`a` when only the top :math:`k_j` positions are kept;
- the **deletion curve** is
  :math:`D_j = \mathbb{E}_{g \sim G}\, p_a(x \odot (1 - T_{k_j}(M_a)) + g \odot
  T_{k_j}(M_a))`, the probability of :math:`a` when the top :math:`k_j` positions are
  *removed* (replaced by the fill) and the rest is kept.

The mean of the insertion curve over the grid is the insertion score
:math:`S_a(x)` of :func:`captum_soundness.metrics.completeness` and
:func:`captum_soundness.metrics.soundness`. Both curves run on the batched engine of
``metrics._engine``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness._utils.rng import SeedType
from captum_soundness.fills import FillLike
from captum_soundness.metrics._config import CURVE_KINDS
from captum_soundness.metrics._engine import run_curves

__all__ = ["CURVE_KINDS", "deletion_curve", "insertion_curve"]


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
) -> Tensor:
    r"""Insertion curve: probability of the target as the top positions are *kept*.

    For each fraction :math:`f_j` of the grid, the masked input keeps the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions of the
    map and replaces the rest by the fill:

    .. math::

        I_j(x, a) = \mathbb{E}_{g \sim G}\,
            p_a\big(x \odot T_{k_j}(M_a) + g \odot (1 - T_{k_j}(M_a))\big)

    (expectation estimated with ``n_fill_samples`` draws for random fills). At
    :math:`f = 1` the masked input is the clean input, so the last point of the default
    grid is :math:`p_a(x)`. The mean of the curve is the insertion score :math:`S_a(x)`
    of Gupta et al. (2022) used by :func:`~captum_soundness.metrics.completeness` and
    :func:`~captum_soundness.metrics.soundness`.

    Args:
        forward_func: The model (or any callable) returning ``(N, num_classes)`` scores
            (logits, or probabilities with ``apply_softmax=False``).
        inputs: Tensor of shape ``(N, C, *spatial)``.
        attributions: Saliency of shape ``(N, C, *spatial)`` (Captum's convention: the
            inputs' shape), ``(N, 1, *spatial)`` (one channel for all) or an already
            reduced map ``(N, *spatial)``. Must be finite. Positions are ranked by the
            map after reducing over channels with ``reduce``; ties are broken in a fixed
            pseudo-random order of the positions (see
            :func:`~captum_soundness.masking.rank_positions`), so a constant map scores
            like a random one (with a :class:`UserWarning`).
        target: Label per example: an int, a list of ints or a 1-D tensor (Captum's
            ``TargetType``). ``None`` uses the model's predicted label on the clean input.
        additional_forward_args: Extra arguments for ``forward_func``; tensors with a
            leading dimension are indexed per example.
        fill: Fill for the removed positions: a :class:`~captum_soundness.fills.Fill`, a
            number or tensor (constant fill), or ``None`` (constant 0, the reference
            evaluation fill).
        fractions: An int ``n`` for the grid ``(1/n, 2/n, ..., 1)`` (default 28, the
            reference grid) or a non-empty sequence of floats in ``(0, 1]``. The number
            of top positions is ``k = max(1, round(fraction * P))`` (round half to even)
            for ``P`` spatial positions. There is no 0-fraction point.
        n_fill_samples: Number of draws of a random fill averaged per point. Ignored for
            deterministic fills (constant, mean, blur), whose expectation is exact with a
            single sample. The draws of an image are shared by all fractions.
        apply_softmax: Apply a softmax to the outputs (``True``); ``False`` when the model
            already returns probabilities (every output must then lie in ``[0, 1]``, or a
            ``ValueError`` names the examples; per-label probabilities need not sum to 1).
        reduce: Channel reduction before ranking: ``"sum"``, ``"abs"`` (sum of absolute
            values) or ``"max"``.
        max_examples_per_batch: Maximum number of masked inputs per forward pass
            (``None``: all at once). Does not change the results.
        seed: ``None``, an int or a :class:`torch.Generator` for random fills; the same
            seed gives the same fills whatever ``max_examples_per_batch`` is. The global
            RNG is never used.

    Returns:
        Tensor of shape ``(N, F)``: one curve per example, ``F`` = number of fractions
        (float32, or float64 for float64 models), on the inputs' device.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.metrics import insertion_curve
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x = torch.randn(2, 1, 4, 4)
        >>> attr = torch.randn(2, 1, 4, 4)
        >>> insertion_curve(model, x, attr, target=[0, 2], fractions=4).shape
        torch.Size([2, 4])
    """
    curve, _ = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        caller="insertion_curve",
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    return curve


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
) -> Tensor:
    r"""Deletion curve: probability of the target as the top positions are *removed*.

    Uses the same grid as :func:`insertion_curve`. At fraction :math:`f_j` the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions are
    replaced by the fill and every other position keeps its value:

    .. math::

        D_j(x, a) = \mathbb{E}_{g \sim G}\,
            p_a\big(x \odot (1 - T_{k_j}(M_a)) + g \odot T_{k_j}(M_a)\big).

    The grid has no 0-fraction point (the clean input, :math:`p_a(x)`, is not part of
    the curve) and at least one position is always removed; at :math:`f = 1` every
    position is removed, so the last point of the default grid is the probability of
    the fully filled input, the same for every map. The deletion mask at a fraction is
    the exact complement of the insertion mask at the same fraction (same :math:`k_j`,
    same tie-breaking). For example, with ``fractions=28`` and a 224x224 input
    (:math:`P = 50176`), point :math:`j = 1..28` removes the top :math:`1792 j`
    positions (8 image rows' worth per step).

    Args:
        forward_func, inputs, attributions, target: As in :func:`insertion_curve`.
        additional_forward_args, fill, fractions: As in :func:`insertion_curve`.
        n_fill_samples, apply_softmax, reduce: Likewise (same meanings and defaults).
        max_examples_per_batch, seed: Likewise.

    Returns:
        Tensor of shape ``(N, F)``: one curve per example, on the inputs' device.

    Examples::

        >>> import torch
        >>> from captum_soundness.metrics import deletion_curve
        >>> linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> x, maps = torch.randn(2, 1, 4, 4), torch.randn(2, 4, 4)
        >>> curve = deletion_curve(linear, x, maps, target=1, fractions=4)
        >>> bool(torch.allclose(curve[0, -1], curve[1, -1]))  # both fully filled
        True
    """
    curve, _ = run_curves(
        "deletion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        caller="deletion_curve",
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    return curve
