"""Deprecated: import from :mod:`captum_soundness.attr` instead.

``captum_soundness.attr.fullgrad`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.attr`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.attr import FullGrad, FullGradDecomposition

__all__ = ["FullGrad", "FullGradDecomposition"]

warnings.warn(
    "`captum_soundness.attr.fullgrad` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.attr` instead.",
    DeprecationWarning,
    stacklevel=2,
)
