r"""Insertion and deletion curves.

For an input :math:`x`, a saliency map :math:`M_a` for label :math:`a` over the
:math:`P` positions of :math:`x`, and a fill distribution :math:`G` (Captum's
``baselines``), the masked input keeps the top-:math:`k` positions of :math:`M_a`
(Gupta et al., 2022):

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

**Positions** (:class:`~captum_soundness._utils.features.FeatureLayout`): the spatial
positions of an input ``(N, C, *spatial)`` (shared by its channels), the features of a
tabular input ``(N, F)``, or the groups of Captum's ``feature_mask``. For a tuple of
input tensors the positions of all tensors are ranked together (one sort per map) and
each tensor is filled with its own baseline.

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

from captum_soundness._utils.baselines import UNSET as FILL_UNSET
from captum_soundness._utils.baselines import resolve_baselines
from captum_soundness._utils.heads import UNSET as SOFTMAX_UNSET
from captum_soundness._utils.heads import resolve_head
from captum_soundness._utils.rng import SeedType
from captum_soundness.metrics._config import CURVE_KINDS, DEFAULT_MAX_EXAMPLES_PER_BATCH
from captum_soundness.metrics._engine import run_curves

__all__ = ["CURVE_KINDS", "deletion_curve", "insertion_curve"]


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Tensor | tuple[Tensor, ...],
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    baselines: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    head: str | None = None,
    reduce: str = "sum",
    max_examples_per_batch: int | None = DEFAULT_MAX_EXAMPLES_PER_BATCH,
    seed: SeedType = None,
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> Tensor:
    r"""Insertion curve: probability of the target as the top positions are *kept*.

    For each fraction :math:`f_j` of the grid, the masked input keeps the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions of the
    map and replaces the rest by the baselines (the fill):

    .. math::

        I_j(x, a) = \mathbb{E}_{g \sim G}\,
            p_a\big(x \odot T_{k_j}(M_a) + g \odot (1 - T_{k_j}(M_a))\big)

    (expectation estimated with ``n_fill_samples`` draws for random fills). At
    :math:`f = 1` the masked input is the clean input, so the last point of the default
    grid is :math:`p_a(x)`. The mean of the curve is the insertion score :math:`S_a(x)`
    of Gupta et al. (2022) used by :func:`~captum_soundness.metrics.completeness` and
    :func:`~captum_soundness.metrics.soundness`.

    Args:
        forward_func: The model (or any callable): ``forward_func(*inputs,
            *additional_forward_args)`` returns scores of shape ``(N, *S)``, typically
            ``(N, num_classes)``; see ``head``.
        inputs: A tensor or a tuple of tensors (Captum's convention), each of shape
            ``(N, ...)`` with rank >= 2: ``(N, F)`` tabular, ``(N, C, L)``,
            ``(N, C, H, W)``, volumes. Must be finite.
        attributions: In the container of ``inputs`` (a 1-tuple is accepted for a single
            tensor), each shaped like its input: ``(N, C, *spatial)``, or for inputs of
            rank >= 3 also ``(N, 1, *spatial)`` (one channel for all) or an already
            reduced map ``(N, *spatial)``. Must be finite. The positions of all input
            tensors are ranked together by their scores (the attributions reduced over
            channels with ``reduce``, or per group with ``feature_mask``); ties are broken
            in a fixed pseudo-random order of the positions (see
            :func:`~captum_soundness.masking.rank_positions`), so a constant map scores
            like a random one (with a :class:`UserWarning`).
        target: Captum's ``TargetType``, resolved as Captum resolves it: an int (the
            same label for every example), a tuple (one index into a multi-dimensional
            output ``(N, *S)``, the same for every example), a tensor of 1 or ``N``
            integers, or a list of ``N`` ints or ``N`` tuples. ``target=(1, 0)`` is one
            index into a 3-D output, never one label per example. ``None`` uses the
            predicted label (``argmax`` of the clean probabilities) of 2-D outputs.
        additional_forward_args: Extra arguments for ``forward_func``; tensors with a
            leading dimension are indexed per example.
        baselines: Captum's name for the replacement values: ``None`` (0, the reference
            evaluation fill), a number, a tensor broadcastable to one example (e.g. a
            per-channel colour ``(C, 1, 1)``), a per-example tensor (``N`` rows), a
            :class:`~captum_soundness.fills.Fill` (``MeanFill``, ``BlurFill``,
            ``NoiseFill``, ``DatasetFill``, ...), or for tuple inputs a tuple of these
            (one per input tensor; a number or a Fill alone applies to all).
        feature_mask: Captum's grouping of features, as in
            :class:`~captum.attr.FeatureAblation`: ``None`` (positions as above), or per
            input tensor an integer tensor with the input's number of dimensions, first
            dimension 1 or ``N``, broadcastable to the input; equal ids form one group
            (also across input tensors). The curve then ranks and inserts groups (a
            group's score is the mean of its attributions), and the fractions are
            fractions of the groups.
        fractions: An int ``n`` for the grid ``(1/n, 2/n, ..., 1)`` (default 28, the
            reference grid) or a non-empty sequence of floats in ``(0, 1]``. The number
            of top positions is ``k = max(1, round(fraction * P))`` (round half to even)
            for ``P`` positions. There is no 0-fraction point.
        n_fill_samples: Number of draws of a random fill averaged per point. Ignored for
            deterministic fills (constant, mean, blur, tensors), whose expectation is
            exact with a single sample. The draws of an example are shared by all
            fractions.
        head: How the outputs become probabilities: ``"softmax"`` (``None``, the
            default: logits, softmax over the last dimension; a :class:`UserWarning` when
            the outputs already look like probabilities), ``"probabilities"`` (used as
            they are; every value must lie in ``[0, 1]``, or a ``ValueError`` names the
            examples), ``"sigmoid"`` (one logit per label, :math:`p_a = \sigma(z_a)`,
            independent of the other labels) or ``"binary"`` (a single logit ``(N,)``
            or ``(N, 1)``: labels 0 and 1 with :math:`p_1 = \sigma(z)`).
        reduce: Channel reduction before ranking: ``"sum"``, ``"abs"`` (sum of absolute
            values) or ``"max"``.
        max_examples_per_batch: Maximum number of model inputs (rows: masked or clean
            examples) per forward pass, as in Captum's metrics (``None``: all at once).
            Default 256, the fastest measured on CPU (on a GPU, a larger value may
            pay). Does not change the results.
        seed: ``None`` (one seed drawn from PyTorch's global RNG, so
            ``torch.manual_seed`` makes the call repeatable), an int or a
            :class:`torch.Generator` (the global RNG is then untouched); drives the
            random fills only. The same seed gives the same fills whatever
            ``max_examples_per_batch`` is.
        fill: Deprecated alias of ``baselines`` (a :class:`DeprecationWarning`).
        apply_softmax: Deprecated alias of ``head``: ``True`` is ``"softmax"``,
            ``False`` is ``"probabilities"`` (a :class:`DeprecationWarning`).

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

        A tabular model, its features inserted in two groups::

        >>> tabular = nn.Linear(4, 3).eval()
        >>> rows = torch.randn(2, 4)
        >>> groups = torch.tensor([[0, 0, 1, 1]])
        >>> insertion_curve(tabular, rows, rows, 1, feature_mask=groups, fractions=2).shape
        torch.Size([2, 2])
    """
    curve, _ = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        feature_mask=feature_mask,
        caller="insertion_curve",
        baselines=resolve_baselines(baselines, fill),
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        head=resolve_head(head, apply_softmax),
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    return curve


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Tensor | tuple[Tensor, ...],
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    baselines: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    head: str | None = None,
    reduce: str = "sum",
    max_examples_per_batch: int | None = DEFAULT_MAX_EXAMPLES_PER_BATCH,
    seed: SeedType = None,
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> Tensor:
    r"""Deletion curve: probability of the target as the top positions are *removed*.

    Uses the same grid as :func:`insertion_curve`. At fraction :math:`f_j` the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions are
    replaced by the baselines (the fill) and every other position keeps its value:

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
        additional_forward_args, baselines, feature_mask: As in :func:`insertion_curve`.
        fractions, n_fill_samples, head, reduce: Likewise (same meanings and defaults).
        max_examples_per_batch: Maximum number of model inputs (rows) per forward pass,
            as in :func:`insertion_curve`.
        seed, fill, apply_softmax: As in :func:`insertion_curve`.

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
        feature_mask=feature_mask,
        caller="deletion_curve",
        baselines=resolve_baselines(baselines, fill),
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        head=resolve_head(head, apply_softmax),
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    return curve
