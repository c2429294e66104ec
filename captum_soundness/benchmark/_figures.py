"""Benchmark figures: maps at the prediction, mean curves, completeness vs soundness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from captum_soundness.benchmark._results import BenchmarkResult

__all__ = ["write_figures"]


def _show_image(ax: Any, image: Tensor) -> None:
    """A grey-level image in [0, 1] as it is; colour images scaled to [0, 1] per image."""
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
        return
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low if high > low else 1.0)
    ax.imshow(scaled[:3].permute(1, 2, 0).numpy())


def _maps_figure(plt: Any, result: BenchmarkResult, path: Path) -> None:
    """Grid of maps at the predicted label: images x (input + methods)."""
    methods = list(result.methods.values())
    k = methods[0].preview.shape[0] if methods else 0
    cols = len(methods) + 1
    fig, axes = plt.subplots(k, cols, figsize=(1.3 * cols, 1.45 * k + 0.4), squeeze=False)
    for i in range(k):
        ax = axes[i][0]
        _show_image(ax, result.images[i])
        ax.set_title(
            f"pred {result.predicted[i]}" if i else f"input\npred {result.predicted[i]}",
            fontsize=7,
        )
        for j, r in enumerate(methods, start=1):
            m = r.preview[i]
            low, high = float(m.min()), float(m.max())
            axes[i][j].imshow(
                m.numpy(), cmap="viridis", vmin=low, vmax=high if high > low else low + 1
            )
            if i == 0:
                axes[i][j].set_title(r.label.replace(" ", "\n", 1), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Maps at the predicted label (per-map colour scale)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves_figure(plt: Any, result: BenchmarkResult, path: Path) -> None:
    """Mean insertion and deletion curves at the predicted label."""
    fractions = result.fractions
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("tab20")
    for j, r in enumerate(result.methods.values()):
        style = "--" if r.name.startswith("simple_masking_") else "-"
        color = cmap(j % 20)
        left.plot(fractions, r.insertion_curve, style, color=color, label=r.label)
        right.plot(fractions, r.deletion_curve, style, color=color, label=r.label)
    left.set(xlabel="fraction kept", ylabel="p(predicted label)", title="Insertion (mean)")
    right.set(xlabel="fraction removed", ylabel="p(predicted label)", title="Deletion (mean)")
    for ax in (left, right):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scatter_figure(plt: Any, result: BenchmarkResult, path: Path) -> None:
    """Completeness vs soundness; a legend (colour and marker), as many methods crowd the
    same corner."""
    fig, ax = plt.subplots(figsize=(8.5, 5))
    cmap = plt.get_cmap("tab20")
    markers = "osD^vP*Xh<>p"
    for j, r in enumerate(result.methods.values()):
        ax.scatter(
            [r.metrics["completeness_at_prediction"]],
            [r.metrics["soundness_other_labels_mean"]],
            color=cmap(j % 20),
            marker=markers[j % len(markers)],
            s=55,
            zorder=3,
            label=r.label,
            edgecolors="black",
            linewidths=0.4,
        )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set(
        xlabel="completeness at the prediction",
        ylabel="soundness, mean over the other labels",
        title="Completeness vs soundness (mean over images)",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_figures(result: BenchmarkResult, out: Path) -> dict[str, str]:
    """Writes ``maps.png``, ``curves.png`` and ``completeness_soundness.png`` to ``out``.

    Returns:
        Figure key (``maps``, ``curves``, ``scatter``) -> file name.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    files = {"maps": "maps.png", "curves": "curves.png", "scatter": "completeness_soundness.png"}
    _maps_figure(plt, result, out / files["maps"])
    _curves_figure(plt, result, out / files["curves"])
    _scatter_figure(plt, result, out / files["scatter"])
    return files
