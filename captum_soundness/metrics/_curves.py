r"""Insertion and deletion curves, and the batched engine behind every metric.

For an input :math:`x`, a saliency map :math:`M_a` for label :math:`a` over the
:math:`P` spatial positions of :math:`x`, and a fill distribution :math:`G`, the masked
input keeps the top-:math:`k` positions of :math:`M_a` (Gupta et al., 2022):

.. math::

    \tilde x(a, k, g) = x \odot T_k(M_a) + g \odot (1 - T_k(M_a)).

Over a grid of fractions :math:`f_1 < \dots < f_F` in :math:`(0, 1]` with
:math:`k_j = \max(1, \operatorname{round}(f_j P))` kept positions:

- the **insertion curve** is
  :math:`I_j = \mathbb{E}_{g \sim G}\, p_a(\tilde x(a, k_j, g))`, the probability of
  :math:`a` when only the top :math:`k_j` positions are kept;
- the **deletion curve** is
  :math:`D_j = \mathbb{E}_{g \sim G}\, p_a(x \odot (1 - T_{k_j}(M_a)) + g \odot
  T_{k_j}(M_a))`, the probability of :math:`a` when the top :math:`k_j` positions are
  *removed* (replaced by the fill) and the rest is kept.

The mean of the insertion curve over the grid is the insertion score
:math:`S_a(x)` of :func:`captum_soundness.metrics.completeness` and
:func:`captum_soundness.metrics.soundness`.

**Engine.** Everything is tensor-native: one stable sort per map
(:func:`~captum_soundness.masking.rank_positions`), masks built from the ranks for all
fractions at once, and every (map, fraction, fill sample) masked input of a call run
through the model in large batches of ``max_examples_per_batch`` masked inputs under
:func:`torch.no_grad`. Chunking never changes the masked inputs: random fills are drawn
per input image from a stream seeded once per image, so a chunked and an unchunked call
with the same ``seed`` see the same fills. :func:`evaluate_all_labels
<captum_soundness.metrics.evaluate_all_labels>` feeds the maps of every
(image, label) pair to the same engine in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness._utils.forward import (
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
    run_forward,
)
from captum_soundness._utils.maps import saliency_maps
from captum_soundness._utils.model_state import warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_finite_tensor,
    check_inputs,
    check_label_range,
    check_max_examples_per_batch,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_targets,
    check_unit_interval,
)
from captum_soundness.fills import Fill, FillLike, as_fill
from captum_soundness.masking import (
    REDUCTIONS,
    fraction_counts,
    fraction_grid,
    rank_positions,
    topk_masks,
)

__all__ = [
    "CURVE_KINDS",
    "completeness_from_scores",
    "deletion_curve",
    "insertion_curve",
    "soundness_from_scores",
]

#: The two kinds of curves.
CURVE_KINDS = ("insertion", "deletion")

#: Largest table of precomputed (map, fraction) masks, in bytes (one byte per position);
#: larger evaluations build the masks chunk by chunk from the ranks instead.
_MASK_TABLE_BYTES = 1 << 28


# ---- configuration and validation ------------------------------------------------------


@dataclass(frozen=True)
class CurveConfig:
    """Validated keyword arguments shared by the curves and the metrics built on them."""

    fill: Fill
    fractions: Tensor  # (F,) float64 on the CPU
    n_samples: int  # effective number of fill samples (1 for deterministic fills)
    apply_softmax: bool
    reduce: str
    max_examples_per_batch: int | None
    generator: torch.Generator | None  # None for deterministic fills

    def as_dict(self) -> dict[str, Any]:
        """Plain description of the settings (for reports)."""
        return {
            "fill": repr(self.fill),
            "fractions": [float(f) for f in self.fractions],
            "n_fill_samples": self.n_samples,
            "apply_softmax": self.apply_softmax,
            "reduce": self.reduce,
        }


def check_curve_config(
    inputs: Tensor,
    *,
    fill: FillLike,
    fractions: int | Sequence[float] | Tensor,
    n_fill_samples: int,
    apply_softmax: bool,
    reduce: str,
    max_examples_per_batch: int | None,
    seed: SeedType,
) -> CurveConfig:
    """Validates the curve keyword arguments against ``inputs``."""
    fill_obj = as_fill(fill, "fill")
    fill_obj.check_compatible(inputs, "fill")
    grid = fraction_grid(fractions, "fractions")
    n_fill_samples = check_positive_int(n_fill_samples, "n_fill_samples")
    if not isinstance(apply_softmax, bool):
        raise TypeError(f"`apply_softmax` must be a bool, got {apply_softmax!r}.")
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    max_examples_per_batch = check_max_examples_per_batch(max_examples_per_batch)
    generator = make_generator(seed, inputs.device, "seed")
    deterministic = fill_obj.deterministic
    return CurveConfig(
        fill=fill_obj,
        fractions=grid,
        n_samples=1 if deterministic else n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        generator=None if deterministic else generator,
    )


def check_model_inputs(inputs: Any, name: str = "inputs") -> Tensor:
    """Checks a batched ``(N, C, *spatial)`` input tensor (finite values) and detaches it."""
    inputs = check_inputs(inputs, name)
    check_finite_tensor(inputs, name)
    return inputs.detach()


# ---- model outputs ---------------------------------------------------------------------


def _check_scores(
    output: Tensor, n: int, apply_softmax: bool, name: str = "forward_func"
) -> Tensor:
    """Checks a model output: ``(n, num_classes)``, at least 2 classes under a softmax."""
    if output.dim() != 2 or output.shape[0] != n:
        extra = (
            " (a softmax over the classes is applied: apply_softmax=True)"
            if apply_softmax
            else " (apply_softmax=False: the model's outputs are used as probabilities)"
        )
        raise ValueError(
            f"`{name}` must return an (N, num_classes) tensor, got shape "
            f"{tuple(output.shape)} for {n} inputs{extra}."
        )
    if apply_softmax and output.shape[1] < 2:
        raise ValueError(
            f"`{name}` returns {output.shape[1]} output per example; a softmax over one "
            "class is constantly 1. Return at least 2 class scores or pass "
            "apply_softmax=False."
        )
    return output


def to_probabilities(output: Tensor, apply_softmax: bool) -> Tensor:
    """Class probabilities from checked outputs (softmax or as is), float32 or float64."""
    dtype = torch.promote_types(output.dtype, torch.float32)
    output = output.to(dtype)
    return torch.softmax(output, dim=1) if apply_softmax else output


def class_outputs(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    args: tuple[Any, ...] | None,
    apply_softmax: bool,
    max_examples_per_batch: int | None,
) -> Tensor:
    """Checked raw model outputs ``(N, num_classes)`` on the clean inputs.

    Runs in chunks of ``max_examples_per_batch`` examples under :func:`torch.no_grad`.
    """
    n = inputs.shape[0]
    parts = []
    with torch.no_grad():
        for chunk in chunk_slices(n, max_examples_per_batch):
            index = torch.arange(chunk.start, chunk.stop, device=inputs.device)
            out = run_forward(
                forward_func, inputs[chunk], expand_additional_forward_args(args, index)
            )
            parts.append(_check_scores(out, chunk.stop - chunk.start, apply_softmax))
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return out.to(inputs.device)


# ---- the batched engine ----------------------------------------------------------------


@dataclass(frozen=True)
class CurveJobs:
    """Rows of a batched curve evaluation: one curve per job.

    Attributes:
        map_index: ``(J,)`` row of ``ranks`` giving the map of the job.
        image_index: ``(J,)`` input image the job masks.
        target: ``(J,)`` label whose probability is read.
        deletion: ``(J,)`` bool: ``True`` for a deletion curve, ``False`` for insertion.
    """

    map_index: Tensor
    image_index: Tensor
    target: Tensor
    deletion: Tensor


def _fill_values(
    fill: Fill, x: Tensor, n_samples: int, generator: torch.Generator | None
) -> Tensor:
    """``fill.sample`` checked and broadcast to ``(n_samples, *x.shape)``."""
    samples = fill.sample(x, n_samples, generator)
    shape = (n_samples, *x.shape)
    if samples.dim() != x.dim() + 1 or samples.shape[0] not in (1, n_samples):
        raise ValueError(
            f"`fill` returned samples of shape {tuple(samples.shape)}; expected {shape} "
            "(or a leading dimension of 1)."
        )
    samples = samples.to(device=x.device, dtype=x.dtype)
    return samples if tuple(samples.shape) == shape else samples.expand(shape)


class _RandomFills:
    """Random fill samples per image, drawn from one seeded stream per image.

    Image ``i``'s ``n_samples`` draws come from a generator seeded with ``seeds[i]``, so
    they do not depend on which other images share a chunk. Draws are cached while the
    image appears in consecutive chunks (jobs are ordered image by image).
    """

    def __init__(self, fill: Fill, inputs: Tensor, n_samples: int, generator: torch.Generator):
        self.fill, self.inputs, self.n_samples = fill, inputs, n_samples
        n = inputs.shape[0]
        self.seeds = draw_seeds(generator, n)
        self.cache: dict[int, Tensor] = {}

    def gather(self, image: Tensor, sample: Tensor) -> Tensor:
        """Fill values ``(c, C, *spatial)`` for rows with the given image and sample index."""
        unique = torch.unique(image)
        keys = unique.tolist()
        cache = {}
        for i in keys:
            if i in self.cache:
                cache[i] = self.cache[i]
            else:
                gen = torch.Generator(device=self.inputs.device).manual_seed(self.seeds[i])
                x = self.inputs[i : i + 1]
                cache[i] = _fill_values(self.fill, x, self.n_samples, gen)[:, 0]
        self.cache = cache
        stacked = torch.stack([cache[i] for i in keys])  # (U, S, C, *spatial)
        local = torch.searchsorted(unique, image)
        return stacked[local, sample]


def batched_curves(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    args: tuple[Any, ...] | None,
    ranks: Tensor,
    jobs: CurveJobs,
    config: CurveConfig,
) -> Tensor:
    """Evaluates many insertion/deletion curves in large, chunked batches.

    Masked inputs are enumerated job-major as (job, fraction, fill sample) and run through
    the model ``max_examples_per_batch`` at a time (all at once when ``None``). The masks
    of every (map, fraction) pair are built at once from the ranks (one comparison; chunk
    by chunk from the ranks when that table would exceed ``_MASK_TABLE_BYTES``); each
    chunk gathers its masks, images and fill values with ``index_select`` and composes
    ``where(mask, x, g)``, so each input is copied once per masked input and never
    repeated per label up front. Random fills are shared by all jobs and fractions of an
    image (common random numbers), which makes the curves of different labels paired
    comparisons.

    Args:
        forward_func: The model.
        inputs: ``(N, C, *spatial)`` checked inputs.
        args: Formatted additional forward args (tensors indexed per image).
        ranks: ``(R, P)`` ranks of the maps (:func:`~captum_soundness.masking.rank_positions`).
        jobs: The curves to compute.
        config: Validated settings.

    Returns:
        ``(J, F)`` probabilities averaged over fill samples, on the inputs' device.
    """
    device = inputs.device
    spatial = tuple(inputs.shape[2:])
    num_positions = ranks.shape[1]
    counts = fraction_counts(config.fractions, num_positions).to(device)
    n_frac, n_samp = counts.numel(), config.n_samples
    n_jobs = jobs.target.shape[0]
    total = n_jobs * n_frac * n_samp

    map_index = jobs.map_index.to(device)
    image_index = jobs.image_index.to(device)
    target = jobs.target.to(device)
    deletion = jobs.deletion.to(device)

    # Mask table. Row m of the table describes map m for insertion; maps with deletion
    # jobs get an extra row (appended) for deletion, which keeps exactly the positions
    # that insertion removes. When the table of all (row, fraction) masks fits in
    # _MASK_TABLE_BYTES it is built at once from the ranks and each masked input is one
    # row lookup; otherwise each chunk compares rank rows with per-(job, fraction)
    # thresholds (a deletion row holds the reversed ranks P - 1 - r, and r >= k is
    # P - 1 - r < P - k). Both give identical masks.
    job_row = map_index
    deleted_maps = None
    if bool(deletion.any()):
        deleted_maps = torch.unique(map_index[deletion])
        reversed_row = ranks.shape[0] + torch.searchsorted(deleted_maps, map_index)
        job_row = torch.where(deletion, reversed_row, map_index)
    n_rows = ranks.shape[0] + (0 if deleted_maps is None else deleted_maps.numel())
    masks = table = thresholds = None
    if n_rows * n_frac * num_positions <= _MASK_TABLE_BYTES:
        masks = topk_masks(ranks, counts)
        if deleted_maps is not None:
            masks = torch.cat([masks, ~masks.index_select(0, deleted_maps)])
        masks = masks.view(n_rows * n_frac, num_positions)
    else:
        rank_dtype = torch.int32 if num_positions < 2**31 else torch.int64
        table = ranks.to(rank_dtype)
        thresholds = counts.unsqueeze(0).expand(n_jobs, n_frac)
        if deleted_maps is not None:
            reversed_ranks = (num_positions - 1) - table.index_select(0, deleted_maps)
            table = torch.cat([table, reversed_ranks])
            thresholds = torch.where(deletion.unsqueeze(1), num_positions - thresholds, thresholds)
        thresholds = thresholds.to(rank_dtype).reshape(-1)  # (J * F,), job-major

    random_fills = None
    fill_all = None
    if config.generator is None:
        fill_all = _fill_values(config.fill, inputs, 1, None)[0]  # (N, C, *spatial)
        if fill_all.stride(0) == 0:  # the same values for every image: broadcast
            fill_all = fill_all[:1]
    else:
        random_fills = _RandomFills(config.fill, inputs, n_samp, config.generator)

    result: Tensor | None = None
    with torch.no_grad():
        for chunk in chunk_slices(total, config.max_examples_per_batch):
            flat = torch.arange(chunk.start, chunk.stop, device=device)
            sample = flat % n_samp
            point = flat // n_samp  # job * F + fraction
            job = point // n_frac
            image = image_index[job]
            if masks is not None:
                keep = masks.index_select(0, job_row[job] * n_frac + point % n_frac)
            else:
                keep = table.index_select(0, job_row[job]) < thresholds[point].unsqueeze(1)
            x = inputs.index_select(0, image)
            if random_fills is not None:
                g = random_fills.gather(image, sample)
            elif fill_all.shape[0] == 1:
                g = fill_all
            else:
                g = fill_all.index_select(0, image)
            masked = torch.where(keep.view(-1, 1, *spatial), x, g)
            out = run_forward(forward_func, masked, expand_additional_forward_args(args, image))
            out = _check_scores(out, masked.shape[0], config.apply_softmax)
            if result is None:
                check_label_range(target, out.shape[1])
            probs = to_probabilities(out, config.apply_softmax)
            picked = probs.gather(1, target[job].to(probs.device).unsqueeze(1)).squeeze(1)
            if result is None:
                result = torch.empty(total, dtype=picked.dtype, device=picked.device)
            result[chunk] = picked
    assert result is not None
    return result.view(n_jobs, n_frac, n_samp).mean(dim=2).to(device)


# ---- public curves ---------------------------------------------------------------------


def run_curves(
    kind: str,
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
    return_clean: bool = False,
    caller: str = "insertion_curve",
) -> tuple[Tensor, Tensor | None]:
    """Shared implementation of the curve functions and the per-example metrics.

    Returns the ``(N, F)`` curve and, with ``return_clean=True``, the ``(N,)`` clean
    probability of each example's target under the same softmax (else ``None``).
    """
    kind = check_choice(kind, "kind", CURVE_KINDS)
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_model_inputs(inputs)
    n = inputs.shape[0]
    config = check_curve_config(
        inputs,
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
    )
    args = check_forward_args(additional_forward_args, n)
    maps = saliency_maps(attributions, inputs, config.reduce)
    check_targets(target, n, allow_none=True)  # kind and length, before any forward pass
    warn_if_training(forward_func, caller)

    clean = None
    if target is None or return_clean:
        outputs = class_outputs(
            forward_func, inputs, args, config.apply_softmax, config.max_examples_per_batch
        )
        clean = to_probabilities(outputs, config.apply_softmax)
    if target is None:
        assert clean is not None
        targets = clean.argmax(dim=1).to(inputs.device)
    else:
        # Without a clean pass, the upper bound is checked against the first forward pass
        # of the curves (no extra forward pass just to count the outputs).
        num_classes = None if clean is None else clean.shape[1]
        targets = check_targets(target, n, num_classes, device=inputs.device)
        if int(targets.min()) < 0:
            raise ValueError(f"`target` contains label {int(targets.min())}: labels are >= 0.")

    ranks = rank_positions(maps)
    index = torch.arange(n, device=inputs.device)
    jobs = CurveJobs(
        map_index=index,
        image_index=index,
        target=targets,
        deletion=torch.full((n,), kind == "deletion", dtype=torch.bool, device=inputs.device),
    )
    curve = batched_curves(forward_func, inputs, args, ranks, jobs, config)
    clean_target = None
    if return_clean:
        assert clean is not None
        clean_target = clean.gather(1, targets.view(-1, 1)).squeeze(1).to(curve.dtype)
    return curve, clean_target


_CURVE_ARGS_DOC = r"""
    Args:
        forward_func: The model (or any callable) returning ``(N, num_classes)`` scores
            (logits, or probabilities with ``apply_softmax=False``).
        inputs: Tensor of shape ``(N, C, *spatial)``.
        attributions: Saliency of shape ``(N, C, *spatial)`` (Captum's convention: the
            inputs' shape), ``(N, 1, *spatial)`` (one channel for all) or an already
            reduced map ``(N, *spatial)``. Must be finite. Positions are ranked by the
            map after reducing over channels with ``reduce``; ties are broken in reading
            order (lower flat position index first), so a constant map ranks positions
            row by row.
        target: Label per example: an int, a list of ints or a 1-D tensor (Captum's
            ``TargetType``). ``None`` uses the model's predicted label on the clean input.
        additional_forward_args: Extra arguments for ``forward_func``; tensors with a
            leading dimension are indexed per example.
        fill: Fill for the removed positions: a :class:`~captum_soundness.fills.Fill`, a
            number or tensor (constant fill), or ``None`` (constant 0, the reference
            evaluation fill).
        fractions: An int ``n`` for the grid ``(1/n, 2/n, ..., 1)`` (default 28, the
            reference grid) or a non-empty sequence of floats in ``(0, 1]``. The number
            of top positions is ``k = max(1, round(fraction * P))`` (round half to even)
            for ``P`` spatial positions. There is no 0-fraction point.
        n_fill_samples: Number of draws of a random fill averaged per point. Ignored for
            deterministic fills (constant, mean, blur), whose expectation is exact with a
            single sample. The draws of an image are shared by all fractions.
        apply_softmax: Apply a softmax to the outputs (``True``); ``False`` when the model
            already returns probabilities.
        reduce: Channel reduction before ranking: ``"sum"``, ``"abs"`` (sum of absolute
            values) or ``"max"``.
        max_examples_per_batch: Maximum number of masked inputs per forward pass
            (``None``: all at once). Does not change the results.
        seed: ``None``, an int or a :class:`torch.Generator` for random fills; the same
            seed gives the same fills whatever ``max_examples_per_batch`` is. The global
            RNG is never used.
"""


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
) -> Tensor:
    curve, _ = run_curves(
        "insertion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
        caller="insertion_curve",
    )
    return curve


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fill: FillLike = None,
    fractions: int | Sequence[float] | Tensor = 28,
    n_fill_samples: int = 1,
    apply_softmax: bool = True,
    reduce: str = "sum",
    max_examples_per_batch: int | None = None,
    seed: SeedType = None,
) -> Tensor:
    curve, _ = run_curves(
        "deletion",
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        fill=fill,
        fractions=fractions,
        n_fill_samples=n_fill_samples,
        apply_softmax=apply_softmax,
        reduce=reduce,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
        caller="deletion_curve",
    )
    return curve


insertion_curve.__doc__ = (
    r"""Insertion curve: probability of the target as the top positions are *kept*.

    For each fraction :math:`f_j` of the grid, the masked input keeps the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions of the
    map and replaces the rest by the fill:

    .. math::

        I_j(x, a) = \mathbb{E}_{g \sim G}\,
            p_a\big(x \odot T_{k_j}(M_a) + g \odot (1 - T_{k_j}(M_a))\big)

    (expectation estimated with ``n_fill_samples`` draws for random fills). At
    :math:`f = 1` the masked input is the clean input, so the last point of the default
    grid is :math:`p_a(x)`. The mean of the curve is the insertion score :math:`S_a(x)`
    of Gupta et al. (2022) used by :func:`~captum_soundness.metrics.completeness` and
    :func:`~captum_soundness.metrics.soundness`.
"""
    + _CURVE_ARGS_DOC
    + r"""
    Returns:
        Tensor of shape ``(N, F)``: one curve per example, ``F`` = number of fractions
        (float32, or float64 for float64 models), on the inputs' device.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.metrics._scores import insertion_curve
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x = torch.randn(2, 1, 4, 4)
        >>> attr = torch.randn(2, 1, 4, 4)
        >>> insertion_curve(model, x, attr, target=[0, 2], fractions=4).shape
        torch.Size([2, 4])
"""
)

deletion_curve.__doc__ = (
    r"""Deletion curve: probability of the target as the top positions are *removed*.

    Uses the same grid as :func:`insertion_curve`. At fraction :math:`f_j` the
    :math:`k_j = \max(1, \operatorname{round}(f_j P))` highest-ranked positions are
    replaced by the fill and every other position keeps its value:

    .. math::

        D_j(x, a) = \mathbb{E}_{g \sim G}\,
            p_a\big(x \odot (1 - T_{k_j}(M_a)) + g \odot T_{k_j}(M_a)\big).

    The grid has no 0-fraction point (the clean input, :math:`p_a(x)`, is not part of
    the curve) and at least one position is always removed; at :math:`f = 1` every
    position is removed, so the last point of the default grid is the probability of
    the fully filled input, the same for every map. The deletion mask at a fraction is
    the exact complement of the insertion mask at the same fraction (same :math:`k_j`,
    same tie-breaking). For example, with ``fractions=28`` and a 224x224 input
    (:math:`P = 50176`), point :math:`j = 1..28` removes the top :math:`1792 j`
    positions (8 image rows' worth per step).
"""
    + _CURVE_ARGS_DOC
    + r"""
    Returns:
        Tensor of shape ``(N, F)``: one curve per example, on the inputs' device.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.metrics._scores import deletion_curve
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
        >>> x = torch.randn(2, 1, 4, 4)
        >>> curve = deletion_curve(model, x, torch.randn(2, 4, 4), target=1, fractions=4)
        >>> bool(torch.allclose(curve[0, -1], curve[1, -1]))  # both fully filled
        True
"""
)


# ---- completeness and soundness from insertion scores ----------------------------------


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
        >>> from captum_soundness.metrics._scores import completeness_from_scores
        >>> completeness_from_scores(torch.tensor([0.3, 0.05, 0.9]), torch.tensor([0.6, 0.5, 0.8]))
        tensor([0.5000, 0.2000, 1.0000])
    """
    epsilon, alpha, _ = check_metric_constants(epsilon=epsilon, alpha=alpha)
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
        >>> from captum_soundness.metrics._scores import soundness_from_scores
        >>> soundness_from_scores(torch.tensor([0.5, 0.0, 0.05]), torch.tensor([0.02, 0.3, 0.04]))
        tensor([0.2000, 1.0000, 1.0000])
    """
    _, _, beta = check_metric_constants(beta=beta)
    numerator = prob.clamp(min=beta)
    ratio = numerator / insertion_score
    ratio = torch.where(insertion_score > 0, ratio, torch.ones_like(ratio))
    return ratio.clamp(max=1.0)
