r"""GradCAM++ (Chattopadhay et al., 2018) with a switch for the gradient aggregation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from captum._utils.common import _format_additional_forward_args
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import GradientAttribution, LayerAttribution
from torch import Tensor
from torch.nn import Module

from .._forward import check_forward_args, run_forward
from .._model_state import preserved_model, warn_if_training
from .._validation import check_choice, check_inputs, check_targets

__all__ = ["AGGREGATIONS", "LayerGradCamPlusPlus", "aggregate"]

#: Values of ``aggregation`` for :class:`LayerGradCamPlusPlus` and
#: :class:`~captum_soundness.attr.FullGrad`.
AGGREGATIONS = ("signed", "positive", "absolute")


def aggregate(values: Tensor, aggregation: str) -> Tensor:
    """Applies an aggregation: ``"signed"`` (identity), ``"positive"`` (ReLU), ``"absolute"``.

    Args:
        values: Any tensor.
        aggregation: One of :data:`AGGREGATIONS`.

    Returns:
        Tensor of the same shape.
    """
    check_choice(aggregation, "aggregation", AGGREGATIONS)
    if aggregation == "positive":
        return F.relu(values)
    if aggregation == "absolute":
        return values.abs()
    return values


def resolve_targets(
    forward_func: Callable[..., Any], inputs: Tensor, target: TargetType, args: Any
) -> TargetType:
    """Captum targets, with ``None`` meaning the predicted label for multi-output models.

    Models with one output per example keep ``target=None``. Lists, ints and tensors are
    checked for length and kind (not range, which the forward pass checks).
    """
    n = inputs.shape[0]
    if target is not None:
        return check_targets(target, n, device=inputs.device)
    with torch.no_grad():
        out = run_forward(forward_func, inputs, args)
    if out.dim() == 1 or (out.dim() == 2 and out.shape[1] == 1):
        return None
    if out.dim() != 2 or out.shape[0] != n:
        raise ValueError(
            f"`forward_func` must return (N,) or (N, num_classes) scores, got shape "
            f"{tuple(out.shape)} for {n} inputs."
        )
    return out.argmax(dim=1)


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
    issued when it is in training mode.

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
    """

    def __init__(self, forward_func: Callable[..., Any], layer: Module) -> None:
        if not callable(forward_func):
            raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}.")
        if not isinstance(layer, Module):
            raise TypeError(f"`layer` must be a torch.nn.Module, got {type(layer).__name__}.")
        LayerAttribution.__init__(self, forward_func, layer)
        GradientAttribution.__init__(self, forward_func)

    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        aggregation: str = "positive",
        relu_attributions: bool = True,
        attribute_to_layer_input: bool = False,
    ) -> Tensor:
        r"""Computes GradCAM++ maps at the layer.

        Args:
            inputs (Tensor): Inputs ``(N, C, *spatial)``.
            target (int, list or Tensor, optional): Label per example (Captum's
                ``TargetType``). ``None`` explains the predicted label (or the single
                output of a model with one output per example).
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``.
            aggregation (str, optional): :math:`\psi` applied to the gradients in the
                channel weights: ``"positive"`` (default, the published GradCAM++),
                ``"signed"`` or ``"absolute"``.
            relu_attributions (bool, optional): Apply a ReLU to the map (default
                ``True``, as published).
            attribute_to_layer_input (bool, optional): Use the layer's input instead of
                its output as :math:`A`. Default: ``False``.

        Returns:
            *Tensor* ``(N, 1, *layer_spatial)``: the maps (one channel, the layer's
            spatial size; layers with output ``(N, K)`` give ``(N, 1)``).
        """
        inputs = check_inputs(inputs, min_dim=2)
        aggregation = check_choice(aggregation, "aggregation", AGGREGATIONS)
        if not isinstance(relu_attributions, bool):
            raise TypeError(f"`relu_attributions` must be a bool, got {relu_attributions!r}.")
        if not isinstance(attribute_to_layer_input, bool):
            raise TypeError(
                f"`attribute_to_layer_input` must be a bool, got {attribute_to_layer_input!r}."
            )
        args = check_forward_args(additional_forward_args, inputs.shape[0])
        warn_if_training(self.forward_func, "LayerGradCamPlusPlus")
        with preserved_model(self.forward_func):
            targets = resolve_targets(self.forward_func, inputs, target, args)
            grads, evals = compute_layer_gradients_and_eval(
                self.forward_func,
                self.layer,
                (inputs,),
                targets,
                _format_additional_forward_args(args),
                attribute_to_layer_input=attribute_to_layer_input,
            )
        if len(grads) != 1:
            raise ValueError(
                "`layer` must have a single tensor as its "
                f"{'input' if attribute_to_layer_input else 'output'}; got {len(grads)}."
            )
        return gradcam_plus_plus_map(
            grads[0].detach(), evals[0].detach(), aggregation, relu_attributions
        )


def gradcam_plus_plus_map(
    grads: Tensor, acts: Tensor, aggregation: str = "positive", relu: bool = True
) -> Tensor:
    r"""GradCAM++ map from layer gradients and activations ``(N, K, *spatial)``.

    See :class:`LayerGradCamPlusPlus` for the formulas.

    Returns:
        Tensor ``(N, 1, *spatial)``.
    """
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
    return F.relu(cam) if relu else cam
