"""Rank statistics, batched over rows: ranks with ties, Pearson of rows, Kendall's tau-b.

The one home of the rank statistics of the sanity checks: :func:`spearman` (Pearson
correlation of :func:`rank_with_ties`) compares maps, :func:`kendall_tau_b` compares
method rankings in :func:`fill_sensitivity`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["kendall_tau_b", "pearson_rows", "rank_with_ties"]


def rank_with_ties(values: Tensor) -> Tensor:
    """Ranks ``0 .. P-1`` of every row of ``values`` ``(N, P)``, ties sharing their mean rank.

    Fully batched: one sort per call, no loop over examples.

    Args:
        values: Tensor of shape ``(N, P)``.

    Returns:
        Float tensor ``(N, P)`` of (fractional) ranks.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity import rank_with_ties
        >>> rank_with_ties(torch.tensor([[3.0, 1.0, 3.0, 2.0]]))
        tensor([[2.5000, 0.0000, 2.5000, 1.0000]], dtype=torch.float64)
    """
    n, p = values.shape
    sorted_vals, order = torch.sort(values, dim=1, stable=True)
    new_group = torch.ones(n, p, dtype=torch.bool, device=values.device)
    new_group[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    group = torch.cumsum(new_group.long(), dim=1) - 1  # group id within the row
    flat_group = (group + torch.arange(n, device=values.device).view(-1, 1) * p).reshape(-1)
    position = torch.arange(p, dtype=torch.float64, device=values.device).expand(n, p)
    mean_pos = torch.zeros(n * p, dtype=torch.float64, device=values.device)
    mean_pos = mean_pos.scatter_reduce(
        0, flat_group, position.reshape(-1), reduce="mean", include_self=False
    )
    sorted_ranks = mean_pos[flat_group].view(n, p)
    ranks = torch.empty_like(sorted_ranks)
    ranks.scatter_(1, order, sorted_ranks)
    return ranks


def pearson_rows(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``x`` and ``y`` (``(N, P)``); NaN for constant rows."""
    x = x.double()
    y = y.double()
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    num = (x * y).sum(dim=1)
    den = torch.sqrt((x * x).sum(dim=1) * (y * y).sum(dim=1))
    out = num / den
    out = torch.where(den > 0, out, torch.full_like(out, math.nan))
    return out.clamp(-1.0, 1.0)


def kendall_tau_b(x: Tensor, y: Tensor) -> float:
    """Kendall's tau-b between two 1-D tensors (ties in either count as in scipy); NaN if
    either is constant."""
    dx = torch.sign(x.view(-1, 1) - x.view(1, -1))
    dy = torch.sign(y.view(-1, 1) - y.view(1, -1))
    iu = torch.triu_indices(x.numel(), x.numel(), offset=1)
    dx, dy = dx[iu[0], iu[1]], dy[iu[0], iu[1]]
    num = float((dx * dy).sum())
    den = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return num / den if den > 0 else math.nan
