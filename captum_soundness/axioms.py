"""Deprecated: import from :mod:`captum_soundness.metrics` instead.

``captum_soundness.axioms`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.metrics`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.metrics import (
    ig_completeness_error,
    ig_completeness_passes,
    ig_steps_for_tolerance,
)

__all__ = ["ig_completeness_error", "ig_completeness_passes", "ig_steps_for_tolerance"]

warnings.warn(
    "`captum_soundness.axioms` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.metrics` instead.",
    DeprecationWarning,
    stacklevel=2,
)
