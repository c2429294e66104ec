r"""The simple masking method of Gupta et al. (2022), section 3, as a Captum attribution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.typing import TargetType
from captum.attr import Attribution
from captum.log import log_usage
from torch import Tensor
from tqdm.auto import tqdm

from captum_soundness._utils.baselines import UNSET, format_baselines, resolve_baselines
from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.fill_samples import check_fill_samples
from captum_soundness._utils.finite import bad_examples, check_finite, format_examples
from captum_soundness._utils.forward import (
    DEFAULT_MAX_EXAMPLES_PER_BATCH,
    check_forward_args,
    chunk_slices,
    expand_additional_forward_args,
    run_forward,
)
from captum_soundness._utils.heads import (
    check_head,
    check_head_values,
    head_output,
    num_labels,
    warn_if_probabilities,
)
from captum_soundness._utils.inputs import format_inputs, format_like
from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import SeedType, draw_seeds, make_generator
from captum_soundness._utils.targets import Targets, resolve_targets
from captum_soundness._utils.validation import (
    check_choice,
    check_max_examples_per_batch,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from captum_soundness.attr._common import Adam
from captum_soundness.attr._mask_params import (
    MaskParams,
    add_regularisers,
    check_mask_layout,
    compose,
    fixed_fills,
    groups_present,
    param_dtype,
)
from captum_soundness.attr._recipes import (
    LR_SCHEDULES,
    area_reference,
    lr_at,
    objective_loss,
    resolve_preset,
)
from captum_soundness.fills import Fill

__all__ = ["OBJECTIVES", "SimpleMasking"]

#: Objectives accepted by :meth:`SimpleMasking.attribute`.
OBJECTIVES = ("reference", "log_prob")

_PROGRESS_EVERY = 10


class SimpleMasking(Attribution):
    r"""Learned soft masks: the saliency method of Gupta et al. (2022), section 3.

    For every example :math:`x` and target :math:`a`, mask logits :math:`w` are learned,
    initialised to 0 (the mask starts at 0.5 everywhere). For an image the logits live on
    a reduced grid (:math:`\lceil H/s \rceil \times \lceil W/s \rceil` for a
    down-sampling factor :math:`s`):

    .. math::

        m &= \operatorname{upsample}\big(\sigma(w)\big)
            \quad\text{(bilinear, to exactly } H \times W\text{; none when } s = 1) \\
        q(m) &= \frac{1}{B} \sum_{j=1}^{B}
            p\big(f(x \odot m + g_j \odot (1 - m))\big),
            \qquad g_j \sim G \text{ fresh every step} \\
        \mathcal{L} &= \operatorname{objective}(q(m), a) + l_1 \sum_{i,j} m_{ij}
            + \mathrm{tv} \cdot \mathrm{TV}(m)
            + \lambda_A \cdot \frac{1}{P} \sum_{k=1}^{P}
              \big(\operatorname{sort}(m)_k - r_k\big)^2 \\
        \mathrm{TV}(m) &= \sum_{i=1}^{H-1} \sum_{j=1}^{W-1}
            (m_{ij} - m_{i+1,j})^2 + (m_{ij} - m_{i,j+1})^2

    :math:`p` turns the model's scores into probabilities (``head``: a softmax over the
    classes by default). The last term is the area constraint of extremal perturbation
    (Fong et al., 2019): the ascending sorted mask values are pulled towards :math:`r`,
    :math:`\lfloor (1 - A) P \rfloor` zeros followed by ones (:math:`P` positions, target
    area :math:`A` = ``area``, weight :math:`\lambda_A` = ``area_weight``; off in the
    paper's recipe).

    The total variation sums both squared differences over the top-left
    :math:`(H-1) \times (W-1)` block only, as the reference implementation does. The losses
    of all examples are summed and divided by the number of examples, and :math:`w` is
    trained with Adam (the update of :class:`torch.optim.Adam` with its default betas and
    eps), with a constant step size or one that decays to 0 over the steps
    (``lr_schedule``).

    **What a mask value covers.** The inputs are a tensor or a tuple of tensors (Captum's
    convention); every input tensor gets its own mask, and the masks of a tuple are
    optimised jointly (one forward pass over the tuple of masked inputs per step):

    - ``(N, C, *spatial)`` with 1 to 3 spatial dimensions (sequences, images, volumes):
      one mask over the spatial positions, shared by the channels, from logits on the
      reduced grid, upsampled (linear, bilinear or trilinear, ``align_corners=False``);
      :math:`l_1` sums it over the positions, TV regularises it as above (over every
      spatial dimension).
    - ``(N, F)`` tabular inputs: one logit per feature; no upsampling, no TV.
    - with a ``feature_mask`` (Captum's grouping, as in
      :class:`~captum.attr.FeatureAblation`): one logit per group (groups may span input
      tensors), every element taking its group's value; no upsampling, no TV. With
      per-example masks, :math:`l_1` counts the groups present in each example.

    :math:`l_1` is the sum of the mask over all positions of all inputs (the paper's sum
    over pixels), and the area constraint sorts all of them together.

    **Objectives.** With :math:`q` the averaged probabilities over the classes (the last
    output dimension) or, for ``head="sigmoid"``, the yes/no pair
    :math:`(q_a, 1 - q_a)` of label :math:`a` alone:

    - ``"reference"`` (default): the reference implementation applies a cross-entropy
      loss to the *probabilities* :math:`q` as if they were logits,
      :math:`-q_a + \log \sum_b e^{q_b}`. This is the loss the published :math:`l_1` and
      TV weights were tuned against. Its gradient is bounded and weak (it saturates at
      :math:`q_a = 1` with a loss of :math:`\log(L - 1 + e) - 1`, not 0).
    - ``"log_prob"``: the clean alternative :math:`-\log q_a` (computed stably as
      :math:`-\operatorname{logsumexp}_j \log p(f(\tilde x_j))_a + \log B`). It pushes
      :math:`q_a` towards 1 much harder, so the published regularisation weights are
      relatively weaker under it.

    **Presets.** ``attribute(..., preset=...)`` picks a recipe: the value of every keyword
    of the table left at ``None`` (explicit keywords override the preset's values;
    :data:`~captum_soundness.attr.PRESETS` holds them):

    ==================  ===============  ===============  ===============  ===============
    keyword             ``"paper"``      ``"fast"``       ``"area"``       ``"sharp"``
    ==================  ===============  ===============  ===============  ===============
    ``steps``           2000             5                50               20
    ``n_fill_samples``  10               5                5                5
    ``lr``              0.05             0.05             0.05             0.1
    ``lr_schedule``     ``"constant"``   ``"constant"``   ``"constant"``   ``"constant"``
    ``downsample``      4                4                4                1
    ``l1``              2e-5             2e-5             2e-5             2e-5
    ``tv``              0.01             0.01             0.01             0.01
    ``objective``       ``"reference"``  ``"reference"``  ``"reference"``  ``"reference"``
    ``area``            0.1 (unused)     0.1 (unused)     0.1              0.01
    ``area_weight``     0                0                3                10
    ==================  ===============  ===============  ===============  ===============

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
      perturbation at areas 0.05 and 0.1 on the same evaluation at a fraction of its time.
    - ``"sharp"``: a full-resolution mask (``downsample=1``, ranked pixel by pixel) held
      to a tight area (0.01, weight 10) for 20 steps of 5 fill samples. The best recipe
      measured on the bundled MNIST model: more complete *and* more sound than TorchRay's
      extremal perturbation at each of its areas 0.05, 0.1 and 0.2, at about 1/100 of its
      time. Full resolution alone manufactures evidence for wrong labels; the area term
      stops it. On natural images at 224 pixels, check its soundness before relying on
      it: a full-resolution mask has more room to turn adversarial.

    The measured numbers (time per map, completeness at the prediction, soundness over
    the other labels, spread across seeds) are on the documentation's *Mask recipes* page.
    Measure on your own model before relying on a preset other than ``"paper"``: the
    step count that settles the ranking depends on the model and the input size.

    Notes:

    - The model should be in evaluation mode (``model.eval()``): dropout and batch-norm
      in training mode make every forward pass random and couple the examples of a
      batch. A :class:`UserWarning` is issued when it is training; the mode is never
      changed. The model is left exactly as found (modes, ``requires_grad`` flags, no
      ``.grad`` on parameters, buffers), and the model's own randomness (dropout) runs on
      a fork of PyTorch's global RNG. ``seed=None`` draws one seed from the global RNG
      (as :class:`~torch.utils.data.DataLoader` does); an explicit seed leaves it alone.
    - Gradients are taken with respect to the mask only: parameter gradients are never
      computed, which makes every step about as cheap as one forward and backward pass
      over the ``B * N`` masked inputs.
    - The mask logits are optimised in float32 for float16/bfloat16 inputs (in the
      inputs' dtype otherwise); the masked inputs are composed in the inputs' dtype.
    - Non-finite inputs, fill samples or model outputs raise a :class:`ValueError`
      naming the examples, also when the outputs turn NaN or infinite during the
      optimisation (the loss is checked once per step), instead of returning NaN masks.
    - ``attribute`` is wrapped like Captum's methods (``captum.log.log_usage``), so
      :class:`~captum.attr.NoiseTunnel` and Captum's metrics can call it.

    Args:
        forward_func (Callable or torch.nn.Module): The model, or any function that maps
            the inputs (one tensor or the tensors of a tuple, then the additional forward
            arguments) to scores of shape ``(N, *S)``: ``(N, num_classes)`` logits by
            default (see ``head`` of :meth:`attribute`).
        baselines (optional): Default ``baselines`` of :meth:`attribute`, used when a
            call gives none (any form :meth:`attribute` accepts). This is the way to train
            against a :class:`~captum_soundness.fills.Fill` under Captum's wrappers:
            :class:`~captum.attr.NoiseTunnel`, ``sensitivity_max`` and ``infidelity``
            accept only tensors and numbers as ``baselines``, e.g.
            ``NoiseTunnel(SimpleMasking(model, baselines=DatasetFill(pool)))``.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.attr import SimpleMasking
        >>> from captum_soundness.fills import DatasetFill
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
        >>> x, pool = torch.randn(2, 3, 8, 8), torch.randn(20, 3, 8, 8)
        >>> masks = SimpleMasking(model).attribute(
        ...     x, target=[1, 3], baselines=DatasetFill(pool), steps=50, downsample=2, seed=0
        ... )
        >>> masks.shape, bool(masks.min() >= 0), bool(masks.max() <= 1)
        (torch.Size([2, 3, 8, 8]), True, True)
    """

    def __init__(self, forward_func: Callable[..., Any], baselines: Any = None) -> None:
        super().__init__(forward_func)
        if not (baselines is None or isinstance(baselines, (Fill, Tensor, tuple, int, float))):
            raise TypeError(
                "`baselines` must be None, a number, a tensor, a Fill or a tuple of these, "
                f"got {type(baselines).__name__}."
            )
        self.baselines = baselines

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        baselines: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
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
        head: str = "softmax",
        seed: SeedType = None,
        show_progress: bool = False,
        max_examples_per_batch: int | None = DEFAULT_MAX_EXAMPLES_PER_BATCH,
        fill: Any = UNSET,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""Learns one mask per example and target (per input tensor of a tuple).

        All examples (with their own targets) are optimised together: every step runs
        one forward and one backward pass over the ``B * N`` masked inputs of a batch
        (``B = n_fill_samples`` when a baseline is random, 1 when all are deterministic).

        Args:
            inputs (Tensor or tuple of Tensor): A tensor or a tuple of tensors with the
                examples first: ``(N, F)`` tabular, ``(N, C, L)``, ``(N, C, H, W)``,
                ``(N, C, D, H, W)`` (see *What a mask value covers* in the class
                docstring).
            target (int, tuple, Tensor or list, optional): Captum's ``TargetType``: an
                int (the same label for all), a tuple (one index into a
                multi-dimensional output, the same for all), a tensor of one element or
                of ``N`` labels, a list of ``N`` ints or ``N`` tuples. ``None`` explains
                each example's predicted label (``argmax`` of the scores on the clean
                input; ``head="binary"``: the more probable of its 2 labels) and needs
                ``(N, num_classes)`` outputs. ``target=(1, 0)`` on ``(N, C)`` outputs
                raises, as in Captum (a tuple is never one label per example).
            additional_forward_args (Any, optional): Further arguments passed to
                ``forward_func`` after the inputs (a single object or a tuple). Tensors
                with a leading dimension must have one row per example: they are
                repeated to match the masked inputs.
            baselines (optional): Captum's name for the replacement values, the fill
                distribution :math:`G`: ``None`` (0), a number, a tensor broadcastable
                to one example, a per-example tensor (``N`` rows), a
                :class:`~captum_soundness.fills.Fill` (``DatasetFill``: random pool
                images, the paper's training fill, ``BlurFill``, ``NoiseFill``, ...), or
                for a tuple of inputs a tuple of these. Deterministic baselines are used
                once per step (the expectation over them is exact); random fills get
                ``n_fill_samples`` fresh draws per example and step.
            feature_mask (Tensor or tuple of Tensor, optional): Captum's grouping of
                features (integer group ids per input, broadcastable to it, first
                dimension 1 or ``N``): one mask value is learned per group. Default:
                ``None`` (see *What a mask value covers*).
            preset (str, optional): The recipe that gives every keyword below left at
                ``None`` its value: ``"paper"`` (the reference recipe, exactly),
                ``"fast"``, ``"area"`` or ``"sharp"`` (see *Presets* in the class docstring and
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
                logits of inputs of rank >= 3: ``ceil(size / downsample)`` cells per
                spatial dimension, upsampled to the input's exact size. 1 means a mask
                at full resolution, without upsampling (required for more than 3
                spatial dimensions). Unused for tabular inputs and with a
                ``feature_mask``. Default: the preset's (paper: 4).
            l1 (float, optional): Weight of :math:`\sum m` over the positions (mask
                size). Default: the preset's (paper: 2e-5).
            tv (float, optional): Weight of the total variation :math:`\mathrm{TV}(m)`
                of grid masks. Default: the preset's (paper: 0.01).
            objective (str, optional): ``"reference"`` (cross-entropy applied to the
                averaged probabilities as if they were logits, as in the reference
                implementation) or ``"log_prob"`` (:math:`-\log q_a`). Default: the
                preset's (paper: ``"reference"``).
            area (float, optional): :math:`A`, the target area (fraction of positions)
                of the area constraint, in ``(0, 1)``; used only when ``area_weight >
                0``. Default: the preset's (paper: 0.1, unused).
            area_weight (float, optional): :math:`\lambda_A`, the weight of the area
                constraint; 0 turns it off. Default: the preset's (paper: 0).
            head (str, optional): How the scores become probabilities :math:`p`:
                ``"softmax"`` (logits, softmax over the last dimension), ``"probabilities"``
                (used as they are; values outside ``[0, 1]`` raise), ``"sigmoid"`` (one
                logit per label; label :math:`a` is the pair :math:`(p_a, 1 - p_a)`, so
                its mask does not depend on the other labels' heads) or ``"binary"`` (a
                single logit, ``(N,)`` or ``(N, 1)``: labels 0 and 1). With
                ``"softmax"``, outputs that look like probabilities already get a
                warning. Default: ``"softmax"``.
            seed (int, torch.Generator or None, optional): Seed of the random fill
                draws. The same seed gives the same masks. ``None`` draws one seed from
                PyTorch's global RNG, so ``torch.manual_seed`` makes runs repeatable; an
                int or a generator leaves the global RNG untouched. Each example gets its
                own random stream, derived from the seed and its position in ``inputs``.
            show_progress (bool, optional): Show a ``tqdm`` progress bar over the steps
                with the current mean loss per example. Default: ``False``.
            max_examples_per_batch (int, optional): The maximum number of model inputs
                (rows) per forward pass, as in Captum's metrics: the examples are
                optimised in consecutive chunks of ``max(1, max_examples_per_batch //
                B)`` (each step of a chunk evaluates ``B`` masked copies of each of its
                examples). The masks are those of an unchunked run. ``None`` optimises
                all examples together. Default 256, as in the metrics: on CPU, chunks of
                a few hundred masked inputs per step ran 20 to 35% faster than all
                examples at once (``bench/bench_batch_sizes.py``).
            fill (optional): Deprecated alias of ``baselines`` (a
                :class:`DeprecationWarning`; giving both raises a :class:`TypeError`).

        Returns:
            *Tensor* or *tuple* of *Tensor* of **attributions**:
            - **attributions** (*Tensor* or *tuple[Tensor, ...]*): The learned masks
              :math:`m`, values in ``[0, 1]``, in the container of ``inputs``, each
              broadcast to its input's shape (over channels, or from groups), in its
              dtype and on its device.

        Examples::

            >>> import torch
            >>> from torch import nn
            >>> from captum_soundness.attr import SimpleMasking
            >>> from captum_soundness.fills import NoiseFill
            >>> model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
            >>> x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            >>> masking = SimpleMasking(model)
            >>> masks = masking.attribute(x, target=[0, 1, 2, 3], baselines=NoiseFill(),
            ...                           n_fill_samples=4, steps=20, seed=0)
            >>> masks.shape
            torch.Size([4, 1, 28, 28])
        """
        call = _check_call(
            inputs,
            target,
            additional_forward_args,
            _or_default(resolve_baselines(baselines, fill, stacklevel=4), self.baselines),
            "baselines" if fill is UNSET else "fill",
            feature_mask,
            resolve_preset(
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
            ),
            head,
            show_progress,
            max_examples_per_batch,
        )
        generator = make_generator(seed, call.xs[0].device, "seed")  # before the RNG fork
        warn_if_training(self.forward_func, "SimpleMasking")
        return self._run(call, generator)

    # ---- helpers ---------------------------------------------------------------------

    def _run(self, call: _Call, generator: torch.Generator) -> Tensor | tuple[Tensor, ...]:
        """Predicts or checks the targets, then learns the masks (model left as found)."""
        with (
            preserved_model(self.forward_func, devices=[call.xs[0].device]),
            torch.enable_grad(),  # also inside a caller's torch.no_grad() block
        ):
            flat, classes = self._targets(call)
            seeds = draw_seeds(generator, call.n) if call.config.random else None
            masks = self._fit_chunks(call, flat, classes, seeds)
        return format_like(
            tuple(m.to(x.dtype).expand_as(x).contiguous() for m, x in zip(masks, call.xs)),
            call.is_tuple,
        )

    def _targets(self, call: _Call) -> tuple[Tensor, int]:
        """Runs the clean inputs once (checked for the head) and resolves the targets.

        Returns the flat index of every example's target into the flattened
        probabilities, and the number of classes (the last dimension of the
        probabilities).
        """
        xs, n, head = call.xs, call.n, call.config.head
        device = xs[0].device
        outs = []
        with torch.no_grad():
            for chunk in chunk_slices(n, call.max_rows):
                index = torch.arange(chunk.start, chunk.stop, device=device)
                args = expand_additional_forward_args(call.args, index)
                out = run_forward(self.forward_func, tuple(x[chunk] for x in xs), args)
                out = head_output(out, chunk.stop - chunk.start, head)
                check_head_values(out, head, "The outputs of `forward_func` on `inputs`", index)
                outs.append(out)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        warn_if_probabilities(out, head, "SimpleMasking")
        labels = num_labels(out.shape, head)
        if call.targets.is_none and len(labels) == 1:
            if head == "binary":
                flat = (out[:, 0] > 0).long()  # the more probable label; 0 on a tie
            else:  # the head's map is monotonic: the argmax of the scores
                flat = out.argmax(dim=1)
        else:
            flat = call.targets.flat((n, *labels), device=device)
        return flat.to(device=device, dtype=torch.long), labels[-1]

    def _fit_chunks(
        self, call: _Call, flat: Tensor, classes: int, seeds: list[int] | None
    ) -> tuple[Tensor, ...]:
        """Optimises the masks chunk by chunk (with a progress bar); one mask per input."""
        cfg = call.config
        per_chunk = None if call.max_rows is None else max(1, call.max_rows // cfg.n_samples)
        chunks = list(chunk_slices(call.n, per_chunk))
        bar = (
            tqdm(total=cfg.steps * len(chunks), desc="SimpleMasking", unit="step")
            if call.show_progress
            else None
        )
        device = call.xs[0].device
        try:
            masks = [
                self._fit(
                    call,
                    tuple(x[chunk] for x in call.xs),
                    flat[chunk],
                    classes,
                    torch.arange(chunk.start, chunk.stop, device=device),
                    None if seeds is None else seeds[chunk],
                    bar,
                )
                for chunk in chunks
            ]
        finally:
            if bar is not None:
                bar.close()
        if len(masks) == 1:
            return masks[0]
        return tuple(torch.cat(parts, dim=0) for parts in zip(*masks))

    def _fit(
        self,
        call: _Call,
        xs: tuple[Tensor, ...],
        target: Tensor,
        classes: int,
        examples: Tensor,
        seeds: Sequence[int] | None,
        bar: Any,
    ) -> tuple[Tensor, ...]:
        """Optimises the masks of one chunk of examples; returns one mask per input."""
        cfg, c = call.config, xs[0].shape[0]
        b = cfg.n_samples
        dtype = param_dtype(xs)
        present = None if call.present is None else call.present[examples]
        params = MaskParams(xs, call.layout, cfg.downsample, dtype, examples, present)
        optimizers = [Adam(logits, cfg.lr) for logits in params.logits]
        # Rows of the model batch are laid out sample-major: row j * c + i is sample j of
        # example i. Additional forward args are repeated once per chunk, not per step.
        rep_args = expand_additional_forward_args(call.args, examples.repeat(b))
        generators = None
        if seeds is not None:
            generators = [torch.Generator(device=xs[0].device).manual_seed(s) for s in seeds]
        fixed = fixed_fills(xs, cfg.fills, examples)
        area_ref = None
        if cfg.area_weight > 0:
            area_ref = area_reference(call.layout.num_positions, cfg.area, params.logits[0])

        for step in range(cfg.steps):
            masks = params.masks()
            masked, samples = compose(xs, masks.inputs, cfg.fills, fixed, b, generators)
            out = head_output(run_forward(self.forward_func, masked, rep_args), b * c, cfg.head)
            per_example = objective_loss(cfg.objective, cfg.head, out, b, target, classes)
            per_example = per_example.to(dtype)
            per_example = add_regularisers(
                per_example, masks, cfg.l1, cfg.tv, cfg.area_weight, area_ref
            )
            bad = ~torch.isfinite(per_example.detach()).all()
            if cfg.head == "probabilities":
                bad = bad | ((out < 0) | (out > 1)).any()
            if bool(bad):  # one check per step
                _raise_not_finite(step, per_example, out, samples, examples, cfg.head)
            loss = per_example.sum() * cfg.scale
            grads = torch.autograd.grad(loss, params.logits)
            lr = lr_at(cfg.lr_schedule, cfg.lr, step, cfg.steps)
            for optimizer, grad in zip(optimizers, grads):
                optimizer.lr = lr
                optimizer.step(grad)
            if bar is not None:
                bar.update(1)
                if step % _PROGRESS_EVERY == 0 or step == cfg.steps - 1:
                    bar.set_postfix(loss=f"{float(per_example.detach().mean()):.4f}")
        with torch.no_grad():
            return params.masks().inputs


@dataclass(frozen=True)
class _Config:
    """The validated hyper-parameters of one :meth:`SimpleMasking.attribute` call."""

    fills: tuple[Fill, ...]
    random: bool
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
    head: str
    scale: float


@dataclass(frozen=True)
class _Call:
    """The checked arguments of one :meth:`SimpleMasking.attribute` call."""

    xs: tuple[Tensor, ...]
    is_tuple: bool
    n: int
    targets: Targets
    args: tuple[Any, ...] | None
    layout: FeatureLayout
    present: Tensor | None
    config: _Config
    show_progress: bool
    max_rows: int | None


def _check_call(
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    baselines: Any,
    baselines_name: str,
    feature_mask: Any,
    recipe: dict[str, Any],
    head: Any,
    show_progress: Any,
    max_examples_per_batch: Any,
) -> _Call:
    """Checks every argument of :meth:`SimpleMasking.attribute` before any model call."""
    xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
    for i, x in enumerate(xs):
        check_finite(x, "`inputs`" if not is_tuple else f"`inputs[{i}]`")
    n = int(xs[0].shape[0])
    fills = format_baselines(baselines, xs, baselines_name)
    layout = FeatureLayout(xs, feature_mask)
    config = _make_config(n, fills, recipe, check_head("softmax" if head is None else head))
    check_mask_layout(xs, layout, config.downsample)
    present = groups_present(layout)
    if present is not None and config.area_weight > 0:
        raise ValueError(
            "`area_weight` > 0 needs the same groups in every example, but the per-example "
            "`feature_mask` leaves some groups out of some examples."
        )
    targets = resolve_targets(target, n, device=xs[0].device)
    if not isinstance(show_progress, bool):
        raise TypeError(f"`show_progress` must be a bool, got {show_progress!r}.")
    return _Call(
        xs=xs,
        is_tuple=is_tuple,
        n=n,
        targets=targets,
        args=check_forward_args(additional_forward_args, n),
        layout=layout,
        present=present,
        config=config,
        show_progress=show_progress,
        max_rows=check_max_examples_per_batch(max_examples_per_batch),
    )


def _make_config(n: int, fills: tuple[Fill, ...], recipe: dict[str, Any], head: str) -> _Config:
    """Checks the hyper-parameters of :meth:`SimpleMasking.attribute` (in signature order).

    ``recipe`` holds the preset's values with the explicit keywords applied
    (:func:`~captum_soundness.attr._recipes.resolve_preset`).

    Deterministic fills (constant, mean, blur, per-example tensors) are drawn once with a
    single sample; when any input's fill is random every input gets ``n_fill_samples``
    rows per example and step. The losses of the examples are summed and scaled by
    ``1 / N``.
    """
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
    random = not all(fill.deterministic for fill in fills)
    return _Config(
        fills=fills,
        random=random,
        n_samples=n_fill_samples if random else 1,
        steps=steps,
        lr=lr,
        lr_schedule=lr_schedule,
        downsample=downsample,
        l1=l1,
        tv=tv,
        objective=objective,
        area=area,
        area_weight=check_nonnegative_float(recipe["area_weight"], "area_weight"),
        head=head,
        scale=1.0 / n,
    )


def _raise_not_finite(
    step: int,
    per_example: Tensor,
    out: Tensor,
    samples: list[Tensor],
    examples: Tensor,
    head: str,
) -> None:
    """Names the cause of a non-finite loss: the fill samples, the model's outputs ``(b *
    c, *S)`` on the masked inputs (outside ``[0, 1]`` for ``head="probabilities"``), or
    else the loss itself."""
    for g in samples:
        check_fill_samples(g, examples)
    when = f"on the masked inputs at step {step + 1}"
    c = examples.shape[0]
    rows = out.detach().reshape(-1, c, *out.shape[1:]).transpose(0, 1)
    check_head_values(rows, head, f"The outputs of `forward_func` {when}", examples)
    where = format_examples(bad_examples(~torch.isfinite(per_example.detach()), examples))
    raise ValueError(f"SimpleMasking: the loss is NaN or infinite {when} (examples {where}).")


def _or_default(baselines: Any, default: Any) -> Any:
    """The call's ``baselines``, or the instance's default when the call gives none."""
    return default if baselines is None else baselines
