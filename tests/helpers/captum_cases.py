"""Cases of the Captum conformance suite (``tests/test_captum_conformance.py``, issue 11).

Captum's own test models (:mod:`captum.testing.helpers.basic_models`), every form of
Captum's ``TargetType`` (valid and invalid), a wrapper that gives the tabular model 3-D
outputs ``(N, A, C)``, and Captum's own answer for a target: which score of every example
:class:`captum.attr.Saliency` explains, or ``None`` where Captum raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from captum._utils.common import _select_targets
from captum.attr import Saliency
from captum.testing.helpers.basic_models import (
    BasicLinearModel_Multilayer,
    BasicModel_ConvNet_One_Conv,
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)
from torch import Tensor, nn

__all__ = [
    "OUTPUTS",
    "TARGETS",
    "N",
    "ThreeDimOutput",
    "as_index_tuples",
    "attributions_like",
    "captum_flat_target",
    "expected_flat_target",
    "find_layer",
    "forward",
    "image_inputs",
    "input_case",
    "pair_case",
    "seeded_linear_model",
    "tabular_inputs",
]

#: Examples per batch in the target cases.
N = 2

#: Every form of Captum's ``TargetType`` for ``N = 2`` examples, valid and invalid (a
#: factory per case, so that no test shares a tensor with another).
TARGETS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "int": lambda: 1,
    "negative_int": lambda: -1,
    "int_out_of_range": lambda: 5,
    "tuple_of_1": lambda: (1,),
    "tuple_of_2": lambda: (1, 0),
    "tuple_of_2_negative": lambda: (-1, -2),
    "empty_tuple": lambda: (),
    "tensor_1_element": lambda: torch.tensor([1]),
    "tensor_0d": lambda: torch.tensor(1),
    "tensor_0d_float": lambda: torch.tensor(1.0),
    "tensor_of_N": lambda: torch.tensor([0, 1]),
    "tensor_of_N_int32": lambda: torch.tensor([1, 0], dtype=torch.int32),
    "tensor_of_N_negative": lambda: torch.tensor([-1, 0]),
    "tensor_2d": lambda: torch.tensor([[0], [1]]),
    "tensor_2x2": lambda: torch.tensor([[0, 1], [1, 0]]),
    "float_tensor": lambda: torch.tensor([0.0, 1.0]),
    "bool_tensor": lambda: torch.tensor([True, False]),
    "list_of_N_ints": lambda: [0, 1],
    "list_of_N_negative_ints": lambda: [-1, 0],
    "list_of_N_tuples_of_1": lambda: [(1,), (0,)],
    "list_of_N_tuples_of_2": lambda: [(1, 0), (2, 1)],
    "list_of_wrong_length": lambda: [0, 1, 1],
    "list_mixed": lambda: [0, (1,)],
    "float": lambda: 1.0,
    "bool": lambda: True,
}


class ThreeDimOutput(nn.Module):
    r"""Captum's ``BasicModel_MultiLayer`` with 3-D outputs ``(N, A=3, C=2)``.

    With :math:`o = f(x)` the model's ``(N, 2)`` output, the rows are :math:`o`,
    :math:`2o` and :math:`x_{:, :2} - o`: three heads with different gradients, the
    inner model called once (so that GradCAM++ can hook its layers).
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = BasicModel_MultiLayer()

    def forward(self, x: Tensor) -> Tensor:
        o = self.model(x)
        return torch.stack((o, 2 * o, x[:, :2] - o), dim=1)


#: The output shapes of the target cases: Captum's tabular model as it is ``(N, C)``,
#: Captum's linear tabular model ``(N, C)`` whose labels have different gradients (see
#: :func:`seeded_linear_model`), and the first wrapped to ``(N, A, C)``.
OUTPUTS: dict[str, Callable[[], nn.Module]] = {
    "N_C": lambda: BasicModel_MultiLayer().eval(),
    "N_C_linear": lambda: seeded_linear_model(),
    "N_A_C": lambda: ThreeDimOutput().eval(),
}


def seeded_linear_model(seed: int = 0) -> nn.Module:
    """Captum's ``BasicLinearModel_Multilayer(3, 4, 3)`` with a seeded default
    initialisation (built on a fork of the global RNG, which it leaves untouched).

    Unlike ``BasicModel_MultiLayer``, whose two logits differ by a constant (so its
    softmax does not depend on the input), its probabilities move with the input: the
    checks that need curves to react to the map or to the fill use it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BasicLinearModel_Multilayer(3, 4, 3).eval()


def tabular_inputs(n: int = N, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, 3)`` inputs of ``BasicModel_MultiLayer`` with distinct features."""
    base = torch.tensor([[1.0, 2.5, 3.0], [0.5, -1.0, 2.0], [2.0, 0.25, -0.5]], dtype=dtype)
    return base[:n].clone()


