r"""Restricting a classifier to a subset of its labels.

Gupta et al. (2022) evaluate their ImageNet masks on six confusable classes only: the
classifier's logits are restricted to those six labels and the softmax is taken over the
six (paper.md, section 2). :func:`restrict_labels` makes that a one-liner: it wraps a
model (or any forward function) in a module whose outputs are ``logits[:, labels]``, so
that every softmax computed downstream (the metrics, :class:`~captum_soundness.attr.\
SimpleMasking`'s objective, Captum's attributions) runs over the subset only, and targets
are *positions in the subset* (``0 .. len(labels) - 1``).

Examples::

    >>> import torch
    >>> from torch import nn
    >>> from captum_soundness.labels import restrict_labels
    >>> model = nn.Linear(4, 10)
    >>> model6 = restrict_labels(model, [1, 3, 5, 7, 8, 9])
    >>> model6(torch.zeros(2, 4)).shape
    torch.Size([2, 6])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from captum_soundness._utils.forward import check_output
from captum_soundness._utils.validation import check_label_list

__all__ = ["PAPER_IMAGENET_LABELS", "PAPER_IMAGENET_LABEL_NAMES", "LabelSubset", "restrict_labels"]

#: The six ImageNet classes of the paper's restricted experiment (Gupta et al., 2022):
#: desk (526), desktop computer (527), monitor (664), mouse (673), screen (782) and
#: television (851). Use as ``restrict_labels(imagenet_model, PAPER_IMAGENET_LABELS)``.
PAPER_IMAGENET_LABELS: tuple[int, ...] = (526, 527, 664, 673, 782, 851)

#: Names of :data:`PAPER_IMAGENET_LABELS`, in the same order.
PAPER_IMAGENET_LABEL_NAMES: tuple[str, ...] = (
    "desk",
    "desktop computer",
    "monitor",
    "mouse",
    "screen",
    "television",
)


class LabelSubset(nn.Module):
    r"""A model restricted to a subset of its outputs: ``forward(x) = f(x)[:, labels]``.

    The wrapper starts in the wrapped model's mode (train or eval). Output column ``j``
    is the original output ``labels[j]``; a softmax over the wrapped
    outputs is the softmax restricted to the subset,
    :math:`p_j = e^{z_{l_j}} / \sum_{i} e^{z_{l_i}}`. When ``forward_func`` is an
    :class:`~torch.nn.Module` it is registered as the submodule ``model``, so ``.eval()``,
    ``.to()`` and parameter iteration reach it.

    Args:
        forward_func: The model (or any callable returning ``(N, num_classes)`` scores).
        labels: Distinct original label ids, in the order of the new outputs.
    """

    def __init__(self, forward_func: Callable[..., Any], labels: Sequence[int]) -> None:
        super().__init__()
        if not callable(forward_func):
            raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
        self.labels: tuple[int, ...] = tuple(check_label_list(labels))
        if isinstance(forward_func, nn.Module):
            self.model = forward_func
            # Mirror the wrapped model's mode (without touching it): a wrapper of a model in
            # eval mode is in eval mode. ``.train()``/``.eval()`` on the wrapper recurse.
            self.training = forward_func.training
        else:
            self._forward_func = forward_func
            self.training = False
        self.register_buffer(
            "index", torch.tensor(self.labels, dtype=torch.long), persistent=False
        )

    @property
    def forward_func(self) -> Callable[..., Any]:
        """The wrapped model or function."""
        return self.model if "model" in self._modules else self._forward_func

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = check_output(self.forward_func(*args, **kwargs), None, "forward_func")
        if max(self.labels) >= out.shape[1]:
            bad = [a for a in self.labels if a >= out.shape[1]]
            raise ValueError(
                f"`labels` contains {bad}, outside the model's {out.shape[1]} outputs "
                f"[0, {out.shape[1] - 1}]."
            )
        index = self.index if self.index.device == out.device else self.index.to(out.device)
        return out.index_select(1, index)

    def extra_repr(self) -> str:
        return f"labels={list(self.labels)}"


def restrict_labels(forward_func: Callable[..., Any], labels: Sequence[int]) -> LabelSubset:
    r"""Restricts a model's outputs to ``labels``: the paper's label-subset setting.

    The returned module computes ``forward_func(x)[:, labels]``, so every softmax taken
    on its outputs is the softmax over the subset only, and targets given to attribution
    methods and metrics built on it are *positions in the subset*
    (``0 .. len(labels) - 1``), not original label ids.

    Args:
        forward_func: A model or any callable returning ``(N, num_classes)`` scores.
        labels: Distinct original label ids (at least one), e.g.
            :data:`PAPER_IMAGENET_LABELS`. Ids beyond the model's outputs raise a
            :class:`ValueError` on the first forward pass.

    Returns:
        A :class:`LabelSubset` module (``len(labels)`` outputs).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.labels import PAPER_IMAGENET_LABELS, restrict_labels
        >>> imagenet_model = nn.Sequential(nn.Flatten(), nn.Linear(12, 1000))
        >>> model6 = restrict_labels(imagenet_model, PAPER_IMAGENET_LABELS)
        >>> logits = model6(torch.zeros(1, 3, 2, 2))
        >>> logits.shape
        torch.Size([1, 6])

        The paper's restricted evaluation is then (targets 0..5 stand for the six
        classes)::

            report = evaluate_all_labels(SimpleMasking(model6).attribute, model6, images)
    """
    return LabelSubset(forward_func, labels)
