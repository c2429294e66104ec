"""Running the benchmark: data, explanation and scoring of every (image, label) pair, per
method, sanity columns. :func:`score_method` is the step shared with
:func:`~captum_soundness.benchmark.evaluate_dataset`."""

from __future__ import annotations

import datetime
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_soundness._utils.maps import unwrap_single
from captum_soundness._utils.recording import ExplainRecorder
from captum_soundness.benchmark._registry import (
    METHODS,
    BenchmarkContext,
    ExplainFactory,
    ExplainFunc,
    MethodSpec,
)
from captum_soundness.benchmark._results import (
    EXTRA_METRICS,
    METRICS,
    BenchmarkResult,
    MethodResult,
    versions,
)
from captum_soundness.benchmark._settings import (
    DEFAULT_SETTINGS,
    EVAL_POOL_SIZE,
    BenchmarkSettings,
    check_settings,
    parse_fill,
)
from captum_soundness.fills import DatasetFill, Fill, NoiseFill
from captum_soundness.masking import reduce_channels
from captum_soundness.metrics import SUMMARY_RENAMES, SoundnessReport, evaluate_all_labels

__all__ = [
    "evaluation_fill",
    "quiet_captum",
    "run_benchmark",
    "run_methods",
    "score_method",
    "warm_up",
]

#: Maps at the predicted label kept per method for the figures.
PREVIEW_IMAGES = 4


