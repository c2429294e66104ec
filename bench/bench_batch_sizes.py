"""Batch sizes chosen by measurement: the metrics' and SimpleMasking's chunk sizes.

One run, one process, the bundled model (``load_mnist_cnn``) and ``--images`` held-out
digits (the benchmark's choice, seed 0) x every label (10), measures:

1. **The all-label evaluation.** :func:`~captum_soundness.metrics.evaluate_all_labels`
   (constant fill 0, 28 fractions, precomputed random maps, so only the metric is timed)
   at ``max_examples_per_batch`` in ``--curve-batches`` (``none`` = all masked inputs in
   one forward pass), against the *forward floor*: the same number of forward passes
   (``pairs x 28`` masked inputs and the clean pass) at the fastest batch size of a bare
   ``model(x)`` loop.
2. **Deletion curves against Quantus.** :func:`~captum_soundness.metrics.deletion_curve`
   for every (image, label) pair at the same batch sizes, against Quantus's
   ``PixelFlipping`` (``quantus==0.6.0``, a bench-only dependency, never a runtime one) on
   the same work: the same maps, baseline 0, ``features_in_step = P / 28`` (so its 28
   steps remove the same top positions as our 28 fractions), softmax, at its
   ``batch_size`` in ``--quantus-batches`` (its default is 64). Both curves are checked
   to agree (random continuous maps, so no ties).
3. **SimpleMasking's chunks.** The presets in ``--presets`` (``DatasetFill`` on the
   benchmark's 1000 training digits, seed 0) on all pairs, optimised in chunks of
   ``--mask-batches`` (image, label) pairs (``none``: all together), against the
   forward+backward floor (the same number of forward and input-gradient passes at the
   fastest batch of a bare loop).

Every configuration runs ``--rounds`` times, interleaved, and the table keeps the fastest
round of each (process CPU time with ``--threads`` threads, default 1, and wall time):
on a shared machine the waits inflate wall time, CPU time is what the work costs.
Results go to ``--out`` (default ``bench/results/batch_sizes.json`` and ``.md``).

Run: ``python bench/bench_batch_sizes.py`` (about 5 minutes on one idle core).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from captum_soundness.attr import SimpleMasking
from captum_soundness.metrics import deletion_curve, evaluate_all_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_masking_recipes import IMAGE_SEED, fill_kwarg, masking_kwargs, setup

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = 28
FLOOR_BATCHES = (16, 32, 64, 128, 256, 512, 1024, 4096)


def parse_batches(text: str) -> list[int | None]:
    """``"none,4096,256"`` -> ``[None, 4096, 256]``."""
    return [None if item.strip().lower() == "none" else int(item) for item in text.split(",")]


def clock(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and process CPU seconds of ``fn()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


class Timings:
    """The fastest round (CPU and wall) of every named configuration."""

    def __init__(self) -> None:
        self.best: dict[str, dict[str, float]] = {}

    def add(self, name: str, wall: float, cpu: float, work: int) -> None:
        b = self.best.setdefault(name, {"wall": math.inf, "cpu": math.inf, "work": work})
        b["wall"], b["cpu"] = min(b["wall"], wall), min(b["cpu"], cpu)

    def run(self, name: str, fn: Callable[[], Any], work: int) -> Any:
        wall, cpu, out = clock(fn)
        self.add(name, wall, cpu, work)
        print(f"  {name:<34} wall {wall:8.3f} s  cpu {cpu:8.3f} s", flush=True)
        return out


def forward_floor(model: torch.nn.Module, x: torch.Tensor, total: int, grad: bool) -> Any:
    """Per-input seconds (CPU, wall) of a bare loop of ``total`` inputs at each batch size.

    ``grad``: forward and backward to the inputs (SimpleMasking's step), else
    ``torch.no_grad()`` forward passes (the curves).
    """
    rows = x[torch.arange(max(FLOOR_BATCHES)) % x.shape[0]].contiguous()
    out = {}
    for batch in FLOOR_BATCHES:
        chunks = max(1, math.ceil(total / batch))

        def loop(chunks: int = chunks, batch: int = batch) -> None:
            for _ in range(chunks):
                inp = rows[:batch]
                if grad:
                    inp = inp.clone().requires_grad_(True)
                    torch.autograd.grad(model(inp).logsumexp(1).sum(), inp)
                else:
                    with torch.no_grad():
                        model(inp)

        wall, cpu, _ = clock(loop)
        out[batch] = (cpu / (chunks * batch), wall / (chunks * batch))
    return out


def curve_round(t: Timings, model, x, maps, pairs, batches: list[int | None]) -> dict:
    """One round of part 1 and of our half of part 2 (deletion curves)."""
    inputs, target = pairs
    n, labels = x.shape[0], 10
    curves = {}
    for batch in batches:
        tag = "none" if batch is None else str(batch)
        t.run(
            f"evaluate_all_labels batch {tag}",
            lambda batch=batch: evaluate_all_labels(
                lambda inp, target: maps,
                model,
                x,
                **fill_kwarg(evaluate_all_labels, 0.0),
                fractions=FRACTIONS,
                max_examples_per_batch=batch,
                seed=IMAGE_SEED + 2,
            ),
            n * labels * FRACTIONS + n,
        )
        curves[tag] = t.run(
            f"deletion_curve batch {tag}",
            lambda batch=batch: deletion_curve(
                model,
                inputs,
                maps,
                target,
                **fill_kwarg(deletion_curve, 0.0),
                fractions=FRACTIONS,
                max_examples_per_batch=batch,
            ),
            n * labels * FRACTIONS,
        )
    return curves


def quantus_round(t: Timings, model, maps, pairs, batches: list[int]) -> dict:
    """One round of Quantus's PixelFlipping on the same pairs and maps."""
    import numpy as np
    import quantus

    inputs, target = pairs
    positions = inputs[0, 0].numel()
    x_np, y_np = inputs.numpy(), target.numpy()
    a_np = maps.expand_as(inputs).numpy()
    curves = {}
    for batch in batches:
        metric = quantus.PixelFlipping(
            features_in_step=positions // FRACTIONS,
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )

        def call(metric=metric, batch=batch) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return metric(
                    model=model,
                    x_batch=x_np,
                    y_batch=y_np,
                    a_batch=a_np,
                    device="cpu",
                    softmax=True,
                    batch_size=batch,
                )

        out = t.run(f"quantus PixelFlipping batch {batch}", call, len(y_np) * FRACTIONS)
        curves[str(batch)] = torch.from_numpy(np.asarray(out, dtype=np.float32))
    return curves


def masking_round(t: Timings, model, pool, pairs, presets, batches) -> None:
    """One round of part 3: every preset at every chunk size on all pairs."""
    inputs, target = pairs
    method = SimpleMasking(model)
    for preset in presets:
        for batch in batches:
            tag = "none" if batch is None else str(batch)
            recipe = {"preset": preset, "max_examples_per_batch": batch}
            kwargs = masking_kwargs(method, recipe, pool)  # chunk in pairs -> this version's
            t.run(
                f"SimpleMasking {preset} chunk {tag}",
                lambda kwargs=kwargs: method.attribute(inputs, target, seed=0, **kwargs),
                inputs.shape[0],
            )


def ratio_rows(t: Timings, prefix: str, floor: float, other: float | None) -> list[str]:
    rows = []
    for name, b in t.best.items():
        if not name.startswith(prefix):
            continue
        per = b["cpu"] / b["work"]
        vs = f"{b['cpu'] / other:.2f}" if other else "-"
        rows.append(
            f"| {name} | {b['cpu']:.3f} | {b['wall']:.3f} | {per * 1e6:.1f} "
            f"| {per / floor:.2f} | {vs} |"
        )
    return rows


def report(t: Timings, floors: dict, presets: list[str], meta: dict) -> str:
    """The markdown tables (CPU seconds of the fastest round; ratios of CPU time)."""
    fwd = min(c for c, _ in floors["forward"].values())
    fb = min(c for c, _ in floors["forward_backward"].values())
    quantus = [b["cpu"] for n, b in t.best.items() if n.startswith("quantus")]
    best_q = min(quantus) if quantus else None
    head = "| configuration | CPU s | wall s | CPU us per input | x floor | x Quantus best |"
    rule = "|:---|---:|---:|---:|---:|---:|"
    lines = [
        f"{meta['images']} digits x 10 labels, {meta['threads']} thread(s), fastest of "
        f"{meta['rounds']} rounds. Floors (CPU us per input at the fastest batch): "
        f"forward {fwd * 1e6:.1f}, forward+backward {fb * 1e6:.1f}.",
        "",
        "Forward floor per batch size (CPU us per input): "
        + ", ".join(f"{b}: {c * 1e6:.1f}" for b, (c, _) in floors["forward"].items()),
        "",
        "Forward+backward floor per batch size (CPU us per input): "
        + ", ".join(f"{b}: {c * 1e6:.1f}" for b, (c, _) in floors["forward_backward"].items()),
        "",
        head,
        rule,
        *ratio_rows(t, "evaluate_all_labels", fwd, None),
        *ratio_rows(t, "deletion_curve", fwd, best_q),
        *ratio_rows(t, "quantus", fwd, best_q),
        "",
        "SimpleMasking (input = one map; x floor: against steps x samples forward+backward "
        "passes per map at the floor)",
        "",
        "| configuration | CPU s | wall s | CPU s per map | x floor |",
        "|:---|---:|---:|---:|---:|",
    ]
    from captum_soundness.attr import PRESETS

    for name, b in t.best.items():
        if name.startswith("SimpleMasking"):
            recipe = PRESETS[name.split()[1]]
            passes = recipe["steps"] * recipe["n_fill_samples"]
            per = b["cpu"] / b["work"]
            lines.append(
                f"| {name} | {b['cpu']:.3f} | {b['wall']:.3f} | {per:.4f} "
                f"| {per / (passes * fb):.2f} |"
            )
    return "\n".join(lines)


def check_agreement(ours: dict, theirs: dict) -> float:
    """Largest difference between our deletion curves and Quantus's (same maps)."""
    reference = next(iter(ours.values()))
    diffs = [float((reference - c).abs().max()) for c in [*ours.values(), *theirs.values()]]
    return max(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--curve-batches", default="none,4096,1024,256,128,64")
    parser.add_argument("--quantus-batches", default="64,200")
    parser.add_argument("--presets", default="fast,area,sharp")
    parser.add_argument("--mask-batches", default="none,100,50,20,10")
    parser.add_argument("--out", type=Path, default=RESULTS / "batch_sizes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, x, pool = setup(args.images)
    n, labels = x.shape[0], 10
    pairs = (x.repeat_interleave(labels, dim=0), torch.arange(labels).repeat(n))
    maps = torch.rand(n * labels, 1, *x.shape[2:], generator=torch.Generator().manual_seed(0))
    presets = [p for p in args.presets.split(",") if p]
    curve_batches, mask_batches = (
        parse_batches(args.curve_batches),
        parse_batches(args.mask_batches),
    )
    quantus_batches = [int(b) for b in args.quantus_batches.split(",") if b]
    t = Timings()
    floors: dict[str, dict] = {"forward": {}, "forward_backward": {}}
    diff = math.nan
    for r in range(args.rounds):
        print(f"round {r}", flush=True)
        for key, grad, total in (
            ("forward", False, n * labels * FRACTIONS),
            ("forward_backward", True, 2000),
        ):
            for b, (c, w) in forward_floor(model, x, total, grad).items():
                old = floors[key].get(b, (math.inf, math.inf))
                floors[key][b] = (min(old[0], c), min(old[1], w))
        ours = curve_round(t, model, x, maps, pairs, curve_batches)
        theirs = quantus_round(t, model, maps, pairs, quantus_batches) if quantus_batches else {}
        diff = check_agreement(ours, theirs)
        masking_round(t, model, pool, pairs, presets, mask_batches)
    meta = {"images": n, "threads": args.threads, "rounds": args.rounds, "curve_diff": diff}
    text = report(t, floors, presets, meta)
    text += (
        "\n\nLargest difference between the deletion curves (ours at every batch, "
        f"Quantus): {diff:.2e}\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    floors_json = {k: {str(b): v for b, v in f.items()} for k, f in floors.items()}
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"meta": meta, "best": t.best, "floors": floors_json, "torch": torch.__version__},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
