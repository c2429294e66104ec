"""A recorder around an explanation function: calls it, times it, keeps what it returned.

Entry points hand an :class:`ExplainRecorder` to
:func:`~captum_soundness.metrics.evaluate_all_labels` in place of the user's
``explain_func`` when they need the maps afterwards (the benchmark's previews, the
sanity checks' map correlations) or want to reuse them (``replay``: a method whose maps
do not depend on a setting is computed once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_soundness._utils.explain import call_explain

__all__ = ["ExplainRecorder"]


def _synchronize(inputs: Tensor) -> None:
    if inputs.device.type == "cuda":
        torch.cuda.synchronize(inputs.device)


class ExplainRecorder:
    """Wraps ``explain_func(inputs, target)``; records every call.

    Args:
        explain_func: The explanation function, called as :func:`call_explain` does
            (``target`` by keyword when it has a ``target`` parameter).
        explain_kwargs: Extra keyword arguments for every call (e.g. ``{"fill": fill}``).
        replay: Results of an earlier recorder (its :attr:`records`, recorded without
            ``keep``): call ``i`` returns ``replay[i]`` instead of calling
            ``explain_func``; calls beyond ``len(replay)`` call it.
        keep: ``keep(inputs, attributions) -> record``: what :attr:`records` stores for
            each call (default: the attributions as returned), e.g. maps on the CPU.

    Attributes:
        records: One entry per call, in call order.
        seconds: Wall-clock seconds spent in ``explain_func`` (CUDA synchronised;
            replayed calls cost nothing).
    """

    def __init__(
        self,
        explain_func: Callable[..., Any],
        *,
        explain_kwargs: Mapping[str, Any] | None = None,
        replay: Sequence[Any] | None = None,
        keep: Callable[[Tensor, Any], Any] | None = None,
    ) -> None:
        self.explain_func = explain_func
        self.explain_kwargs = dict(explain_kwargs or {})
        self.replay = replay
        self.keep = keep
        self.records: list[Any] = []
        self.seconds = 0.0

    def __call__(self, inputs: Tensor, target: Tensor) -> Any:
        index = len(self.records)
        if self.replay is not None and index < len(self.replay):
            result = self.replay[index]
        else:
            _synchronize(inputs)
            start = time.perf_counter()
            result = call_explain(self.explain_func, inputs, target, **self.explain_kwargs)
            _synchronize(inputs)
            self.seconds += time.perf_counter() - start
        self.records.append(result if self.keep is None else self.keep(inputs, result))
        return result
