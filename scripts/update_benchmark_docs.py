"""Writes ``docs/benchmark_results.md`` from the output of ``captum-soundness benchmark``.

Reads ``results.json`` of a benchmark output directory, copies its figures (``*.png``)
into ``docs/_static/benchmark/`` and writes the documentation page (committed) with the
package version, the date of the run, the settings, the results table, the sanity-check
columns (when the run computed them) and the figures.

Further runs (e.g. the SimpleMasking ablation at the paper's 2000 steps) can be added as
extra sections with ``--extra DIR``: their metrics table, ablation verdicts and settings.

Usage::

    captum-soundness benchmark --out results        # or: make benchmark
    python scripts/update_benchmark_docs.py results
    python scripts/update_benchmark_docs.py results --extra results-paper-steps
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE = DOCS / "benchmark_results.md"
STATIC = DOCS / "_static" / "benchmark"

#: Column titles of the main table, in order (keys of each method's ``metrics``).
MAIN_COLUMNS = {
    "completeness_at_prediction": "complete @pred ↑",
    "soundness_other_labels_mean": "sound, other labels ↑",
    "soundness_worst": "sound, worst ↑",
    "soundness_second_label": "sound, 2nd label ↑",
    "completeness_worst_wrong_label": "complete, worst wrong",
    "insertion_auc": "insertion AUC ↑",
    "deletion_auc": "deletion AUC ↓",
    "seconds_per_map": "s / map",
}

#: Column titles of the sanity-check table (keys of each method's ``sanity``).
SANITY_COLUMNS = {
    "randomized_spearman": "rand. Spearman ↓",
    "randomized_ssim": "rand. SSIM ↓",
    "class_spearman": "class Spearman ↓",
}

FIGURE_CAPTIONS = {
    "maps.png": "Maps at the predicted label for the first held-out digits, per method.",
    "curves.png": "Mean insertion and deletion curves at the predicted label, per method.",
    "completeness_soundness.png": (
        "Completeness at the prediction against soundness over the other labels, per method."
    ),
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _columns(methods: dict[str, Any], field: str, known: dict[str, str]) -> list[str]:
    present: list[str] = []
    for method in methods.values():
        for key in method.get(field, {}):
            if key not in present:
                present.append(key)
    ordered = [key for key in known if key in present]
    return ordered + [key for key in present if key not in known]


def _metrics_table(methods: dict[str, Any]) -> list[str]:
    columns = _columns(methods, "metrics", MAIN_COLUMNS)
    header = ["method"] + [MAIN_COLUMNS.get(key, key) for key in columns]
    rows = [
        [method.get("label", name)] + [_fmt(method["metrics"].get(key)) for key in columns]
        for name, method in methods.items()
    ]
    return [*_table(header, rows), ""]


def _ablation(methods: dict[str, Any]) -> list[str]:
    from captum_soundness.benchmark import ablation_lines

    found = ablation_lines({name: m["metrics"] for name, m in methods.items()})
    return [*found, ""] if found else []


def _extra_section(title: str, results: dict[str, Any]) -> list[str]:
    settings = results.get("settings", {})
    methods = results.get("methods", {})
    num_images = len(results.get("images", {}).get("labels", [])) or settings.get("images")
    lines = [
        f"## Additional run: {title}",
        "",
        f"Run started {results.get('started', 'unknown')}, wall time "
        f"{_fmt(results.get('wall_seconds'))} s; {num_images} held-out digits x 10 labels; "
        f"SimpleMasking with {settings.get('steps')} steps, {settings.get('n_fill_samples')} "
        f"fill samples, a pool of {settings.get('pool_size')} training digits; evaluation "
        f"fill `{settings.get('fill')}`, {settings.get('fractions')} fractions.",
        "",
        *_metrics_table(methods),
        *_ablation(methods),
        "Settings of this run:",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
    ]
    return lines


def render(
    results: dict[str, Any],
    figures: list[str],
    source: str,
    extras: list[tuple[str, dict[str, Any]]] | None = None,
) -> str:
    """The Markdown (MyST) page for ``results`` (the parsed ``results.json``), with the
    ``(title, results)`` of further runs as extra sections."""
    versions = results.get("versions", {})
    settings = results.get("settings", {})
    methods = results.get("methods", {})
    model = results.get("model", {})
    descriptions = results.get("metric_descriptions", {})
    started = str(results.get("started", "unknown"))
    version = versions.get("captum_soundness", versions.get("captum-soundness", "unknown"))
    images = results.get("images", {})
    num_images = len(images.get("labels", [])) or settings.get("images", "?")

    lines = [
        "# Benchmark results",
        "",
        "```{note}",
        "This page is generated by `scripts/update_benchmark_docs.py` from the output of",
        "`captum-soundness benchmark` (`make benchmark`); do not edit it by hand.",
        "```",
        "",
        f"- **captum-soundness version:** {version}",
        f"- **Run started:** {started}",
        f"- **Wall time:** {_fmt(results.get('wall_seconds'))} s",
        f"- **Source:** `{source}`",
    ]
    other = ", ".join(
        f"{name} {value}" for name, value in versions.items() if name != "captum_soundness"
    )
    if other:
        lines.append(f"- **Environment:** {other}")
    if model:
        accuracy = model.get("held_out_accuracy")
        lines.append(
            "- **Model:** the bundled MNIST CNN "
            "({func}`~captum_soundness.models.load_mnist_cnn`)"
            + (f", held-out accuracy {_fmt(accuracy)}" if accuracy is not None else "")
        )
    if isinstance(num_images, int) and num_images < 10:
        lines += [
            "",
            "```{warning}",
            f"This run used only {num_images} images (a smoke test): the numbers are noisy.",
            "```",
            "",
        ]
    lines += [
        f"- **Images:** {num_images} held-out digits, every one of the 10 labels explained "
        "for each",
        "",
        "Every method explains **every** label of every image; each map is scored with",
        "{func}`~captum_soundness.metrics.evaluate_all_labels` (insertion curves with the",
        "evaluation fill, completeness and soundness as in {doc}`concepts`). Values are means",
        "over images; ↑ higher is better, ↓ lower is better. `s / map` is the wall time of",
        "the method divided by the number of (image, label) maps it produced (metrics",
        "excluded), measured on the machine that ran the benchmark.",
        "",
        "## Results",
        "",
    ]
    lines += _metrics_table(methods)
    columns = _columns(methods, "metrics", MAIN_COLUMNS)
    ablation = _ablation(methods)
    if ablation:
        lines += ["## Do TV and upsampling raise soundness?", "", *ablation]

    described = [key for key in columns if key in descriptions]
    if described:
        lines += ["Columns:", ""]
        lines += [f"- `{key}`: {descriptions[key]}" for key in described]
        lines.append("")

    sanity_columns = _columns(methods, "sanity", SANITY_COLUMNS)
    if sanity_columns:
        lines += [
            "## Sanity checks",
            "",
            "Similarity of the maps with the maps of a randomised model and with the maps of",
            "another class (see {doc}`sanity_checks`); a method that explains the model and",
            "the class should score low.",
            "",
        ]
        header = ["method"] + [SANITY_COLUMNS.get(key, key) for key in sanity_columns]
        rows = [
            [method.get("label", name)]
            + [_fmt(method.get("sanity", {}).get(key)) for key in sanity_columns]
            for name, method in methods.items()
            if method.get("sanity")
        ]
        lines += _table(header, rows)
        lines.append("")
        lines += [
            f"- `{key}`: {descriptions[key]}" for key in sanity_columns if key in descriptions
        ]
        lines.append("")

    method_lines = [
        f"- **{method.get('label', name)}** (`{name}`): {method['description']}"
        for name, method in methods.items()
        if method.get("description")
    ]
    if method_lines:
        lines += ["## Methods", "", *method_lines, ""]

    if figures:
        lines += ["## Figures", ""]
        for name in figures:
            caption = FIGURE_CAPTIONS.get(name, name)
            lines += [
                f"```{{figure}} _static/benchmark/{name}",
                f":alt: {caption}",
                ":width: 100%",
                "",
                caption,
                "```",
                "",
            ]

    for title, extra in extras or []:
        lines += _extra_section(title, extra)

    lines += [
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
        "## Reproduce",
        "",
        "```bash",
        "make benchmark      # or: captum-soundness benchmark --out results",
        "python scripts/update_benchmark_docs.py results",
        "make docs",
        "```",
        "",
        "`captum-soundness benchmark --full` runs the paper's SimpleMasking settings (2000",
        "steps, 10 fill samples) on 100 images; `--help` lists every option.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", type=Path, help="benchmark output directory (with results.json)"
    )
    parser.add_argument("--page", type=Path, default=PAGE, help=f"output page (default {PAGE})")
    parser.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a further benchmark output directory, shown as an extra section (repeatable)",
    )
    parser.add_argument(
        "--extra-title",
        action="append",
        default=[],
        metavar="TITLE",
        help="title of the matching --extra section (default: its directory name)",
    )
    args = parser.parse_args(argv)
    path = args.results / "results.json"
    if not path.is_file():
        print(
            f"{path} not found: run `captum-soundness benchmark --out DIR` first", file=sys.stderr
        )
        return 1
    results = json.loads(path.read_text(encoding="utf-8"))
    if not results.get("methods"):
        print(f"{path} has no method results", file=sys.stderr)
        return 1

    extras = []
    for i, extra in enumerate(args.extra):
        extra_path = extra / "results.json"
        if not extra_path.is_file():
            print(f"{extra_path} not found", file=sys.stderr)
            return 1
        title = args.extra_title[i] if i < len(args.extra_title) else extra.name
        extras.append((title, json.loads(extra_path.read_text(encoding="utf-8"))))
    if STATIC.exists():
        shutil.rmtree(STATIC)
    STATIC.mkdir(parents=True)
    figures = []
    for figure in sorted(args.results.glob("*.png")):
        shutil.copyfile(figure, STATIC / figure.name)
        figures.append(figure.name)

    try:
        source = str(args.results.resolve().relative_to(ROOT))
    except ValueError:
        source = args.results.name
    args.page.write_text(render(results, figures, source, extras), encoding="utf-8")
    print(f"wrote {args.page} ({len(results['methods'])} methods, {len(figures)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
