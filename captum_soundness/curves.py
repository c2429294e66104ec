"""Deprecated: import from :mod:`captum_soundness.metrics` instead.

``captum_soundness.curves`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.metrics`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.metrics import (
    CURVE_KINDS,
    completeness_from_scores,
    deletion_curve,
    insertion_curve,
    soundness_from_scores,
)

__all__ = [
    "CURVE_KINDS",
    "completeness_from_scores",
    "deletion_curve",
    "insertion_curve",
    "soundness_from_scores",
]

warnings.warn(
    "`captum_soundness.curves` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.metrics` instead.",
    DeprecationWarning,
    stacklevel=2,
)
