"""Deprecated: import from :mod:`captum_soundness.attr` instead.

``captum_soundness.attr.gradcam_plus_plus`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.attr`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.attr import AGGREGATIONS, LayerGradCamPlusPlus, aggregate

__all__ = ["AGGREGATIONS", "LayerGradCamPlusPlus", "aggregate"]

warnings.warn(
    "`captum_soundness.attr.gradcam_plus_plus` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.attr` instead.",
    DeprecationWarning,
    stacklevel=2,
)
