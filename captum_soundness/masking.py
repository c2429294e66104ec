r"""Masked inputs: ranking positions of a saliency map and keeping the top :math:`k`.

For a saliency map :math:`M_a` over the :math:`P` positions of an input, the masked
input keeps the :math:`k` highest-ranked positions (the same positions in every channel)
and fills the rest (Gupta et al., 2022, section 1):

.. math::

    \tilde x(a, k, g) = x \odot T_k(M_a) + g \odot (1 - T_k(M_a)).

The positions are those of :class:`~captum_soundness._utils.features.FeatureLayout`:
the spatial positions of an image (or of any ``(N, C, *spatial)`` tensor), the features
of a tabular ``(N, F)`` tensor, the groups of Captum's ``feature_mask``, and for a tuple
of input tensors the positions of all of them, ranked together by one sort per map.

This module holds the tensor-native building blocks used by the metrics:

- :func:`reduce_channels`: an attribution of the input's shape to a map over positions;
- :func:`rank_positions`: one stable sort per map, ties broken in a fixed pseudo-random
  order of the positions (seed 0);
- :func:`fraction_counts`: a grid of fractions to numbers of kept positions;
- :func:`topk_masks`: all top-:math:`k` masks of a grid at once, from the ranks;
- :func:`compose`: :math:`x \odot m + g \odot (1 - m)` with broadcasting.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from numbers import Integral, Real

import torch
from torch import Tensor

from captum_soundness._utils.finite import format_examples
from captum_soundness._utils.model_state import user_stacklevel
from captum_soundness._utils.validation import check_choice

__all__ = [
    "REDUCTIONS",
    "compose",
    "fraction_counts",
    "fraction_grid",
    "rank_positions",
    "reduce_channels",
    "topk_masks",
]

#: Channel reductions accepted by ``reduce``.
REDUCTIONS = ("sum", "abs", "max")

# Seed of _tie_order, the fixed pseudo-random order in which rank_positions ranks ties.
_TIE_SEED = 0


def reduce_channels(attributions: Tensor, reduce: str = "sum") -> Tensor:
    """Reduces attributions ``(N, C, *spatial)`` over channels to maps ``(N, *spatial)``.

    Args:
        attributions: Attributions with a channel dimension at position 1.
        reduce: ``"sum"`` (signed sum over channels), ``"abs"`` (sum of absolute values)
            or ``"max"`` (maximum over channels).

    Returns:
        Saliency maps of shape ``(N, *spatial)``.

    Examples::

        >>> import torch
        >>> from captum_soundness.masking import reduce_channels
        >>> a = torch.tensor([[[[1.0, -2.0]], [[3.0, 1.0]]]])   # (1, 2, 1, 2)
        >>> reduce_channels(a, "sum"), reduce_channels(a, "abs")
        (tensor([[[ 4., -1.]]]), tensor([[[4., 3.]]]))
    """
    check_choice(reduce, "reduce", REDUCTIONS)
    if reduce == "sum":
        return attributions.sum(dim=1)
    if reduce == "abs":
        return attributions.abs().sum(dim=1)
    return attributions.amax(dim=1)


@functools.lru_cache(maxsize=8)
def _tie_order(num_positions: int) -> Tensor:
    """The order in which tied positions are ranked: a fixed pseudo-random permutation of
    ``range(num_positions)`` (drawn by a CPU generator seeded with ``_TIE_SEED``, so the
    same on every device and in every run)."""
    generator = torch.Generator().manual_seed(_TIE_SEED)
    return torch.randperm(num_positions, generator=generator)


def rank_positions(saliency: Tensor) -> Tensor:
    """Ranks the positions of each map, 0 = most salient.

    One stable descending sort per map. **Ties** (positions with equal values) are broken
    in a fixed pseudo-random order of the positions (``torch.randperm(P)`` drawn by a CPU
    generator seeded with 0), the same for every map, run and device:

    - a map without ties is ranked by its values alone (the tie rule changes nothing);
    - a map states no preference among tied positions, so the rule must not invent one
      that correlates with the image: the reading order used before (row by row from
      the top-left) favoured images whose content sits at the top, and an all-zero map
      scored a completeness of 0.42 on a centred digit. In a pseudo-random order the
      tied positions enter like those of a random map, so a **constant map scores like
      the random floor** (a random map's scores, in expectation over images): no
      better than a map that says nothing;
    - the rule is deterministic: the same map gives the same curves whatever the
      ``seed`` (which drives the fill draws only), and ``k`` positions are kept
      exactly at every grid point (ties entering together would keep more or fewer).

    A :class:`UserWarning` names the constant maps (every position tied).

    Args:
        saliency: Maps of shape ``(N, *spatial)``, or scores ``(N, P)`` of the positions
            of a :class:`~captum_soundness._utils.features.FeatureLayout` (the positions
            of every input tensor, in input order).

    Returns:
        ``LongTensor`` of shape ``(N, P)`` with ``P = prod(spatial)``: the rank of each
        flattened position.

    Examples::

        >>> import torch
        >>> from captum_soundness.masking import rank_positions
        >>> rank_positions(torch.tensor([[0.1, 0.9, 0.3, 0.5]]))
        tensor([[3, 0, 2, 1]])
    """
    flat = saliency.reshape(saliency.shape[0], -1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    _warn_constant(flat)
    perm = _tie_order(flat.shape[1]).to(flat.device)
    # One sort of the values laid out in the tie order: ties keep that order (stable).
    order = perm[torch.sort(flat[:, perm], dim=1, descending=True, stable=True).indices]
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def _warn_constant(flat: Tensor) -> None:
    """Warns about constant maps (rows of ``flat``), pointing at the user's call."""
    constant = (flat == flat[:, :1]).all(dim=1)
    if flat.shape[1] < 2 or not bool(constant.any()):
        return
    rows = format_examples(constant.nonzero().flatten().tolist())
    warnings.warn(
        f"Constant saliency maps (rows {rows}): every position ties, so the positions enter "
        "in the fixed pseudo-random tie order and the map scores like a random map. A "
        "constant map carries no ranking; check the explanation method.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def fraction_grid(fractions: int | Sequence[float] | Tensor, name: str = "fractions") -> Tensor:
    """Normalises ``fractions`` into a 1-D float64 tensor of values in ``(0, 1]``.

    Args:
        fractions: An int ``n`` for the grid ``(1/n, 2/n, ..., 1)`` (the reference grid
            for 224x224 images is ``n = 28``), or a non-empty sequence of floats in
            ``(0, 1]``, used as given.
        name: Argument name used in error messages.

    Examples::

        >>> from captum_soundness.masking import fraction_grid
        >>> fraction_grid(4)
        tensor([0.2500, 0.5000, 0.7500, 1.0000], dtype=torch.float64)
    """
    if isinstance(fractions, Integral) and not isinstance(fractions, bool):
        if fractions < 1:
            raise ValueError(f"`{name}` as an int must be >= 1, got {fractions}.")
        return torch.arange(1, int(fractions) + 1, dtype=torch.float64) / int(fractions)
    if isinstance(fractions, Tensor):
        if fractions.dim() != 1:
            raise ValueError(f"`{name}` tensor must be 1-D, got shape {tuple(fractions.shape)}.")
        values = fractions.detach().to("cpu", torch.float64)
    elif isinstance(fractions, Sequence) and not isinstance(fractions, (str, bytes)):
        if not all(isinstance(f, Real) and not isinstance(f, bool) for f in fractions):
            raise TypeError(f"`{name}` must be an int or a sequence of floats in (0, 1].")
        values = torch.tensor([float(f) for f in fractions], dtype=torch.float64)
    else:
        raise TypeError(
            f"`{name}` must be an int or a sequence of floats in (0, 1], got "
            f"{type(fractions).__name__}."
        )
    if values.numel() == 0:
        raise ValueError(f"`{name}` is empty: give at least one fraction in (0, 1].")
    if not bool(((values > 0) & (values <= 1)).all()):
        raise ValueError(f"`{name}` must lie in (0, 1], got {values.tolist()}.")
    return values


def fraction_counts(fractions: Tensor, num_positions: int) -> Tensor:
    """Numbers of kept positions: ``round(fraction * P)`` (half to even), at least 1.

    Args:
        fractions: Output of :func:`fraction_grid`.
        num_positions: ``P``, the number of spatial positions.

    Returns:
        ``LongTensor`` of the same length as ``fractions``.

    Examples::

        >>> import torch
        >>> from captum_soundness.masking import fraction_counts
        >>> fraction_counts(torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64), 10)
        tensor([ 1,  5, 10])
    """
    counts = torch.round(fractions.to(torch.float64) * num_positions).long()
    return counts.clamp_(min=1, max=num_positions)


def topk_masks(ranks: Tensor, counts: Tensor) -> Tensor:
    """All top-:math:`k` masks of a grid at once: ``mask[n, f, p] = ranks[n, p] < k_f``.

    Args:
        ranks: Output of :func:`rank_positions`, shape ``(N, P)``.
        counts: Numbers of kept positions, shape ``(F,)``, or ``(N, F)`` for a grid of
            its own per map.

    Returns:
        Boolean tensor of shape ``(N, F, P)``.

    Examples::

        >>> import torch
        >>> from captum_soundness.masking import topk_masks
        >>> topk_masks(torch.tensor([[2, 0, 1]]), torch.tensor([1, 2])).int()
        tensor([[[0, 1, 0],
                 [0, 1, 1]]], dtype=torch.int32)
    """
    counts = counts.to(ranks.device)
    if counts.dim() == 2:
        return ranks.unsqueeze(1) < counts.unsqueeze(2)
    return ranks.unsqueeze(1) < counts.view(1, -1, 1)


def compose(inputs: Tensor, mask: Tensor, fill: Tensor) -> Tensor:
    r"""Returns :math:`x \odot m + g \odot (1 - m)`.

    ``mask`` may be boolean (exact selection, no arithmetic on the kept values) or
    floating (a soft mask in ``[0, 1]``). All three arguments broadcast.

    Examples::

        >>> import torch
        >>> from captum_soundness.masking import compose
        >>> compose(torch.ones(4), torch.tensor([True, False, True, False]), torch.zeros(4))
        tensor([1., 0., 1., 0.])
    """
    if mask.dtype == torch.bool:
        return torch.where(mask, inputs, fill)
    return fill + mask * (inputs - fill)
