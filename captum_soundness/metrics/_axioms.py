r"""The completeness axiom of Integrated Gradients (Sundararajan et al., 2017).

Integrated Gradients (IG) attributions should add up to the change of the explained
output between the baseline :math:`x'` and the input :math:`x`:

.. math::

    \sum_i \mathrm{IG}_i(x) = F(x) - F(x').

The Riemann (or Gauss-Legendre) approximation with ``n_steps`` points misses this by a
*convergence delta*, which Captum returns signed (``return_convergence_delta=True``).
:func:`ig_completeness_error` turns it into the relative error per example,
:func:`ig_completeness_passes` checks it against a tolerance, and
:func:`ig_steps_for_tolerance` raises ``n_steps`` until every example passes.

This axiom is a property of *additive* attributions and has nothing to do with the
**completeness metric** of Gupta et al. (2022) in :func:`captum_soundness.metrics.
completeness`, which scores how well the top-ranked positions of a saliency map alone
support a label (an insertion-curve quantity in ``[0, 1]``, higher is better). Here lower
is better, and 0 means the attributions add up exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args, run_forward, target_scores
from captum_soundness._utils.maps import unwrap_single
from captum_soundness._utils.model_state import preserved_model
from captum_soundness._utils.validation import (
    check_inputs,
    check_nonnegative_float,
    check_positive_int,
    check_targets,
)

__all__ = ["ig_completeness_error", "ig_completeness_passes", "ig_steps_for_tolerance"]


def _baselines(baselines: Any, inputs: Tensor) -> Tensor:
    if baselines is None:
        return torch.zeros_like(inputs)
    if isinstance(baselines, (tuple, list)):
        if len(baselines) == 1:
            baselines = baselines[0]
        else:
            raise TypeError(
                "`baselines` must be None, a number or a single tensor (multi-input models "
                "are not supported)."
            )
    if isinstance(baselines, bool):
        raise TypeError("`baselines` must be None, a number or a tensor, got bool.")
    if isinstance(baselines, Real):
        return torch.full_like(inputs, float(baselines))
    if not isinstance(baselines, Tensor):
        raise TypeError(
            f"`baselines` must be None, a number or a tensor, got {type(baselines).__name__}."
        )
    try:
        return torch.broadcast_to(baselines.to(inputs), inputs.shape)
    except RuntimeError as err:
        raise ValueError(
            f"`baselines` of shape {tuple(baselines.shape)} does not broadcast to the inputs' "
            f"shape {tuple(inputs.shape)}."
        ) from err


def _scores(
    forward_func: Callable[..., Any], x: Tensor, target: Tensor | None, args: Any
) -> Tensor:
    out = run_forward(forward_func, x, args)
    if target is None and out.dim() == 2 and out.shape[1] != 1:
        raise ValueError(
            f"`target` is required: `forward_func` returns {out.shape[1]} outputs per "
            "example; give the label that the attributions explain."
        )
    return target_scores(out, target, x.shape[0])[0]


def ig_completeness_error(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    baselines: Any = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
) -> Tensor:
    r"""Relative error of the Integrated Gradients completeness axiom, per example.

    .. math::

        e(x) = \frac{\big|\sum_i A_i(x) - (F(x) - F(x'))\big|}{|F(x) - F(x')|}

    for attributions :math:`A` of input :math:`x` against baseline :math:`x'`, where
    :math:`F` is the explained output (the ``target`` score of ``forward_func``: the logit
    if the model returns logits). Exact IG gives :math:`e = 0`; the numerical integral with
    ``n_steps`` points typically needs 20 to 300 steps to get below a few percent
    (Sundararajan et al., 2017). When :math:`F(x) = F(x')` the relative error is
    undefined: it is reported as 0 if the attributions also sum to 0 and ``inf``
    otherwise.

    **Raising n_steps until the error is small.** Recompute the attributions with more
    steps until every example is under the tolerance, e.g. with
    :func:`ig_steps_for_tolerance`, or by hand::

        ig = IntegratedGradients(model)
        for n_steps in (25, 50, 100, 200, 400):
            attr = ig.attribute(x, baselines=b, target=t, n_steps=n_steps)
            if bool((ig_completeness_error(model, x, attr, b, t) <= 0.05).all()):
                break

    Not to be confused with the completeness **metric** of Gupta et al. (2022)
    (:func:`captum_soundness.metrics.completeness`), a score in ``[0, 1]`` of how well a
    map's top positions support a label, which applies to any saliency map; this
    function checks an axiom of additive attributions such as IG, and lower is better.

    Args:
        forward_func: The model, returning ``(N,)`` or ``(N, num_outputs)`` scores; the
            same function the attributions were computed for.
        inputs: Inputs ``(N, C, *spatial)`` (or any ``(N, ...)`` tensor).
        attributions: Attributions of the inputs' shape (a one-tensor tuple, as Captum
            may return, is accepted).
        baselines: The IG baselines :math:`x'`: ``None`` (zeros, Captum's default), a
            number, or a tensor broadcastable to the inputs.
        target: Label per example (Captum's ``TargetType``); may be ``None`` only for
            models with one output per example.
        additional_forward_args: Further arguments of ``forward_func``.

    Returns:
        Tensor ``(N,)`` of relative errors (non-negative).

    Examples::

        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_soundness.metrics import ig_completeness_error
        >>> layers = [torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh()]
        >>> model = torch.nn.Sequential(*layers, torch.nn.Linear(8, 3))
        >>> x = torch.randn(2, 1, 4, 4)
        >>> attr = IntegratedGradients(model).attribute(x, target=1, n_steps=200)
        >>> bool((ig_completeness_error(model, x, attr, target=1) < 0.01).all())
        True
    """
    if not callable(forward_func):
        raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
    inputs = check_inputs(inputs, min_dim=2)
    attributions = unwrap_single(attributions, "`attributions`")
    if not isinstance(attributions, Tensor):
        raise TypeError(
            f"`attributions` must be a torch.Tensor, got {type(attributions).__name__}."
        )
    if attributions.shape != inputs.shape:
        raise ValueError(
            f"`attributions` must have the inputs' shape {tuple(inputs.shape)} (IG "
            f"attributions of every input element), got {tuple(attributions.shape)}."
        )
    n = inputs.shape[0]
    check_finite(inputs, "`inputs`")
    base = check_finite(_baselines(baselines, inputs), "`baselines`")
    check_finite(attributions, "`attributions`")
    targets = check_targets(target, n, device=inputs.device, allow_none=True)
    args = check_forward_args(additional_forward_args, n)
    with preserved_model(forward_func, devices=[inputs.device]), torch.no_grad():
        both = torch.cat([inputs.detach(), base.detach()], dim=0)
        both_args = None
        if args is not None:
            both_args = tuple(
                torch.cat([a, a], dim=0) if isinstance(a, Tensor) and a.dim() > 0 else a
                for a in args
            )
        both_targets = None if targets is None else torch.cat([targets, targets])
        scores = _scores(forward_func, both, both_targets, both_args)
    rows = torch.arange(n, device=scores.device).repeat(2)
    check_finite(scores, "The outputs of `forward_func` on the inputs and baselines", rows)
    dtype = torch.promote_types(scores.dtype, attributions.dtype)
    diff = (scores[:n] - scores[n:]).to(dtype)
    total = attributions.detach().to(dtype).reshape(n, -1).sum(dim=1).to(diff.device)
    gap = (total - diff).abs()
    denom = diff.abs()
    out = gap / denom
    zero = denom == 0
    if bool(zero.any()):
        out = torch.where(zero, torch.where(gap == 0, 0.0, torch.inf).to(out), out)
    return out


def ig_completeness_passes(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    baselines: Any = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    tolerance: float = 0.05,
) -> Tensor:
    r"""Whether the IG completeness axiom holds to a relative ``tolerance``, per example.

    ``ig_completeness_error(...) <= tolerance``; see :func:`ig_completeness_error`.

    Args:
        forward_func, inputs, attributions, baselines, target, additional_forward_args:
            As in :func:`ig_completeness_error`.
        tolerance: Largest accepted relative error (default 0.05, i.e. 5%).

    Returns:
        Boolean tensor ``(N,)``.

    Example: on a linear model, IG is exact with any number of steps::

        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_soundness.metrics import ig_completeness_passes
        >>> linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> x = torch.randn(2, 1, 4, 4)
        >>> attr = IntegratedGradients(linear).attribute(x, target=0, n_steps=10)
        >>> ig_completeness_passes(linear, x, attr, target=0, tolerance=1e-3)
        tensor([True, True])
    """
    tolerance = check_nonnegative_float(tolerance, "tolerance")
    err = ig_completeness_error(
        forward_func, inputs, attributions, baselines, target, additional_forward_args
    )
    return err <= tolerance


def ig_steps_for_tolerance(
    integrated_gradients: Any,
    inputs: Tensor,
    baselines: Any = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    tolerance: float = 0.05,
    steps: Sequence[int] = (25, 50, 100, 200, 400),
    **attribute_kwargs: Any,
) -> tuple[int, Tensor, Tensor]:
    r"""Raises ``n_steps`` of Integrated Gradients until the completeness error is small.

    Tries the step counts in ``steps`` in order and stops at the first one for which
    :func:`ig_completeness_error` is at most ``tolerance`` for every example.

    Args:
        integrated_gradients: A :class:`captum.attr.IntegratedGradients` instance (anything
            with ``attribute(inputs, baselines=..., target=..., additional_forward_args=...,
            n_steps=...)`` and a ``forward_func`` attribute).
        inputs, baselines, target, additional_forward_args: As in
            :func:`ig_completeness_error`.
        tolerance: Largest accepted relative error (default 0.05).
        steps: Increasing step counts to try.
        **attribute_kwargs: Further keyword arguments of ``attribute`` (e.g. ``method``,
            ``internal_batch_size``).

    Returns:
        ``(n_steps, attributions, errors)``: the first step count that passes (the last
        one tried if none does: check ``errors``), its attributions and the ``(N,)``
        relative errors.

    Example: the fewest steps (of 25, 50, 100, ...) that bring a small network to 5%::

        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_soundness.metrics import ig_steps_for_tolerance
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh())
        >>> ig = IntegratedGradients(torch.nn.Sequential(net, torch.nn.Linear(8, 3)))
        >>> n_steps, attr, err = ig_steps_for_tolerance(ig, torch.randn(2, 1, 4, 4), target=0)
        >>> bool((err <= 0.05).all())
        True
    """
    tolerance = check_nonnegative_float(tolerance, "tolerance")
    if not hasattr(integrated_gradients, "attribute") or not hasattr(
        integrated_gradients, "forward_func"
    ):
        raise TypeError(
            "`integrated_gradients` must be an attribution object such as "
            "captum.attr.IntegratedGradients(model)."
        )
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
        raise TypeError("`steps` must be a non-empty sequence of positive ints.")
    steps = [check_positive_int(s, "steps") for s in steps]
    if "n_steps" in attribute_kwargs:
        raise TypeError("Give the step counts through `steps`, not `n_steps`.")
    forward_func = integrated_gradients.forward_func
    devices = [inputs.device] if isinstance(inputs, Tensor) else []
    with preserved_model(forward_func, freeze_parameters=False, devices=devices):
        for n_steps in steps:
            attr = integrated_gradients.attribute(
                inputs,
                baselines=baselines,
                target=target,
                additional_forward_args=additional_forward_args,
                n_steps=n_steps,
                **attribute_kwargs,
            )
            err = ig_completeness_error(
                forward_func, inputs, attr, baselines, target, additional_forward_args
            )
            if bool((err <= tolerance).all()):
                break
    return n_steps, attr, err
