"""The method registry: ``@register(name, label=..., description=...)`` over builders.

A *builder* ``build(model, settings, context) -> explain_func`` makes a method's
explanation function for any model: ``explain_func(inputs, target=...)`` returns
attributions of the inputs' shape (or ``(N, H, W)`` maps). Nothing in a builder knows the
bundled MNIST model: what a method needs besides the model and the settings (the
:class:`~captum_soundness.fills.DatasetFill` pool, the GradCAM layer) comes in the
:class:`BenchmarkContext`. :meth:`MethodSpec.make_factory` turns a builder into the
``explain_factory(model) -> explain_func`` that the sanity checks call on randomised
copies of the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from captum_soundness.benchmark._settings import BenchmarkSettings

__all__ = [
    "METHODS",
    "BenchmarkContext",
    "ExplainFactory",
    "ExplainFunc",
    "MethodSpec",
    "last_conv_layer",
    "register",
]

ExplainFunc = Callable[..., Tensor]
ExplainFactory = Callable[[nn.Module], ExplainFunc]
Builder = Callable[[nn.Module, "BenchmarkSettings", "BenchmarkContext"], ExplainFunc]


@dataclass
class BenchmarkContext:
    """What a method builder may need besides the model and the settings.

    Attributes:
        pool: ``(P, C, H, W)`` images for :class:`~captum_soundness.fills.DatasetFill`
            (SimpleMasking's fill), on the device of the evaluated inputs, disjoint from
            them.
        gradcam_layer: Name of the model's layer for the CAM methods
            (``model.get_submodule(gradcam_layer)``; see :func:`last_conv_layer`).
    """

    pool: Tensor
    gradcam_layer: str


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name: Command-line name.
        label: Display name.
        description: One line for the report.
        build: ``build(model, settings, context) -> explain_func`` where
            ``explain_func(inputs, target=...)`` returns attributions of the inputs' shape
            (or ``(N, H, W)``).
        sanity: Whether the sanity-check columns apply (not for maps that ignore the
            model, such as the random floor: their similarities would only measure how
            the noise is drawn).
        needs_layer: Whether the method uses ``context.gradcam_layer``.
        needs_pool: Whether the method uses ``context.pool``.
    """

    name: str
    label: str
    description: str
    build: Builder
    sanity: bool = True
    needs_layer: bool = False
    needs_pool: bool = False

    def make_factory(
        self, settings: BenchmarkSettings, context: BenchmarkContext
    ) -> ExplainFactory:
        """``explain_factory(model) -> explain_func`` for these settings and context."""
        return functools.partial(self.build, settings=settings, context=context)


#: The registered methods, in report order (registration order).
METHODS: dict[str, MethodSpec] = {}


def register(
    name: str,
    *,
    label: str,
    description: str,
    sanity: bool = True,
    needs_layer: bool = False,
    needs_pool: bool = False,
) -> Callable[[Builder], Builder]:
    """Registers a builder as the method ``name`` (a decorator; report order = file order).

    Args:
        name: Command-line name (unique).
        label: Display name.
        description: One line for the report.
        sanity: Whether the sanity-check columns apply.
        needs_layer: Whether the builder uses ``context.gradcam_layer``.
        needs_pool: Whether the builder uses ``context.pool``.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Examples::

        >>> from captum.attr import Saliency
        >>> from captum_soundness.benchmark._registry import METHODS, register
        >>> @register("my_saliency", label="Mine", description="Saliency again")
        ... def _mine(model, settings, context):
        ...     return Saliency(model).attribute
        >>> METHODS.pop("my_saliency").label
        'Mine'
    """

    def decorator(build: Builder) -> Builder:
        if name in METHODS:
            raise ValueError(f"A method named {name!r} is already registered.")
        METHODS[name] = MethodSpec(
            name, label, description, build, sanity, needs_layer, needs_pool
        )
        return build

    return decorator


def last_conv_layer(model: nn.Module) -> str:
    """Name of the model's last convolution (``named_modules`` order): the GradCAM layer.

    Raises:
        ValueError: The model has no convolution.

    Examples::

        >>> from torch import nn
        >>> from captum_soundness.benchmark._registry import last_conv_layer
        >>> last_conv_layer(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)))
        '2'
    """
    kinds = ("Conv1d", "Conv2d", "Conv3d")  # TorchScript modules keep the class name
    names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd) or getattr(m, "original_name", "") in kinds
    ]
    if not names:
        raise ValueError(
            "The model has no convolution layer: name the GradCAM layer explicitly "
            "(`gradcam_layer`, --gradcam-layer)."
        )
    return names[-1]
