r"""GradCAM++ (Chattopadhay et al., 2018) with a switch for the gradient aggregation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor
from torch.nn import Module

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args
from captum_soundness._utils.inputs import format_inputs, format_like, num_examples
from captum_soundness._utils.model_state import find_module, preserved_model, warn_if_training
from captum_soundness._utils.targets import Targets, resolve_targets
from captum_soundness._utils.validation import check_choice
from captum_soundness.attr._common import AGGREGATIONS, aggregate

__all__ = ["LayerGradCamPlusPlus"]


class LayerGradCamPlusPlus(LayerAttribution, GradientAttribution):
    r"""GradCAM++ for a layer, with the gradient aggregation as a switch.

    With :math:`A^k` the activations of channel :math:`k` of ``layer`` (output, or input
    with ``attribute_to_layer_input=True``) and :math:`g^k_{ij} = \partial S /
    \partial A^k_{ij}` the gradients of the target score :math:`S` (the model's output
    for the target label, e.g. a logit), GradCAM++ with the closed form for an
    exponential score uses

    .. math::

        \alpha^k_{ij} &= \frac{(g^k_{ij})^2}
            {2 (g^k_{ij})^2 + \sum_{a,b} A^k_{ab} \, (g^k_{ij})^3}
            \qquad (0 \text{ where the denominator is } 0), \\
        w_k &= \sum_{i,j} \alpha^k_{ij} \, \psi(g^k_{ij}), \\
        L_{ij} &= \operatorname{ReLU}\Big(\sum_k w_k A^k_{ij}\Big)
            \quad (\text{ReLU only with } \texttt{relu\_attributions=True}),

    where :math:`\psi` is the ``aggregation``: ``"positive"`` (:math:`\operatorname{ReLU}`,
    the published method), ``"signed"`` (identity) or ``"absolute"``
    (:math:`|\cdot|`). Khakzar et al. (2020) show that the positive aggregation makes the
    maps insensitive to the target class and to parameter randomisation; the switch lets
    the sanity checks (:mod:`captum_soundness.sanity`) show it.

    Like Captum's :class:`~captum.attr.LayerGradCam`, the map has the layer's shape with
    one channel, ``(N, 1, *layer_spatial)``; upsample it to the input with
    :meth:`~captum.attr.LayerAttribution.interpolate`. The model is left as found
    (training flags, ``requires_grad``, ``.grad``, buffers); a :class:`UserWarning` is
    issued when it is in training mode. Inputs and targets follow Captum's conventions
    (a tensor or a tuple of tensors; Captum's ``TargetType``), and :meth:`attribute` is
    wrapped like Captum's methods, so :class:`~captum.attr.NoiseTunnel` and
    :func:`captum.metrics.sensitivity_max` work with it.

    Args:
        forward_func (Callable or torch.nn.Module): The model or its forward function,
            returning ``(N, num_classes)`` scores (or ``(N,)``).
        layer (torch.nn.Module): The layer whose activations weigh the map, usually the
            last convolutional layer (or block).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import LayerAttribution
        >>> from captum_soundness.attr import LayerGradCamPlusPlus
        >>> model = nn.Sequential(
        ...     nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
        ... ).eval()
        >>> cam = LayerGradCamPlusPlus(model, model[0])
        >>> x = torch.randn(2, 3, 8, 8)
        >>> maps = cam.attribute(x, target=[1, 4])
        >>> maps.shape, LayerAttribution.interpolate(maps, (8, 8)).shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 8, 8]))
        >>> from captum.attr import NoiseTunnel
        >>> NoiseTunnel(cam).attribute(x, nt_samples=3, stdevs=0.1, target=1).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, forward_func: Callable[..., Any], layer: Module) -> None:
        if not callable(forward_func):
            raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
        if not isinstance(layer, Module):
            raise TypeError(f"`layer` must be a torch.nn.Module, got {type(layer).__name__}.")
        model = find_module(forward_func)
        if isinstance(model, torch.jit.ScriptModule) or isinstance(layer, torch.jit.ScriptModule):
            raise TypeError(
                "`forward_func` or `layer` is a TorchScript (traced or scripted) model, whose "
                "layers run no forward hooks: GradCAM++ could not see the activations. Pass "
                "the Python model (torch.nn.Module) and one of its layers."
            )
        if model is not None and not any(layer is m for m in model.modules()):
            raise ValueError(
                f"`layer` ({type(layer).__name__}) is not a submodule of the model: pass one "
                "of its layers, e.g. model.layer4 or model.get_submodule('features.10')."
            )
        LayerAttribution.__init__(self, forward_func, layer)
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        aggregation: str = "positive",
        relu_attributions: bool = True,
        attribute_to_layer_input: bool = False,
    ) -> Tensor | tuple[Tensor]:
        r"""Computes GradCAM++ maps at the layer.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs, batch first: a
                tensor or a tuple of tensors (multi-input models, called as
                ``forward_func(*inputs, *additional_forward_args)``), each of rank >= 2
                with the same number :math:`N` of examples, as in Captum's
                :class:`~captum.attr.LayerGradCam`.
            target (int, tuple, Tensor or list, optional): Captum's ``TargetType``,
                resolved as Captum resolves it: an int (the same label for every
                example), a tuple (one index into a multi-dimensional output), a tensor
                of one or :math:`N` labels, or a list of :math:`N` ints or tuples. A tuple
                is never read as one label per example: ``target=(1, 0)`` on an
                ``(N, C)`` output raises. ``None`` explains the predicted label of an
                ``(N, C)`` output, or the single score of a model with one output per
                example.
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``; tensors with a batch dimension have :math:`N` rows.
            aggregation (str, optional): :math:`\psi` applied to the gradients in the
                channel weights: ``"positive"`` (default, the published GradCAM++),
                ``"signed"`` or ``"absolute"``.
            relu_attributions (bool, optional): Apply a ReLU to the map (default
                ``True``, as published).
            attribute_to_layer_input (bool, optional): Use the layer's input instead of
                its output as :math:`A`. Default: ``False``.

        Returns:
            *Tensor* ``(N, 1, *layer_spatial)``: the maps (one channel, the layer's
            spatial size; layers with output ``(N, K)`` give ``(N, 1)``), in the
            container of ``inputs``: the tensor for a tensor, a 1-tuple holding it for a
            tuple of inputs (one layer, one map). Captum's
            :class:`~captum.attr.LayerGradCam` returns the bare tensor for tuple inputs
            too, which :func:`captum.metrics.sensitivity_max` (it calls the method on a
            tuple and expects a tuple back) cannot use; here it can.
        """
        xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
        for i, x in enumerate(xs):
            check_finite(x, "`inputs`" if len(xs) == 1 else f"`inputs[{i}]`")
        aggregation = check_choice(aggregation, "aggregation", AGGREGATIONS)
        if not isinstance(relu_attributions, bool):
            raise TypeError(f"`relu_attributions` must be a bool, got {relu_attributions!r}.")
        if not isinstance(attribute_to_layer_input, bool):
            raise TypeError(
                f"`attribute_to_layer_input` must be a bool, got {attribute_to_layer_input!r}."
            )
        n = num_examples(xs)
        args = check_forward_args(additional_forward_args, n)
        targets = resolve_targets(target, n, device=xs[0].device)
        warn_if_training(self.forward_func, "LayerGradCamPlusPlus")
        grads, acts = self._layer_gradients(xs, targets, args, attribute_to_layer_input)
        maps = gradcam_plus_plus_map(grads, acts, aggregation, relu_attributions)
        what = "The GradCAM++ maps (from the layer's activations and gradients)"
        return format_like((check_finite(maps, what),), is_tuple)

    def _layer_gradients(
        self, inputs: tuple[Tensor, ...], targets: Targets, args: Any, to_input: bool
    ) -> tuple[Tensor, Tensor]:
        """One forward and one backward pass: the layer's activations and their gradients."""
        where = "input" if to_input else "output"
        captured: list[Tensor] = []

        def keep(value: Any) -> Any:
            tensor = value[0] if isinstance(value, tuple) and len(value) == 1 else value
            if not isinstance(tensor, Tensor):
                raise ValueError(
                    f"`layer` must have a single tensor as its {where}; got "
                    f"{type(value).__name__}."
                )
            captured.append(tensor)
            # Later in-place operations (e.g. ReLU(inplace=True)) act on a copy, so the
            # captured tensor keeps the activations.
            return tensor.clone()

        if to_input:
            handle = self.layer.register_forward_pre_hook(lambda _m, inp: (keep(inp),))
        else:
            handle = self.layer.register_forward_hook(lambda _m, _inp, out: keep(out))
        with preserved_model(self.forward_func, devices=[inputs[0].device]), torch.enable_grad():
            try:
                xs = tuple(x.detach().requires_grad_(True) for x in inputs)
                out = forward_inputs(self.forward_func, xs, args)
            finally:
                handle.remove()
            if not captured:
                raise ValueError("`layer` was not called by `forward_func`: is it in the model?")
            if len(captured) > 1:
                raise ValueError(
                    f"`layer` was called {len(captured)} times in one forward pass; GradCAM++ "
                    "needs a layer that is called once (give each call its own module)."
                )
            check_finite(out.detach(), "The outputs of `forward_func`")
            scores = explained_scores(out, targets)
            (grads,) = torch.autograd.grad(scores.sum(), captured[0])
        return grads.detach(), captured[0].detach()


