"""Benchmark outputs: ``results.json``, ``results.csv`` and ``report.md``.

The tables are built from the JSON form of the results (``results.json``'s ``methods``),
so that ``scripts/update_benchmark_docs.py`` renders the documentation page from a
results file with the same functions (:func:`table_rows`, :func:`markdown_table`,
:func:`ablation_lines`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from captum_soundness.benchmark._results import (
    COLUMN_HEADERS,
    EXTRA_METRICS,
    METRICS,
    BenchmarkResult,
)

__all__ = [
    "ablation_lines",
    "format_cell",
    "format_table",
    "markdown_table",
    "present_keys",
    "render_report",
    "table_rows",
    "write_outputs",
]

#: The SimpleMasking ablation comparisons: (trick, method without it, method with it).
ABLATIONS = (
    ("TV", "simple_masking_no_tv", "simple_masking"),
    (
        "TV (without upsampling)",
        "simple_masking_no_tv_no_upsampling",
        "simple_masking_no_upsampling",
    ),
    ("upsampling", "simple_masking_no_upsampling", "simple_masking"),
    ("upsampling (without TV)", "simple_masking_no_tv_no_upsampling", "simple_masking_no_tv"),
    ("TV and upsampling", "simple_masking_no_tv_no_upsampling", "simple_masking"),
)

MethodsJson = Mapping[str, Mapping[str, Any]]


def format_cell(key: str, value: float | None) -> str:
    """A table cell: ``-`` when missing, seconds in ``e`` notation, others with 3 decimals."""
    if value is None:
        return "-"
    return f"{value:.2e}" if key == "seconds_per_map" else f"{value:.3f}"


def present_keys(methods: MethodsJson, field: str) -> list[str]:
    """The keys of ``field`` (``"metrics"`` or ``"sanity"``) any method has, in order."""
    keys: list[str] = []
    for method in methods.values():
        keys += [key for key in method.get(field) or {} if key not in keys]
    return keys


def table_rows(
    methods: MethodsJson, metric_keys: Sequence[str], sanity_keys: Sequence[str] = ()
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a results table (one row per method, its label first).

    Args:
        methods: Method name -> its JSON entry (``label``, ``metrics``, ``sanity``).
        metric_keys: Columns taken from ``metrics``.
        sanity_keys: Columns taken from ``sanity`` (``-`` where a method has none).
    """
    header = ["method"] + [COLUMN_HEADERS.get(k, k) for k in (*metric_keys, *sanity_keys)]
    rows = []
    for name, method in methods.items():
        metrics, sanity = method.get("metrics") or {}, method.get("sanity") or {}
        cells = [method.get("label", name)]
        cells += [format_cell(k, metrics.get(k)) for k in metric_keys]
        cells += [format_cell(k, sanity.get(k)) for k in sanity_keys]
        rows.append(cells)
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _aligned_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *[line(row) for row in rows]])


def format_table(result: BenchmarkResult, *, markdown: bool = False) -> str:
    """The results table: one row per method, aligned columns (or a Markdown table)."""
    methods = {name: r.to_dict() for name, r in result.methods.items()}
    header, rows = table_rows(methods, list(METRICS), present_keys(methods, "sanity"))
    return markdown_table(header, rows) if markdown else _aligned_table(header, rows)


def ablation_lines(metrics: dict[str, dict[str, float]]) -> list[str]:
    """The measured effect of TV and upsampling on SimpleMasking's soundness, as sentences.

    Compares the SimpleMasking variants of :data:`METHODS` that were run (the paper's claim:
    both tricks raise soundness at little cost in completeness).

    Args:
        metrics: Method name -> its :data:`METRICS` (e.g. ``results.json``'s
            ``methods[name]["metrics"]``).

    Returns:
        One Markdown bullet per comparison whose two methods were both run.

    Examples::

        >>> from captum_soundness.benchmark import ablation_lines
        >>> ablation_lines({
        ...     "simple_masking": {"soundness_other_labels_mean": 0.8, "soundness_worst": 0.3,
        ...                        "completeness_at_prediction": 0.9},
        ...     "simple_masking_no_tv": {"soundness_other_labels_mean": 0.7,
        ...                              "soundness_worst": 0.2,
        ...                              "completeness_at_prediction": 0.95},
        ... })[0][:44]
        '- Adding TV raised mean soundness over the o'
    """
    lines = []
    for trick, without, with_ in ABLATIONS:
        if without not in metrics or with_ not in metrics:
            continue
        a, b = metrics[without], metrics[with_]
        ds = b["soundness_other_labels_mean"] - a["soundness_other_labels_mean"]
        dw = b["soundness_worst"] - a["soundness_worst"]
        dc = b["completeness_at_prediction"] - a["completeness_at_prediction"]
        verdict = "raised" if ds > 0 else "did not raise"
        lines.append(
            f"- Adding {trick} {verdict} mean soundness over the other labels: "
            f"{a['soundness_other_labels_mean']:.3f} -> {b['soundness_other_labels_mean']:.3f} "
            f"({ds:+.3f}); worst soundness {dw:+.3f}; completeness at the prediction "
            f"{dc:+.3f}."
        )
    return lines


def _write_csv(result: BenchmarkResult, path: Path) -> None:
    keys = list(METRICS) + list(EXTRA_METRICS)
    methods = {name: r.to_dict() for name, r in result.methods.items()}
    sanity_keys = present_keys(methods, "sanity")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "label", *keys, *sanity_keys])
        for r in result.methods.values():
            writer.writerow(
                [r.name, r.label]
                + [repr(float(r.metrics[k])) for k in keys]
                + [repr(float(r.sanity[k])) if k in r.sanity else "" for k in sanity_keys]
            )


def render_report(result: BenchmarkResult, figures: Mapping[str, str] | None = None) -> str:
    """The Markdown text of ``report.md`` (``figures``: key -> file name, see
    :func:`~captum_soundness.benchmark._figures.write_figures`)."""
    lines = [
        f"# {result.report_title}",
        "",
        f"Run {result.started}, {result.wall_seconds:.1f} s wall time.",
        "",
        "## Setting",
        "",
        *result.setting_lines(),
        "",
        "## Results (mean over images)",
        "",
        format_table(result, markdown=True),
        "",
    ]
    ablation = ablation_lines({name: r.metrics for name, r in result.methods.items()})
    if ablation:
        lines += ["## Do TV and upsampling raise soundness?", "", *ablation, ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [
            f"![Maps at the predicted label]({figures['maps']})",
            "",
            f"![Mean insertion and deletion curves]({figures['curves']})",
            "",
            f"![Completeness vs soundness]({figures['scatter']})",
            "",
        ]
    settings_json = json.dumps(result.settings.as_dict(), indent=2)
    lines += ["## Settings", "", "```json", settings_json, "```", "", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in result.versions.items()]
    lines.append("")
    return "\n".join(lines)


def write_outputs(result: BenchmarkResult, out: str | Path, *, figures: bool = True) -> Path:
    """Writes ``results.json``, ``results.csv``, the figures and ``report.md`` to ``out``.

    Returns:
        The output directory.
    """
    from captum_soundness.benchmark._figures import write_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    _write_csv(result, out / "results.csv")
    files = write_figures(result, out) if figures else {}
    (out / "report.md").write_text(render_report(result, files), encoding="utf-8")
    return out
