r"""FullGrad (Srinivas and Fleuret, 2019) with a switch for the aggregation of its terms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import GradientAttribution
from torch import Tensor, nn

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args, run_forward, target_scores
from captum_soundness._utils.model_state import find_module, preserved_model, warn_if_training
from captum_soundness._utils.validation import check_choice, check_inputs, check_targets
from captum_soundness.attr._common import AGGREGATIONS, aggregate, check_spatial_dims, upsample

__all__ = ["FullGrad", "FullGradDecomposition"]

_BIAS_MODULES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


@dataclass
class FullGradDecomposition:
    r"""The raw (un-aggregated, un-rescaled) terms of the full-gradient decomposition.

    For a network :math:`f` built from piecewise-linear pieces (ReLU, max-pooling,
    convolutions, linear layers and batch-norm in evaluation mode, all with biases), the
    output decomposes exactly (Srinivas and Fleuret, 2019, eq. 2):

    .. math::

        f(x) = \sum_i (\nabla_x f \odot x)_i
            + \sum_{\ell} \sum_{c, \text{pos}} (\nabla_{z_\ell} f \odot b_\ell)_{c, \text{pos}}

    where :math:`z_\ell` is the output of layer :math:`\ell` and :math:`b_\ell` its bias
    broadcast over the output (for batch-norm the effective bias
    :math:`\beta - \mu \gamma / \sqrt{\sigma^2 + \epsilon}`). :meth:`total` sums both parts.

    Attributes:
        output: ``(N,)`` the explained scores :math:`f(x)`.
        input_term: ``(N, C, *spatial)``, :math:`\nabla_x f \odot x`.
        bias_terms: Layer name (``"name"`` or ``"name#k"`` for the ``k``-th call of a
            module used several times) -> ``(N, *layer_output_shape)``,
            :math:`\nabla_{z_\ell} f \odot b_\ell`, in forward order.
    """

    output: Tensor
    input_term: Tensor
    bias_terms: dict[str, Tensor] = field(default_factory=dict)

    def total(self) -> Tensor:
        """``(N,)``: the input term plus all bias terms, each summed over all positions."""
        n = self.output.shape[0]
        out = self.input_term.reshape(n, -1).sum(dim=1)
        for term in self.bias_terms.values():
            out = out + term.reshape(n, -1).sum(dim=1)
        return out


def _effective_bias(module: nn.Module) -> Tensor | None:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.running_mean is None or module.running_var is None:
            shift = module.bias
            return None if shift is None else shift.detach()
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight
        shift = -module.running_mean * scale
        if module.bias is not None:
            shift = shift + module.bias
        return shift.detach()
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach()


def _rescale(t: Tensor) -> Tensor:
    """Per-sample min-max rescale to [0, 1] over all non-batch dimensions (0 if constant),
    in float32 at least."""
    flat = t.reshape(t.shape[0], -1).to(torch.promote_types(t.dtype, torch.float32))
    lo = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - lo
    out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, 1), 0)
    return out.view_as(t)


class FullGrad(GradientAttribution):
    r"""FullGrad saliency (Srinivas and Fleuret, 2019) with the aggregation as a switch.

    .. math::

        S(x) = \psi\big(\nabla_x f \odot x\big)
            + \sum_{\ell} \sum_{c} \psi\big(\nabla_{b_\ell} f \odot b_\ell\big)_c

    Each term (the input-gradient term and the bias-gradient term of every layer with a
    bias) is aggregated with :math:`\psi`, rescaled per example to ``[0, 1]`` by its
    minimum and maximum (over channels and positions), summed over its channels and
    upsampled (linear/bilinear/trilinear, ``align_corners=True``) to the input's size, as
    in the reference implementation. Layers with biases are convolutions, linear layers
    and batch-norm layers (effective bias
    :math:`\beta - \mu \gamma / \sqrt{\sigma^2 + \epsilon}` from the running statistics;
    batch-norm without running statistics normalises with batch statistics, is not
    piecewise linear in its input, and enters with its plain shift :math:`\beta`, so
    :meth:`decompose` is then not exact);
    only layers whose output has spatial dimensions (convolutions and batch-norm on
    feature maps) enter the map; the bias terms of layers without spatial output (e.g.
    the final linear layer) are part of :meth:`decompose` but, as in the reference
    implementation, not of the map.

    :math:`\psi` is the ``aggregation``: ``"absolute"`` (default, the published method),
    ``"positive"`` (ReLU) or ``"signed"`` (identity). Khakzar et al. (2020) show that the
    absolute aggregation makes the maps insensitive to the target class and to parameter
    randomisation.

    :meth:`decompose` returns the raw, signed terms, which sum to the output for
    piecewise-linear networks (the completeness of the full-gradient decomposition).

    The map is computed with forward hooks on the bias layers (always removed); the model
    is left as found (training flags, ``requires_grad``, ``.grad``, buffers). ``forward_func``
    must be an :class:`torch.nn.Module` or a bound method of one. Batch-norm uses its
    running statistics: evaluate in ``model.eval()`` mode (a :class:`UserWarning` is
    issued otherwise).

    Args:
        forward_func (torch.nn.Module or bound method): The model, returning
            ``(N, num_classes)`` scores (or ``(N,)``).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_soundness.attr import FullGrad
        >>> model = nn.Sequential(
        ...     nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        ...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
        ... ).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> FullGrad(model).attribute(x, target=[0, 3]).shape
        torch.Size([2, 3, 8, 8])
        >>> parts = FullGrad(model).decompose(x, target=[0, 3])
        >>> torch.allclose(parts.total(), parts.output, atol=1e-4)
        True
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        module = find_module(forward_func)
        if module is None:
            raise TypeError(
                "`forward_func` must be a torch.nn.Module or a bound method of one: FullGrad "
                "needs the model's layers and biases."
            )
        super().__init__(forward_func)
        self.model = module

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def _bias_layers(self) -> list[tuple[str, nn.Module]]:
        return [
            (name or type(m).__name__, m)
            for name, m in self.model.named_modules()
            if isinstance(m, _BIAS_MODULES) and _effective_bias(m) is not None
        ]

    def decompose(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> FullGradDecomposition:
        r"""The raw full-gradient decomposition: input-gradient and bias-gradient terms.

        Args:
            inputs (Tensor): Inputs ``(N, C, *spatial)``.
            target (int, list or Tensor, optional): Label per example; ``None`` explains
                the predicted label (or the single output of a one-output model).
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``.

        Returns:
            A :class:`FullGradDecomposition` with signed, un-rescaled terms.
        """
        return self._decompose(inputs, target, additional_forward_args)[0]

    def _decompose(
        self, inputs: Tensor, target: TargetType, additional_forward_args: Any
    ) -> tuple[FullGradDecomposition, dict[str, nn.Module]]:
        inputs = check_finite(check_inputs(inputs, min_dim=2), "`inputs`")
        args = check_forward_args(additional_forward_args, inputs.shape[0])
        warn_if_training(self.forward_func, "FullGrad")
        n = inputs.shape[0]
        layers = self._bias_layers()
        captured: list[tuple[str, nn.Module, Tensor]] = []
        calls: dict[str, int] = {}

        def make_hook(name: str) -> Callable[..., Any]:
            def hook(module: nn.Module, _inp: Any, out: Any) -> Any:
                if not isinstance(out, Tensor):
                    return None
                k = calls.get(name, 0)
                calls[name] = k + 1
                captured.append((name if k == 0 else f"{name}#{k}", module, out))
                # Downstream in-place operations (e.g. ReLU(inplace=True)) act on a clone,
                # so the captured tensor stays the layer's output.
                return out.clone()

            return hook

        targets = check_targets(target, n, device=inputs.device, allow_none=True)
        with preserved_model(self.forward_func, devices=[inputs.device]):
            handles = []
            try:
                for name, module in layers:
                    handles.append(module.register_forward_hook(make_hook(name)))
                x = inputs.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    out = run_forward(self.forward_func, x, args)
                    check_finite(out.detach(), "The outputs of `forward_func`")
                    score, _ = target_scores(out, targets, n)
                    wrt = [x] + [t for _, _, t in captured]
                    grads = torch.autograd.grad(score.sum(), wrt, allow_unused=True)
            finally:
                for h in handles:
                    h.remove()
        input_term = check_finite((grads[0] * x).detach(), "FullGrad's input-gradient term")
        bias_terms: dict[str, Tensor] = {}
        modules: dict[str, nn.Module] = {}
        for (name, module, t), g in zip(captured, grads[1:]):
            if g is None:
                continue
            bias = _effective_bias(module)
            assert bias is not None
            if isinstance(module, nn.Linear):
                shape = [1] * (t.dim() - 1) + [-1]
            else:
                shape = [1, -1] + [1] * (t.dim() - 2)
            term = (g * bias.to(g).view(shape)).detach()
            bias_terms[name] = check_finite(term, f"FullGrad's bias-gradient term of {name!r}")
            modules[name] = module
        parts = FullGradDecomposition(
            output=score.detach().reshape(n), input_term=input_term, bias_terms=bias_terms
        )
        return parts, modules

    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        aggregation: str = "absolute",
    ) -> Tensor:
        r"""Computes FullGrad maps.

        Args:
            inputs (Tensor): Inputs ``(N, C, *spatial)`` with 1, 2 or 3 spatial
                dimensions.
            target (int, list or Tensor, optional): Label per example (Captum's
                ``TargetType``); ``None`` explains the predicted label.
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``.
            aggregation (str, optional): :math:`\psi`: ``"absolute"`` (default, as
                published), ``"positive"`` or ``"signed"``.

        Returns:
            *Tensor* of **attributions**:
            - **attributions** (*Tensor*): The map, one value per position (a sum of
              rescaled terms), broadcast over the channels to the inputs' shape.
        """
        aggregation = check_choice(aggregation, "aggregation", AGGREGATIONS)
        inputs = check_inputs(inputs)
        check_spatial_dims(inputs)
        spatial = tuple(inputs.shape[2:])
        parts, modules = self._decompose(inputs, target, additional_forward_args)
        sal = _rescale(aggregate(parts.input_term, aggregation)).sum(dim=1, keepdim=True)
        for name, term in parts.bias_terms.items():
            if term.dim() != inputs.dim() or isinstance(modules[name], nn.Linear):
                continue
            term = _rescale(aggregate(term, aggregation)).sum(dim=1, keepdim=True)
            if tuple(term.shape[2:]) != spatial:
                term = upsample(term, spatial, align_corners=True)
            sal = sal + term
        return sal.expand_as(inputs).to(inputs.dtype).clone()