@contextmanager
def quiet_captum() -> Iterator[None]:
    """Silences Captum's ``UserWarning`` s (e.g. about ``requires_grad``) inside."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
        yield


def _preview_maps(inputs: Tensor, attributions: Any) -> Tensor:
    """Channel-summed maps on the CPU (what the recorder keeps for the previews)."""
    maps = unwrap_single(attributions, "The attributions").detach()
    if maps.dim() == inputs.dim():
        maps = reduce_channels(maps, "sum")
    return maps.float().cpu()


def warm_up(explain: ExplainFunc, images: Tensor) -> None:
    """One untimed call on a single (image, label) pair: first-call set-up (Captum's
    hooks, the allocator, oneDNN kernels) is not part of the time per map."""
    with quiet_captum():
        explain(images[:1], target=torch.zeros(1, dtype=torch.long, device=images.device))


def evaluation_fill(settings: BenchmarkSettings, pool: Tensor | None) -> tuple[Fill, int]:
    """The evaluation fill of ``settings.fill`` and its number of samples per point."""
    fill = parse_fill(settings.fill, pool)
    random = isinstance(fill, (NoiseFill, DatasetFill))
    return fill, settings.eval_fill_samples if random else 1


def score_method(
    explain: ExplainFunc,
    model: nn.Module,
    images: Tensor,
    settings: BenchmarkSettings,
    fill: Fill,
    n_fill_samples: int,
    *,
    seed: int,
) -> tuple[SoundnessReport, dict[str, float], ExplainRecorder]:
    """Explains every label of ``images`` and scores the maps.

    Returns:
        The :class:`~captum_soundness.metrics.SoundnessReport` (deletion curves at the
        prediction), the method's metrics (:data:`METRICS` and :data:`EXTRA_METRICS`,
        means over images) and the recorder (time, channel-summed maps per call).
    """
    recorder = ExplainRecorder(explain, keep=_preview_maps)
    with quiet_captum():
        report = evaluate_all_labels(
            recorder,
            model,
            images,
            baselines=fill,
            fractions=settings.fractions,
            n_fill_samples=n_fill_samples,
            max_examples_per_batch=settings.curve_batch,
            seed=seed,
            explain_batch_size=settings.explain_batch,
            deletion="predicted",
        )
    summary = {SUMMARY_RENAMES.get(k, k): v for k, v in report.summary().items()}
    summary["seconds_per_map"] = recorder.seconds / (report.num_images * report.num_labels)
    metrics = {key: summary[key] for key in (*METRICS, *EXTRA_METRICS)}
    return report, metrics, recorder


def _sanity_columns(
    factory: ExplainFactory, model: nn.Module, inputs: Tensor, settings: BenchmarkSettings
) -> dict[str, float]:
    """Sanity-check columns (Adebayo et al., 2018) on ``inputs``, at the predicted label.

    Model parameter randomisation (cascading, every layer with parameters, on copies of
    the model) and class sensitivity against the second most likely label, both from
    :mod:`captum_soundness.sanity`. Means over images, NaNs (constant maps) ignored.
    """
    from captum_soundness.sanity import class_sensitivity, model_randomization

    with quiet_captum():
        randomized = model_randomization(
            factory,
            model,
            inputs,
            mode="cascading",
            similarity=("spearman", "ssim"),
            seed=settings.seed,
        )
        classes = class_sensitivity(factory(model), model, inputs, similarity="spearman")
    summary = randomized.summary()
    last = randomized.layers[-1]  # every layer randomised
    finite = classes[~torch.isnan(classes)]
    return {
        "randomized_spearman": summary["spearman"][last],
        "randomized_ssim": summary["ssim"][last],
        "class_spearman": float(finite.mean()) if finite.numel() else math.nan,
    }


def _run_method(
    spec: MethodSpec,
    settings: BenchmarkSettings,
    context: BenchmarkContext,
    model: nn.Module,
    images: Tensor,
    fill: tuple[Fill, int],
) -> tuple[MethodResult, SoundnessReport]:
    """One method on all images: warm-up, explanations and scores, sanity columns."""
    factory = spec.make_factory(settings, context)
    explain = factory(model)
    warm_up(explain, images)
    # The evaluation fill has a stream of its own (the pool uses seed + 1).
    report, metrics, recorder = score_method(
        explain, model, images, settings, *fill, seed=settings.seed + 2
    )
    rows = torch.arange(report.num_images)
    maps = torch.cat(recorder.records).view(report.num_images, report.num_labels, -1)
    count = min(PREVIEW_IMAGES, report.num_images)
    preview = maps[rows, report.predicted][:count].view(count, *images.shape[2:])
    assert report.deletion_at_prediction is not None
    result = MethodResult(
        name=spec.name,
        label=spec.label,
        metrics=metrics,
        insertion_curve=report.insertion[rows, report.predicted].mean(0).tolist(),
        deletion_curve=report.deletion_at_prediction.mean(0).tolist(),
        seconds=recorder.seconds,
        num_maps=report.num_images * report.num_labels,
        preview=preview,
        per_image={k: v.tolist() for k, v in report.per_image().items()},
    )
    if settings.sanity and spec.sanity:
        result.sanity = _sanity_columns(factory, model, images[: settings.sanity_images], settings)
    return result, report


@dataclass
class _Digits:
    """The bundled model and the digits of a run."""

    model: nn.Module
    images: Tensor  # (N, 1, 28, 28) chosen held-out digits, on the device
    labels: Tensor  # (N,) their labels
    indices: Tensor  # (N,) their held-out indices
    pool: Tensor  # SimpleMasking's DatasetFill pool
    eval_pool: Tensor  # the "dataset" evaluation fill's pool (other training digits)
    accuracy: float  # held-out accuracy of the model


def _choose_images(labels: Tensor, count: int, seed: int) -> Tensor:
    """Indices of ``count`` held-out images, balanced over the digits (round robin)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.numel(), generator=generator)
    per_digit = [order[labels[order] == d] for d in range(int(labels.max()) + 1)]
    depth = max(len(p) for p in per_digit)
    rounds = [p[r] for r in range(depth) for p in per_digit if r < len(p)]
    return torch.stack(rounds[:count])


def _load_digits(settings: BenchmarkSettings) -> _Digits:
    """The bundled model, the chosen held-out digits and the two training pools."""
    from captum_soundness.models import load_mnist_cnn, load_mnist_digits

    device = torch.device(settings.device)
    model = load_mnist_cnn(device)
    train_x, _ = load_mnist_digits("train")
    test_x, test_y = load_mnist_digits("test")
    with torch.no_grad():
        test_pred = model(test_x.to(device)).argmax(1).cpu()
    chosen = _choose_images(test_y, settings.images, settings.seed)
    permutation = torch.randperm(
        train_x.shape[0], generator=torch.Generator().manual_seed(settings.seed + 1)
    )
    return _Digits(
        model=model,
        images=test_x[chosen].to(device),
        labels=test_y[chosen],
        indices=chosen,
        pool=train_x[permutation[: settings.pool_size]].to(device),
        # The "dataset" evaluation fill draws from other training digits than the masks.
        eval_pool=train_x[permutation[settings.pool_size :][:EVAL_POOL_SIZE]].to(device),
        accuracy=float((test_pred == test_y).float().mean()),
    )


