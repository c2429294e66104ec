"""Completeness and soundness of saliency maps: one value per example."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness.metrics._curves import (
    check_metric_constants,
    completeness_from_scores,
    run_curves,
    soundness_from_scores,
)

_CURVE_KWARGS = frozenset(
    {
        "additional_forward_args",
        "fill",
        "fractions",
        "n_fill_samples",
        "apply_softmax",
        "reduce",
        "max_examples_per_batch",
        "seed",
    }
)

__all__ = ["completeness", "soundness"]


def completeness(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    *,
    epsilon: float = 0.1,
    alpha: float = 1.0,
    **curve_kwargs: Any,
) -> Tensor:
    r"""Completeness of saliency maps (Gupta et al., 2022, definition of section 2).

    .. math::

        \mathrm{completeness}_a(x) = \min\!\Big(1,\
            \frac{\max(\varepsilon, S_a(x))}{\min(\alpha, p_a(x))}\Big),

    where :math:`S_a(x)` is the mean of :func:`insertion_curve` and :math:`p_a(x)` the
    clean probability of the target under the same softmax. A value of 1 means the
    top-ranked positions alone support the label (on average over mask sizes) at least
    as strongly as the whole input; :math:`\varepsilon` forgives insertion scores below
    it and :math:`\alpha` caps the clean probability that has to be matched. Defined as 1
    when :math:`\min(\alpha, p_a) = 0`.

    Not to be confused with the completeness *axiom* of Integrated Gradients
    (Sundararajan et al., 2017), ``sum(attributions) = F(x) - F(x')``; see
    ``ig_completeness_error``.

    Args:
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Tensor of shape ``(N, C, *spatial)``.
        attributions: ``(N, C, *spatial)``, ``(N, 1, *spatial)`` or ``(N, *spatial)``
            (see :func:`insertion_curve`).
        target: Label per example (Captum's ``TargetType``); ``None`` uses the
            predicted label.
        epsilon: :math:`\varepsilon \ge 0` (reference 0.1).
        alpha: :math:`\alpha > 0` (reference 1).
        **curve_kwargs: Passed to :func:`insertion_curve` (``additional_forward_args``,
            ``fill``, ``fractions``, ``n_fill_samples``, ``apply_softmax``, ``reduce``,
            ``max_examples_per_batch``, ``seed``).

    Returns:
        Tensor of shape ``(N,)`` with values in ``[0, 1]`` (0 only
        when ``epsilon = 0`` and :math:`S = 0`).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.metrics._scores import completeness
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x, attr = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
        >>> completeness(model, x, attr, target=[0, 1], fractions=4).shape
        torch.Size([2])
    """
    epsilon, alpha, _ = check_metric_constants(epsilon=epsilon, alpha=alpha)
    _check_curve_kwargs(curve_kwargs, "completeness")
    curve, prob = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        return_clean=True,
        caller="completeness",
        **curve_kwargs,
    )
    assert prob is not None
    return completeness_from_scores(curve.mean(dim=1), prob, epsilon, alpha)


def soundness(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    *,
    beta: float = 0.1,
    **curve_kwargs: Any,
) -> Tensor:
    r"""Soundness of saliency maps (Gupta et al., 2022, definition of section 2).

    .. math::

        \mathrm{soundness}_a(x) = \min\!\Big(1,\ \frac{\max(\beta, p_a(x))}{S_a(x)}\Big)
        \qquad (= 1 \text{ when } S_a(x) = 0),

    where :math:`S_a(x)` is the mean of :func:`insertion_curve` and :math:`p_a(x)` the
    clean probability of the target under the same softmax. A value below 1 means the
    masked inputs support the label *more* than the input itself does: the map
    manufactures evidence (an unsound certificate). :math:`\beta` forgives insertion
    scores up to :math:`\beta`. Soundness matters most for labels other than the
    prediction; :func:`evaluate_all_labels` computes it for every label.

    Args:
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Tensor of shape ``(N, C, *spatial)``.
        attributions: ``(N, C, *spatial)``, ``(N, 1, *spatial)`` or ``(N, *spatial)``
            (see :func:`insertion_curve`).
        target: Label per example (Captum's ``TargetType``); ``None`` uses the
            predicted label.
        beta: :math:`0 \le \beta \le 1` (reference 0.1).
        **curve_kwargs: Passed to :func:`insertion_curve`.

    Returns:
        Tensor of shape ``(N,)`` with values in ``[0, 1]`` (0 only
        when ``beta = 0`` and :math:`p = 0`).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.metrics._scores import soundness
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x, attr = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
        >>> soundness(model, x, attr, target=2, fractions=4).shape
        torch.Size([2])
    """
    _, _, beta = check_metric_constants(beta=beta)
    _check_curve_kwargs(curve_kwargs, "soundness")
    curve, prob = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        return_clean=True,
        caller="soundness",
        **curve_kwargs,
    )
    assert prob is not None
    return soundness_from_scores(curve.mean(dim=1), prob, beta)


def _check_curve_kwargs(curve_kwargs: dict[str, Any], caller: str) -> None:
    unknown = sorted(set(curve_kwargs) - _CURVE_KWARGS)
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {unknown}; the keyword "
            f"arguments of insertion_curve are {sorted(_CURVE_KWARGS)}."
        )
