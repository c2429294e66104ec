"""Mask recipes on the all-label evaluation: wall time per map against quality (Pareto).

Protocol (the benchmark's, see ``captum_soundness/benchmark.py``): the bundled model
(``load_mnist_cnn``), ``--images`` held-out digits (``load_mnist_digits("test")``, chosen
balanced over the digits by the benchmark's rule with seed 0), **every** label (10)
explained. SimpleMasking recipes train their masks with a
:class:`~captum_soundness.fills.DatasetFill` on 1000 training digits (the benchmark's pool,
``load_mnist_digits("train")``, disjoint from the evaluated digits); every map is scored
by :func:`~captum_soundness.metrics.evaluate_all_labels` with the constant fill 0 and 28
kept fractions. Headline numbers are ``report.summary()``'s completeness at the
prediction and soundness over the other labels. Each recipe runs once per seed (the seed
of SimpleMasking's fill draws); the table shows mean +- std across seeds. The images and
the pool are the same for every seed and recipe (same batch).

Time per map is the wall time of the explanation calls only (all 200 (image, label) pairs
of the digits in one ``attribute`` call, as the benchmark calls it), divided by the number
of maps, after one untimed warm-up call on a single pair. Timings are comparable only
within one machine and thread setting (``--threads``, default 1, so that two runs can
share a 2-core machine without disturbing each other).

TorchRay's extremal perturbation (``torchray.attribution.extremal_perturbation``, a
bench-only dependency: ``pip install --no-deps torchray``, see ``--help``) is run with the
issue's settings: one call per (image, label), ``areas=[a]`` for a in 0.05, 0.1, 0.2,
800 iterations, ``fade`` perturbation (towards 0), ``step=2``, ``sigma=6``, no jitter. It
is deterministic (no random draws), so it runs with one seed.

Results are appended record by record to ``--out/<--json>`` (default
``bench/results/recipes.json``; one record per recipe and seed; a (recipe, seed, images)
already recorded in any ``recipes*.json`` there is skipped, so an interrupted run
resumes and several processes can share the work). After the runs, or alone with
``--report``, every ``recipes*.json`` is aggregated into the Pareto table and the table of
each preset against each TorchRay area (printed, and written with the timing tables to
``recipes_tables_<images>.md``), ``summary_<images>.json`` and the figure
``recipes_<images>.png``.

``--skip N`` evaluates the ``--images`` digits that follow the first ``N`` of the
benchmark's order instead (a set disjoint from the default one, to check recipes tuned on
it); its records and outputs carry the suffix ``_skipN``.

SimpleMasking optimises the pairs in chunks of :data:`PAIRS_PER_CHUNK` (20) pairs,
passed as ``max_examples_per_batch`` in the unit of the installed version (model inputs,
``pairs x n_fill_samples``, where its docstring says so; pairs before). The fill is
passed as ``baselines`` where that keyword exists.

``--timing ROUNDS`` is the same-process timing mode: every recipe of ``--recipes`` in
turn, ``ROUNDS`` times, on the same ``--timing-images`` digits x 10 labels, recording
wall and process CPU seconds per map (``timing*.json``); the table keeps the fastest
round. On a shared, loaded machine wall time mostly measures the waits, CPU time (one
thread) what the work costs.

Run: ``python bench/bench_masking_recipes.py --recipes paper,fast,area,torchray-0.1``
(``--list`` lists the recipes; ``--report`` only aggregates). TorchRay 1.0.0.2 imports
and runs unchanged with torch 2.x in these settings (no shim needed); install it with
``pip install --no-deps torchray`` (its declared dependencies, pycocotools and pymongo
among them, are not needed for ``extremal_perturbation``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from captum_soundness.attr import PRESETS, SimpleMasking
from captum_soundness.fills import DatasetFill
from captum_soundness.metrics import evaluate_all_labels
from captum_soundness.models import load_mnist_cnn, load_mnist_digits

RESULTS = Path(__file__).resolve().parent / "results"

#: SimpleMasking recipes: name -> (description, keyword arguments of ``attribute``).
#: ``max_examples_per_batch`` is part of a recipe (chosen by measurement).
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("preset='paper' (the default: 2000 steps x 10 samples)", {}),
    "paper-chunk50": (
        "paper recipe, benchmark's chunks of 50",
        {"max_examples_per_batch": 50},
    ),
    "bench-200x5": (
        "benchmark default: 200 steps x 5 samples",
        {"steps": 200, "n_fill_samples": 5},
    ),
    "20x10": ("paper, 20 steps x 10 samples (1/100 compute)", {"steps": 20}),
    "40x5": (
        "paper, 40 steps x 5 samples (1/100 compute)",
        {"steps": 40, "n_fill_samples": 5},
    ),
    "100x2": (
        "paper, 100 steps x 2 samples (1/100 compute)",
        {"steps": 100, "n_fill_samples": 2},
    ),
    "10x5": ("paper, 10 steps x 5 samples", {"steps": 10, "n_fill_samples": 5}),
    "3x10": ("paper, 3 steps x 10 samples", {"steps": 3}),
    "10x5-cosine": (
        "10 steps x 5 samples, cosine step-size decay",
        {"steps": 10, "n_fill_samples": 5, "lr_schedule": "cosine"},
    ),
    "fast": ("preset='fast' (5 steps x 5 samples)", {"preset": "fast"}),
    "10x5-chunk50": (
        "10 steps x 5 samples, chunks of 50",
        {"steps": 10, "n_fill_samples": 5, "max_examples_per_batch": 50},
    ),
    "10x5-unchunked": (
        "10 steps x 5 samples, all pairs in one batch",
        {"steps": 10, "n_fill_samples": 5, "max_examples_per_batch": None},
    ),
    "area": ("preset='area' (50 steps x 5 samples, area 0.1, weight 3)", {"preset": "area"}),
    "area-w1": ("area preset, area_weight 1", {"preset": "area", "area_weight": 1.0}),
    "area-0.2": ("area preset, area 0.2 (area_weight 3)", {"preset": "area", "area": 0.2}),
    "area-0.05": ("area preset, area 0.05 (area_weight 3)", {"preset": "area", "area": 0.05}),
    "area-30-w1": (
        "area preset, 30 steps, area_weight 1",
        {"preset": "area", "steps": 30, "area_weight": 1.0},
    ),
    "area-30-w3": (
        "area preset, 30 steps (area_weight 3)",
        {"preset": "area", "steps": 30, "area_weight": 3.0},
    ),
    "area-ds1": (
        "area preset at full resolution (downsample 1)",
        {"preset": "area", "downsample": 1},
    ),
    "area-0.05-ds1-w10": (
        "area preset, area 0.05, weight 10, full resolution",
        {"preset": "area", "area": 0.05, "area_weight": 10.0, "downsample": 1},
    ),
    "sharp": (
        "preset='sharp' (20 steps x 5 samples, lr 0.1, full resolution, area 0.01, weight 10)",
        {"preset": "sharp"},
    ),
    "sharp-10": ("sharp preset, 10 steps", {"preset": "sharp", "steps": 10}),
    "sharp-30": ("sharp preset, 30 steps", {"preset": "sharp", "steps": 30}),
    "sharp-lr0.05": ("sharp preset, lr 0.05", {"preset": "sharp", "lr": 0.05}),
    "sharp-w5": ("sharp preset, area_weight 5", {"preset": "sharp", "area_weight": 5.0}),
    "sharp-w20": ("sharp preset, area_weight 20", {"preset": "sharp", "area_weight": 20.0}),
    "sharp-0.02": ("sharp preset, area 0.02", {"preset": "sharp", "area": 0.02}),
    "sharp-0.05": ("sharp preset, area 0.05", {"preset": "sharp", "area": 0.05}),
    "sharp-ds2": ("sharp preset, downsample 2", {"preset": "sharp", "downsample": 2}),
    "sharp-tv0.03": ("sharp preset, tv 0.03", {"preset": "sharp", "tv": 0.03}),
    "sharp-log_prob": (
        "sharp preset, log_prob objective",
        {"preset": "sharp", "objective": "log_prob"},
    ),
}

#: TorchRay recipes: name -> area.
TORCHRAY = {"torchray-0.05": 0.05, "torchray-0.1": 0.1, "torchray-0.2": 0.2}

#: Colours of the presets in the figure (other recipes blue, TorchRay red).
PRESET_COLORS = {
    "paper": "black",
    "fast": "tab:green",
    "area": "tab:orange",
    "sharp": "tab:purple",
}

#: SimpleMasking's chunk in the recipes: (image, label) pairs optimised together
#: (``bench/bench_batch_sizes.py``: 10 to 100 cost the same, all 200 pairs 20 to 35% more).
PAIRS_PER_CHUNK = 20

IMAGE_SEED = 0  # the benchmark's default seed: image choice (seed) and pool (seed + 1)
POOL_SIZE = 1000
FRACTIONS = 28
CURVE_BATCH = 256


def choose_images(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The benchmark's image choice: ``count`` indices balanced over the digits."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.numel(), generator=generator)
    per_digit = [order[labels[order] == d] for d in range(int(labels.max()) + 1)]
    depth = max(len(p) for p in per_digit)
    rounds = [p[r] for r in range(depth) for p in per_digit if r < len(p)]
    return torch.stack(rounds[:count])


def setup(images: int, skip: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The model, the chosen held-out digits and the mask-training pool (benchmark's).

    ``skip``: take the digits at positions ``skip .. skip + images - 1`` of the
    benchmark's balanced order instead of the first ``images`` (a disjoint set).
    """
    model = load_mnist_cnn("cpu")
    train_x, _ = load_mnist_digits("train")
    test_x, test_y = load_mnist_digits("test")
    x = test_x[choose_images(test_y, skip + images, IMAGE_SEED)[skip:]]
    permutation = torch.randperm(
        train_x.shape[0], generator=torch.Generator().manual_seed(IMAGE_SEED + 1)
    )
    pool = train_x[permutation[:POOL_SIZE]]
    return model, x, pool