def _model_info(digits: _Digits) -> dict[str, Any]:
    from captum_soundness.models import MNIST_GRADCAM_LAYER, mnist_cnn_metadata

    metadata = mnist_cnn_metadata()
    return {
        "name": "MNISTNet (bundled, captum_soundness.models.load_mnist_cnn)",
        "held_out_accuracy": digits.accuracy,
        "held_out_accuracy_recorded": metadata.get("held_out_accuracy"),
        "num_parameters": sum(p.numel() for p in digits.model.parameters()),
        "gradcam_layer": MNIST_GRADCAM_LAYER,
        "training": {
            k: metadata.get(k)
            for k in ("seed", "split_seed", "epochs", "num_train", "num_held_out", "torch_version")
        },
    }


def summary_line(result: MethodResult) -> str:
    """The one-line summary of a method printed at the end of its run."""
    metrics = result.metrics
    return (
        f"  {result.label:<22} complete@pred {metrics['completeness_at_prediction']:.3f}  "
        f"sound other {metrics['soundness_other_labels_mean']:.3f}  "
        f"{metrics['seconds_per_map'] * 1e3:.2f} ms/map"
    )


def run_benchmark(
    settings: BenchmarkSettings = DEFAULT_SETTINGS, *, log: Callable[[str], Any] | None = print
) -> BenchmarkResult:
    """Runs the benchmark on the bundled MNIST model.

    Args:
        settings: The :class:`BenchmarkSettings` (validated first).
        log: Called with progress messages (``None``: silent).

    Returns:
        A :class:`BenchmarkResult`.

    Examples::

        >>> from captum_soundness.benchmark import QUICK_SETTINGS, run_benchmark
        >>> result = run_benchmark(QUICK_SETTINGS.replace(methods=("saliency", "random"),
        ...                        show_progress=False), log=None)
        >>> sorted(result.methods)
        ['random', 'saliency']
    """
    return run_methods(settings, log=log)


#: A finished method: its result and the predicted label of every image.
Finished = tuple[MethodResult, list[int]]


def run_methods(
    settings: BenchmarkSettings,
    *,
    log: Callable[[str], Any] | None = print,
    done: Mapping[str, Finished] | None = None,
    on_finished: Callable[[MethodResult, list[int]], Any] | None = None,
) -> BenchmarkResult:
    """:func:`run_benchmark`, resumable: the methods in ``done`` are taken as they are
    (results of an earlier run with the same settings) and ``on_finished`` is called
    with every method the run finishes (the command line records it)."""
    from captum_soundness.models import MNIST_GRADCAM_LAYER

    check_settings(settings)
    done = done or {}
    say = log if log is not None else (lambda message: None)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    wall = time.perf_counter()
    digits = _load_digits(settings)
    context = BenchmarkContext(pool=digits.pool, gradcam_layer=MNIST_GRADCAM_LAYER)
    fill = evaluation_fill(settings, digits.eval_pool)
    say(
        f"Benchmark: {settings.images} held-out images x 10 labels, "
        f"{len(settings.methods)} methods, evaluation fill {fill[0]}, device "
        f"{digits.images.device}, {torch.get_num_threads()} threads"
        + (f"; {len(done)} recorded methods resumed" if done else "")
    )
    results: dict[str, MethodResult] = {}
    bar = tqdm(
        settings.methods, desc="methods", disable=not settings.show_progress, file=sys.stderr
    )
    for name in bar:
        bar.set_postfix_str(name)
        if name in done:
            results[name], predicted = done[name]
        else:
            results[name], report = _run_method(
                METHODS[name], settings, context, digits.model, digits.images, fill
            )
            predicted = report.predicted_labels.tolist()
            if on_finished is not None:
                on_finished(results[name], predicted)
        say(summary_line(results[name]))
    return BenchmarkResult(
        settings=settings,
        methods=results,
        fractions=[float(f) for f in torch.arange(1, settings.fractions + 1) / settings.fractions],
        images=digits.images.cpu(),
        image_labels=digits.labels,
        image_indices=digits.indices.tolist(),
        predicted=predicted,
        model_info=_model_info(digits),
        versions=versions(),
        started=started,
        wall_seconds=time.perf_counter() - wall,
    )