def image_inputs(n: int = N, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, 1, 4, 4)`` inputs of ``BasicModel_ConvNet_One_Conv`` (its convolution's
    biases are -50 and -75: values around 10 keep both channels active)."""
    g = torch.Generator().manual_seed(11)
    return (8.0 + 6.0 * torch.rand(n, 1, 4, 4, generator=g)).to(dtype)


def attributions_like(x: Tensor, seed: int = 3) -> Tensor:
    """A fixed map of the shape of ``x`` with distinct values (no ties)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(x.numel(), generator=g).view(x.shape).to(x.dtype) / x.numel()


def input_case(name: str) -> tuple[nn.Module, Tensor, str]:
    """A single-input case: ``(model, inputs, layer name for GradCAM++)``."""
    if name == "tabular":
        return BasicModel_MultiLayer().eval(), tabular_inputs(), "linear1"
    if name == "image":
        return BasicModel_ConvNet_One_Conv().eval(), image_inputs(), "conv1"
    if name == "batch_of_one_tabular":
        return BasicModel_MultiLayer().eval(), tabular_inputs(1), "linear1"
    if name == "batch_of_one_image":
        return BasicModel_ConvNet_One_Conv().eval(), image_inputs(1), "conv1"
    if name == "float64_tabular":
        model = BasicModel_MultiLayer().double().eval()
        return model, tabular_inputs(dtype=torch.float64), "linear1"
    if name == "float64_image":
        model = BasicModel_ConvNet_One_Conv().double().eval()
        return model, image_inputs(dtype=torch.float64), "conv1"
    raise KeyError(name)


def pair_case(name: str) -> tuple[nn.Module, tuple[Tensor, Tensor], Any, str]:
    """A 2-tuple case: ``(model, (x1, x2), additional_forward_args, layer name)``."""
    if name == "tabular_pair":
        x = tabular_inputs(3)
        model = BasicModel_MultiLayer_MultiInput().eval()
        return model, (x[:N], x[1:] * 0.5), (x[:N].flip(1), 1), "linear1"
    if name == "image_pair":
        x = image_inputs(2 * N) * 0.5
        return BasicModel_ConvNet_One_Conv().eval(), (x[:N], x[N:]), None, "conv1"
    raise KeyError(name)


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The first submodule of ``model`` whose last name component is ``name``."""
    return next(m for path, m in model.named_modules() if path.split(".")[-1] == name)


def forward(model: Callable[..., Tensor], inputs: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The model's outputs on ``inputs`` (a tensor or a tuple, as Captum calls it)."""
    with torch.no_grad():
        return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def captum_flat_target(model: nn.Module, inputs: Tensor, target: Any) -> Tensor | None:
    """What Captum makes of ``target``: ``None`` where ``Saliency(model).attribute``
    raises (any exception), else the ``(N,)`` flat index into ``output.flatten(1)`` of
    the score it explains (Captum's ``_select_targets`` applied to the indices)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Saliency(model).attribute(inputs, target=target)
    except Exception:
        return None
    out = forward(model, inputs)
    per_example = out[0].numel()
    index = torch.arange(per_example).expand(out.shape[0], per_example).reshape(out.shape)
    return _select_targets(index, target).reshape(out.shape[0])


def expected_flat_target(
    model: nn.Module, inputs: Tensor, target: Any, *, none_is_prediction: bool = True
) -> Tensor | None:
    """The score ours must explain, or ``None`` where ours must raise.

    Captum's answer (:func:`captum_flat_target`), except for ``target=None`` with
    ``none_is_prediction``: the documented rule of the package (the predicted label,
    ``argmax``, of ``(N, C)`` outputs; a required target for other outputs, where
    Captum's gradient methods raise too).
    """
    if target is None and none_is_prediction:
        out = forward(model, inputs)
        return out.argmax(dim=1) if out.dim() == 2 else None
    return captum_flat_target(model, inputs, target)


def as_index_tuples(flat: Tensor, output_shape: torch.Size) -> list[tuple[int, ...]]:
    """The flat indices as Captum's list of ``N`` index tuples (the canonical form)."""
    shape = tuple(output_shape[1:])
    rows = torch.stack(torch.unravel_index(flat, shape), dim=1)
    return [tuple(int(v) for v in row) for row in rows]
