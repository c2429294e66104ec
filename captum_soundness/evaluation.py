"""Deprecated: import from :mod:`captum_soundness.metrics` instead.

``captum_soundness.evaluation`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.metrics`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.metrics import (
    DELETION_MODES,
    HEADLINE_METRICS,
    SoundnessReport,
    evaluate_all_labels,
)

__all__ = ["DELETION_MODES", "HEADLINE_METRICS", "SoundnessReport", "evaluate_all_labels"]

warnings.warn(
    "`captum_soundness.evaluation` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.metrics` instead.",
    DeprecationWarning,
    stacklevel=2,
)
