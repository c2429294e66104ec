"""Attribution methods, as Captum :class:`~captum.attr.Attribution` subclasses.

- :class:`SimpleMasking`: the mask-learning saliency method of Gupta et al. (2022).
- :class:`LayerGradCamPlusPlus`: GradCAM++ with a switch for the gradient aggregation.
- :class:`FullGrad`: FullGrad with a switch for the aggregation of its terms.
"""

from captum_soundness.attr._common import AGGREGATIONS, aggregate
from captum_soundness.attr._fullgrad import FullGrad, FullGradDecomposition
from captum_soundness.attr._gradcam_plus_plus import LayerGradCamPlusPlus
from captum_soundness.attr._recipes import LR_SCHEDULES, PRESETS
from captum_soundness.attr._simple_masking import OBJECTIVES, SimpleMasking

__all__ = [
    "AGGREGATIONS",
    "LR_SCHEDULES",
    "OBJECTIVES",
    "PRESETS",
    "FullGrad",
    "FullGradDecomposition",
    "LayerGradCamPlusPlus",
    "SimpleMasking",
    "aggregate",
]
