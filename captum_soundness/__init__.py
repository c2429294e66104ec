"""captum-soundness: completeness and soundness of saliency maps for Captum.

Implements Gupta et al., *New Definitions and Evaluations for Saliency Methods: Staying
Intrinsic, Complete and Sound* (NeurIPS 2022) as a Captum plugin: the paper's
:class:`~captum_soundness.attr.SimpleMasking` attribution, the completeness and soundness
metrics with insertion/deletion curves and an all-label evaluation, and related checks
(IG completeness axiom, sanity checks, fill sensitivity).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
