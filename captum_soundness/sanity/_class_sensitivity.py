"""Class sensitivity: maps for the predicted class against maps for another class."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.validation import check_choice, check_inputs, check_targets
from captum_soundness.masking import REDUCTIONS
from captum_soundness.sanity._maps import check_measures_fit, explain_maps, predicted_scores
from captum_soundness.sanity._similarity import check_similarity, map_similarity

__all__ = ["class_sensitivity"]


def class_sensitivity(
    explain_func: Callable[..., Any],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    *,
    other: str | int | Sequence[int] | Tensor = "second",
    similarity: str = "spearman",
    reduce: str = "sum",
) -> Tensor:
    r"""Similarity between the maps for the predicted class and for another class.

    For each example, the map of the predicted label :math:`\hat y = \arg\max f(x)` and
    the map of another label are computed (in one call of ``explain_func`` on ``2N``
    rows) and compared with ``similarity``. A method that explains the *class* gives
    dissimilar maps (low values); similarities near 1 mean the map mostly shows the
    input, whatever the class (Adebayo et al., 2018; Khakzar et al., 2020).

    Args:
        explain_func: ``explain_func(inputs, target) -> attributions`` (e.g.
            ``Saliency(model).attribute``).
        forward_func: The model, returning ``(N, num_classes)`` scores.
        inputs: Inputs ``(N, C, *spatial)``.
        other: The other label: ``"second"`` (second most likely, default), ``"least"``
            (least likely), an int, or one label per example (list or 1-D tensor). It must
            differ from the predicted label of every example.
        similarity: One measure among ``"spearman"`` (default), ``"spearman_abs"``,
            ``"ssim"``, ``"hog"``, ``"pearson"`` (see :func:`model_randomization`).
        reduce: Channel reduction of input-shaped attributions (``"sum"``, ``"abs"``,
            ``"max"``).

    Returns:
        Float64 tensor ``(N,)`` of similarities (CPU).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> from captum_soundness.sanity import class_sensitivity
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x = torch.randn(4, 1, 4, 4)
        >>> class_sensitivity(Saliency(model).attribute, model.eval(), x).shape
        torch.Size([4])
    """
    if not callable(explain_func):
        raise TypeError(f"`explain_func` must be callable, got {type(explain_func).__name__}.")
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_finite(check_inputs(inputs, min_dim=2), "`inputs`")
    if not isinstance(similarity, str):
        raise TypeError(f"`similarity` must be one measure name (a str), got {similarity!r}.")
    (measure,) = check_similarity(similarity, "similarity")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    n = inputs.shape[0]
    if isinstance(other, str):
        check_choice(other, "other", ("second", "least"))
    else:
        check_targets(other, n, name="other")
    warn_if_training(forward_func, "class_sensitivity")
    with preserved_model(forward_func, freeze_parameters=False, devices=[inputs.device]):
        return _class_sensitivity(explain_func, forward_func, inputs, other, measure, reduce)


def _class_sensitivity(
    explain_func: Callable[..., Any],
    forward_func: Callable[..., Any],
    inputs: Tensor,
    other: str | int | Sequence[int] | Tensor,
    measure: str,
    reduce: str,
) -> Tensor:
    """:func:`class_sensitivity` on checked arguments (model and RNG guarded by the caller)."""
    n = inputs.shape[0]
    out = predicted_scores(forward_func, inputs)
    num_classes = out.shape[1]
    if num_classes < 2:
        raise ValueError("class_sensitivity needs a model with at least 2 outputs.")
    order = torch.sort(out, dim=1, descending=True, stable=True).indices
    predicted = order[:, 0]
    if isinstance(other, str):
        other_labels = order[:, 1] if other == "second" else order[:, -1]
    else:
        other_labels = check_targets(other, n, num_classes, name="other", device=inputs.device)
        same = (other_labels == predicted).nonzero().flatten().tolist()
        if same:
            raise ValueError(
                f"`other` equals the predicted label for examples {same}; choose a label "
                "that differs from the prediction (or other='second')."
            )
    x2 = torch.cat([inputs, inputs], dim=0)
    t2 = torch.cat([predicted, other_labels]).to(inputs.device)
    what = "The attributions returned by `explain_func`"
    maps = explain_maps(explain_func, x2, t2, reduce, what, torch.arange(n).repeat(2))
    check_measures_fit((measure,), maps, "similarity")
    return map_similarity(maps[:n], maps[n:], measure).double().cpu()
