r"""Model outputs -> the probabilities the metrics read (private).

The head (``_utils.heads``) says how an output of shape ``(N, *S)`` becomes
probabilities; targets (``_utils.targets``) select one probability per example as a flat
index into ``probabilities.flatten(1)``. With a label subset (``label_ids``) the
probabilities are those of the subset: a softmax over the subset's logits for
``head="softmax"`` (the paper's restricted setting), the per-label probabilities as they
are for the other heads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.forward import (
    chunk_slices,
    expand_additional_forward_args,
    run_forward,
)
from captum_soundness._utils.heads import (
    check_head_values,
    head_output,
    probabilities,
    warn_if_probabilities,
)
from captum_soundness._utils.targets import Targets

__all__ = ["class_outputs", "clean_targets", "to_probabilities"]


def to_probabilities(output: Tensor, head: str, label_ids: Tensor | None = None) -> Tensor:
    """Probabilities ``(n, *S')`` (float32 or float64) of checked outputs ``(n, *S)``.

    Args:
        output: Outputs checked by :func:`~captum_soundness._utils.heads.head_output`.
        head: ``"softmax"``, ``"probabilities"``, ``"sigmoid"`` or ``"binary"``.
        label_ids: ``None``, or the label subset (columns of 2-D probabilities): a softmax
            over the subset's logits for ``"softmax"``, the subset's columns otherwise.
    """
    if label_ids is None:
        return probabilities(output, head)
    if head == "softmax":
        return probabilities(output.index_select(1, label_ids.to(output.device)), head)
    probs = probabilities(output, head)
    return probs.index_select(1, label_ids.to(probs.device))


def class_outputs(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    head: str,
    max_examples_per_batch: int | None,
    caller: str = "insertion_curve",
) -> Tensor:
    """Checked raw model outputs ``(N, *S)`` on the clean inputs (``(N, 1)`` for
    ``head="binary"``).

    Runs in chunks of ``max_examples_per_batch`` rows under :func:`torch.no_grad`, checks
    the shape for ``head``, finite values (in ``[0, 1]`` for ``head="probabilities"``),
    the same shape in every chunk, and warns (:func:`~captum_soundness._utils.heads.\
warn_if_probabilities`) when ``head="softmax"`` meets outputs that are probabilities.
    """
    n = inputs[0].shape[0]
    parts: list[Tensor] = []
    what = "The outputs of `forward_func`"
    with torch.no_grad():
        for chunk in chunk_slices(n, max_examples_per_batch):
            index = torch.arange(chunk.start, chunk.stop, device=inputs[0].device)
            x = tuple(t[chunk] for t in inputs)
            out = run_forward(forward_func, x, expand_additional_forward_args(args, index))
            out = head_output(out, chunk.stop - chunk.start, head)
            if parts and out.shape[1:] != parts[0].shape[1:]:
                raise ValueError(
                    f"`forward_func` returns outputs of shape {tuple(out.shape)} for rows "
                    f"{chunk.start}..{chunk.stop - 1} but {tuple(parts[0].shape)} for the "
                    "first rows: the outputs must have the same shape for every batch."
                )
            parts.append(check_head_values(out, head, what, index))
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    warn_if_probabilities(out, head, caller)
    return out.to(inputs[0].device)


def clean_targets(targets: Targets, probs: Tensor) -> Tensor:
    """Flat indices ``(N,)`` into ``probs.flatten(1)`` of each example's target.

    ``target=None`` is the predicted label (``argmax``) of 2-D probabilities; outputs of
    more dimensions need a target (as in Captum).
    """
    if targets.is_none and probs.dim() == 2:
        return probs.argmax(dim=1)
    return targets.flat(probs.shape, probs.device)
