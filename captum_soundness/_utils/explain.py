"""How an explanation function is called: ``explain_func(inputs, target=..., **kwargs)``.

Captum's ``attribute`` methods take ``target`` by keyword (their second positional
parameter is often ``baselines``); plain functions ``f(inputs, t)`` get it by position.
Every entry point that calls a user's explanation function goes through
:func:`call_explain`. :func:`check_explain_kwargs` and :func:`expand_explain_kwargs`
repeat the per-example tensors of the explanation's keyword arguments (``baselines``,
``feature_mask``, ...) for rows built from the examples in another order or
multiplicity (one row per (example, label) pair), like ``additional_forward_args``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["call_explain", "check_explain_kwargs", "expand_explain_kwargs", "explain_signature"]

#: Keyword arguments whose tensors are per example only with the input's number of
#: dimensions (Captum's per-example form); fewer dimensions broadcast to one example.
_INPUT_SHAPED = ("baselines", "feature_mask")

#: Keyword arguments that the caller passes itself.
_RESERVED = ("target", "additional_forward_args")


def explain_signature(explain_func: Callable[..., Any]) -> tuple[bool, bool]:
    """Whether to pass ``target`` by keyword, and whether ``additional_forward_args`` fits.

    Captum's ``attribute`` methods take ``target`` by keyword (their second positional
    parameter is often ``baselines``); plain functions ``f(inputs, t)`` get it by position.
    """
    try:
        params = inspect.signature(explain_func).parameters
    except (TypeError, ValueError):  # builtins without a signature: positional
        return False, True
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    positional = [
        p
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    target = params.get("target")
    # f(inputs, **kwargs) has no second positional slot: target goes in by keyword.
    by_keyword = (target is not None and target.kind is not inspect.Parameter.POSITIONAL_ONLY) or (
        target is None and var_kw and len(positional) < 2
    )
    takes_args = var_kw or "additional_forward_args" in params
    return by_keyword, takes_args


def call_explain(explain_func: Callable[..., Any], inputs: Any, target: Any, **kwargs: Any) -> Any:
    """Calls ``explain_func`` on ``inputs`` with ``target`` the way its signature wants."""
    by_keyword, _ = explain_signature(explain_func)
    if by_keyword:
        return explain_func(inputs, target=target, **kwargs)
    return explain_func(inputs, target, **kwargs)


def check_explain_kwargs(
    explain_kwargs: Any,
    name: str = "explain_kwargs",
    inputs: tuple[Tensor, ...] | None = None,
) -> dict[str, Any]:
    """Checks ``explain_kwargs``: ``None`` (no keywords) or a dict with string keys,
    none of them ``target`` or ``additional_forward_args`` (passed by the caller).

    With ``inputs``, a ``baselines`` or ``feature_mask`` tensor with its input's number of
    dimensions (Captum's per-example form) must have 1 or ``N`` rows.
    """
    if explain_kwargs is None:
        return {}
    if not isinstance(explain_kwargs, dict):
        raise TypeError(
            f"`{name}` must be a dict of keyword arguments for `explain_func` or None, got "
            f"{type(explain_kwargs).__name__}."
        )
    for key in explain_kwargs:
        if not isinstance(key, str):
            raise TypeError(f"`{name}` keys must be strings, got {key!r}.")
        if key in _RESERVED:
            raise TypeError(
                f"`{name}` must not contain {key!r}: it is passed by the evaluation itself"
                + (" (pass it as `additional_forward_args`)." if key != "target" else ".")
            )
    if inputs is not None:
        _check_rows(explain_kwargs, inputs, name)
    return dict(explain_kwargs)


def _check_rows(explain_kwargs: dict[str, Any], inputs: tuple[Tensor, ...], name: str) -> None:
    n = int(inputs[0].shape[0])
    for key in _INPUT_SHAPED:
        value = explain_kwargs.get(key)
        values = value if isinstance(value, tuple) else (value,)
        for i, (v, x) in enumerate(zip(values, inputs)):
            if isinstance(v, Tensor) and v.dim() == x.dim() and v.shape[0] not in (1, n):
                where = f"{name}[{key!r}]" + (f"[{i}]" if isinstance(value, tuple) else "")
                raise ValueError(
                    f"`{where}` has {v.shape[0]} rows, but the inputs hold {n} examples: a "
                    "per-example tensor needs one row per example (or 1 row for all)."
                )


def expand_explain_kwargs(
    explain_kwargs: dict[str, Any], index: Tensor, inputs: tuple[Tensor, ...]
) -> dict[str, Any]:
    """The keyword arguments for rows ``index`` (``index[r]`` = example of row ``r``).

    A tensor with ``N > 1`` rows (``N`` = the number of examples), also inside a tuple,
    is per example and indexed with ``index``, as ``additional_forward_args`` are (and
    Captum's ``NoiseTunnel`` expands ``baselines``); tensors with another first
    dimension (1: one row for all), non-tensors and Fills pass unchanged. For
    ``baselines`` and ``feature_mask`` a tensor is per example only with its input's
    number of dimensions (Captum's per-example form): a ``(C, 1, 1)`` colour stays a
    colour when ``C = N``.
    """
    n = int(inputs[0].shape[0])
    out = {}
    for key, value in explain_kwargs.items():
        dims = [x.dim() for x in inputs] if key in _INPUT_SHAPED else None
        if isinstance(value, tuple):
            out[key] = tuple(
                _rows(v, index, n, None if dims is None else dims[min(i, len(dims) - 1)])
                for i, v in enumerate(value)
            )
        else:
            out[key] = _rows(value, index, n, None if dims is None else dims[0])
    return out


def _rows(value: Any, index: Tensor, n: int, dim: int | None) -> Any:
    if not isinstance(value, Tensor) or value.dim() == 0 or n == 1 or value.shape[0] != n:
        return value
    if dim is not None and value.dim() != dim:
        return value
    return value.index_select(0, index.to(value.device))
