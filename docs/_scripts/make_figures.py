"""Generates the figures of the Concepts page (``docs/_static/concepts/*.png``).

Run from the repository root after changing the bundled model or the method::

    python docs/_scripts/make_figures.py

Uses the bundled MNIST model and held-out digits; takes well under a minute on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import (
    BlurFill,
    ConstantFill,
    DatasetFill,
    MeanFill,
    NoiseFill,
)
from captum_soundness.masking import compose, rank_positions, topk_masks
from captum_soundness.metrics import completeness, insertion_curve, soundness
from captum_soundness.models import load_mnist_cnn, load_mnist_digits

OUT = Path(__file__).resolve().parents[1] / "_static" / "concepts"
DPI = 80


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _keep_top(mask: torch.Tensor, counts: list[int]) -> torch.Tensor:
    ranks = rank_positions(mask.sum(1).flatten(1))
    return topk_masks(ranks, torch.tensor(counts)).view(len(counts), 1, 28, 28)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_mnist_cnn()
    test, labels = load_mnist_digits("test")
    train, _ = load_mnist_digits("train")
    pool = DatasetFill(train[:500])
    x = test[labels == 7][:1]
    with torch.no_grad():
        p = model(x).softmax(1)[0]
    label = int(p.argmax())

    # 1. A mask and masked inputs at three sizes.
    mask = SimpleMasking(model).attribute(
        x, target=label, baselines=pool, steps=300, n_fill_samples=5, seed=0
    )
    counts = [round(f * 784) for f in (0.1, 0.25, 0.5)]
    keep = _keep_top(mask, counts)
    masked = compose(x, keep, 0.0)
    with torch.no_grad():
        pk = model(masked).softmax(1)[:, label]
    fig, axes = plt.subplots(1, 5, figsize=(7.5, 1.9))
    axes[0].imshow(x[0, 0], cmap="gray")
    axes[0].set_title(f"input, p({label})={p[label]:.2f}", fontsize=8)
    axes[1].imshow(mask[0, 0], cmap="magma", vmin=0, vmax=1)
    axes[1].set_title("SimpleMasking map", fontsize=8)
    for j, frac in enumerate((10, 25, 50)):
        axes[j + 2].imshow(masked[j, 0], cmap="gray")
        axes[j + 2].set_title(f"top {frac}%: p={pk[j]:.2f}", fontsize=8)
    for ax in axes:
        _off(ax)
    fig.tight_layout()
    fig.savefig(OUT / "masked_inputs.png", dpi=DPI)
    plt.close(fig)

    # 2. The same top-25% mask with five fills.
    fills = {
        "constant 0": ConstantFill(0.0),
        "mean": MeanFill(),
        "blur": BlurFill(sigma=2.0),
        "uniform noise": NoiseFill("uniform"),
        "dataset image": pool,
    }
    generator = torch.Generator().manual_seed(0)
    fig, axes = plt.subplots(1, len(fills), figsize=(7.5, 1.9))
    for ax, (name, fill) in zip(axes, fills.items()):
        g = fill.sample(x, 1, generator)[0]
        xm = compose(x, keep[1:2], g)
        with torch.no_grad():
            q = model(xm).softmax(1)[0, label]
        ax.imshow(xm[0, 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\np({label})={q:.2f}", fontsize=8)
        _off(ax)
    fig.tight_layout()
    fig.savefig(OUT / "fills.png", dpi=DPI)
    plt.close(fig)

    # 3. A sound mask for the true label and the least sound adversarial mask among the
    #    wrong labels (the search of tutorial 2), on a held-out "3".
    x = test[labels == 3][:1]
    with torch.no_grad():
        p = model(x).softmax(1)[0]
    label = int(p.argmax())
    wrong_labels = torch.tensor([a for a in range(10) if a != label])
    xw = x.expand(len(wrong_labels), -1, -1, -1)
    adversarial = SimpleMasking(model).attribute(
        xw,
        target=wrong_labels,
        objective="log_prob",
        tv=0.0,
        l1=0.0,
        downsample=1,
        steps=100,
        seed=0,
    )
    worst = int(soundness(model, xw, adversarial, target=wrong_labels).argmin())
    wrong = int(wrong_labels[worst])
    mask = SimpleMasking(model).attribute(
        x, target=label, baselines=pool, steps=300, n_fill_samples=5, seed=0
    )
    xs = x.expand(2, -1, -1, -1)
    targets = torch.tensor([label, wrong])
    masks = torch.cat([mask, adversarial[worst : worst + 1]])
    curves = insertion_curve(model, xs, masks, target=targets)
    comp = completeness(model, xs, masks, target=targets)
    sound = soundness(model, xs, masks, target=targets)
    fractions = torch.arange(1, 29) / 28
    fig, axes = plt.subplots(
        1, 4, figsize=(8.5, 2.2), gridspec_kw={"width_ratios": [1, 1, 1, 2.2]}
    )
    axes[0].imshow(x[0, 0], cmap="gray")
    axes[0].set_title("input", fontsize=8)
    for j, (name, a) in enumerate((("true", label), ("wrong", wrong))):
        axes[j + 1].imshow(masks[j, 0], cmap="magma", vmin=0, vmax=1)
        axes[j + 1].set_title(f"mask for {a} ({name})", fontsize=8)
        line = axes[3].plot(
            fractions,
            curves[j],
            marker=".",
            label=f"label {a}: compl. {comp[j]:.2f}, sound. {sound[j]:.2f}",
        )[0]
        axes[3].axhline(float(p[a]), color=line.get_color(), ls="--", lw=1)
    for ax in axes[:3]:
        _off(ax)
    axes[3].set_xlabel("fraction of pixels kept", fontsize=8)
    axes[3].set_ylabel("p(label)", fontsize=8)
    axes[3].set_ylim(-0.02, 1.02)
    axes[3].legend(fontsize=7, loc="center right")
    axes[3].tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "complete_unsound.png", dpi=DPI)
    plt.close(fig)
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))} to {OUT}")


if __name__ == "__main__":
    main()
