r"""Completeness and soundness of saliency maps (Gupta et al., NeurIPS 2022).

Captum-style functional metrics: each takes a model, inputs, attributions and targets
and returns one value per example.

For an input :math:`x`, a label :math:`a` with clean probability
:math:`p_a = p_a(x)` and a map :math:`M_a`, the **insertion score** is the mean of the
insertion curve over a grid :math:`K` of mask sizes (the last one the full image):

.. math::

    S_a(x) = \frac{1}{|K|} \sum_{k \in K} \mathbb{E}_{g \sim G}\,
        p_a\big(x \odot T_k(M_a) + g \odot (1 - T_k(M_a))\big),

and, with the reference constants :math:`\varepsilon = 0.1`, :math:`\alpha = 1`,
:math:`\beta = 0.1`,

.. math::

    \mathrm{completeness}_a(x) &= \min\!\Big(1,\
        \frac{\max(\varepsilon, S_a(x))}{\min(\alpha, p_a)}\Big), \\
    \mathrm{soundness}_a(x) &= \min\!\Big(1,\ \frac{\max(\beta, p_a)}{S_a(x)}\Big)
        \qquad (= 1 \text{ when } S_a(x) = 0).

Completeness asks that the kept part of the input supports :math:`a` at least as
strongly as the whole input; soundness asks that the mask did not *manufacture* support
for :math:`a` that the input never had. Any map can be made complete for every label by
an adversarial search; soundness, checked on every label
(:func:`evaluate_all_labels`), exposes that.

These metrics are **not** the completeness axiom of Integrated Gradients
(Sundararajan et al., 2017: attributions sum to :math:`F(x) - F(x')`), which is a
property of additive attributions, checked by ``ig_completeness_error``.

**Captum's conventions** (every metric): ``inputs`` are a tensor or a tuple of tensors
of rank >= 2 (tabular ``(N, F)``, sequences, images, volumes) and the attributions come
in the same container; ``target`` is Captum's ``TargetType``; ``baselines`` are
Captum's replacement values (a number, a tensor broadcastable to one example, a
per-example tensor, a tuple of these, or a :class:`~captum_soundness.fills.Fill`);
``feature_mask`` groups features as in :class:`~captum.attr.FeatureAblation`; ``head``
says how outputs become probabilities (``"softmax"``, ``"probabilities"``,
``"sigmoid"``, ``"binary"``); ``max_examples_per_batch`` is the maximum number of model
inputs (rows) per forward pass, as in Captum's metrics; ``seed=None`` draws one seed
from PyTorch's global RNG. ``fill=`` and ``apply_softmax=`` are deprecated aliases of
``baselines=`` and ``head=``.

Contents:

- :func:`insertion_curve`, :func:`deletion_curve`: the curves (``(N, F)``);
- :func:`completeness`, :func:`soundness`: one value per example (``(N,)``);
- :func:`completeness_from_scores`, :func:`soundness_from_scores`: the formulas alone;
- :func:`evaluate_all_labels` and :class:`SoundnessReport`: every (image, label) pair;
- :data:`HEADLINE_METRICS`, :data:`SUMMARY_METRICS`, :data:`SUMMARY_RENAMES`: the names
  of the reported metrics (used by the benchmark, the sanity checks and the docs);
- :func:`restrict_labels`, :data:`PAPER_IMAGENET_LABELS`: the label-subset setting.
"""

from captum_soundness.labels import PAPER_IMAGENET_LABELS, restrict_labels
from captum_soundness.metrics._axioms import (
    ig_completeness_error,
    ig_completeness_passes,
    ig_steps_for_tolerance,
)
from captum_soundness.metrics._curves import CURVE_KINDS, deletion_curve, insertion_curve
from captum_soundness.metrics._evaluation import DELETION_MODES, evaluate_all_labels
from captum_soundness.metrics._report import (
    HEADLINE_METRICS,
    SUMMARY_METRICS,
    SUMMARY_RENAMES,
    SoundnessReport,
)
from captum_soundness.metrics._scores import (
    completeness,
    completeness_from_scores,
    soundness,
    soundness_from_scores,
)

__all__ = [
    "CURVE_KINDS",
    "DELETION_MODES",
    "HEADLINE_METRICS",
    "PAPER_IMAGENET_LABELS",
    "SUMMARY_METRICS",
    "SUMMARY_RENAMES",
    "SoundnessReport",
    "completeness",
    "completeness_from_scores",
    "deletion_curve",
    "evaluate_all_labels",
    "ig_completeness_error",
    "ig_completeness_passes",
    "ig_steps_for_tolerance",
    "insertion_curve",
    "restrict_labels",
    "soundness",
    "soundness_from_scores",
]
