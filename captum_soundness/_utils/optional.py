"""Optional dependencies: imported on first use, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]


def import_optional(module: str, message: str) -> ModuleType:
    """Imports ``module``, or raises an :class:`ImportError` with ``message``.

    Args:
        module: The dotted module name, e.g. ``"mlxtend.data"``.
        message: What needs the module and how to install it (the error's text); the
            original :class:`ImportError` is chained.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(message) from error
