"""Attribution methods, as Captum :class:`~captum.attr.Attribution` subclasses.

- :class:`SimpleMasking`: the mask-learning saliency method of Gupta et al. (2022).
- :class:`LayerGradCamPlusPlus`: GradCAM++ with a switch for the gradient aggregation.
- :class:`FullGrad`: FullGrad with a switch for the aggregation of its terms.
"""

from .fullgrad import FullGrad
from .gradcam_plus_plus import LayerGradCamPlusPlus
from .simple_masking import SimpleMasking

__all__ = ["FullGrad", "LayerGradCamPlusPlus", "SimpleMasking"]
