"""Leaving the user's model, and the global RNG, as they were found.

:func:`preserved_model` snapshots a model's training flags, ``requires_grad`` flags,
parameter ``.grad`` tensors, buffers and hooks, and forks PyTorch's global RNG; all of
them are restored on exit, whatever happened inside (an exception raised by the model,
``KeyboardInterrupt``). Attribution methods that only need gradients with respect to the
*inputs* also switch parameter gradients off inside the block, which makes every
backward pass cheaper. :func:`warn_if_training` warns about a model in training mode,
pointing at the user's line (:func:`user_stacklevel`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import captum.log
import torch
from torch import Tensor, nn

__all__ = ["find_module", "preserved_model", "user_stacklevel", "warn_if_training"]


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


#: The folder of ``captum.log``, whose ``log_usage`` wraps the ``attribute`` methods.
_CAPTUM_LOG_DIR = os.path.dirname(os.path.abspath(captum.log.__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package
    (and outside Captum's ``captum.log`` wrapper around ``attribute`` methods)."""
    # The package root (captum_soundness/), not this module's folder (_utils/).
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skipped = (package_dir + os.sep, _CAPTUM_LOG_DIR)
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skipped):
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
            stacklevel=user_stacklevel(),
        )


#: The hook tables of a module that :func:`preserved_model` restores: hooks registered
#: inside the block are removed on exit (with their entries in the companion tables).
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_COMPANIONS = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


def _rng_devices(module: nn.Module | None, devices: Iterable[Any]) -> tuple[list[Any], str]:
    """The accelerator devices whose global RNG :func:`preserved_model` forks, and their type.

    The devices of the model's parameters and buffers and ``devices`` (e.g. the inputs'),
    CPU and ``meta`` excluded (the CPU generator is always forked). One accelerator type.
    """
    found: dict[torch.device, None] = {}
    tensors = [] if module is None else [*module.parameters(), *module.buffers()]
    for device in [*(t.device for t in tensors), *(torch.device(d) for d in devices)]:
        if device.type not in ("cpu", "meta"):
            found.setdefault(device, None)
    if not found:
        return [], "cuda"
    kind = next(iter(found)).type
    return [d for d in found if d.type == kind], kind


@contextmanager
def preserved_model(
    forward_func: Callable[..., Any],
    *,
    freeze_parameters: bool = True,
    devices: Iterable[torch.device | str] = (),
) -> Iterator[None]:
    """Context manager that leaves the model behind ``forward_func`` and the global RNG
    as they were found, whatever happens inside (an exception, ``KeyboardInterrupt``).

    The one guard of every entry point that runs the user's model. Restored on exit:

    - every submodule's ``training`` flag;
    - every parameter's ``requires_grad`` flag and ``.grad`` tensor (the same object);
    - every buffer: the same tensor object with its values and shape (batch-norm running
      statistics and batch counts of a model left in training mode, for example);
      buffers registered inside the block are removed;
    - the module and parameter hooks: hooks registered inside the block are removed;
    - PyTorch's global RNG, on the CPU and on the accelerators of the model's parameters,
      buffers and ``devices``: dropout in a training-mode model (or an explanation
      function drawing from the global RNG) does not advance it.

    Parameter values are not copied (nothing in this package writes them).

    Args:
        forward_func: A module, a bound method of a module, or any other callable (then
            only the global RNG is restored).
        freeze_parameters: Switch ``requires_grad`` off on all parameters inside the
            block, so that backward passes compute input gradients only. Leave it off
            around calls of a user's explanation function, which may need them.
        devices: Further devices whose RNG is restored (e.g. the inputs' device).
    """
    module = find_module(forward_func)
    rng_devices, device_type = _rng_devices(module, devices)
    with torch.random.fork_rng(devices=rng_devices, device_type=device_type):
        if module is None:
            yield
            return
        with _restored(module, freeze_parameters):
            yield


@contextmanager
def _restored(module: nn.Module, freeze_parameters: bool) -> Iterator[None]:
    """Snapshots and restores the state of ``module`` listed in :func:`preserved_model`."""
    params = list(module.parameters())
    modules = list(module.modules())
    modes = [(m, m.training) for m in modules]
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    buffers = [
        (m, name, b, b.detach().clone())
        for m in modules
        for name, b in m._buffers.items()
        if b is not None
    ]
    # keys(): the buffer table of a TorchScript module cannot be iterated directly
    buffer_names = [(m, set(m._buffers.keys())) for m in modules]
    hooks = [(m, table, set(getattr(m, table))) for m in modules for table in _HOOK_TABLES]
    param_hooks = [(p, set(p._backward_hooks or {})) for p in params]
    try:
        if freeze_parameters:
            for p in params:
                p.requires_grad_(False)
        yield
    finally:
        with torch.no_grad():
            for m, names in buffer_names:  # buffers registered inside the block
                for name in [k for k in m._buffers.keys() if k not in names]:  # noqa: SIM118
                    del m._buffers[name]
            for m, name, b, saved in buffers:
                m._buffers[name] = b
                if b.shape == saved.shape:
                    b.copy_(saved)
                else:  # resized in place: the same object, its old shape and values
                    b.set_(saved)
        for m, mode in modes:
            m.training = mode
        for p, req, grad in zip(params, requires, grads):
            p.requires_grad_(req)
            p.grad = grad
        _remove_new_hooks(hooks, param_hooks)


def _remove_new_hooks(
    hooks: list[tuple[nn.Module, str, set[int]]], param_hooks: list[tuple[Tensor, set[int]]]
) -> None:
    """Removes the hooks that are not in the snapshot (registered inside the block)."""
    for m, table, keep in hooks:
        registered = getattr(m, table)
        for key in [k for k in registered if k not in keep]:
            del registered[key]
            for companion in _HOOK_COMPANIONS:
                getattr(m, companion, {}).pop(key, None)
    for p, keep in param_hooks:
        registered = p._backward_hooks or {}
        for key in [k for k in registered if k not in keep]:
            del registered[key]
