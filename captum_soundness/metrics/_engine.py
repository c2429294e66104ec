r"""The batched curve engine behind every metric (private).

Everything is tensor-native: one stable sort per map over all positions of all input
tensors (:func:`~captum_soundness.masking.rank_positions` on the ``(R, P)`` scores of a
:class:`~captum_soundness._utils.features.FeatureLayout`), masks built from the ranks for
all fractions at once, and every (map, fraction, fill sample) masked input of a call run
through the model in large batches of ``max_examples_per_batch`` masked inputs (rows)
under :func:`torch.no_grad`. Chunking never changes the masked inputs: random fills are
drawn per example from a stream seeded once per example, so a chunked and an unchunked
call with the same ``seed`` see the same fills. :func:`evaluate_all_labels
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

from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.fill_samples import sample_fill
from captum_soundness._utils.finite import bad_examples, not_finite_error, not_probabilities_error
from captum_soundness._utils.forward import (
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
    run_forward,
)
from captum_soundness._utils.heads import head_output
from captum_soundness._utils.maps import check_attribution_rows
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import draw_seeds
from captum_soundness._utils.targets import resolve_targets
from captum_soundness._utils.validation import check_choice
from captum_soundness.fills import Fill
from captum_soundness.masking import fraction_counts, rank_positions, topk_masks
from captum_soundness.metrics._config import (
    CURVE_KINDS,
    CurveConfig,
    check_curve_config,
    format_model_inputs,
)
from captum_soundness.metrics._outputs import (
    class_outputs,
    clean_targets,
    to_probabilities,
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


# ---- jobs, masks and fills -------------------------------------------------------------


@dataclass(frozen=True)
class CurveJobs:
    """Rows of a batched curve evaluation: one curve per job.

    Attributes:
        map_index: ``(J,)`` row of ``ranks`` giving the map of the job.
        image_index: ``(J,)`` input image the job masks.
        target: ``(J,)`` flat index, into the probabilities' ``flatten(1)``, of the
            probability that is read (the label's position for ``(N, L)`` outputs).
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
        num_positions, n_frac = ranks.shape[1], counts.shape[-1]
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
        if counts.dim() == 2:  # a grid per map
            thresholds = counts.index_select(0, map_index)
        else:
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


def _counts(
    fractions: Tensor,
    ranks_shape: torch.Size,
    layout: FeatureLayout,
    jobs: CurveJobs,
    device: Any,
) -> Tensor:
    """Kept positions per fraction ``(F,)``, or per map and fraction ``(R, F)`` where the
    examples hold different numbers of positions (per-example feature masks): each
    example's grid counts the groups it holds (absent groups are ranked last)."""
    present = layout.present_counts()
    if present is None:
        return fraction_counts(fractions, ranks_shape[1]).to(device)
    per_image = torch.round(
        fractions.to(torch.float64).view(1, -1) * present.to(torch.float64).view(-1, 1)
    ).long()
    per_image = torch.minimum(per_image.clamp(min=1), present.view(-1, 1)).to(device)
    row_image = torch.zeros(ranks_shape[0], dtype=torch.long, device=device)
    row_image[jobs.map_index.to(device)] = jobs.image_index.to(device)
    return per_image.index_select(0, row_image)


class _DeterministicFills:
    """The fill values of deterministic fills, computed once for all examples.

    One tensor per input tensor: ``(N, *shape)``, or ``(1, *shape)`` when the values are
    the same for every example.
    """

    def __init__(self, fills: tuple[Fill, ...], inputs: tuple[Tensor, ...]):
        self.values = []
        for fill, x in zip(fills, inputs):
            values = sample_fill(fill, x, 1, None)[0]  # (N, *shape)
            self.values.append(values[:1] if values.stride(0) == 0 else values)

    def gather(self, image: Tensor, sample: Tensor) -> tuple[Tensor, ...]:
        """Fill values for rows with the given examples (broadcast when shared)."""
        return tuple(v if v.shape[0] == 1 else v.index_select(0, image) for v in self.values)


class _RandomFills:
    """Random fill samples per example, drawn from one seeded stream per example.

    Example ``i``'s ``n_samples`` draws (of every input tensor, in order) come from a
    generator seeded with ``seeds[i]``, so they do not depend on which other examples
    share a chunk. Draws are cached while the example appears in consecutive chunks (jobs
    are ordered example by example).
    """

    def __init__(
        self,
        fills: tuple[Fill, ...],
        inputs: tuple[Tensor, ...],
        n_samples: int,
        generator: torch.Generator,
    ):
        self.fills, self.inputs, self.n_samples = fills, inputs, n_samples
        self.seeds = draw_seeds(generator, inputs[0].shape[0])
        self.cache: dict[int, tuple[Tensor, ...]] = {}

    def _draw(self, i: int) -> tuple[Tensor, ...]:
        gen = torch.Generator(device=self.inputs[0].device).manual_seed(self.seeds[i])
        return tuple(
            sample_fill(fill, x[i : i + 1], self.n_samples, gen, examples=[i])[:, 0]
            for fill, x in zip(self.fills, self.inputs)
        )

    def gather(self, image: Tensor, sample: Tensor) -> tuple[Tensor, ...]:
        """Fill values ``(c, *shape)`` per input for rows with the given example and sample."""
        unique = torch.unique(image)
        keys = unique.tolist()
        self.cache = {i: self.cache[i] if i in self.cache else self._draw(i) for i in keys}
        local = torch.searchsorted(unique, image)
        out = []
        for j in range(len(self.inputs)):
            stacked = torch.stack([self.cache[i][j] for i in keys])  # (U, S, *shape)
            out.append(stacked[local, sample])
        return tuple(out)


def _make_fills(
    config: CurveConfig, inputs: tuple[Tensor, ...]
) -> _DeterministicFills | _RandomFills:
    if config.generator is None:
        return _DeterministicFills(config.baselines, inputs)
    return _RandomFills(config.baselines, inputs, config.n_samples, config.generator)


# ---- the batched engine ----------------------------------------------------------------


class _Reader:
    """Reads the probability of each masked input's target from the model outputs.

    Checks the outputs' shape (that of the clean outputs), flags the rows whose outputs
    are not finite (or, under ``head="probabilities"``, not in ``[0, 1]``) chunk by chunk
    without synchronising; :meth:`check` raises once, at the end, naming the examples.
    """

    def __init__(
        self,
        head: str,
        label_ids: Tensor | None,
        shape: tuple[int, ...] | None,
        total: int,
        device: torch.device,
    ):
        self.head, self.label_ids, self.shape = head, label_ids, shape
        self.not_finite = torch.zeros(total, dtype=torch.bool, device=device)
        self.outside = torch.zeros_like(self.not_finite) if head == "probabilities" else None

    def read(self, chunk: slice, out: Any, flat_target: Tensor) -> Tensor:
        """``(c,)`` probabilities of the targets (flat indices) from raw outputs."""
        out = head_output(out, chunk.stop - chunk.start, self.head)
        if self.shape is not None and tuple(out.shape[1:]) != self.shape:
            raise ValueError(
                f"`forward_func` returns outputs of shape (N, *{tuple(out.shape[1:])}) on "
                f"the masked inputs but (N, *{self.shape}) on the clean inputs."
            )
        flat = out.reshape(out.shape[0], -1)
        self.not_finite[chunk] = ~torch.isfinite(flat).all(dim=1).to(self.not_finite.device)
        if self.outside is not None:
            outside = ((flat < 0) | (flat > 1)).any(dim=1)
            self.outside[chunk] = outside.to(self.outside.device)
        probs = to_probabilities(out, self.head, self.label_ids)
        probs = probs.reshape(probs.shape[0], -1)
        return probs.gather(1, flat_target.to(probs.device).unsqueeze(1)).squeeze(1)

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
    inputs: Tensor | tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    ranks: Tensor,
    jobs: CurveJobs,
    config: CurveConfig,
    layout: FeatureLayout | None = None,
    *,
    label_ids: Tensor | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> Tensor:
    """Evaluates many insertion/deletion curves in large, chunked batches.

    Masked inputs are enumerated job-major as (job, fraction, fill sample) and run through
    the model ``max_examples_per_batch`` rows at a time (all at once when ``None``). The
    masks of every (map, fraction) pair are built at once from the ranks (one comparison;
    chunk by chunk from the ranks when that table would exceed ``_MASK_TABLE_BYTES``);
    each chunk gathers its masks, examples and fill values with ``index_select``, expands
    the masks to every input tensor with ``layout`` and composes ``where(mask, x, g)``
    per input tensor, so each input is copied once per masked input and never repeated
    per label up front. Random fills are shared by all jobs and fractions of an example
    (common random numbers), which makes the curves of different labels paired
    comparisons.

    Args:
        forward_func: The model.
        inputs: Checked inputs: a tensor or a tuple of tensors.
        args: Formatted additional forward args (tensors indexed per example).
        ranks: ``(R, P)`` ranks of the maps (:func:`~captum_soundness.masking.rank_positions`).
        jobs: The curves to compute (``jobs.target``: flat indices into the
            probabilities' ``flatten(1)``).
        config: Validated settings (one fill per input tensor).
        layout: The positions of the inputs (default: ``FeatureLayout(inputs)``).
        label_ids: Label subset whose probabilities are read (see
            :func:`~captum_soundness.metrics._outputs.to_probabilities`).
        output_shape: The non-batch shape of the clean outputs, checked on every chunk.

    Returns:
        ``(J, F)`` probabilities averaged over fill samples, on the inputs' device.
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    layout = FeatureLayout(inputs) if layout is None else layout
    device = inputs[0].device
    counts = _counts(config.fractions, ranks.shape, layout, jobs, device)
    n_frac, n_samp = counts.shape[-1], config.n_samples
    n_jobs = jobs.target.shape[0]
    total = n_jobs * n_frac * n_samp
    image_index, target = jobs.image_index.to(device), jobs.target.to(device)
    masks = _Masks(ranks, jobs, counts)
    fills = _make_fills(config, inputs)
    reader = _Reader(config.head, label_ids, output_shape, total, device)
    result: Tensor | None = None
    with torch.no_grad():
        for chunk in chunk_slices(total, config.max_examples_per_batch):
            flat = torch.arange(chunk.start, chunk.stop, device=device)
            sample = flat % n_samp
            point = flat // n_samp  # job * F + fraction
            job = point // n_frac
            image = image_index[job]
            keep = layout.expand(masks.keep(job, point), image)
            values = fills.gather(image, sample)
            masked = tuple(
                torch.where(k, x.index_select(0, image), g)
                for k, x, g in zip(keep, inputs, values)
            )
            out = run_forward(forward_func, masked, expand_additional_forward_args(args, image))
            picked = reader.read(chunk, out, target[job])
            if result is None:
                result = torch.empty(total, dtype=picked.dtype, device=picked.device)
            result[chunk] = picked
    assert result is not None
    reader.check(image_index[torch.arange(total, device=device) // (n_frac * n_samp)])
    return result.view(n_jobs, n_frac, n_samp).mean(dim=2).to(device)


# ---- one curve per example -------------------------------------------------------------


def run_curves(
    kind: str,
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Any,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    feature_mask: Any = None,
    return_clean: bool = False,
    caller: str = "insertion_curve",
    **settings: Any,
) -> tuple[Tensor, Tensor | None]:
    """Shared implementation of the curve functions and the per-example metrics.

    ``inputs`` is a tensor or a tuple of tensors (rank >= 2), ``attributions`` the same
    container; ``feature_mask`` Captum's groups. ``settings`` are the curve keyword
    arguments of :func:`~captum_soundness.metrics.insertion_curve` (``baselines``,
    ``fractions``, ``n_fill_samples``, ``head``, ``reduce``, ``max_examples_per_batch``,
    ``seed``; the deprecated ``fill`` and ``apply_softmax`` still work with a
    :class:`DeprecationWarning`), given to :func:`check_curve_config`, whose signature
    checks their names; ``caller`` names the public function in warnings. Returns the
    ``(N, F)`` curve and, with ``return_clean=True``, the ``(N,)`` clean probability of
    each example's target under the same head (else ``None``).
    """
    kind = check_choice(kind, "kind", CURVE_KINDS)
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    xs, _ = format_model_inputs(inputs)
    n, device = xs[0].shape[0], xs[0].device
    config = check_curve_config(xs, **settings)  # draws the seed before preserved_model
    layout = FeatureLayout(xs, feature_mask)
    args = check_forward_args(additional_forward_args, n)
    check_attribution_rows(attributions, len(xs), n, "`attributions`")
    ranks = rank_positions(layout.maps(attributions, config.reduce))
    targets = resolve_targets(target, n, device=device)
    warn_if_training(forward_func, caller)
    with preserved_model(forward_func, freeze_parameters=False, devices=[device]):
        outputs = class_outputs(
            forward_func, xs, args, config.head, config.max_examples_per_batch, caller
        )
        clean = to_probabilities(outputs, config.head)
        flat = clean_targets(targets, clean)
        index = torch.arange(n, device=device)
        deletion = torch.full((n,), kind == "deletion", dtype=torch.bool, device=device)
        jobs = CurveJobs(map_index=index, image_index=index, target=flat, deletion=deletion)
        curve = batched_curves(
            forward_func,
            xs,
            args,
            ranks,
            jobs,
            config,
            layout,
            output_shape=tuple(outputs.shape[1:]),
        )
    if not return_clean:
        return curve, None
    prob = clean.reshape(n, -1).gather(1, flat.view(-1, 1).to(clean.device)).squeeze(1)
    return curve, prob.to(curve.dtype)
