r"""SimpleMasking's recipes: the named presets, step-size schedules and the area constraint.

A *recipe* is the value of every hyper-parameter of :meth:`SimpleMasking.attribute
<captum_soundness.attr.SimpleMasking.attribute>` that the caller leaves at ``None``:
``"paper"`` is the reference recipe of Gupta et al. (2022); ``"fast"``, ``"area"`` and
``"sharp"`` were designed and measured with ``bench/bench_masking_recipes.py`` (the
documentation's *Mask recipes* page has the numbers).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.heads import log_probabilities, per_label, probabilities

__all__ = [
    "LR_SCHEDULES",
    "PRESETS",
    "area_penalty",
    "area_reference",
    "lr_at",
    "objective_loss",
    "resolve_preset",
]

#: Step-size schedules accepted by :meth:`SimpleMasking.attribute` (``lr_schedule``).
LR_SCHEDULES = ("constant", "cosine", "linear")

_PAPER: dict[str, Any] = {
    "n_fill_samples": 10,
    "steps": 2000,
    "lr": 0.05,
    "lr_schedule": "constant",
    "downsample": 4,
    "l1": 2e-5,
    "tv": 0.01,
    "objective": "reference",
    "area": 0.1,
    "area_weight": 0.0,
}

#: Named recipes of :meth:`SimpleMasking.attribute` (``preset``): the value of every
#: keyword left at ``None``. ``"paper"`` is the reference recipe of Gupta et al. (2022);
#: ``"fast"`` stops it after 5 steps of 5 fill samples; ``"area"`` adds the area
#: constraint of extremal perturbation (target area 0.1, weight 3) to 50 such steps;
#: ``"sharp"`` learns the mask at full resolution (``downsample=1``) for 20 steps of 5
#: fill samples at step size 0.1 under a tight area constraint (target area 0.01,
#: weight 10): only the top 1% of positions is pulled towards 1, so the objective's
#: gradient orders the positions one by one, which is what the insertion metrics read.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": _PAPER,
    "fast": {**_PAPER, "n_fill_samples": 5, "steps": 5},
    "area": {**_PAPER, "n_fill_samples": 5, "steps": 50, "area_weight": 3.0},
    "sharp": {
        **_PAPER,
        "n_fill_samples": 5,
        "steps": 20,
        "lr": 0.1,
        "downsample": 1,
        "area": 0.01,
        "area_weight": 10.0,
    },
}


def resolve_preset(preset: Any, **given: Any) -> dict[str, Any]:
    """The recipe of ``preset`` with every keyword that was given (not ``None``) applied.

    Raises:
        ValueError: ``preset`` is not the name of a preset.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        options = ", ".join(repr(name) for name in PRESETS)
        raise ValueError(f"`preset` must be one of {options}, got {preset!r}.")
    recipe = dict(PRESETS[preset])
    recipe.update({key: value for key, value in given.items() if value is not None})
    return recipe


def lr_at(schedule: str, lr: float, step: int, steps: int) -> float:
    r"""The step size of step ``step`` (0-based) of ``steps`` under ``schedule``.

    ``"cosine"``: :math:`\mathrm{lr} \cdot (1 + \cos(\pi t / T)) / 2`; ``"linear"``:
    :math:`\mathrm{lr} \cdot (1 - t / T)`; ``"constant"``: ``lr``.
    """
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
    if schedule == "linear":
        return lr * (1.0 - step / steps)
    return lr


def area_reference(positions: int, area: float, like: Tensor) -> Tensor:
    """The sorted mask of exact area ``area``: ``(1 - area) * P`` zeros, then ones."""
    reference = torch.ones(positions, dtype=like.dtype, device=like.device)
    reference[: int(positions * (1 - area))] = 0
    return reference


def area_penalty(mask: Tensor, reference: Tensor) -> Tensor:
    """Per-example mean squared distance of the sorted mask values to ``reference``.

    Equal mask values (all of them at the start, where the mask is 0.5 everywhere) share
    the mean of their stretch of ``reference``: the gradient is then the same for every
    member of a tie, so no position is favoured by its index (a plain sort would push the
    ties that happen to sort last towards 1), and the penalty does not depend on how a
    sort orders ties.
    """
    values = mask.flatten(1).sort(dim=1).values  # (c, P)
    c, p = values.shape
    with torch.no_grad():
        starts = torch.ones_like(values, dtype=torch.bool)
        starts[:, 1:] = values[:, 1:] != values[:, :-1]
        group = starts.cumsum(dim=1) - 1 + torch.arange(c, device=values.device).view(c, 1) * p
        group = group.flatten()
        ref = reference.to(values.dtype).expand(c, p).flatten()
        sums = torch.zeros_like(ref).index_add_(0, group, ref)
        counts = torch.zeros_like(ref).index_add_(0, group, torch.ones_like(ref))
        tied_ref = (sums / counts.clamp(min=1))[group].view(c, p)
    return (values - tied_ref).square().mean(dim=1)


def objective_loss(
    objective: str, head: str, out: Tensor, b: int, target: Tensor, classes: int
) -> Tensor:
    r"""The objective per example from checked scores ``out`` ``(b * c, *S)`` of the
    masked inputs (sample-major rows), for flat targets ``(c,)`` into the probabilities
    of ``head`` (``classes``: the size of their last dimension).

    ``"reference"``: :math:`-q_a + \log \sum_k e^{q_k}` on the averaged probabilities
    :math:`q` over the target's classes (over :math:`(q_a, 1 - q_a)` for per-label
    heads); ``"log_prob"``: :math:`-\log q_a`, computed stably.
    """
    c = target.shape[0]
    if objective == "reference":
        q = probabilities(out, head).view(b, c, -1).mean(dim=0)  # (c, prod S')
        if per_label(head):
            qa = q.gather(1, target.view(c, 1)).squeeze(1)
            return torch.logsumexp(torch.stack([qa, 1 - qa], dim=1), dim=1) - qa
        rows = q.view(c, -1, classes)[torch.arange(c, device=q.device), target // classes]
        return torch.logsumexp(rows, dim=-1) - rows.gather(
            1, (target % classes).view(c, 1)
        ).squeeze(1)
    logp = log_probabilities(out, head).view(b, c, -1)
    logp = logp.gather(2, target.view(1, c, 1).expand(b, c, 1)).squeeze(2)
    return math.log(b) - torch.logsumexp(logp, dim=0)
