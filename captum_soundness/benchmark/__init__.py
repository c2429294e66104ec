r"""Benchmarks of attribution methods for completeness and soundness.

``captum-soundness benchmark`` explains held-out digits of the bundled model
(:func:`~captum_soundness.models.load_mnist_cnn`) for **every** label with each method of
:data:`METHODS`, scores every (image, label) map with
:func:`~captum_soundness.metrics.evaluate_all_labels`, and reports per method (means over
images):

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

Every method is registered with :func:`register` as a builder ``build(model, settings,
context) -> explain_func`` for any model; :meth:`MethodSpec.make_factory` gives the
``explain_factory(model) -> explain_func`` that checks rebuilding the explanation on
modified model copies (parameter randomisation) use.

:func:`run_benchmark` does the work and returns a :class:`BenchmarkResult`;
:func:`evaluate_dataset` runs the same evaluation on any model and data set (streaming,
resumable, on ``torchrun``; ``captum-soundness evaluate``);
:func:`write_outputs` writes ``results.json``, ``results.csv``, the figures and
``report.md``. :func:`main` is the command line.

**Safe outputs of** ``captum-soundness benchmark``. ``--out`` is checked before any work:
a file there, a file above it, a folder named like an output (``results.json``...) or
files the benchmark did not write (a run replaces the whole folder) end the command with
one ``error:`` line and status 2, nothing written. The run works in a hidden folder beside
``--out`` (``.<name>.partial``, same parent, so moves are renames) and moves its outputs
into place only when complete: an existing ``--out`` is either replaced by a complete run
or left untouched. Every finished method is recorded there atomically. **Ctrl-C** ends
with one line and status 130, leaving ``--out`` as it was; ``--resume`` (same options)
then runs only the unfinished methods, with the same numbers as an uninterrupted run. A
closed stdout (``| head``) ends silently with status 141. The replacement renames the old
``--out`` aside, renames the new folder into place, then deletes the old one, with Ctrl-C
held back in between; only a machine crash at that instant leaves ``--out`` missing, with
both folders kept beside it.

Where things live: ``_settings`` (settings, presets, :func:`check_settings`),
``_registry`` (:func:`register`, :data:`METHODS`), ``_methods`` (the registered methods),
``_runner`` (:func:`run_benchmark`), ``_results`` (result classes, column definitions),
``_outputs`` (JSON, CSV, Markdown), ``_figures``, ``_staging`` (the safe ``--out``),
``_cli``; for own models and data sets ``_dataset`` (image folders), ``_loading``
(the command's model, data and pool), ``_evaluate``
(:func:`evaluate_dataset`), ``_records`` (atomic per-batch records, resume, merge),
``_distributed`` (torch.distributed).
"""

from captum_soundness.benchmark._cli import build_parser, main
from captum_soundness.benchmark._dataset import ImageFolder
from captum_soundness.benchmark._evaluate import EvaluationResult, evaluate_dataset
from captum_soundness.benchmark._outputs import (
    ablation_lines,
    format_table,
    markdown_table,
    write_outputs,
)
from captum_soundness.benchmark._registry import (
    METHODS,
    BenchmarkContext,
    MethodSpec,
    last_conv_layer,
    register,
)
from captum_soundness.benchmark._results import (
    METRICS,
    SANITY_METRICS,
    BenchmarkResult,
    MethodResult,
)
from captum_soundness.benchmark._runner import run_benchmark
from captum_soundness.benchmark._settings import (
    DEFAULT_SETTINGS,
    FULL_SETTINGS,
    QUICK_SETTINGS,
    BenchmarkSettings,
    check_settings,
    parse_fill,
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
    "EvaluationResult",
    "ImageFolder",
    "MethodResult",
    "MethodSpec",
    "ablation_lines",
    "build_parser",
    "check_settings",
    "evaluate_dataset",
    "format_table",
    "last_conv_layer",
    "main",
    "markdown_table",
    "parse_fill",
    "register",
    "run_benchmark",
    "write_outputs",
]
