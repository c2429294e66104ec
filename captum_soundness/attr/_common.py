"""Pieces shared by the attribution methods: aggregation, upsampling and the Adam step.

- :data:`AGGREGATIONS` and :func:`aggregate`: the switch :math:`\\psi` applied to the
  gradient terms of :class:`~captum_soundness.attr.LayerGradCamPlusPlus` and
  :class:`~captum_soundness.attr.FullGrad` (public, re-exported by
  :mod:`captum_soundness.attr`).
- :data:`UPSAMPLE_MODES`, :func:`check_spatial_dims` and :func:`upsample`: the
  (bi/tri)linear upsampling of low-resolution maps (FullGrad's layer terms,
  SimpleMasking's mask logits) to the inputs' size.
- :class:`Adam`: the optimiser step of SimpleMasking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_soundness._utils.validation import check_choice

__all__ = ["AGGREGATIONS", "UPSAMPLE_MODES", "Adam", "aggregate", "check_spatial_dims", "upsample"]

#: Values of ``aggregation`` for :class:`~captum_soundness.attr.LayerGradCamPlusPlus` and
#: :class:`~captum_soundness.attr.FullGrad`.
AGGREGATIONS = ("signed", "positive", "absolute")

#: Interpolation mode of :func:`torch.nn.functional.interpolate`, by number of spatial
#: dimensions.
UPSAMPLE_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def aggregate(values: Tensor, aggregation: str) -> Tensor:
    """Applies an aggregation: ``"signed"`` (identity), ``"positive"`` (ReLU), ``"absolute"``.

    Args:
        values: Any tensor.
        aggregation: One of :data:`AGGREGATIONS`.

    Returns:
        Tensor of the same shape.
    """
    check_choice(aggregation, "aggregation", AGGREGATIONS)
    if aggregation == "positive":
        return F.relu(values)
    if aggregation == "absolute":
        return values.abs()
    return values


def check_spatial_dims(inputs: Tensor, name: str = "inputs") -> None:
    """Checks that ``inputs`` ``(N, C, *spatial)`` has 1, 2 or 3 spatial dimensions."""
    if inputs.dim() - 2 not in UPSAMPLE_MODES:
        raise ValueError(
            f"`{name}` must have 1, 2 or 3 spatial dimensions (N, C, *spatial), got shape "
            f"{tuple(inputs.shape)}."
        )


def upsample(maps: Tensor, size: tuple[int, ...], *, align_corners: bool) -> Tensor:
    """Upsamples ``(N, C, *low)`` maps to ``(N, C, *size)``, linear/bilinear/trilinear.

    Args:
        maps: Maps with 1, 2 or 3 spatial dimensions.
        size: The target spatial size (as many entries as ``maps`` has spatial dims).
        align_corners: As in :func:`torch.nn.functional.interpolate` (FullGrad uses
            ``True``, SimpleMasking ``False``, as their reference implementations do).
    """
    return F.interpolate(
        maps, size=size, mode=UPSAMPLE_MODES[len(size)], align_corners=align_corners
    )


class Adam:
    """Adam on one tensor, step for step the update of ``torch.optim.Adam`` with its
    defaults (betas 0.9 and 0.999, eps 1e-8, no weight decay).

    A local copy because building a ``torch.optim`` optimiser imports ``torch._dynamo``
    on first use (seconds), and because the per-step bookkeeping is smaller.

    Args:
        param: The tensor to optimise (updated in place by :meth:`step`).
        lr: The learning rate.
        betas: The decay rates of the first and second moment estimates.
        eps: Added to the denominator for numerical stability.
    """

    def __init__(
        self,
        param: Tensor,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        """One Adam update of ``param`` with the gradient ``grad``."""
        beta1, beta2 = self.betas
        self.t += 1
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = self.lr / (1 - beta1**self.t)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - beta2**self.t)).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-step_size)
