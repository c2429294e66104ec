"""Speed of SimpleMasking against the floor of plain forward + backward passes.

For a model, ``N`` examples and ``B`` fill samples per example, every SimpleMasking step
evaluates the model on ``B * N`` masked inputs and back-propagates to the mask. The
**floor** is the cost of the same amount of model work and nothing else: per step, one
forward pass over a fixed ``(B * N, C, H, W)`` batch that requires grad (batched exactly
like SimpleMasking's steps, i.e. in chunks of ``max_examples_per_batch * B`` inputs when
chunking), a scalar loss (sum of the log-sum-exp of the logits) and one backward pass to
the inputs, with the parameters frozen (``requires_grad=False``) as SimpleMasking freezes
them. No fill drawing, no mask, no optimiser.

The reported ratio is ``floor time / SimpleMasking time`` for the same number of steps
(1.0 = no overhead at all; the target is >= 0.85). SimpleMasking's time is the wall time
of complete ``attribute`` calls (argument checks, the probe forward pass and setup
included) with the paper's fill, a :class:`~captum_soundness.fills.DatasetFill`. Each
measurement is repeated, ours and the floor alternating; the headline ratio compares the
fastest run of each (the least disturbed by other load), the ratio of medians is shown
next to it.

Run: ``python bench/bench_masking.py`` (``--quick`` for a smoke run).
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

from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import DatasetFill


def floor_run(
    model: nn.Module, batch: torch.Tensor, steps: int, chunk_inputs: int | None
) -> float:
    """Wall time of ``steps`` forward + backward passes over ``batch`` (params frozen)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    chunks = [batch] if chunk_inputs is None else list(batch.split(chunk_inputs))
    chunks = [c.detach().clone().requires_grad_(True) for c in chunks]
    try:
        start = time.perf_counter()
        for _ in range(steps):
            for c in chunks:
                loss = model(c).float().logsumexp(dim=1).sum()
                torch.autograd.grad(loss, c)
        return time.perf_counter() - start
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def ours_run(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    fill: DatasetFill,
    b: int,
    steps: int,
    max_rows: int | None,
) -> float:
    """Wall time of one complete ``SimpleMasking.attribute`` call (``max_rows``: its
    ``max_examples_per_batch``, model inputs per forward pass; ``None``: one pass)."""
    start = time.perf_counter()
    SimpleMasking(model).attribute(
        x,
        target,
        baselines=fill,
        n_fill_samples=b,
        steps=steps,
        seed=0,
        max_examples_per_batch=max_rows,
    )
    return time.perf_counter() - start


def bench(
    name: str,
    make_model: Callable[[], nn.Module],
    shape: tuple[int, ...],
    n: int,
    b: int,
    steps: int,
    repeats: int,
    max_examples_per_batch: int | None = None,
    classes: int = 10,
) -> float:
    torch.manual_seed(0)
    model = make_model().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen)
    pool = torch.randn(64, *shape, generator=gen)
    target = torch.randint(classes, (n,), generator=gen)
    fill = DatasetFill(pool)
    batch = torch.randn(b * n, *shape, generator=gen)
    chunk_inputs = None if max_examples_per_batch is None else max_examples_per_batch * b

    # warm-up (allocator, oneDNN primitive caches)
    ours_run(model, x, target, fill, b, 2, chunk_inputs)
    floor_run(model, batch, 2, chunk_inputs)

    ours, floor = [], []
    for _ in range(repeats):
        ours.append(ours_run(model, x, target, fill, b, steps, chunk_inputs))
        floor.append(floor_run(model, batch, steps, chunk_inputs))
    # The minimum over repeats is the least disturbed run (robust against other load on
    # the machine); the ratio of medians is printed for reference.
    t_ours, t_floor = min(ours), min(floor)
    ratio = t_floor / t_ours
    median_ratio = statistics.median(floor) / statistics.median(ours)
    chunking = "none" if max_examples_per_batch is None else f"{max_examples_per_batch} examples"
    print(
        f"{name}: input {tuple(shape)}, N={n} examples, B={b} fill samples, "
        f"{b * n} masked inputs/step, chunking={chunking}, {steps} steps x {repeats} repeats"
    )
    print(
        f"  SimpleMasking {1e3 * t_ours / steps:8.2f} ms/step   "
        f"floor {1e3 * t_floor / steps:8.2f} ms/step   "
        f"ratio floor/ours = {ratio:.3f}  ({'OK' if ratio >= 0.85 else 'BELOW'} target 0.85; "
        f"ratio of medians {median_ratio:.3f})"
    )
    return ratio


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
        "floor = forward + backward to the inputs of the same B*N inputs with the same "
        "batching, parameters frozen; ratio = floor time / SimpleMasking time"
    )
    steps, repeats = (3, 1) if opts.quick else (5, 7)
    bench("MNIST CNN", MnistCNN, (1, 28, 28), n=16, b=10, steps=steps, repeats=repeats)
    bench(
        "MNIST CNN (chunked)",
        MnistCNN,
        (1, 28, 28),
        n=16,
        b=10,
        steps=steps,
        repeats=repeats,
        max_examples_per_batch=4,
    )
    if not opts.skip_resnet:
        bench(
            "ResNet-18 (random weights)",
            resnet18_random,
            (3, 224, 224),
            n=2,
            b=4,
            steps=2 if opts.quick else 3,
            repeats=1 if opts.quick else 5,
            classes=1000,
        )


if __name__ == "__main__":
    main()
