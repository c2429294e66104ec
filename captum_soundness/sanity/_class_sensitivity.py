"""Class sensitivity: maps for the predicted class against maps for another class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from torch import Tensor

from captum_soundness._utils.explain import check_explain_kwargs
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.inputs import format_inputs, num_examples
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.targets import resolve_targets
from captum_soundness._utils.validation import check_choice
from captum_soundness.masking import REDUCTIONS
from captum_soundness.sanity._maps import (
    check_measures_fit,
    explain_maps,
    predicted_scores,
    repeat_inputs,
)
from captum_soundness.sanity._similarity import check_similarity, map_similarity

__all__ = ["class_sensitivity"]


def class_sensitivity(
    explain_func: Callable[..., Any],
    forward_func: Callable[..., Any],
    inputs: TensorOrTupleOfTensorsGeneric,
    *,
    other: str | TargetType = "second",
    similarity: str = "spearman",
    reduce: str = "sum",
    explain_kwargs: dict[str, Any] | None = None,
) -> Tensor:
    r"""Similarity between the maps for the predicted class and for another class.

    For each example, the map of the predicted label :math:`\hat y = \arg\max f(x)` and
    the map of another label are computed (in one call of ``explain_func`` on ``2N``
    rows) and compared with ``similarity``. A method that explains the *class* gives
    dissimilar maps (low values); similarities near 1 mean the map mostly shows the
    input, whatever the class (Adebayo et al., 2018; Khakzar et al., 2020).

    Args:
        explain_func: ``explain_func(inputs, target, **explain_kwargs) -> attributions``
            (e.g. ``Saliency(model).attribute``), called once on the inputs repeated
            twice, in their container, with a 1-D tensor of ``2N`` labels.
        forward_func: The model, returning ``(N, num_classes)`` scores;
            ``forward_func(*inputs)`` for a tuple of inputs.
        inputs: A tensor or a tuple of tensors (rank >= 2, batch first; Captum's
            convention). See :mod:`captum_soundness.sanity` for how attributions of
            several inputs become one map per example.
        other: The other label: ``"second"`` (second most likely, default), ``"least"``
            (least likely), or a Captum target selecting one label per example (an int,
            a tensor of one or ``N`` labels, a list of ``N`` ints; negative ints count
            from the end as in Captum). It must differ from the predicted label of
            every example.
        similarity: One measure among ``"spearman"`` (default), ``"spearman_abs"``,
            ``"ssim"``, ``"hog"``, ``"pearson"`` (see :func:`model_randomization`).
        reduce: Channel reduction of input-shaped attributions (``"sum"``, ``"abs"``,
            ``"max"``).
        explain_kwargs: Further keyword arguments of ``explain_func`` (e.g.
            ``baselines``, ``feature_mask``); their per-example tensors (``N`` rows) are
            repeated like the inputs.

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
    xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
    for i, x in enumerate(xs):
        check_finite(x, "`inputs`" if len(xs) == 1 else f"`inputs[{i}]`")
    if not isinstance(similarity, str):
        raise TypeError(f"`similarity` must be one measure name (a str), got {similarity!r}.")
    (measure,) = check_similarity(similarity, "similarity")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    kwargs = check_explain_kwargs(explain_kwargs, inputs=xs)
    n = num_examples(xs)
    if isinstance(other, str):
        other_targets = None
        check_choice(other, "other", ("second", "least"))
    else:
        other_targets = resolve_targets(other, n, name="other", device=xs[0].device)
    warn_if_training(forward_func, "class_sensitivity")
    with preserved_model(forward_func, freeze_parameters=False, devices=[xs[0].device]):
        out = predicted_scores(forward_func, xs)
        if out.shape[1] < 2:
            raise ValueError("class_sensitivity needs a model with at least 2 outputs.")
        order = torch.sort(out, dim=1, descending=True, stable=True).indices
        predicted = order[:, 0]
        if other_targets is None:
            other_labels = order[:, 1] if other == "second" else order[:, -1]
        else:
            other_labels = other_targets.flat(out.shape, device=predicted.device)
            same = (other_labels == predicted).nonzero().flatten().tolist()
            if same:
                raise ValueError(
                    f"`other` equals the predicted label for examples {same}; choose a "
                    "label that differs from the prediction (or other='second')."
                )
        x2, examples, kwargs2 = repeat_inputs(xs, 2, kwargs)
        t2 = torch.cat([predicted, other_labels]).to(xs[0].device)
        what = "The attributions returned by `explain_func`"
        maps = explain_maps(explain_func, x2, is_tuple, t2, reduce, what, examples, kwargs2)
    check_measures_fit((measure,), maps, "similarity")
    return map_similarity(maps[:n], maps[n:], measure).double().cpu()
