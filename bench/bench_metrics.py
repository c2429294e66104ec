"""Speed of the all-label evaluation against the floor of plain batched forward passes.

For ``N`` images, ``L`` labels, ``F`` fractions and one sample of the reference constant
fill, the all-label evaluation runs the model on ``N * L * F`` masked inputs. The
**floor** is the cost of that model work and nothing else: plain forward passes under
``torch.no_grad`` over pre-built ``(N * L * F, C, H, W)`` inputs, batched exactly like
ours (``max_examples_per_batch`` inputs per forward). No ranking, no masks, no softmax.

Two of our entry points are timed, each as complete calls (argument checks included):

- ``evaluate_all_labels``: explanations of all ``N * L`` pairs (a free ``explain_func``
  returning fixed random maps, so that only the metric machinery is measured), the clean
  forward pass of the ``N`` images, ``N * L`` insertion curves and the report;
- ``insertion_curve`` on the ``N * L`` (image, label) rows (images repeated per label).

The reported ratio is ``floor time / our time`` (1.0 = no overhead; the target is
>= 0.9). Ours and the floor alternate over the repeats and the medians are compared.
Our overhead per chunk is a handful of elementwise/gather ops (mask lookup, input
gather, ``where``, softmax); on a busy machine each parallel op can cost milliseconds of
thread wake-up latency, so small models with many small chunks are the worst case.

Run: ``python bench/bench_metrics.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from benchmark_models import MnistCNN, resnet18_random
from torch import nn

from captum_soundness.metrics import evaluate_all_labels, insertion_curve


def floor_run(model: nn.Module, batch: torch.Tensor, chunk: int | None) -> float:
    """Wall time of plain no-grad forward passes over ``batch`` in chunks of ``chunk``."""
    chunks = [batch] if chunk is None else list(batch.split(chunk))
    start = time.perf_counter()
    with torch.no_grad():
        for c in chunks:
            model(c)
    return time.perf_counter() - start


def bench(
    name: str,
    make_model: Callable[[], nn.Module],
    shape: tuple[int, ...],
    n: int,
    labels: list[int] | None,
    fractions: int,
    chunk: int | None,
    repeats: int,
) -> dict[str, float]:
    torch.manual_seed(0)
    model = make_model().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen)
    num_labels = 10 if labels is None else len(labels)
    rows = n * num_labels
    total = rows * fractions
    batch = torch.randn(total, *shape, generator=gen)
    maps = torch.randn(rows, *shape[1:], generator=gen)
    x_rows = x.repeat_interleave(num_labels, dim=0)
    targets = torch.arange(num_labels) if labels is None else torch.tensor(labels)
    targets = targets.repeat(n)

    def explain(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return maps[: inputs.shape[0]]  # free: fixed random maps, one per (image, label)

    def run_eval() -> float:
        start = time.perf_counter()
        evaluate_all_labels(
            explain,
            model,
            x,
            labels=labels,
            fractions=fractions,
            max_examples_per_batch=chunk,
        )
        return time.perf_counter() - start

    def run_curve() -> float:
        start = time.perf_counter()
        insertion_curve(
            model, x_rows, maps, targets, fractions=fractions, max_examples_per_batch=chunk
        )
        return time.perf_counter() - start

    # warm-up (allocator, oneDNN primitive caches for the chunk shapes, first calls)
    floor_run(model, batch if chunk is None else batch[: 2 * chunk], chunk)
    evaluate_all_labels(explain, model, x, labels=labels, fractions=[1.0])
    insertion_curve(model, x_rows, maps, targets, fractions=[1.0])

    times: dict[str, list[float]] = {"eval": [], "curve": [], "floor": []}
    for _ in range(repeats):
        times["floor"].append(floor_run(model, batch, chunk))
        times["eval"].append(run_eval())
        times["curve"].append(run_curve())
    t = {k: statistics.median(v) for k, v in times.items()}
    chunking = "none" if chunk is None else f"{chunk} inputs/forward"
    print(
        f"{name}: input {tuple(shape)}, N={n} images x {num_labels} labels x {fractions} "
        f"fractions = {total} masked inputs, chunking={chunking}, {repeats} repeats"
    )
    ratios = {}
    for key, label in (("eval", "evaluate_all_labels"), ("curve", "insertion_curve")):
        ratio = t["floor"] / t[key]
        ratios[key] = ratio
        print(
            f"  {label:<20} {t[key]:8.3f} s   floor {t['floor']:8.3f} s   "
            f"ratio floor/ours = {ratio:.3f}  ({'OK' if ratio >= 0.9 else 'BELOW'} target 0.9)"
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--skip-resnet", action="store_true")
    opts = parser.parse_args()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device cpu"
    )
    print(
        "floor = plain no-grad forward passes over the same number of masked inputs with "
        "the same batching; ratio = floor time / our time"
    )
    q = opts.quick
    bench(
        "MNIST CNN",
        MnistCNN,
        (1, 28, 28),
        n=4 if q else 8,
        labels=None,
        fractions=28,
        chunk=None,
        repeats=1 if q else 3,
    )
    bench(
        "MNIST CNN (chunked)",
        MnistCNN,
        (1, 28, 28),
        n=4 if q else 8,
        labels=None,
        fractions=28,
        chunk=448,
        repeats=1 if q else 3,
    )
    if not opts.skip_resnet:
        bench(
            "ResNet-18 224x224 (random weights, labels 0-9 of 1000)",
            resnet18_random,
            (3, 224, 224),
            n=1,
            labels=list(range(10)),
            fractions=28,
            chunk=56,
            repeats=1 if q else 2,
        )


if __name__ == "__main__":
    main()
