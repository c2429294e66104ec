r"""FullGrad (Srinivas and Fleuret, 2019) with a switch for the aggregation of its terms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_soundness._utils.finite import check_finite
from captum_soundness._utils.forward import check_forward_args
from captum_soundness._utils.inputs import format_inputs, format_like, num_examples
from captum_soundness._utils.model_state import find_module, preserved_model, warn_if_training
from captum_soundness._utils.targets import resolve_targets
from captum_soundness._utils.validation import check_choice
from captum_soundness.attr._common import AGGREGATIONS, UPSAMPLE_MODES, aggregate, upsample
from captum_soundness.attr._gradcam_plus_plus import explained_scores, forward_inputs

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
        input_term: :math:`\nabla_x f \odot x`, shaped like the inputs and in their
            container (a tensor, or a tuple with one term per input tensor).
        bias_terms: Layer name (``"name"`` or ``"name#k"`` for the ``k``-th call of a
            module used several times) -> ``(N, *layer_output_shape)``,
            :math:`\nabla_{z_\ell} f \odot b_\ell`, in forward order.
    """

    output: Tensor
    input_term: Tensor | tuple[Tensor, ...]
    bias_terms: dict[str, Tensor] = field(default_factory=dict)

    def total(self) -> Tensor:
        """``(N,)``: the input terms plus all bias terms, each summed over all positions."""
        n = self.output.shape[0]
        terms = self.input_term if isinstance(self.input_term, tuple) else (self.input_term,)
        out = torch.zeros_like(self.output)
        for term in (*terms, *self.bias_terms.values()):
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

    **Inputs.** A tensor or a tuple of tensors (Captum's convention), each of rank >= 2;
    the attributions come back in the same container, each shaped like its input. Each
    input tensor's gradient term :math:`\psi(\nabla_{x_i} f \odot x_i)` is one term
    (rescaled on its own). What an input receives depends on its rank:

    - rank >= 3, ``(N, C, *spatial)`` with 1, 2 or 3 spatial dimensions (sequences,
      images, volumes): its input term summed over channels, plus the bias terms of the
      layers whose outputs have as many spatial dimensions (upsampled to the input),
      broadcast over the channels. With several inputs of that rank a bias term cannot be
      assigned to one of them, and a :class:`ValueError` is raised; a bias term with
      more than 3 spatial dimensions cannot be upsampled and raises too.
    - rank 2, tabular ``(N, F)``: one value per feature, the rescaled
      :math:`\psi(\nabla_x f \odot x)`. The bias terms of an MLP (outputs ``(N, K)``)
      have no positions that correspond to input features, so, as for the final linear
      layer of a CNN, they are part of :meth:`decompose` but not of the map: on a
      tabular model FullGrad's map is the aggregated, rescaled input x gradient.

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
            ``(N, num_classes)`` scores (or ``(N,)``). Not a TorchScript model (traced or
            scripted): its layers run no hooks, so a :class:`TypeError` is raised.

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
        >>> mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        >>> FullGrad(mlp).attribute(torch.randn(4, 5), target=2).shape
        torch.Size([4, 5])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        module = find_module(forward_func)
        if module is None:
            raise TypeError(
                "`forward_func` must be a torch.nn.Module or a bound method of one: FullGrad "
                "needs the model's layers and biases."
            )
        if isinstance(module, torch.jit.ScriptModule):
            raise TypeError(
                "`forward_func` is a TorchScript (traced or scripted) model, whose layers "
                "run no forward hooks: FullGrad could not see its bias terms. Pass the "
                "Python model (torch.nn.Module) instead."
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
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> FullGradDecomposition:
        r"""The raw full-gradient decomposition: input-gradient and bias-gradient terms.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs (rank >= 2, batch
                first), as for :meth:`attribute`.
            target (int, tuple, Tensor or list, optional): Captum's ``TargetType``, as
                for :meth:`attribute`.
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``.

        Returns:
            A :class:`FullGradDecomposition` with signed, un-rescaled terms; its
            ``input_term`` comes in the container of ``inputs``.
        """
        xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
        parts, _ = self._decompose(xs, target, additional_forward_args)
        parts.input_term = format_like(parts.input_term, is_tuple)
        return parts

    def _decompose(
        self, inputs: tuple[Tensor, ...], target: TargetType, additional_forward_args: Any
    ) -> tuple[FullGradDecomposition, dict[str, nn.Module]]:
        """The decomposition (``input_term`` a tuple) and the module of every bias term."""
        for i, x in enumerate(inputs):
            check_finite(x, "`inputs`" if len(inputs) == 1 else f"`inputs[{i}]`")
        n = num_examples(inputs)
        args = check_forward_args(additional_forward_args, n)
        targets = resolve_targets(target, n, device=inputs[0].device)
        warn_if_training(self.forward_func, "FullGrad")
        captured: list[tuple[str, nn.Module, Tensor]] = []
        with preserved_model(self.forward_func, devices=[inputs[0].device]):
            handles = self._hook_bias_layers(captured)
            try:
                xs = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
                with torch.enable_grad():
                    out = forward_inputs(self.forward_func, xs, args)
                    check_finite(out.detach(), "The outputs of `forward_func`")
                    score = explained_scores(out, targets)
                    wrt = [*xs, *(t for _, _, t in captured)]
                    grads = torch.autograd.grad(score.sum(), wrt, allow_unused=True)
            finally:
                for h in handles:
                    h.remove()
        input_term = tuple(
            check_finite(
                (x * g).detach() if g is not None else torch.zeros_like(x.detach()),
                "FullGrad's input-gradient term",
            )
            for x, g in zip(xs, grads[: len(xs)])
        )
        bias_terms, modules = _bias_terms(captured, grads[len(xs) :])
        parts = FullGradDecomposition(
            output=score.detach().reshape(n), input_term=input_term, bias_terms=bias_terms
        )
        return parts, modules

    def _hook_bias_layers(self, captured: list[tuple[str, nn.Module, Tensor]]) -> list[Any]:
        """Forward hooks that record the output of every bias layer (removed by the caller)."""
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

        return [m.register_forward_hook(make_hook(name)) for name, m in self._bias_layers()]

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        aggregation: str = "absolute",
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Computes FullGrad maps.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs, batch first: a
                tensor or a tuple of tensors (multi-input models, called as
                ``forward_func(*inputs, *additional_forward_args)``), each of rank >= 2:
                tabular ``(N, F)``, sequences ``(N, C, L)``, images ``(N, C, H, W)`` or
                volumes ``(N, C, D, H, W)``. See the class docstring for what each rank
                receives.
            target (int, tuple, Tensor or list, optional): Captum's ``TargetType``,
                resolved as Captum resolves it: an int (the same label for every
                example), a tuple (one index into a multi-dimensional output), a tensor
                of one or :math:`N` labels, or a list of :math:`N` ints or tuples.
                ``target=(1, 0)`` is one index into a 3-D output and raises on an
                ``(N, C)`` output. ``None`` explains the predicted label of an ``(N, C)``
                output (or the single score of a one-output model).
            additional_forward_args (Any, optional): Further arguments of
                ``forward_func``; tensors with a batch dimension have :math:`N` rows.
            aggregation (str, optional): :math:`\psi`: ``"absolute"`` (default, as
                published), ``"positive"`` or ``"signed"``.

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, in the container of
            ``inputs``, each shaped like its input: for an input of rank >= 3 the map
            (one value per position, a sum of rescaled terms) broadcast over the
            channels; for a tabular input one value per feature.

        Raises:
            ValueError: Where a bias term cannot be placed on one input (see the class
                docstring), and for the usual bad inputs and targets.
        """
        aggregation = check_choice(aggregation, "aggregation", AGGREGATIONS)
        xs, is_tuple = format_inputs(inputs, "inputs", min_dim=2)
        parts, modules = self._decompose(xs, target, additional_forward_args)
        maps = [_rescale(aggregate(term, aggregation)) for term in parts.input_term]
        maps = [m.sum(dim=1, keepdim=True) if m.dim() >= 3 else m for m in maps]
        for name, term in parts.bias_terms.items():
            i = _input_of_term(xs, term, modules[name], name)
            if i is None:
                continue
            term = _rescale(aggregate(term, aggregation)).sum(dim=1, keepdim=True)
            spatial = tuple(xs[i].shape[2:])
            if tuple(term.shape[2:]) != spatial:
                term = upsample(term, spatial, align_corners=True)
            maps[i] = maps[i] + term
        out = tuple(m.expand_as(x).to(x.dtype).clone() for m, x in zip(maps, xs))
        return format_like(out, is_tuple)


def _bias_terms(
    captured: list[tuple[str, nn.Module, Tensor]], grads: tuple[Tensor | None, ...]
) -> tuple[dict[str, Tensor], dict[str, nn.Module]]:
    r"""The bias-gradient terms :math:`\nabla_{z_\ell} f \odot b_\ell` of the captured layers."""
    bias_terms: dict[str, Tensor] = {}
    modules: dict[str, nn.Module] = {}
    for (name, module, t), g in zip(captured, grads):
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
    return bias_terms, modules


def _input_of_term(
    inputs: tuple[Tensor, ...], term: Tensor, module: nn.Module, name: str
) -> int | None:
    """The input tensor a bias term is mapped onto: the one input of rank >= 3 with as
    many spatial dimensions as the layer's output; ``None`` for terms without spatial
    dimensions (linear layers, outputs ``(N, K)``) or without such an input."""
    if term.dim() < 3 or isinstance(module, nn.Linear):
        return None
    fits = [i for i, x in enumerate(inputs) if x.dim() == term.dim()]
    if not fits:
        return None
    if len(fits) > 1:
        raise ValueError(
            f"FullGrad: the bias term of layer {name!r} (output shape "
            f"{tuple(term.shape)}) could belong to inputs {fits}, which have as many "
            "spatial dimensions; FullGrad cannot tell which one it explains. Explain the "
            "inputs one at a time (fix the others through additional_forward_args)."
        )
    if term.dim() - 2 not in UPSAMPLE_MODES:
        raise ValueError(
            f"FullGrad: the bias term of layer {name!r} has {term.dim() - 2} spatial "
            f"dimensions; it can be mapped onto inputs with 1, 2 or 3 only (linear, "
            "bilinear or trilinear upsampling)."
        )
    return fits[0]
