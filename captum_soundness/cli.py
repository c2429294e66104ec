"""Deprecated: import from :mod:`captum_soundness.benchmark` instead.

``captum_soundness.cli`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.benchmark`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.benchmark import build_parser, main

__all__ = ["build_parser", "main"]

warnings.warn(
    "`captum_soundness.cli` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.benchmark` instead.",
    DeprecationWarning,
    stacklevel=2,
)
