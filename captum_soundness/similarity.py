"""Deprecated: import from :mod:`captum_soundness.sanity` instead.

``captum_soundness.similarity`` was a module of version 0.1; since 0.2 its names
live in :mod:`captum_soundness.sanity`.
This alias warns and will be removed in the next release.
"""

import warnings

from captum_soundness.sanity import (
    SIMILARITIES,
    hog_pearson,
    map_similarity,
    normalize_maps,
    pearson,
    rank_with_ties,
    spearman,
    spearman_abs,
    ssim,
)

__all__ = [
    "SIMILARITIES",
    "hog_pearson",
    "map_similarity",
    "normalize_maps",
    "pearson",
    "rank_with_ties",
    "spearman",
    "spearman_abs",
    "ssim",
]

warnings.warn(
    "`captum_soundness.similarity` is deprecated and will be removed in the "
    "next release; import from `captum_soundness.sanity` instead.",
    DeprecationWarning,
    stacklevel=2,
)
