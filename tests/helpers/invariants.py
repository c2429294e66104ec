"""Reusable checks of the invariants every entry point that runs a model must keep.

Each check runs a zero- or one-argument callable (usually a ``lambda`` around the entry
point), asserts the invariant and returns the result of the (first) call:

- :func:`assert_chunking_invariant`: ``max_examples_per_batch`` of ``None``, 1, 2 give
  the same result;
- :func:`assert_seeded_determinism`: the same seed gives the same result, and an explicit
  seed leaves the global random state untouched;
- :func:`assert_global_seed_repeatable`: with ``seed=None`` (one seed drawn from torch's
  global RNG, PyTorch's rule) ``torch.manual_seed`` before two calls gives the same
  result, and the call advances torch's global RNG (NumPy's and Python's stay untouched);
- :func:`assert_global_rng_untouched`: torch's, NumPy's and Python's global random states
  are the same after the call;
- :func:`assert_model_untouched`: module modes, ``requires_grad`` and ``.grad`` of every
  parameter, parameters and buffers (bit-identical) and hook counts are the same after the
  call.

:func:`assert_same` compares results of any shape (tensors, numbers, sequences, mappings,
dataclasses, objects); :func:`mark_model_state` gives a model a non-default state (a
frozen parameter, a stored gradient) so that an entry point resetting it is caught.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "assert_chunking_invariant",
    "assert_global_rng_untouched",
    "assert_global_seed_repeatable",
    "assert_model_untouched",
    "assert_same",
    "assert_seeded_determinism",
    "mark_model_state",
    "model_snapshot",
]


def assert_same(
    actual: Any,
    expected: Any,
    *,
    atol: float = 0.0,
    rtol: float = 0.0,
    ignore: Collection[str] = (),
    path: str = "result",
) -> None:
    """Asserts that two results are equal (up to ``atol``/``rtol`` for floating values).

    Tensors must agree in dtype, shape and values (NaN equals NaN); sequences, mappings,
    dataclasses and objects with a ``__dict__`` are compared item by item, skipping the
    keys and attributes named in ``ignore`` (e.g. ``"settings"`` that record the call's
    arguments). ``path`` names the compared value in the failure message.
    """
    kw = {"atol": atol, "rtol": rtol, "ignore": ignore}
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: {type(actual).__name__} != Tensor"
        torch.testing.assert_close(
            actual, expected, atol=atol, rtol=rtol, equal_nan=True, msg=lambda m: f"{path}: {m}"
        )
    elif isinstance(expected, np.ndarray):
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=path)
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, (int, float)), f"{path}: {actual!r} != {expected!r}"
        same = math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
        assert same or (math.isnan(actual) and math.isnan(expected)), (
            f"{path}: {actual!r} != {expected!r}"
        )
    elif isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{path}: {type(actual).__name__} is no mapping"
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            if key not in ignore:
                assert_same(actual[key], expected[key], **kw, path=f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, **kw, path=f"{path}[{i}]")
    elif dataclasses.is_dataclass(expected) or hasattr(expected, "__dict__"):
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        fields = (
            [f.name for f in dataclasses.fields(expected)]
            if dataclasses.is_dataclass(expected)
            else list(vars(expected))
        )
        for name in fields:
            if name not in ignore:
                a, e = getattr(actual, name), getattr(expected, name)
                assert_same(a, e, **kw, path=f"{path}.{name}")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def assert_chunking_invariant(
    call: Callable[[int | None], Any],
    *,
    sizes: Iterable[int] = (1, 2),
    atol: float = 0.0,
    rtol: float = 0.0,
    ignore: Collection[str] = (),
    name: str = "max_examples_per_batch",
) -> Any:
    """Asserts that ``call(max_examples_per_batch)`` gives the same result for ``None`` (one
    batch) and each of ``sizes`` (:func:`assert_same` with ``atol``, ``rtol``, ``ignore``);
    returns the result for ``None``. ``name`` names the argument in failure messages.

    Example:
    ``assert_chunking_invariant(lambda m: insertion_curve(..., max_examples_per_batch=m))``.
    Batched float32 arithmetic may round differently per batch size: pass ``atol`` then.
    """
    expected = call(None)
    for size in sizes:
        assert_same(
            call(size),
            expected,
            atol=atol,
            rtol=rtol,
            ignore=ignore,
            path=f"{name}={size}",
        )
    return expected


def _global_rng_state() -> dict[str, Any]:
    return {
        "torch": torch.random.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the legacy global state)
        "python": random.getstate(),
    }


def assert_global_rng_untouched(call: Callable[[], Any]) -> Any:
    """Asserts that ``call()`` leaves torch's, NumPy's and Python's global random states as
    they were (it neither draws from nor reseeds them); returns its result."""
    before = _global_rng_state()
    result = call()
    after = _global_rng_state()
    assert torch.equal(after["torch"], before["torch"]), "torch's global RNG state changed"
    assert_same(after["numpy"], before["numpy"], path="NumPy's global RNG state")
    assert after["python"] == before["python"], "Python's global RNG state changed"
    return result


def assert_seeded_determinism(
    call: Callable[[int], Any],
    *,
    seed: int = 0,
    other_seed: int | None = None,
    ignore: Collection[str] = (),
) -> Any:
    """Asserts that ``call(seed)`` twice gives the same result (:func:`assert_same`, skipping
    ``ignore``) and leaves the global random states untouched; with ``other_seed``, also that
    ``call(other_seed)`` differs (the seed is used). Returns the first result.

    Example: ``assert_seeded_determinism(lambda s: method.attribute(x, 0, seed=s))``.
    """
    first = assert_global_rng_untouched(lambda: call(seed))
    second = assert_global_rng_untouched(lambda: call(seed))
    assert_same(second, first, ignore=ignore, path=f"second call with seed={seed}")
    if other_seed is not None:
        try:
            assert_same(call(other_seed), first, ignore=ignore)
        except AssertionError:
            pass
        else:
            raise AssertionError(f"seed={other_seed} gives the same result as seed={seed}")
    return first


def assert_global_seed_repeatable(
    call: Callable[[], Any], *, seed: int = 0, ignore: Collection[str] = ()
) -> Any:
    """Asserts that ``call()`` (an entry point with ``seed=None``) draws its randomness from
    torch's global RNG: after ``torch.manual_seed(seed)`` two calls give the same result
    (:func:`assert_same`, skipping ``ignore``), each call advances torch's global RNG, and
    NumPy's and Python's global states stay untouched. The global RNG is restored after.
    Returns the first result.

    Example: ``assert_global_seed_repeatable(lambda: method.attribute(x, 0, seed=None))``.
    """
    with torch.random.fork_rng(devices=[]):
        results = []
        for _ in range(2):
            torch.manual_seed(seed)
            seeded = _global_rng_state()
            results.append(call())
            after = _global_rng_state()
            assert not torch.equal(after["torch"], seeded["torch"]), (
                "seed=None did not draw from torch's global RNG"
            )
            assert_same(after["numpy"], seeded["numpy"], path="NumPy's global RNG state")
            assert after["python"] == seeded["python"], "Python's global RNG state changed"
    assert_same(results[1], results[0], ignore=ignore, path="second call after manual_seed")
    return results[0]


_MODULE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def model_snapshot(model: nn.Module) -> dict[str, Any]:
    """A copy of everything :func:`assert_model_untouched` compares."""
    params = dict(model.named_parameters())
    hooks = {
        f"{name or '<root>'}.{attr}": len(getattr(module, attr, {}))
        for name, module in model.named_modules()
        for attr in _MODULE_HOOK_DICTS
    }
    hooks.update(
        {f"{name}._backward_hooks": len(p._backward_hooks or {}) for name, p in params.items()}
    )
    return {
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in params.items()},
        "grad": {
            name: None if p.grad is None else p.grad.detach().clone() for name, p in params.items()
        },
        "parameters": {name: p.detach().clone() for name, p in params.items()},
        "buffers": {name: b.detach().clone() for name, b in model.named_buffers()},
        "hooks": hooks,
    }


def assert_model_untouched(model: nn.Module, call: Callable[[], Any]) -> Any:
    """Asserts that ``call()`` leaves ``model`` as it found it; returns the result.

    Compared before and after: every submodule's ``training`` flag, every parameter's
    ``requires_grad`` flag and ``.grad`` (``None`` stays ``None``; a stored gradient keeps
    its values), parameters and buffers bit for bit (dtype and device included), and the
    number of forward/backward (pre-)hooks on every module and parameter.
    """
    before = model_snapshot(model)
    result = call()
    after = model_snapshot(model)
    for key in before:
        assert_same(after[key], before[key], path=f"model {key}")
    return result


def mark_model_state(model: nn.Module) -> nn.Module:
    """Puts ``model`` in eval mode, freezes its first parameter and stores a gradient on its
    last one (ones), so that an entry point that resets these is caught by
    :func:`assert_model_untouched`. Returns ``model``."""
    params = list(model.parameters())
    model.eval()
    if params:
        params[0].requires_grad_(False)
        params[-1].grad = torch.ones_like(params[-1])
    return model
