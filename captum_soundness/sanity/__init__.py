r"""Sanity checks for saliency methods (Adebayo et al., 2018; Brunke et al., 2020).

- :func:`model_randomization`: re-initialise the model's layers from the output backwards
  (``"cascading"``) or one at a time (``"independent"``), on deep copies of the model, and
  measure how similar the maps stay to the maps of the trained model. A method whose maps
  barely change does not explain the model.
- :func:`class_sensitivity`: similarity between the maps for the predicted class and for
  another class; a method that explains the class should give different maps.
- :func:`fill_sensitivity`: metric values, map rank correlations and method rankings
  under several fills ("neutral" fills are not neutral, Brunke et al., 2020).

Similarity measures are those of :mod:`captum_soundness.sanity` (Spearman rank
correlation of values and of absolute values, SSIM and HOG-feature Pearson correlation on
maps normalised to ``[0, 1]`` by absolute value and per-map min-max).

**Explanation callables.** ``explain_func(inputs, target, **explain_kwargs) ->
attributions`` as in :func:`~captum_soundness.metrics.evaluate_all_labels`: ``inputs``
in the container they were given in (a tensor or a tuple of tensors, Captum's
convention), ``target`` passed by keyword when the callable has a ``target`` parameter
(Captum's ``attribute`` methods, e.g. ``Saliency(model).attribute``), by position
otherwise; ``explain_kwargs`` (``baselines``, ``feature_mask``, ...) have their
per-example tensors repeated wherever the checks repeat the inputs. Targets are Captum's
``TargetType``, resolved as Captum resolves it.

**Maps.** For one input ``(N, C, *spatial)``, attributions shaped like it are reduced
over channels (``reduce``, ``"sum"`` by default); ``(N, *spatial)`` and
``(N, 1, *spatial)`` maps are used as they are (layer-shaped maps such as
un-upsampled GradCAM maps are fine for the model-randomisation and class checks). For a
tabular input ``(N, F)`` the attributions are the map. For several inputs a tuple of
attributions (one per input) gives one score per position of all inputs (image positions
shared over channels, tabular features), compared as one vector; SSIM and HOG need 2-D
maps and do not apply.
"""

from captum_soundness.sanity._class_sensitivity import class_sensitivity
from captum_soundness.sanity._fill_sensitivity import fill_sensitivity
from captum_soundness.sanity._randomization import RANDOMIZATION_MODES, model_randomization
from captum_soundness.sanity._rank import rank_with_ties
from captum_soundness.sanity._results import FillSensitivityReport, ModelRandomizationResult
from captum_soundness.sanity._similarity import (
    SIMILARITIES,
    hog_pearson,
    map_similarity,
    normalize_maps,
    pearson,
    spearman,
    spearman_abs,
    ssim,
)

__all__ = [
    "RANDOMIZATION_MODES",
    "SIMILARITIES",
    "FillSensitivityReport",
    "ModelRandomizationResult",
    "class_sensitivity",
    "fill_sensitivity",
    "hog_pearson",
    "map_similarity",
    "model_randomization",
    "normalize_maps",
    "pearson",
    "rank_with_ties",
    "spearman",
    "spearman_abs",
    "ssim",
]
