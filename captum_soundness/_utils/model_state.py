"""Leaving the user's model as it was found.

:func:`preserved_model` snapshots a model's training flags, ``requires_grad`` flags,
parameter ``.grad`` tensors and buffers, and restores all of them on exit, whatever
happened inside. Attribution methods that only need gradients with respect to the
*inputs* also switch parameter gradients off inside the block, which makes every
backward pass cheaper.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["find_module", "preserved_model", "warn_if_training"]


def find_module(forward_func: Callable[..., Any]) -> nn.Module | None:
    """Returns the :class:`torch.nn.Module` behind ``forward_func`` if there is one.

    ``forward_func`` may be a module or a bound method of a module (e.g.
    ``model.forward``); for any other callable ``None`` is returned.
    """
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module):
        return owner
    return None


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    # The package root (captum_soundness/), not this module's folder (_utils/).
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package_dir + os.sep
    ):
        frame = frame.f_back
        level += 1
    return level


def warn_if_training(forward_func: Callable[..., Any], method: str) -> None:
    """Warns when the model behind ``forward_func`` is in training mode.

    The warning points at the user's call (the first frame outside this package).
    """
    module = find_module(forward_func)
    if module is not None and module.training:
        warnings.warn(
            f"{method}: the model is in training mode (dropout and batch-norm statistics "
            "then change the outputs). Call model.eval() first; the mode is left as it is.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )


@contextmanager
def preserved_model(
    forward_func: Callable[..., Any], *, freeze_parameters: bool = True
) -> Iterator[None]:
    """Context manager that restores the model behind ``forward_func`` on exit.

    Restored: every submodule's ``training`` flag, every parameter's ``requires_grad``
    flag and ``.grad`` tensor, and every buffer's values (batch-norm running statistics of
    a model left in training mode, for example).

    Args:
        forward_func: A module, a bound method of a module, or any other callable (then
            nothing is tracked).
        freeze_parameters: Switch ``requires_grad`` off on all parameters inside the
            block, so that backward passes compute input gradients only.
    """
    module = find_module(forward_func)
    if module is None:
        yield
        return
    params = list(module.parameters())
    modes = [(m, m.training) for m in module.modules()]
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        if freeze_parameters:
            for p in params:
                p.requires_grad_(False)
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                if b.shape == saved.shape:
                    b.copy_(saved)
        for m, mode in modes:
            m.training = mode
        for p, req, grad in zip(params, requires, grads):
            p.requires_grad_(req)
            p.grad = grad