def forward_inputs(
    forward_func: Callable[..., Any], inputs: tuple[Tensor, ...], args: tuple[Any, ...] | None
) -> Tensor:
    """``forward_func(*inputs, *args)`` (Captum's call of a multi-input model); a tensor."""
    out = forward_func(*inputs, *(args or ()))
    if not isinstance(out, Tensor):
        raise TypeError(
            f"`forward_func` must return a tensor, got {type(out).__name__}. Wrap models "
            "that return tuples or dicts so that they return one tensor of scores."
        )
    return out


def explained_scores(output: Tensor, targets: Targets) -> Tensor:
    """The explained score of every example, ``(N,)`` and differentiable.

    The target selects one score per example as Captum's ``_select_targets`` does
    (:class:`~captum_soundness._utils.targets.Targets`); an ``(N,)`` output counts as
    ``(N, 1)``. Without a target, a model with one score per example explains that score
    and an ``(N, C)`` output its predicted label (``argmax``); other outputs need a
    target.

    Raises:
        ValueError: If the output has no row per example, if the target does not select
            one score per example, or if it lies outside the output.
    """
    n = targets.n
    if output.dim() == 0 or output.shape[0] != n:
        raise ValueError(
            f"`forward_func` must return one row of scores per input, got shape "
            f"{tuple(output.shape)} for {n} inputs."
        )
    flat = output.reshape(n, -1)
    if output.dim() == 1:
        output = output.unsqueeze(1)
    if targets.is_none:
        if flat.shape[1] == 1:
            return flat[:, 0]
        if output.dim() != 2:
            raise ValueError(
                f"`target` is required for outputs of shape {tuple(output.shape)}: give an "
                "int, a tuple index into the output, or one per example (Captum's TargetType)."
            )
        index = output.detach().argmax(dim=1)
    else:
        index = targets.flat(output.shape, device=output.device)
    return flat.gather(1, index.view(-1, 1)).squeeze(1)


