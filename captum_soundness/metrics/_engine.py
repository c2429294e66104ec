r"""The batched curve engine behind every metric (private).

Everything is tensor-native: one stable sort per map
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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness._utils.fill_samples import sample_fill
from captum_soundness._utils.finite import (
    bad_examples,
    check_scores,
    not_finite_error,
    not_probabilities_error,
)
from captum_soundness._utils.forward import (
    check_forward_args,
    check_output,
    chunk_slices,
    expand_additional_forward_args,
    run_forward,
)
from captum_soundness._utils.maps import saliency_maps
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import draw_seeds
from captum_soundness._utils.validation import check_choice, check_label_range, check_targets
from captum_soundness.fills import Fill
from captum_soundness.masking import fraction_counts, rank_positions, topk_masks
from captum_soundness.metrics._config import (
    CURVE_KINDS,
    CurveConfig,
    check_curve_config,
    check_model_inputs,
)

__all__ = [
    "CurveJobs",
    "batched_curves",
    "class_outputs",
    "run_curves",
    "to_probabilities",
]

#: Largest table of precomputed (map, fraction) masks, in bytes (one byte per position);
#: larger evaluations build the masks chunk by chunk from the ranks instead.
_MASK_TABLE_BYTES = 1 << 28


# ---- model outputs ---------------------------------------------------------------------


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
            check_output(out, chunk.stop - chunk.start, softmax=apply_softmax)
            what = "The outputs of `forward_func`"
            parts.append(check_scores(out, what, index, apply_softmax=apply_softmax))
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return out.to(inputs.device)


# ---- jobs, masks and fills -------------------------------------------------------------


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


class _Masks:
    """The kept positions of every (job, fraction) point.

    Row m of the table describes map m for insertion; maps with deletion jobs get an
    extra row (appended) for deletion, which keeps exactly the positions that insertion
    removes. When the table of all (row, fraction) masks fits in ``_MASK_TABLE_BYTES`` it
    is built at once from the ranks and each masked input is one row lookup; otherwise
    each chunk compares rank rows with per-(job, fraction) thresholds (a deletion row
    holds the reversed ranks P - 1 - r, and r >= k is P - 1 - r < P - k). Both give
    identical masks.
    """

    def __init__(self, ranks: Tensor, jobs: CurveJobs, counts: Tensor):
        device = counts.device
        map_index, deletion = jobs.map_index.to(device), jobs.deletion.to(device)
        num_positions, n_frac = ranks.shape[1], counts.numel()
        self.n_frac = n_frac
        self.job_row, deleted_maps = map_index, None
        if bool(deletion.any()):
            deleted_maps = torch.unique(map_index[deletion])
            reversed_row = ranks.shape[0] + torch.searchsorted(deleted_maps, map_index)
            self.job_row = torch.where(deletion, reversed_row, map_index)
        n_rows = ranks.shape[0] + (0 if deleted_maps is None else deleted_maps.numel())
        self.masks = self.table = self.thresholds = None
        if n_rows * n_frac * num_positions <= _MASK_TABLE_BYTES:
            masks = topk_masks(ranks, counts)
            if deleted_maps is not None:
                masks = torch.cat([masks, ~masks.index_select(0, deleted_maps)])
            self.masks = masks.view(n_rows * n_frac, num_positions)
            return
        rank_dtype = torch.int32 if num_positions < 2**31 else torch.int64
        table = ranks.to(rank_dtype)
        thresholds = counts.unsqueeze(0).expand(map_index.shape[0], n_frac)
        if deleted_maps is not None:
            reversed_ranks = (num_positions - 1) - table.index_select(0, deleted_maps)
            table = torch.cat([table, reversed_ranks])
            thresholds = torch.where(deletion.unsqueeze(1), num_positions - thresholds, thresholds)
        self.table = table
        self.thresholds = thresholds.to(rank_dtype).reshape(-1)  # (J * F,), job-major

    def keep(self, job: Tensor, point: Tensor) -> Tensor:
        """``(c, P)`` bool masks of the points ``point = job * F + fraction``."""
        if self.masks is not None:
            return self.masks.index_select(
                0, self.job_row[job] * self.n_frac + point % self.n_frac
            )
        assert self.table is not None and self.thresholds is not None
        ranks = self.table.index_select(0, self.job_row[job])
        return ranks < self.thresholds[point].unsqueeze(1)


class _DeterministicFills:
    """The fill values of a deterministic fill, computed once for all images."""

    def __init__(self, fill: Fill, inputs: Tensor):
        values = sample_fill(fill, inputs, 1, None)[0]  # (N, C, *spatial)
        self.values = values[:1] if values.stride(0) == 0 else values  # same for every image

    def gather(self, image: Tensor, sample: Tensor) -> Tensor:
        """Fill values for rows with the given image (broadcast when shared)."""
        if self.values.shape[0] == 1:
            return self.values
        return self.values.index_select(0, image)


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
                cache[i] = sample_fill(self.fill, x, self.n_samples, gen, examples=[i])[:, 0]
        self.cache = cache
        stacked = torch.stack([cache[i] for i in keys])  # (U, S, C, *spatial)
        local = torch.searchsorted(unique, image)
        return stacked[local, sample]


# ---- the batched engine ----------------------------------------------------------------


class _BadRows:
    """Flags the masked-input rows whose model outputs are not finite (or, under
    ``apply_softmax=False``, not in ``[0, 1]``) chunk by chunk without synchronising;
    :meth:`check` raises once, at the end, naming the examples."""

    def __init__(self, total: int, apply_softmax: bool, device: torch.device):
        self.apply_softmax = apply_softmax
        self.not_finite = torch.zeros(total, dtype=torch.bool, device=device)
        self.outside = None if apply_softmax else torch.zeros_like(self.not_finite)

    def record(self, chunk: slice, out: Tensor) -> None:
        self.not_finite[chunk] = ~torch.isfinite(out).all(dim=1).to(self.not_finite.device)
        if self.outside is not None:
            outside = ((out < 0) | (out > 1)).any(dim=1)
            self.outside[chunk] = outside.to(self.outside.device)

    def check(self, row_image: Tensor) -> None:
        flags = self.not_finite if self.outside is None else self.not_finite | self.outside
        if not bool(flags.any()):
            return
        what = "The outputs of `forward_func` on the masked inputs"
        if bool(self.not_finite.any()):
            raise not_finite_error(what, bad_examples(self.not_finite, row_image))
        raise not_probabilities_error(what, bad_examples(flags, row_image))


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
    counts = fraction_counts(config.fractions, ranks.shape[1]).to(device)
    n_frac, n_samp = counts.numel(), config.n_samples
    n_jobs = jobs.target.shape[0]
    total = n_jobs * n_frac * n_samp
    image_index, target = jobs.image_index.to(device), jobs.target.to(device)
    masks = _Masks(ranks, jobs, counts)
    fills: _DeterministicFills | _RandomFills
    if config.generator is None:
        fills = _DeterministicFills(config.fill, inputs)
    else:
        fills = _RandomFills(config.fill, inputs, n_samp, config.generator)

    result: Tensor | None = None
    bad = _BadRows(total, config.apply_softmax, device)
    with torch.no_grad():
        for chunk in chunk_slices(total, config.max_examples_per_batch):
            flat = torch.arange(chunk.start, chunk.stop, device=device)
            sample = flat % n_samp
            point = flat // n_samp  # job * F + fraction
            job = point // n_frac
            image = image_index[job]
            keep = masks.keep(job, point).view(-1, 1, *spatial)
            masked = torch.where(keep, inputs.index_select(0, image), fills.gather(image, sample))
            out = run_forward(forward_func, masked, expand_additional_forward_args(args, image))
            out = check_output(out, masked.shape[0], softmax=config.apply_softmax)
            bad.record(chunk, out)
            if result is None:
                check_label_range(target, out.shape[1])
            probs = to_probabilities(out, config.apply_softmax)
            picked = probs.gather(1, target[job].to(probs.device).unsqueeze(1)).squeeze(1)
            if result is None:
                result = torch.empty(total, dtype=picked.dtype, device=picked.device)
            result[chunk] = picked
    assert result is not None
    bad.check(image_index[torch.arange(total, device=device) // (n_frac * n_samp)])
    return result.view(n_jobs, n_frac, n_samp).mean(dim=2).to(device)


# ---- one curve per example -------------------------------------------------------------


def _curve_targets(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    args: tuple[Any, ...] | None,
    target: TargetType,
    config: CurveConfig,
    return_clean: bool,
) -> tuple[Tensor, Tensor | None]:
    """The label of each example and, when needed, the clean probabilities ``(N, K)``."""
    n = inputs.shape[0]
    clean = None
    if target is None or return_clean:
        outputs = class_outputs(
            forward_func, inputs, args, config.apply_softmax, config.max_examples_per_batch
        )
        clean = to_probabilities(outputs, config.apply_softmax)
    if target is None:
        assert clean is not None
        return clean.argmax(dim=1).to(inputs.device), clean
    # Without a clean pass, the upper bound is checked against the first forward pass
    # of the curves (no extra forward pass just to count the outputs).
    num_classes = None if clean is None else clean.shape[1]
    targets = check_targets(target, n, num_classes, device=inputs.device)
    if int(targets.min()) < 0:
        raise ValueError(f"`target` contains label {int(targets.min())}: labels are >= 0.")
    return targets, clean


def run_curves(
    kind: str,
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    return_clean: bool = False,
    caller: str = "insertion_curve",
    **settings: Any,
) -> tuple[Tensor, Tensor | None]:
    """Shared implementation of the curve functions and the per-example metrics.

    ``settings`` are the curve keyword arguments of
    :func:`~captum_soundness.metrics.insertion_curve` (``fill``, ``fractions``, ...),
    given to :func:`check_curve_config`, whose signature checks their names; ``caller``
    names the public function in warnings. Returns the ``(N, F)`` curve and, with
    ``return_clean=True``, the ``(N,)`` clean probability of each example's target under
    the same softmax (else ``None``).
    """
    kind = check_choice(kind, "kind", CURVE_KINDS)
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_model_inputs(inputs)
    n = inputs.shape[0]
    config = check_curve_config(inputs, **settings)
    args = check_forward_args(additional_forward_args, n)
    maps = saliency_maps(attributions, inputs, config.reduce)
    check_targets(target, n, allow_none=True)  # kind and length, before any forward pass
    warn_if_training(forward_func, caller)
    ranks = rank_positions(maps)
    with preserved_model(forward_func, freeze_parameters=False, devices=[inputs.device]):
        targets, clean = _curve_targets(forward_func, inputs, args, target, config, return_clean)
        index = torch.arange(n, device=inputs.device)
        deletion = torch.full((n,), kind == "deletion", dtype=torch.bool, device=inputs.device)
        jobs = CurveJobs(map_index=index, image_index=index, target=targets, deletion=deletion)
        curve = batched_curves(forward_func, inputs, args, ranks, jobs, config)
    if not return_clean:
        return curve, None
    assert clean is not None
    return curve, clean.gather(1, targets.view(-1, 1)).squeeze(1).to(curve.dtype)
