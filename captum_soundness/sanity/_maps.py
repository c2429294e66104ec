"""Maps of the sanity checks: the explanation call, the measure fit, the model's scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.explain import call_explain
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_output, run_forward
from captum_soundness._utils.maps import to_maps
from captum_soundness._utils.model_state import preserved_model

__all__ = ["check_measures_fit", "explain_maps", "predicted_scores"]


def explain_maps(
    explain_func: Any,
    inputs: Tensor,
    target: Tensor,
    reduce: str,
    what: str,
    examples: Tensor | None = None,
) -> Tensor:
    """Calls ``explain_func`` on ``inputs`` and ``target``; returns its (finite) maps
    (``examples``: the example of each row, for the error messages)."""
    if not callable(explain_func):
        raise TypeError(f"{what} must be callable, got {type(explain_func).__name__}.")
    attributions = call_explain(explain_func, inputs, target)
    return to_maps(attributions, inputs, reduce, what, examples)


def check_measures_fit(measures: Sequence[str], maps: Tensor, name: str) -> None:
    """Raises a ``ValueError`` when an image measure (SSIM, HOG) meets non-2-D maps."""
    image_like = maps.dim() == 3 or (maps.dim() == 4 and maps.shape[1] == 1)
    for m in measures:
        if m in ("ssim", "hog") and not image_like:
            raise ValueError(
                f"`{name}` contains {m!r}, which needs 2-D maps (N, H, W); the explanations "
                f"give maps of shape {tuple(maps.shape)}."
            )


def predicted_scores(forward_func: Callable[..., Any], inputs: Tensor) -> Tensor:
    """The ``(N, num_classes)`` scores of ``forward_func`` (model left as found)."""
    with (
        preserved_model(forward_func, freeze_parameters=False, devices=[inputs.device]),
        torch.no_grad(),
    ):
        out = run_forward(forward_func, inputs)
    return check_finite(check_output(out, inputs.shape[0]), "The outputs of `forward_func`")