def gradcam_plus_plus_map(
    grads: Tensor, acts: Tensor, aggregation: str = "positive", relu: bool = True
) -> Tensor:
    r"""GradCAM++ map from layer gradients and activations ``(N, K, *spatial)``.

    See :class:`LayerGradCamPlusPlus` for the formulas.

    The arithmetic runs in float32 at least (:math:`g^3` underflows in float16 and loses
    most digits in bfloat16); the map comes back in the activations' dtype.

    Returns:
        Tensor ``(N, 1, *spatial)``.
    """
    dtype = acts.dtype
    compute = torch.promote_types(dtype, torch.float32)
    grads, acts = grads.to(compute), acts.to(compute)
    spatial = tuple(range(2, acts.dim()))
    g2 = grads * grads
    g3 = g2 * grads
    act_sum = acts.sum(dim=spatial, keepdim=True) if spatial else acts
    denom = 2 * g2 + act_sum * g3
    safe = torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = torch.where(denom != 0, g2 / safe, torch.zeros_like(denom))
    weights = alpha * aggregate(grads, aggregation)
    if spatial:
        weights = weights.sum(dim=spatial, keepdim=True)
    cam = (weights * acts).sum(dim=1, keepdim=True)
    return (F.relu(cam) if relu else cam).to(dtype)
