"""Re-export of :mod:`helpers.models` for older test imports (``from toy_models import ...``);
new tests import from ``helpers``."""

from helpers.models import TARGET, A, RowSums, X, sigmoid

__all__ = ["TARGET", "A", "RowSums", "X", "sigmoid"]
