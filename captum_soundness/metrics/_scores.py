r"""Completeness and soundness: the formulas, and one value per example.

:func:`completeness_from_scores` and :func:`soundness_from_scores` are the formulas of
Gupta et al. (2022) on insertion scores and clean probabilities;
:func:`completeness` and :func:`soundness` compute the insertion curves first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness._utils.baselines import UNSET as FILL_UNSET
from captum_soundness._utils.baselines import resolve_baselines
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.heads import UNSET as SOFTMAX_UNSET
from captum_soundness._utils.heads import resolve_head
from captum_soundness._utils.rng import SeedType
from captum_soundness._utils.validation import (
    check_nonnegative_float,
    check_positive_float,
    check_unit_interval,
)
from captum_soundness.metrics._config import DEFAULT_MAX_EXAMPLES_PER_BATCH
from captum_soundness.metrics._engine import run_curves

__all__ = [
    "check_metric_constants",
    "completeness",
    "completeness_from_scores",
    "soundness",
    "soundness_from_scores",
]

_UNSET: Any = object()


def check_metric_constants(
    epsilon: Any = _UNSET, alpha: Any = _UNSET, beta: Any = _UNSET
) -> tuple[float | None, float | None, float | None]:
    """Validates the constants given: ``epsilon >= 0``, ``alpha > 0``, ``0 <= beta <= 1``.

    Constants not passed come back as ``None``.
    """
    eps = None if epsilon is _UNSET else check_nonnegative_float(epsilon, "epsilon")
    alp = None if alpha is _UNSET else check_positive_float(alpha, "alpha")
    bet = None if beta is _UNSET else check_unit_interval(beta, "beta")
    return eps, alp, bet


def completeness_from_scores(
    insertion_score: Tensor, prob: Tensor, epsilon: float = 0.1, alpha: float = 1.0
) -> Tensor:
    r"""Completeness from insertion scores and clean probabilities (elementwise).

    .. math::

        \mathrm{completeness} = \min\!\Big(1,\
            \frac{\max(\varepsilon, S)}{\min(\alpha, p)}\Big),

    equal to 1 when :math:`\min(\alpha, p) = 0` (a clean probability that underflowed to
    0 is matched by any insertion score).

    Args:
        insertion_score: :math:`S`, the mean of the insertion curve.
        prob: :math:`p`, the clean probability of the same label.
        epsilon: :math:`\varepsilon \ge 0`.
        alpha: :math:`\alpha > 0`.

    Examples::

        >>> import torch
        >>> from captum_soundness.metrics import completeness_from_scores
        >>> completeness_from_scores(torch.tensor([0.3, 0.05, 0.9]), torch.tensor([0.6, 0.5, 0.8]))
        tensor([0.5000, 0.2000, 1.0000])
    """
    epsilon, alpha, _ = check_metric_constants(epsilon=epsilon, alpha=alpha)
    _check_scores(insertion_score, prob)
    denominator = prob.clamp(max=alpha)
    ratio = insertion_score.clamp(min=epsilon) / denominator
    ratio = torch.where(denominator > 0, ratio, torch.ones_like(ratio))
    return ratio.clamp(max=1.0)


def soundness_from_scores(insertion_score: Tensor, prob: Tensor, beta: float = 0.1) -> Tensor:
    r"""Soundness from insertion scores and clean probabilities (elementwise).

    .. math::

        \mathrm{soundness} = \min\!\Big(1,\ \frac{\max(\beta, p)}{S}\Big),
        \qquad = 1 \text{ when } S = 0.

    Args:
        insertion_score: :math:`S`, the mean of the insertion curve.
        prob: :math:`p`, the clean probability of the same label.
        beta: :math:`0 \le \beta \le 1`.

    Examples::

        >>> import torch
        >>> from captum_soundness.metrics import soundness_from_scores
        >>> soundness_from_scores(torch.tensor([0.5, 0.0, 0.05]), torch.tensor([0.02, 0.3, 0.04]))
        tensor([0.2000, 1.0000, 1.0000])
    """
    _, _, beta = check_metric_constants(beta=beta)
    _check_scores(insertion_score, prob)
    numerator = prob.clamp(min=beta)
    ratio = numerator / insertion_score
    ratio = torch.where(insertion_score > 0, ratio, torch.ones_like(ratio))
    return ratio.clamp(max=1.0)


def _check_scores(insertion_score: Tensor, prob: Tensor) -> None:
    """Both arguments of the formulas: tensors of finite values in ``[0, 1]``.

    A NaN must never become a score (``NaN > 0`` is false: the formulas' special case
    would turn it into 1).
    """
    for name, value in (("insertion_score", insertion_score), ("prob", prob)):
        if not isinstance(value, Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}.")
        check_finite(value, f"`{name}`")
        if bool(((value < 0) | (value > 1)).any()):
            raise ValueError(
                f"`{name}` must lie in [0, 1] (a probability or a mean of probabilities), "
                f"got values from {float(value.min()):.4g} to {float(value.max()):.4g}."
            )


def _insertion_scores(
    caller: str,
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Any,
    target: TargetType,
    additional_forward_args: Any,
    feature_mask: Any,
    settings: dict[str, Any],
) -> tuple[Tensor, Tensor]:
    """``(N,)`` insertion scores and clean target probabilities (``settings``: the curve
    keyword arguments of :func:`~captum_soundness.metrics.insertion_curve`)."""
    curve, prob = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        feature_mask=feature_mask,
        return_clean=True,
        caller=caller,
        **settings,
    )
    assert prob is not None
    return curve.mean(dim=1), prob


def completeness(
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
    epsilon: float = 0.1,
    alpha: float = 1.0,
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> Tensor:
    r"""Completeness of saliency maps (Gupta et al., 2022, definition of section 2).

    .. math::

        \mathrm{completeness}_a(x) = \min\!\Big(1,\
            \frac{\max(\varepsilon, S_a(x))}{\min(\alpha, p_a(x))}\Big),

    where :math:`S_a(x)` is the mean of :func:`insertion_curve` and :math:`p_a(x)` the
    clean probability of the target under the same ``head``. A value of 1 means the
    top-ranked positions alone support the label (on average over mask sizes) at least
    as strongly as the whole input; :math:`\varepsilon` forgives insertion scores below
    it and :math:`\alpha` caps the clean probability that has to be matched. Defined as 1
    when :math:`\min(\alpha, p_a) = 0`.

    Not to be confused with the completeness *axiom* of Integrated Gradients
    (Sundararajan et al., 2017), ``sum(attributions) = F(x) - F(x')``; see
    ``ig_completeness_error``.

    Args:
        forward_func: The model, returning ``(N, *S)`` scores (see ``head``).
        inputs: A tensor or a tuple of tensors of rank >= 2 (see :func:`insertion_curve`).
        attributions: In the container of ``inputs``, each shaped like its input (see
            :func:`insertion_curve`).
        target: Captum's ``TargetType`` (int, tuple index into a multi-dimensional
            output, tensor of 1 or ``N`` elements, list of ``N`` ints or tuples);
            ``None`` uses the predicted label of 2-D outputs.
        additional_forward_args, baselines, feature_mask, fractions: The settings of the
            insertion curve, as in :func:`insertion_curve` (same meanings and defaults).
        n_fill_samples, head, reduce, seed: Also as in :func:`insertion_curve`.
        max_examples_per_batch: Maximum number of model inputs (rows) per forward pass,
            as in :func:`insertion_curve`.
        epsilon: :math:`\varepsilon \ge 0` (reference 0.1).
        alpha: :math:`\alpha > 0` (reference 1).
        fill, apply_softmax: Deprecated aliases of ``baselines`` and ``head``.

    Returns:
        Tensor of shape ``(N,)`` with values in ``[0, 1]`` (0 only
        when ``epsilon = 0`` and :math:`S = 0`).

    Examples::

        >>> import torch
        >>> from captum_soundness.metrics import completeness
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> x = torch.rand(4, 1, 4, 4)
        >>> scores = completeness(model, x, x, fractions=4)  # the input as its own map
        >>> scores.shape, bool(((scores >= 0) & (scores <= 1)).all())
        (torch.Size([4]), True)
    """
    epsilon, alpha, _ = check_metric_constants(epsilon=epsilon, alpha=alpha)
    settings = {
        "baselines": resolve_baselines(baselines, fill),
        "fractions": fractions,
        "n_fill_samples": n_fill_samples,
        "head": resolve_head(head, apply_softmax),
        "reduce": reduce,
        "max_examples_per_batch": max_examples_per_batch,
        "seed": seed,
    }
    score, prob = _insertion_scores(
        "completeness",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        feature_mask,
        settings,
    )
    return completeness_from_scores(score, prob, epsilon, alpha)


def soundness(
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
    beta: float = 0.1,
    fill: Any = FILL_UNSET,
    apply_softmax: Any = SOFTMAX_UNSET,
) -> Tensor:
    r"""Soundness of saliency maps (Gupta et al., 2022, definition of section 2).

    .. math::

        \mathrm{soundness}_a(x) = \min\!\Big(1,\ \frac{\max(\beta, p_a(x))}{S_a(x)}\Big)
        \qquad (= 1 \text{ when } S_a(x) = 0),

    where :math:`S_a(x)` is the mean of :func:`insertion_curve` and :math:`p_a(x)` the
    clean probability of the target under the same ``head``. A value below 1 means the
    masked inputs support the label *more* than the input itself does: the map
    manufactures evidence (an unsound certificate). :math:`\beta` forgives insertion
    scores up to :math:`\beta`. Soundness matters most for labels other than the
    prediction; :func:`evaluate_all_labels` computes it for every label.

    Args:
        forward_func, inputs, attributions, target: As in :func:`completeness`.
        additional_forward_args, baselines, feature_mask, fractions: The insertion
            curve's settings (see :func:`insertion_curve`).
        n_fill_samples, head, reduce, seed: See :func:`insertion_curve` as well.
        max_examples_per_batch: Maximum number of model inputs (rows) per forward pass,
            as in :func:`insertion_curve`.
        beta: :math:`0 \le \beta \le 1` (reference 0.1).
        fill, apply_softmax: Deprecated aliases of ``baselines`` and ``head``.

    Returns:
        One soundness value per example, ``(N,)``, in ``[0, 1]``; 0 is reached only
        with ``beta = 0`` and a clean probability of 0.

    Example: soundness at label 2 of every example::

        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> from captum_soundness.metrics import soundness
        >>> soundness(model, torch.randn(2, 1, 4, 4), torch.randn(2, 4, 4), target=2).shape
        torch.Size([2])
    """
    _, _, beta = check_metric_constants(beta=beta)
    settings = {
        "baselines": resolve_baselines(baselines, fill),
        "fractions": fractions,
        "n_fill_samples": n_fill_samples,
        "head": resolve_head(head, apply_softmax),
        "reduce": reduce,
        "max_examples_per_batch": max_examples_per_batch,
        "seed": seed,
    }
    score, prob = _insertion_scores(
        "soundness",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        feature_mask,
        settings,
    )
    return soundness_from_scores(score, prob, beta)