class Timed:
    """An explain_func wrapper that sums its wall time and its process CPU time."""

    def __init__(self, explain: Any) -> None:
        self.explain, self.seconds, self.cpu_seconds, self.calls = explain, 0.0, 0.0, 0

    def __call__(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        start, cpu = time.perf_counter(), time.process_time()
        out = self.explain(inputs, target)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu
        self.calls += 1
        return out


def fill_kwarg(func: Any, value: Any) -> dict[str, Any]:
    """``{"baselines": value}`` where ``func`` takes ``baselines`` (versions in which
    ``fill`` is its deprecated alias), else ``{"fill": value}``."""
    key = "baselines" if "baselines" in inspect.signature(func).parameters else "fill"
    return {key: value}


def masking_kwargs(method: SimpleMasking, kwargs: dict, pool: torch.Tensor) -> dict:
    """The keyword arguments of ``method.attribute`` for a recipe's ``kwargs``.

    The recipe's chunk (``max_examples_per_batch``, default :data:`PAIRS_PER_CHUNK`) is
    given in (image, label) pairs. Versions of SimpleMasking whose
    ``max_examples_per_batch`` counts model inputs (rows) get ``pairs x n_fill_samples``;
    the earlier ones, which count examples, get the pairs. The fill goes to
    ``baselines`` where that keyword exists (``fill`` is its deprecated alias).
    """
    doc = method.attribute.__doc__ or ""
    out = {k: v for k, v in kwargs.items() if k != "max_examples_per_batch"}
    pairs = kwargs.get("max_examples_per_batch", PAIRS_PER_CHUNK)
    if pairs is not None and "model inputs" in doc.split("max_examples_per_batch (int")[-1][:80]:
        samples = out.get("n_fill_samples", PRESETS[out.get("preset", "paper")]["n_fill_samples"])
        pairs *= samples
    out["max_examples_per_batch"] = pairs
    out.update(fill_kwarg(method.attribute, DatasetFill(pool)))
    return out


def masking_explainer(model: torch.nn.Module, pool: torch.Tensor, kwargs: dict, seed: int):
    method = SimpleMasking(model)
    kwargs = masking_kwargs(method, kwargs, pool)

    def explain(inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        return method.attribute(inputs, target=target, seed=seed, **kwargs)

    return explain


def torchray_explainer(model: torch.nn.Module, area: float):
    from torchray.attribution.extremal_perturbation import (
        FADE_PERTURBATION,
        extremal_perturbation,
    )

    def explain(inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        targets = torch.as_tensor(target).expand(inputs.shape[0]).tolist()
        flags = [p.requires_grad for p in model.parameters()]  # TorchRay clears them
        maps = []
        for i, label in enumerate(targets):  # TorchRay: one call per (image, label)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask, _ = extremal_perturbation(
                    model,
                    inputs[i : i + 1],
                    int(label),
                    areas=[area],
                    perturbation=FADE_PERTURBATION,
                    max_iter=800,
                    step=2,
                    sigma=6,
                    jitter=False,
                )
            maps.append(mask)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        return torch.cat(maps).expand_as(inputs)

    return explain


def run_one(name: str, seed: int, model, x, pool, skip: int = 0) -> dict[str, Any]:
    if name in TORCHRAY:
        explain = torchray_explainer(model, TORCHRAY[name])
        description, kwargs = f"TorchRay extremal perturbation, area {TORCHRAY[name]}", {}
    else:
        description, kwargs = RECIPES[name]
        explain = masking_explainer(model, pool, kwargs, seed)
    explain(x[:1], torch.zeros(1, dtype=torch.long))  # untimed warm-up
    timed = Timed(explain)
    report = evaluate_all_labels(
        timed,
        model,
        x,
        **fill_kwarg(evaluate_all_labels, 0.0),
        fractions=FRACTIONS,
        max_examples_per_batch=CURVE_BATCH,
        seed=IMAGE_SEED + 2,
    )
    summary = report.summary()
    maps = report.num_images * report.num_labels
    resolved = None
    if name not in TORCHRAY:
        resolved = dict(PRESETS[kwargs.get("preset", "paper")])
        resolved.update({k: v for k, v in kwargs.items() if k in resolved})
    return {
        "recipe": name,
        "description": description,
        "kwargs": kwargs,
        "resolved": resolved,
        "seed": seed,
        "images": int(x.shape[0]),
        "skip": skip,
        "maps": maps,
        "seconds": timed.seconds,
        "seconds_per_map": timed.seconds / maps,
        "cpu_seconds_per_map": timed.cpu_seconds / maps,
        "summary": summary,
        "threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def make_explainer(name: str, model, pool, seed: int):
    if name in TORCHRAY:
        return torchray_explainer(model, TORCHRAY[name])
    return masking_explainer(model, pool, RECIPES[name][1], seed)


def run_timing(names: list[str], rounds: int, model, x, pool, path: Path) -> None:
    """Same process, same (image, label) pairs: every recipe ``rounds`` times, in turn.

    Records wall and process CPU seconds per map of each call. With one thread, CPU time
    is what the call costs on an idle machine; wall time also counts the waits of a
    loaded one.
    """
    n, labels = x.shape[0], 10
    inputs = x.repeat_interleave(labels, dim=0)
    target = torch.arange(labels).repeat(n)
    explainers = {name: make_explainer(name, model, pool, 0) for name in names}
    for explain in explainers.values():  # untimed warm-up
        explain(x[:1], torch.zeros(1, dtype=torch.long))
    for r in range(rounds):
        for name, explain in explainers.items():
            timed = Timed(explain)
            timed(inputs, target)
            record = {
                "recipe": name,
                "round": r,
                "images": n,
                "maps": n * labels,
                "seconds_per_map": timed.seconds / (n * labels),
                "cpu_seconds_per_map": timed.cpu_seconds / (n * labels),
                "threads": torch.get_num_threads(),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            save(path, [*load(path), record])
            print(
                f"timing {name:<16} round {r}  wall {record['seconds_per_map']:.4f} s/map  "
                f"cpu {record['cpu_seconds_per_map']:.4f} s/map",
                flush=True,
            )


def timing_best(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Fastest round of each recipe (the least disturbed by other load), CPU and wall."""
    best: dict[str, dict[str, float]] = {}
    for r in records:
        b = best.setdefault(r["recipe"], {"cpu": math.inf, "wall": math.inf, "rounds": 0})
        b["cpu"] = min(b["cpu"], r["cpu_seconds_per_map"])
        b["wall"] = min(b["wall"], r["seconds_per_map"])
        b["rounds"] += 1
    return best


def timing_table(records: list[dict[str, Any]], name: str = "") -> str:
    best = timing_best(records)
    n = records[0]["images"]
    ref_p, ref_t = best.get("paper"), best.get("torchray-0.1")
    lines = [
        f"Timing{f' ({name})' if name else ''}: same process, same {n} digits x 10 labels, "
        "fastest of the rounds",
        "",
        "| recipe | rounds | CPU s/map | CPU x paper | CPU x TorchRay 0.1 | wall s/map "
        "| wall x paper | wall x TorchRay 0.1 |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(b: dict[str, float], ref: dict[str, float] | None, key: str) -> str:
        return f"{b[key] / ref[key]:.4f}" if ref else "-"

    for name, b in sorted(best.items(), key=lambda kv: kv[1]["cpu"]):
        lines.append(
            f"| {name} | {b['rounds']} | {b['cpu']:.4f} | {ratio(b, ref_p, 'cpu')} "
            f"| {ratio(b, ref_t, 'cpu')} | {b['wall']:.4f} | {ratio(b, ref_p, 'wall')} "
            f"| {ratio(b, ref_t, 'wall')} |"
        )
    return "\n".join(lines)


def load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["records"] if path.exists() else []


def load_all(out: Path) -> list[dict[str, Any]]:
    """The records of every ``recipes*.json`` under ``out`` (one file per process)."""
    return [r for p in sorted(out.glob("recipes*.json")) for r in load(p)]


def save(path: Path, records: list[dict[str, Any]]) -> None:
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.is_available(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    tmp.replace(path)


def aggregate(records: list[dict[str, Any]], images: int, skip: int = 0) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["images"] != images or r.get("skip", 0) != skip:
            continue
        row = rows.setdefault(
            r["recipe"], {"recipe": r["recipe"], "description": r["description"], "runs": []}
        )
        row["runs"].append(r)

    def stat(values: list[float]) -> tuple[float, float]:
        mean = statistics.fmean(values)
        return mean, statistics.stdev(values) if len(values) > 1 else 0.0

    out = []
    for row in rows.values():
        runs = row["runs"]
        row["seeds"] = [r["seed"] for r in runs]
        row["time"] = stat([r["seconds_per_map"] for r in runs])
        cpu = [r["cpu_seconds_per_map"] for r in runs if "cpu_seconds_per_map" in r]
        row["cpu"] = stat(cpu) if cpu else None
        row["cpu_runs"] = len(cpu)
        row["complete"] = stat([r["summary"]["completeness_at_prediction"] for r in runs])
        row["sound"] = stat([r["summary"]["soundness_other_labels_mean"] for r in runs])
        row["threads"] = sorted({r["threads"] for r in runs})
        del row["runs"]
        out.append(row)
    return sorted(out, key=lambda row: row["time"][0])


def cpu_per_map(row: dict[str, Any], timing: dict[str, dict[str, float]]) -> tuple[float, str]:
    """CPU s/map of a recipe: its own runs' mean (marked ``+`` when only some of its runs
    recorded CPU time), else the timing run's (marked ``*``)."""
    if row.get("cpu") is not None:
        return row["cpu"][0], "" if row["cpu_runs"] == len(row["seeds"]) else "+"
    if row["recipe"] in timing:
        return timing[row["recipe"]]["cpu"], "*"
    return math.nan, ""


def table(rows: list[dict[str, Any]], images: int, timing: dict[str, dict[str, float]]) -> str:
    ref = {row["recipe"]: row for row in rows}
    paper = cpu_per_map(ref["paper"], timing)[0] if "paper" in ref else math.nan
    tr = cpu_per_map(ref["torchray-0.1"], timing)[0] if "torchray-0.1" in ref else math.nan
    lines = [
        f"{images} held-out digits x 10 labels; mean +- std across seeds (TorchRay: "
        "deterministic, one run). CPU s/map: process CPU time of the explanation calls "
        "(1 thread), mean over the recipe's runs (+: over those that recorded it), or (*) "
        "the fastest round of the timing run; wall s/map: wall time of the same calls on the "
        "shared machine.",
        "",
        "| recipe | seeds | CPU s/map | x paper | x TorchRay 0.1 | wall s/map | "
        "complete@pred | sound other |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda row: cpu_per_map(row, timing)[0]):
        t, c, s = row["time"], row["complete"], row["sound"]
        cpu, mark = cpu_per_map(row, timing)
        xp = f"{cpu / paper:.4f}" if math.isfinite(cpu / paper) else "-"
        xt = f"{cpu / tr:.3f}" if math.isfinite(cpu / tr) else "-"
        lines.append(
            f"| {row['recipe']} | {len(row['seeds'])} | {cpu:.4f}{mark} | {xp} "
            f"| {xt} | {t[0]:.4f} +- {t[1]:.4f} "
            f"| {c[0]:.3f} +- {c[1]:.3f} | {s[0]:.3f} +- {s[1]:.3f} |"
        )
    return "\n".join(lines)


def _style(name: str) -> tuple[str, bool]:
    """Colour of a recipe in the figure and whether it is labelled (presets, TorchRay)."""
    if name in PRESET_COLORS:
        return PRESET_COLORS[name], True
    if name in TORCHRAY:
        return "tab:red", True
    return "tab:blue", False


def figure(rows: list[dict[str, Any]], path: Path, images: int) -> None:
    """Time against each metric, and the two metrics against each other (presets and
    TorchRay labelled; the other recipes of the table unlabelled, in light blue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = (
        (axes[0], "cpu", "complete", "completeness at the prediction"),
        (axes[1], "cpu", "sound", "soundness over the other labels"),
        (axes[2], "complete", "sound", "soundness over the other labels"),
    )
    for ax, xkey, ykey, ylabel in panels:
        for row in rows:
            color, labelled = _style(row["recipe"])
            x = row["cpu_per_map"] if xkey == "cpu" else row[xkey][0]
            if not math.isfinite(x):
                continue
            xerr = None if xkey == "cpu" else row[xkey][1]
            ax.errorbar(
                x,
                row[ykey][0],
                xerr=xerr,
                yerr=row[ykey][1],
                fmt="o",
                color=color,
                capsize=3,
                alpha=1.0 if labelled else 0.35,
                markersize=6 if labelled else 4,
            )
            if labelled:
                ax.annotate(
                    row["recipe"],
                    (x, row[ykey][0]),
                    fontsize=8,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
        if xkey == "cpu":
            ax.set_xscale("log")
            ax.set_xlabel("CPU seconds per map (1 thread, log)")
        else:
            ax.set_xlabel("completeness at the prediction")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Mask recipes, bundled MNIST model, {images} digits x every label "
        "(mean +- std over seeds; light blue: the other recipes of the table)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_records(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Runs every (recipe, seed) of ``--recipes`` x ``--seeds`` not yet recorded."""
    names = args.recipes.split(",")
    for name in names:
        if name not in RECIPES and name not in TORCHRAY:
            parser.error(f"unknown recipe {name!r} (--list)")
    model, x, pool = setup(args.images, args.skip)
    if args.timing:
        timing_path = args.out / args.json.replace("recipes", "timing", 1)
        run_timing(names, args.timing, model, x[: args.timing_images], pool, timing_path)
        return
    path = args.out / args.json
    for name in names:
        seeds = [0] if name in TORCHRAY else [int(s) for s in args.seeds.split(",")]
        for seed in seeds:
            if any(
                r["recipe"] == name
                and r["seed"] == seed
                and r["images"] == args.images
                and r.get("skip", 0) == args.skip
                for r in load_all(args.out)
            ):
                continue
            record = run_one(name, seed, model, x, pool, args.skip)
            save(path, [*load(path), record])
            s = record["summary"]
            print(
                f"{name:<16} seed {seed}  {record['seconds_per_map']:.4f} s/map  "
                f"complete@pred {s['completeness_at_prediction']:.4f}  "
                f"sound other {s['soundness_other_labels_mean']:.4f}",
                flush=True,
            )


def torchray_table(rows: list[dict[str, Any]]) -> str:
    """Each preset against each TorchRay area: differences and the ratio of CPU time."""
    by_name = {row["recipe"]: row for row in rows}
    lines = [
        "Presets against TorchRay (differences of the means; CPU ratio: preset / TorchRay)",
        "",
        "| preset | TorchRay | d complete@pred | d sound other | beats both | CPU ratio |",
        "|:---|:---|---:|---:|:---:|---:|",
    ]
    for preset in PRESET_COLORS:
        for tr in TORCHRAY:
            if preset not in by_name or tr not in by_name:
                continue
            a, b = by_name[preset], by_name[tr]
            dc = a["complete"][0] - b["complete"][0]
            ds = a["sound"][0] - b["sound"][0]
            ratio = a["cpu_per_map"] / b["cpu_per_map"]
            both = "yes" if dc > 0 and ds > 0 else "no"
            shown = f"1/{1 / ratio:.0f}" if ratio < 1 else f"{ratio:.1f}"
            lines.append(f"| {preset} | {tr} | {dc:+.3f} | {ds:+.3f} | {both} | {shown} |")
    return "\n".join(lines) if len(lines) > 4 else ""


def write_report(args: argparse.Namespace) -> None:
    """Aggregates every record under ``--out`` into the tables, the JSON and the figure."""
    timing = [r for p in sorted(args.out.glob("timing*.json")) for r in load(p)]
    best = timing_best(timing)
    sections = []
    if not args.skip:  # one table per timing file: each is one process
        for p in sorted(args.out.glob("timing*.json")):
            if load(p):
                sections.append(timing_table(load(p), p.name))
    rows = aggregate(load_all(args.out), args.images, args.skip)
    tag = f"{args.images}" if not args.skip else f"{args.images}_skip{args.skip}"
    if rows:
        for row in rows:
            row["cpu_per_map"] = cpu_per_map(row, best)[0]
        sections[:0] = [s for s in (table(rows, args.images, best), torchray_table(rows)) if s]
        if args.skip:
            sections[0] = (
                f"Digits {args.skip} to {args.skip + args.images - 1} of the order. " + sections[0]
            )
        (args.out / f"summary_{tag}.json").write_text(
            json.dumps({"recipes": rows, "timing": best}, indent=1)
        )
        figure(rows, args.out / f"recipes_{tag}.png", args.images)
    if sections:
        text = "\n\n".join(sections)
        print(text)
        (args.out / f"recipes_tables_{tag}.md").write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default="fast,area")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="evaluate the digits after the first SKIP of the benchmark's order (a set "
        "disjoint from the default one, to check recipes tuned on it); default 0",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--json", default="recipes.json", help="file name under --out")
    parser.add_argument("--report", action="store_true", help="only aggregate the records")
    parser.add_argument(
        "--timing",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="timing mode: every recipe ROUNDS times in turn on the first --timing-images "
        "digits (x 10 labels), same process; writes timing*.json",
    )
    parser.add_argument("--timing-images", type=int, default=2)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, (description, kwargs) in RECIPES.items():
            print(f"{name:<16} {description}  {kwargs}")
        for name, area in TORCHRAY.items():
            print(f"{name:<16} TorchRay extremal perturbation, area {area}")
        return 0
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        run_records(args, parser)
    write_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
