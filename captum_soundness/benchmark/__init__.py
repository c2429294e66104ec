r"""The ``captum-soundness benchmark`` command: Captum's methods vs. simple masking on MNIST.

Explains held-out digits of the bundled model (:func:`~captum_soundness.models.
load_mnist_cnn`) for **every** label with each method of :data:`METHODS`, scores every
(image, label) map with :func:`~captum_soundness.metrics.evaluate_all_labels`, and
reports per method (means over images):

- ``completeness_at_prediction``: completeness at the predicted label;
- ``soundness_other_labels_mean``: soundness averaged over the other labels
  (divided by :math:`L - 1`);
- ``soundness_worst``: the worst soundness over all labels;
- ``insertion_auc``: the mean of the insertion curve at the predicted label over the
  grid of kept fractions (the insertion score :math:`S_{\hat y}(x)`);
- ``deletion_auc``: the mean of the deletion curve at the predicted label over the same
  grid (lower is better);
- ``seconds_per_map``: wall time of the method over all its calls divided by the number
  of (image, label) maps it produced (metric computation excluded);

plus ``completeness_worst_wrong_label`` and ``soundness_second_label`` in the JSON.

Every method is registered as a :class:`MethodSpec` whose ``make_factory(settings,
context)`` returns an ``explain_factory(model) -> explain_func``; the factory form lets
checks that rebuild the explanation on modified model copies (parameter randomisation)
reuse the registry.

:func:`run_benchmark` does the work and returns a :class:`BenchmarkResult`;
:func:`write_outputs` writes ``results.json``, ``results.csv``, the figures and
``report.md``. The command line lives in :mod:`captum_soundness.benchmark`.
"""

from captum_soundness.benchmark._cli import build_parser, main
from captum_soundness.benchmark._core import (
    DEFAULT_SETTINGS,
    FULL_SETTINGS,
    METHODS,
    METRICS,
    QUICK_SETTINGS,
    SANITY_METRICS,
    BenchmarkContext,
    BenchmarkResult,
    BenchmarkSettings,
    MethodResult,
    MethodSpec,
    ablation_lines,
    check_settings,
    format_table,
    parse_fill,
    run_benchmark,
    write_outputs,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "FULL_SETTINGS",
    "METHODS",
    "METRICS",
    "QUICK_SETTINGS",
    "SANITY_METRICS",
    "BenchmarkContext",
    "BenchmarkResult",
    "BenchmarkSettings",
    "MethodResult",
    "MethodSpec",
    "ablation_lines",
    "check_settings",
    "build_parser",
    "format_table",
    "main",
    "parse_fill",
    "run_benchmark",
    "write_outputs",
]
