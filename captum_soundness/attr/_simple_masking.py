r"""The simple masking method of Gupta et al. (2022), section 3, as a Captum attribution."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.typing import TargetType
from captum.attr import Attribution
from torch import Tensor
from tqdm.auto import tqdm

from captum_soundness._utils.fill_samples import check_fill_samples, sample_fill
from captum_soundness._utils.finite import bad_examples, check_finite, format_examples
from captum_soundness._utils.forward import (
    check_forward_args,
    check_output,
    chunk_slices,
    expand_additional_forward_args,
    num_outputs,
    run_forward,
)
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_max_examples_per_batch,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_targets,
)
from captum_soundness.attr._common import Adam, check_spatial_dims, upsample
from captum_soundness.attr._recipes import (
    LR_SCHEDULES,
    area_penalty,
    area_reference,
    lr_at,
    resolve_preset,
)
from captum_soundness.fills import Fill, FillLike, as_fill

__all__ = ["OBJECTIVES", "SimpleMasking"]

#: Objectives accepted by :meth:`SimpleMasking.attribute`.
OBJECTIVES = ("reference", "log_prob")

_PROGRESS_EVERY = 10


class SimpleMasking(Attribution):
    r"""Learned soft masks: the saliency method of Gupta et al. (2022), section 3.

    For every example :math:`x` and label :math:`a`, mask logits :math:`w` are learned at
    a reduced resolution (:math:`\lceil H/s \rceil \times \lceil W/s \rceil` for a
    down-sampling factor :math:`s`), initialised to 0, so the mask starts at 0.5
    everywhere:

    .. math::

        m &= \operatorname{upsample}\big(\sigma(w)\big)
            \quad\text{(bilinear, to exactly } H \times W\text{; none when } s = 1) \\
        q(m) &= \frac{1}{B} \sum_{j=1}^{B}
            \operatorname{softmax}\big(f(x \odot m + g_j \odot (1 - m))\big),
            \qquad g_j \sim G \text{ fresh every step} \\
        \mathcal{L} &= \operatorname{objective}(q(m), a) + l_1 \sum_{i,j} m_{ij}
            + \mathrm{tv} \cdot \mathrm{TV}(m)
            + \lambda_A \cdot \frac{1}{P} \sum_{k=1}^{P}
              \big(\operatorname{sort}(m)_k - r_k\big)^2 \\
        \mathrm{TV}(m) &= \sum_{i=1}^{H-1} \sum_{j=1}^{W-1}
            (m_{ij} - m_{i+1,j})^2 + (m_{ij} - m_{i,j+1})^2

    The last term is the area constraint of extremal perturbation (Fong et al., 2019):
    the ascending sorted mask values are pulled towards :math:`r`, :math:`\lfloor (1 - A)
    P \rfloor` zeros followed by ones (:math:`P` positions, target area :math:`A` =
    ``area``, weight :math:`\lambda_A` = ``area_weight``; off in the paper's recipe).

    The total variation sums both squared differences over the top-left
    :math:`(H-1) \times (W-1)` block only, as the reference implementation does. The mask
    has one channel and is shared by all channels of the input. The losses of all
    examples are summed and divided by the number of examples, and :math:`w` is trained
    with Adam (the update of :class:`torch.optim.Adam` with its default betas and eps),
    with a constant step size or one that decays to 0 over the steps
    (``lr_schedule``). Two objectives are offered:

    - ``"reference"`` (default): the reference implementation applies a cross-entropy
      loss to the *probabilities* :math:`q` as if they were logits,
      :math:`-q_a + \log \sum_b e^{q_b}`. This is the loss the published :math:`l_1` and
      TV weights were tuned against. Its gradient is bounded and weak (it saturates at
      :math:`q_a = 1` with a loss of :math:`\log(L - 1 + e) - 1`, not 0).
    - ``"log_prob"``: the clean alternative :math:`-\log q_a` (computed stably as
      :math:`-\operatorname{logsumexp}_j \log \operatorname{softmax}(f(\tilde x_j))_a
      + \log B`). It pushes :math:`q_a` towards 1 much harder, so the published
      regularisation weights are relatively weaker under it.

    **Presets.** ``attribute(..., preset=...)`` picks a recipe: the value of every keyword
    of the table left at ``None`` (explicit keywords override the preset's values;
    :data:`~captum_soundness.attr.PRESETS` holds them):

    ==================  ===============  ===============  ===============
    keyword             ``"paper"``      ``"fast"``       ``"area"``
    ==================  ===============  ===============  ===============
    ``steps``           2000             5                50
    ``n_fill_samples``  10               5                5
    ``lr``              0.05             0.05             0.05
    ``lr_schedule``     ``"constant"``   ``"constant"``   ``"constant"``
    ``downsample``      4                4                4
    ``l1``              2e-5             2e-5             2e-5
    ``tv``              0.01             0.01             0.01
    ``objective``       ``"reference"``  ``"reference"``  ``"reference"``
    ``area``            0.1 (unused)     0.1 (unused)     0.1
    ``area_weight``     0                0                3
    ==================  ===============  ===============  ===============

    - ``"paper"`` (default) is the reference recipe of Gupta et al. (2022), exactly (the
      masks of the code before presets existed, bit for bit).
    - ``"fast"`` is the paper's recipe stopped after 5 steps of 5 fill samples: 1/800 of
      its model evaluations. On the bundled MNIST model's all-label evaluation
      (``bench/bench_masking_recipes.py``) it is *more* complete at the prediction and
      more sound over the other labels than the paper's recipe: long optimisation
      manufactures evidence for wrong labels, and the ranking of the mask, which is all
      the insertion metrics use, is settled after a few steps.
    - ``"area"`` adds the area constraint of extremal perturbation (target area 0.1,
      weight 3) to 50 steps of 5 fill samples: masks that keep a small region and cannot
      cover the image, more complete and more sound than TorchRay's extremal
      perturbation on the same evaluation at a fraction of its time.

    The measured numbers (time per map, completeness at the prediction, soundness over
    the other labels, spread across seeds) are on the documentation's *Mask recipes* page.
    Measure on your own model before relying on a preset other than ``"paper"``: the
    step count that settles the ranking depends on the model and the input size.

    Notes:

    - The model should be in evaluation mode (``model.eval()``): dropout and batch-norm
      in training mode make every forward pass random and couple the examples of a
      batch. A :class:`UserWarning` is issued when it is training; the mode is never
      changed. The model is left exactly as found (modes, ``requires_grad`` flags, no
      ``.grad`` on parameters, buffers), and PyTorch's global RNG is neither read nor
      advanced.
    - Gradients are taken with respect to the mask only: parameter gradients are never
      computed, which makes every step about as cheap as one forward and backward pass
      over the ``B * N`` masked inputs.
    - The mask logits are optimised in float32 for float16/bfloat16 inputs (in the
      inputs' dtype otherwise); the masked inputs are composed in the inputs' dtype.
    - Non-finite inputs, fill samples or model outputs raise a :class:`ValueError`
      naming the examples, also when the outputs turn NaN or infinite during the
      optimisation (the loss is checked once per step), instead of returning NaN masks.

    Args:
        forward_func (Callable or torch.nn.Module): The model, or any function that maps
            a batch of inputs ``(N, C, *spatial)`` (and the additional forward arguments)
            to scores of shape ``(N, num_classes)``, ``num_classes >= 2``. The scores are
            treated as logits: a softmax is applied.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.attr import SimpleMasking
        >>> from captum_soundness.fills import DatasetFill
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
        >>> x, pool = torch.randn(2, 3, 8, 8), torch.randn(20, 3, 8, 8)
        >>> masks = SimpleMasking(model).attribute(
        ...     x, target=[1, 3], fill=DatasetFill(pool), steps=50, downsample=2, seed=0
        ... )
        >>> masks.shape, bool(masks.min() >= 0), bool(masks.max() <= 1)
        (torch.Size([2, 3, 8, 8]), True, True)
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        fill: FillLike = None,
        preset: str = "paper",
        n_fill_samples: int | None = None,
        steps: int | None = None,
        lr: float | None = None,
        lr_schedule: str | None = None,
        downsample: int | None = None,
        l1: float | None = None,
        tv: float | None = None,
        objective: str | None = None,
        area: float | None = None,
        area_weight: float | None = None,
        seed: SeedType = None,
        show_progress: bool = False,
        max_examples_per_batch: int | None = None,
    ) -> Tensor:
        r"""Learns one mask per example and target label.

        All examples (with their own targets) are optimised together: every step runs
        one forward and one backward pass over the ``B * N`` masked inputs of a batch
        (``B = n_fill_samples`` for random fills, 1 for deterministic ones).

        Args:
            inputs (Tensor): Inputs of shape ``(N, C, *spatial)`` with one, two (images,
                ``(N, C, H, W)``) or three spatial dimensions.
            target (int, list or Tensor, optional): The label to explain for each
                example: an int (the same label for all), a list of ``N`` ints or a 1-D
                integer tensor of length ``N``. Different examples may have different
                labels. ``None`` explains each example's predicted label
                (``argmax`` of the model's scores on the clean input).
            additional_forward_args (Any, optional): Further arguments passed to
                ``forward_func`` after the inputs (a single object or a tuple). Tensors
                with a leading dimension must have one row per example: they are
                repeated to match the masked inputs.
            fill (Fill, float or Tensor, optional): The fill distribution :math:`G` (see
                :mod:`captum_soundness.fills`); anything :func:`~captum_soundness.fills.
                as_fill` accepts. ``None`` is the constant fill 0. The paper trains with
                :class:`~captum_soundness.fills.DatasetFill` on 100 to 1000 training
                images. Deterministic fills (constant, mean, blur) are drawn once with a
                single sample, since the expectation over them is exact; random fills
                get ``n_fill_samples`` fresh draws per example and step.
            preset (str, optional): The recipe that gives every keyword below left at
                ``None`` its value: ``"paper"`` (the reference recipe, exactly),
                ``"fast"`` or ``"area"`` (see *Presets* in the class docstring and
                :data:`~captum_soundness.attr.PRESETS`). Keywords given explicitly
                override the preset's values. Default: ``"paper"``.
            n_fill_samples (int, optional): :math:`B`, fill samples per example and
                step for random fills. Default: the preset's (paper: 10).
            steps (int, optional): Number of Adam steps. Default: the preset's (paper:
                2000).
            lr (float, optional): Adam learning rate (the peak one when it decays).
                Default: the preset's (paper: 0.05).
            lr_schedule (str, optional): ``"constant"``, ``"cosine"`` (step ``t`` of
                ``T`` uses :math:`\mathrm{lr} \cdot (1 + \cos(\pi t / T)) / 2`) or
                ``"linear"`` (:math:`\mathrm{lr} \cdot (1 - t / T)`). Default: the
                preset's (paper: ``"constant"``).
            downsample (int, optional): :math:`s`, the down-sampling factor of the
                mask logits: they live on a grid of
                ``ceil(size / downsample)`` positions per spatial dimension and are
                upsampled (linear/bilinear/trilinear, ``align_corners=False``) to the
                input's exact size, multiple of ``downsample`` or not. 1 means a mask at
                full resolution, without upsampling. Default: the preset's (paper: 4).
            l1 (float, optional): Weight of :math:`\sum m` (mask size). Default: the
                preset's (paper: 2e-5).
            tv (float, optional): Weight of the total variation :math:`\mathrm{TV}(m)`.
                Default: the preset's (paper: 0.01).
            objective (str, optional): ``"reference"`` (cross-entropy applied to the
                averaged probabilities as if they were logits, as in the reference
                implementation) or ``"log_prob"`` (:math:`-\log q_a`). Default: the
                preset's (paper: ``"reference"``).
            area (float, optional): :math:`A`, the target area (fraction of positions)
                of the area constraint, in ``(0, 1)``; used only when ``area_weight >
                0``. Default: the preset's (paper: 0.1, unused).
            area_weight (float, optional): :math:`\lambda_A`, the weight of the area
                constraint; 0 turns it off. Default: the preset's (paper: 0).
            seed (int, torch.Generator or None, optional): Seed of the fill draws. The
                same seed gives the same masks; ``None`` draws fresh randomness. The
                global RNG is never used. Each example gets its own random stream,
                derived from the seed and the example's position in ``inputs``.
            show_progress (bool, optional): Show a ``tqdm`` progress bar over the steps
                with the current mean loss per example. Default: ``False``.
            max_examples_per_batch (int, optional): Optimise at most this many
                *examples* together (each step then evaluates the model on at most
                ``max_examples_per_batch * B`` masked inputs); examples are processed
                in consecutive chunks. This bounds memory and gives the same masks as
                an unchunked run. ``None`` optimises all examples together.

        Returns:
            *Tensor* of **attributions**:
            - **attributions** (*Tensor*): The learned masks :math:`m`, values in
              ``[0, 1]``, broadcast over channels to the shape of ``inputs``, in the
              inputs' dtype and on their device.

        Examples::

            >>> import torch
            >>> from torch import nn
            >>> from captum_soundness.attr import SimpleMasking
            >>> from captum_soundness.fills import NoiseFill
            >>> model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
            >>> x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            >>> masking = SimpleMasking(model)
            >>> masks = masking.attribute(x, target=[0, 1, 2, 3], fill=NoiseFill(),
            ...                           n_fill_samples=4, steps=20, seed=0)
            >>> masks.shape
            torch.Size([4, 1, 28, 28])
        """
        inputs = _check_masking_inputs(inputs)
        n = inputs.shape[0]
        recipe = resolve_preset(
            preset,
            n_fill_samples=n_fill_samples,
            steps=steps,
            lr=lr,
            lr_schedule=lr_schedule,
            downsample=downsample,
            l1=l1,
            tv=tv,
            objective=objective,
            area=area,
            area_weight=area_weight,
        )
        config = _make_config(inputs, fill, recipe)
        if not isinstance(show_progress, bool):
            raise TypeError(f"`show_progress` must be a bool, got {show_progress!r}.")
        max_examples_per_batch = check_max_examples_per_batch(max_examples_per_batch)
        generator = make_generator(seed, inputs.device, "seed")
        args = check_forward_args(additional_forward_args, n)
        check_targets(target, n, allow_none=True)  # kind and length, before any forward
        warn_if_training(self.forward_func, "SimpleMasking")

        x = inputs.detach()
        with (
            preserved_model(self.forward_func, devices=[x.device]),
            torch.enable_grad(),  # also inside a caller's torch.no_grad() block
        ):
            targets = self._targets(x, target, args, max_examples_per_batch)
            seeds = None if config.fill.deterministic else draw_seeds(generator, n)
            chunks = list(chunk_slices(n, max_examples_per_batch))
            mask = self._fit_chunks(x, targets, args, seeds, config, chunks, show_progress)
        return mask.to(inputs.dtype).expand_as(inputs).contiguous()

    # ---- helpers ---------------------------------------------------------------------

    def _targets(
        self, x: Tensor, target: TargetType, args: tuple[Any, ...] | None, max_batch: int | None
    ) -> Tensor:
        """Checks the targets against the model's outputs (or predicts them)."""
        n = x.shape[0]
        if target is not None:
            num_classes = num_outputs(self.forward_func, x, args)
            _check_num_classes(num_classes)
            return check_targets(target, n, num_classes, device=x.device)
        predicted = []
        with torch.no_grad():
            for chunk in chunk_slices(n, max_batch):
                index = torch.arange(chunk.start, chunk.stop, device=x.device)
                out = run_forward(
                    self.forward_func, x[chunk], expand_additional_forward_args(args, index)
                )
                out = check_output(out, chunk.stop - chunk.start)
                _check_num_classes(out.shape[1])
                predicted.append(out.argmax(dim=1))
        return torch.cat(predicted).to(device=x.device, dtype=torch.long)

    def _fit_chunks(
        self,
        x: Tensor,
        targets: Tensor,
        args: tuple[Any, ...] | None,
        seeds: list[int] | None,
        cfg: _Config,
        chunks: list[slice],
        show_progress: bool,
    ) -> Tensor:
        """Optimises the masks chunk by chunk (with a progress bar); returns ``(n, 1, ...)``."""
        bar = (
            tqdm(total=cfg.steps * len(chunks), desc="SimpleMasking", unit="step")
            if show_progress
            else None
        )
        try:
            masks = [
                self._fit(
                    x[chunk],
                    targets[chunk],
                    args,
                    torch.arange(chunk.start, chunk.stop, device=x.device),
                    None if seeds is None else seeds[chunk],
                    cfg,
                    bar,
                )
                for chunk in chunks
            ]
        finally:
            if bar is not None:
                bar.close()
        return masks[0] if len(masks) == 1 else torch.cat(masks, dim=0)

    def _fit(
        self,
        x: Tensor,
        target: Tensor,
        args: tuple[Any, ...] | None,
        examples: Tensor,
        seeds: Sequence[int] | None,
        cfg: _Config,
        bar: Any,
    ) -> Tensor:
        """Optimises the masks of one chunk of examples; returns ``(c, 1, *spatial)``."""
        c, spatial = x.shape[0], tuple(x.shape[2:])
        b = cfg.n_samples
        param_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        low = tuple(math.ceil(size / cfg.downsample) for size in spatial)
        logits = torch.zeros((c, 1, *low), dtype=param_dtype, device=x.device)
        logits.requires_grad_(True)
        optimizer = Adam(logits, cfg.lr)
        upsample = _upsampler(low, spatial)

        # Rows of the model batch are laid out sample-major: row j * c + i is sample j of
        # example i. Additional forward args are repeated once per chunk, not per step.
        rep_args = expand_additional_forward_args(args, examples.repeat(b))
        generators = None
        if seeds is not None:
            generators = [torch.Generator(device=x.device).manual_seed(s) for s in seeds]
        else:
            with torch.no_grad():
                g0 = sample_fill(cfg.fill, x, 1, examples=examples)[0]  # (c, C, *spatial)
                diff0 = x - g0
        area_ref = None
        if cfg.area_weight > 0:
            area_ref = area_reference(math.prod(spatial), cfg.area, logits)

        for step in range(cfg.steps):
            mask = upsample(torch.sigmoid(logits))  # (c, 1, *spatial)
            mask_in = mask if mask.dtype == x.dtype else mask.to(x.dtype)
            if generators is None:
                masked = torch.addcmul(g0, mask_in, diff0)
            else:
                with torch.no_grad():
                    g = _draw(cfg.fill, x, b, generators)  # (b, c, C, *spatial), unchecked
                    diff = x.unsqueeze(0) - g
                masked = torch.addcmul(g, mask_in, diff).flatten(0, 1)
            out = run_forward(self.forward_func, masked, rep_args)
            if step == 0:
                check_output(out, b * c)
            out = out.to(torch.promote_types(out.dtype, torch.float32)).view(b, c, -1)
            per_example = _objective(cfg.objective, out, target).to(param_dtype)
            per_example = _add_regularisers(per_example, mask, cfg, area_ref)
            if not bool(torch.isfinite(per_example.detach()).all()):  # one check per step
                _raise_not_finite(
                    step, per_example, out, None if generators is None else g, examples
                )
            loss = per_example.sum() * cfg.scale
            (grad,) = torch.autograd.grad(loss, logits)
            optimizer.lr = lr_at(cfg.lr_schedule, cfg.lr, step, cfg.steps)
            optimizer.step(grad)
            if bar is not None:
                bar.update(1)
                if step % _PROGRESS_EVERY == 0 or step == cfg.steps - 1:
                    bar.set_postfix(loss=f"{float(per_example.detach().mean()):.4f}")
        with torch.no_grad():
            return upsample(torch.sigmoid(logits))


@dataclass(frozen=True)
class _Config:
    """The validated hyper-parameters of one :meth:`SimpleMasking.attribute` call."""

    fill: Fill
    n_samples: int
    steps: int
    lr: float
    lr_schedule: str
    downsample: int
    l1: float
    tv: float
    objective: str
    area: float
    area_weight: float
    scale: float


def _check_masking_inputs(inputs: Any) -> Tensor:
    """Checks ``inputs``: a finite floating tensor ``(N, C, *spatial)``, 1 to 3 spatial dims."""
    inputs = check_inputs(inputs, "inputs")
    check_spatial_dims(inputs)
    check_finite(inputs, "`inputs`")
    return inputs


def _make_config(inputs: Tensor, fill: FillLike, recipe: dict[str, Any]) -> _Config:
    """Checks the hyper-parameters of :meth:`SimpleMasking.attribute` (in signature order).

    ``recipe`` holds the preset's values with the explicit keywords applied
    (:func:`~captum_soundness.attr._recipes.resolve_preset`).

    Deterministic fills (constant, mean, blur) are drawn once with a single sample; random
    fills get ``n_fill_samples`` per example and step. The losses of the examples are
    summed and scaled by ``1 / N``.
    """
    fill_obj = as_fill(fill, "fill")
    fill_obj.check_compatible(inputs, "fill")
    n_fill_samples = check_positive_int(recipe["n_fill_samples"], "n_fill_samples")
    steps = check_positive_int(recipe["steps"], "steps")
    lr = check_positive_float(recipe["lr"], "lr")
    lr_schedule = check_choice(recipe["lr_schedule"], "lr_schedule", LR_SCHEDULES)
    downsample = check_positive_int(recipe["downsample"], "downsample")
    l1 = check_nonnegative_float(recipe["l1"], "l1")
    tv = check_nonnegative_float(recipe["tv"], "tv")
    objective = check_choice(recipe["objective"], "objective", OBJECTIVES)
    area = check_positive_float(recipe["area"], "area")
    if area >= 1:
        raise ValueError(f"`area` must lie in (0, 1), got {area}.")
    return _Config(
        fill=fill_obj,
        n_samples=1 if fill_obj.deterministic else n_fill_samples,
        steps=steps,
        lr=lr,
        lr_schedule=lr_schedule,
        downsample=downsample,
        l1=l1,
        tv=tv,
        objective=objective,
        area=area,
        area_weight=check_nonnegative_float(recipe["area_weight"], "area_weight"),
        scale=1.0 / inputs.shape[0],
    )


def _objective(objective: str, out: Tensor, target: Tensor) -> Tensor:
    r"""The objective per example from scores ``out`` ``(B, c, L)`` of the masked inputs.

    ``"reference"``: :math:`-q_a + \log \sum_b e^{q_b}` on the averaged probabilities
    :math:`q`; ``"log_prob"``: :math:`-\log q_a`, computed stably.
    """
    b, c = out.shape[0], out.shape[1]
    if objective == "reference":
        q = torch.softmax(out, dim=-1).mean(dim=0)  # (c, L)
        return torch.logsumexp(q, dim=-1) - q.gather(1, target.view(c, 1)).squeeze(1)
    gather_index = target.view(1, c, 1).expand(b, c, 1)
    logp = torch.log_softmax(out, dim=-1).gather(2, gather_index).squeeze(2)
    return math.log(b) - torch.logsumexp(logp, dim=0)


def _add_regularisers(
    per_example: Tensor, mask: Tensor, cfg: _Config, area_ref: Tensor | None
) -> Tensor:
    """``per_example`` plus the mask-size (l1), total-variation and area terms, in order."""
    if cfg.l1 > 0:
        per_example = per_example + cfg.l1 * mask.flatten(1).sum(dim=1)
    if cfg.tv > 0:
        per_example = per_example + cfg.tv * _total_variation(mask)
    if area_ref is not None:
        per_example = per_example + cfg.area_weight * area_penalty(mask, area_ref)
    return per_example


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(
            "`forward_func` must return scores for at least 2 labels (a softmax over one "
            f"label is constant), got {num_classes}."
        )


def _upsampler(low: tuple[int, ...], spatial: tuple[int, ...]) -> Callable[[Tensor], Tensor]:
    """Returns the map from low-resolution masks ``(c, 1, *low)`` to ``(c, 1, *spatial)``."""
    if low == spatial:
        return lambda m: m
    return lambda m: upsample(m, spatial, align_corners=False)


def _total_variation(mask: Tensor) -> Tensor:
    """Per-example TV of ``(c, 1, *spatial)`` masks over the top-left block (reference)."""
    spatial = mask.shape[2:]
    if any(size < 2 for size in spatial):
        return mask.new_zeros(mask.shape[0])
    block = (slice(None), slice(None), *(slice(0, size - 1) for size in spatial))
    base = mask[block]
    total = None
    for k, size in enumerate(spatial):
        shifted = list(block)
        shifted[2 + k] = slice(1, size)
        term = (base - mask[tuple(shifted)]).square().flatten(1).sum(dim=1)
        total = term if total is None else total + term
    assert total is not None
    return total


def _draw(fill: Fill, x: Tensor, n_samples: int, generators: list[torch.Generator]) -> Tensor:
    """Draws ``(n_samples, c, *x.shape[1:])`` fills, example ``i`` from ``generators[i]``.

    One random stream per example makes the draws independent of how the examples are
    chunked, so chunked and unchunked runs see the same fills.
    """
    parts = [
        sample_fill(fill, x[i : i + 1], n_samples, gen, check=False)
        for i, gen in enumerate(generators)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _raise_not_finite(
    step: int, per_example: Tensor, out: Tensor, fill: Tensor | None, examples: Tensor
) -> None:
    """Names the cause of a non-finite loss: the fill samples, the model's outputs ``(b,
    c, L)`` on the masked inputs, or else the loss itself."""
    if fill is not None:
        check_fill_samples(fill, examples)
    when = f"on the masked inputs at step {step + 1}"
    check_finite(out.transpose(0, 1), f"The outputs of `forward_func` {when}", examples)
    where = format_examples(bad_examples(~torch.isfinite(per_example.detach()), examples))
    raise ValueError(f"SimpleMasking: the loss is NaN or infinite {when} (examples {where}).")
