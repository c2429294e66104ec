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

from captum_soundness._utils.baselines import per_input
from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args, run_forward
from captum_soundness._utils.inputs import format_inputs
from captum_soundness._utils.maps import check_attribution_rows
from captum_soundness._utils.model_state import preserved_model
from captum_soundness._utils.targets import Targets, resolve_targets
from captum_soundness._utils.validation import check_nonnegative_float, check_positive_int

__all__ = ["ig_completeness_error", "ig_completeness_passes", "ig_steps_for_tolerance"]


def _baselines(baselines: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Captum's IG baselines, one tensor per input tensor broadcast to its shape."""
    return tuple(_one_baseline(b, x, f"`{name}`") for b, x, name in per_input(baselines, inputs))


def _one_baseline(baseline: Any, x: Tensor, name: str) -> Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, bool) or not isinstance(baseline, (Real, Tensor)):
        raise TypeError(
            f"{name} must be None, a number or a tensor (Captum's IG baselines), got "
            f"{type(baseline).__name__}."
        )
    if isinstance(baseline, Real):
        return torch.full_like(x, float(baseline))
    try:
        return torch.broadcast_to(baseline.to(x), x.shape)
    except RuntimeError as err:
        raise ValueError(
            f"{name} of shape {tuple(baseline.shape)} does not broadcast to the inputs' "
            f"shape {tuple(x.shape)}."
        ) from err


def _name(what: str, i: int, count: int) -> str:
    return f"`{what}`" if count == 1 else f"`{what}[{i}]`"


def _scores(
    forward_func: Callable[..., Any], x: tuple[Tensor, ...], targets: Targets, args: Any
) -> Tensor:
    """The explained score of every row: ``F(x)`` at the target (one score per row)."""
    rows = x[0].shape[0]
    out = run_forward(forward_func, x, args)
    if out.dim() == 0 or out.shape[0] != rows:
        raise ValueError(
            f"`forward_func` must return one row of scores per input, got shape "
            f"{tuple(out.shape)} for {rows} inputs."
        )
    out = out.unsqueeze(1) if out.dim() == 1 else out
    flat = out.reshape(rows, -1)
    if targets.is_none:
        if flat.shape[1] != 1:
            raise ValueError(
                f"`target` is required: `forward_func` returns {flat.shape[1]} outputs per "
                "example; give the label that the attributions explain."
            )
        return flat[:, 0]
    index = targets.flat(out.shape, flat.device)
    return flat.gather(1, index.view(-1, 1)).squeeze(1)


def ig_completeness_error(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Tensor | tuple[Tensor, ...],
    baselines: Any = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
) -> Tensor:
    r"""Relative error of the Integrated Gradients completeness axiom, per example.

    .. math::

        e(x) = \frac{\big|\sum_i A_i(x) - (F(x) - F(x'))\big|}{|F(x) - F(x')|}

    for attributions :math:`A` of input :math:`x` against baseline :math:`x'`, where
    :math:`F` is the explained output (the ``target`` score of ``forward_func``: the logit
    if the model returns logits) and the sum runs over every element of every input
    tensor (Captum's IG attributes tuples of inputs jointly). Exact IG gives
    :math:`e = 0`; the numerical integral with ``n_steps`` points typically needs 20 to
    300 steps to get below a few percent (Sundararajan et al., 2017). When
    :math:`F(x) = F(x')` the relative error is undefined: it is reported as 0 if the
    attributions also sum to 0 and ``inf`` otherwise.

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
        forward_func: The model, returning ``(N,)`` or ``(N, *S)`` scores; the same
            function the attributions were computed for.
        inputs: A tensor or a tuple of tensors (Captum's convention), each ``(N, ...)``
            with rank >= 2.
        attributions: In the container of ``inputs`` (a one-tensor tuple, as Captum may
            return, is accepted for a single tensor), each of its input's shape.
        baselines: The IG baselines :math:`x'`, as Captum's IG takes them: ``None``
            (zeros, Captum's default), a number, a tensor broadcastable to the inputs
            (one row for all or one per example), or for tuple inputs a tuple of these.
        target: Captum's ``TargetType`` (int, tuple index into a multi-dimensional
            output, tensor of 1 or ``N`` elements, list of ``N`` ints or tuples); may be
            ``None`` only for models with one output per example.
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
    xs, _ = format_inputs(inputs, "inputs", min_dim=2)
    n = xs[0].shape[0]
    check_attribution_rows(attributions, len(xs), n, "`attributions`")
    attrs = tuple(attributions) if isinstance(attributions, (tuple, list)) else (attributions,)
    m = len(xs)
    for i, (a, x) in enumerate(zip(attrs, xs)):
        if a.shape != x.shape:
            raise ValueError(
                f"{_name('attributions', i, m)} must have the inputs' shape {tuple(x.shape)} "
                f"(IG attributions of every input element), got {tuple(a.shape)}."
            )
        check_finite(x, _name("inputs", i, m))
    base = _baselines(baselines, xs)
    for i, b in enumerate(base):  # the baselines first, then the attributions
        check_finite(b, _name("baselines", i, m))
    for i, a in enumerate(attrs):
        check_finite(a, _name("attributions", i, m))
    targets = resolve_targets(target, n, device=xs[0].device)
    args = check_forward_args(additional_forward_args, n)
    rows = torch.arange(n, device=xs[0].device).repeat(2)
    with preserved_model(forward_func, devices=[xs[0].device]), torch.no_grad():
        both = tuple(torch.cat([x.detach(), b.detach()], dim=0) for x, b in zip(xs, base))
        both_args = None
        if args is not None:
            both_args = tuple(
                torch.cat([a, a], dim=0) if isinstance(a, Tensor) and a.dim() > 0 else a
                for a in args
            )
        scores = _scores(forward_func, both, targets.rows(rows), both_args)
    check_finite(scores, "The outputs of `forward_func` on the inputs and baselines", rows)
    dtype = torch.promote_types(scores.dtype, attrs[0].dtype)
    diff = (scores[:n] - scores[n:]).to(dtype)
    total = sum(a.detach().to(dtype).reshape(n, -1).sum(dim=1).to(diff.device) for a in attrs)
    gap = (total - diff).abs()
    denom = diff.abs()
    out = gap / denom
    zero = denom == 0
    if bool(zero.any()):
        out = torch.where(zero, torch.where(gap == 0, 0.0, torch.inf).to(out), out)
    return out


def ig_completeness_passes(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    attributions: Tensor | tuple[Tensor, ...],
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
    inputs: Tensor | tuple[Tensor, ...],
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
    first = inputs[0] if isinstance(inputs, tuple) and inputs else inputs
    devices = [first.device] if isinstance(first, Tensor) else []
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
