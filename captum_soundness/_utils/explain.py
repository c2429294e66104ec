"""How an explanation function is called: ``explain_func(inputs, target=..., **kwargs)``.

Captum's ``attribute`` methods take ``target`` by keyword (their second positional
parameter is often ``baselines``); plain functions ``f(inputs, t)`` get it by position.
Every entry point that calls a user's explanation function goes through
:func:`call_explain`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["call_explain", "explain_signature"]


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


def call_explain(
    explain_func: Callable[..., Any], inputs: Tensor, target: Tensor, **kwargs: Any
) -> Any:
    """Calls ``explain_func`` on ``inputs`` with ``target`` the way its signature wants."""
    by_keyword, _ = explain_signature(explain_func)
    if by_keyword:
        return explain_func(inputs, target=target, **kwargs)
    return explain_func(inputs, target, **kwargs)
