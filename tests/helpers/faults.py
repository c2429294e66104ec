"""Fault injection for the tests of issue 13: broken models, broken fills, interrupted runs.

- :func:`fault_at_call` makes a model raise from inside ``forward`` at a chosen call
  (after its batch-norm and dropout ran), :func:`count_forward_calls` finds how many
  calls an entry point makes, and :func:`assert_left_as_found` checks that an entry point
  interrupted by the fault leaves the model and the global random states as they were;
- :func:`nonfinite_outputs` (a model's outputs) and :class:`NonFiniteFill` (a fill)
  give NaN or infinite values for the examples that carry a marker value (:data:`MARK`,
  :func:`mark_examples`), so that an error message can be checked to name exactly those
  examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

from captum_soundness.fills import Fill
from helpers.invariants import _global_rng_state, assert_same, model_snapshot

__all__ = [
    "MARK",
    "Fault",
    "NonFiniteFill",
    "assert_left_as_found",
    "count_forward_calls",
    "fault_at_call",
    "mark_examples",
    "nonfinite_outputs",
]

#: Inputs of an example whose values reach this are "marked" (see :func:`mark_examples`).
MARK = 10.0


class Fault(RuntimeError):
    """The exception raised from inside ``forward`` by :func:`fault_at_call`."""


def _last_module(model: nn.Module) -> nn.Module:
    return list(model.modules())[-1]


@contextmanager
def fault_at_call(model: nn.Module, call: int, exc: type[BaseException]) -> Iterator[None]:
    """Inside the block, the ``call``-th forward pass (1-based) of ``model`` raises ``exc``
    from a forward hook on its last module, after every other layer ran (batch-norm
    statistics updated, dropout drawn). The hook is removed on exit."""
    calls = [0]

    def hook(*_: Any) -> None:
        calls[0] += 1
        if calls[0] == call:
            raise exc(f"fault injected at forward call {call}")

    handle = _last_module(model).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def count_forward_calls(model: nn.Module, run: Callable[[], Any]) -> int:
    """How many forward passes of ``model`` (of its last module) ``run()`` makes."""
    calls = [0]
    handle = _last_module(model).register_forward_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    try:
        run()
    finally:
        handle.remove()
    return calls[0]


def assert_left_as_found(
    model: nn.Module, run: Callable[[], Any], call: int, exc: type[BaseException]
) -> None:
    """Asserts that ``run()``, with ``model`` raising ``exc`` at forward call ``call``,
    raises ``exc`` and leaves the model (:func:`helpers.invariants.model_snapshot`) and
    the global random states as they were."""
    before, rng = model_snapshot(model), _global_rng_state()
    with fault_at_call(model, call, exc), pytest.raises(exc, match="fault injected"):
        run()
    after = model_snapshot(model)
    for key in before:
        assert_same(after[key], before[key], path=f"model {key} after a fault at call {call}")
    assert_same(_global_rng_state(), rng, path="global random states after a fault")


def mark_examples(inputs: Any, examples: list[int]) -> Any:
    """A copy of ``inputs`` (a tensor or a tuple of tensors) whose ``examples`` hold
    ``10 * MARK`` everywhere (still finite): every masked input of those examples keeps a
    value of at least ``MARK``."""
    if isinstance(inputs, tuple):
        return tuple(mark_examples(x, examples) for x in inputs)
    marked = inputs.clone()
    marked[examples] = 10 * MARK
    return marked


def _marked_rows(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).amax(dim=1) >= MARK


@contextmanager
def nonfinite_outputs(model: nn.Module, value: float, after: int = 0) -> Iterator[None]:
    """Inside the block, ``model`` returns ``value`` (NaN or infinite) as the outputs of
    marked inputs (all inputs with ``after > 0``, from forward call ``after + 1`` on),
    through a forward hook on the model itself (removed on exit)."""
    calls = [0]

    def hook(_module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if after:
            bad = torch.full((out.shape[0],), calls[0] > after, device=out.device)
        else:
            bad = _marked_rows(args[0])
        return torch.where(bad.unsqueeze(1), torch.full_like(out, value), out)

    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class NonFiniteFill(Fill):
    """Fill 0, except ``value`` (NaN or infinite) for marked examples; random or not."""

    def __init__(self, value: float, deterministic: bool) -> None:
        self.value, self.deterministic = value, deterministic

    def _sample(
        self, inputs: torch.Tensor, n_samples: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        bad = _marked_rows(inputs).view(1, -1, *[1] * (inputs.dim() - 1))
        zeros = torch.zeros(n_samples, *inputs.shape, dtype=inputs.dtype)
        return torch.where(bad, torch.full_like(zeros, self.value), zeros)
