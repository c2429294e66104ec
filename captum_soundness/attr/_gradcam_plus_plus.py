r"""GradCAM++ (Chattopadhay et al., 2018) with a switch for the gradient aggregation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import GradientAttribution, LayerAttribution
from torch import Tensor
from torch.nn import Module

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args, run_forward, target_scores
from captum_soundness._utils.model_state import find_module, preserved_model, warn_if_training
from captum_soundness._utils.validation import check_choice, check_inputs, check_targets
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
        model = find_module(forward_func)
        if model is not None and not any(layer is m for m in model.modules()):
            raise ValueError(
                f"`layer` ({type(layer).__name__}) is not a submodule of the model: pass one "
                "of its layers, e.g. model.layer4 or model.get_submodule('features.10')."
            )
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
        inputs = check_finite(check_inputs(inputs, min_dim=2), "`inputs`")
        aggregation = check_choice(aggregation, "aggregation", AGGREGATIONS)
        if not isinstance(relu_attributions, bool):
            raise TypeError(f"`relu_attributions` must be a bool, got {relu_attributions!r}.")
        if not isinstance(attribute_to_layer_input, bool):
            raise TypeError(
                f"`attribute_to_layer_input` must be a bool, got {attribute_to_layer_input!r}."
            )
        n = inputs.shape[0]
        args = check_forward_args(additional_forward_args, n)
        targets = check_targets(target, n, device=inputs.device, allow_none=True)
        warn_if_training(self.forward_func, "LayerGradCamPlusPlus")
        grads, acts = self._layer_gradients(inputs, targets, args, attribute_to_layer_input)
        maps = gradcam_plus_plus_map(grads, acts, aggregation, relu_attributions)
        return check_finite(
            maps, "The GradCAM++ maps (from the layer's activations and gradients)"
        )

    def _layer_gradients(
        self, inputs: Tensor, targets: Tensor | None, args: Any, to_input: bool
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
        with preserved_model(self.forward_func, devices=[inputs.device]), torch.enable_grad():
            try:
                x = inputs.detach().requires_grad_(True)
                out = run_forward(self.forward_func, x, args)
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
            scores, _ = target_scores(out, targets, inputs.shape[0])
            (grads,) = torch.autograd.grad(scores.sum(), captured[0])
        return grads.detach(), captured[0].detach()


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
