"""Measures fill sensitivity on the bundled MNIST model for the Sanity checks page.

Writes ``docs/_static/fill_sensitivity_mnist.txt`` (included in ``docs/sanity_checks.md``):
four methods (three of Captum's, and SimpleMasking, whose masks are learned against each
fill) under five fills, on 20 held-out digits (two per class). Run from the repository
root (about 20 s on two CPU cores)::

    python docs/_scripts/fill_sensitivity_mnist.py
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

import captum_soundness
from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import BlurFill, ConstantFill, DatasetFill, MeanFill, NoiseFill
from captum_soundness.models import load_mnist_cnn, load_mnist_digits
from captum_soundness.sanity import fill_sensitivity

OUT = Path(__file__).resolve().parents[1] / "_static" / "fill_sensitivity_mnist.txt"


def main() -> None:
    model = load_mnist_cnn()
    images, _ = load_mnist_digits("test")
    train, _ = load_mnist_digits("train")
    x = images[::50]  # 20 held-out digits, two per class (the split is sorted by digit)

    def simple_masking(inputs, target, fill):
        return SimpleMasking(model).attribute(
            inputs, target=target, baselines=fill, steps=200, n_fill_samples=4, seed=0
        )

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
        report = fill_sensitivity(
            {
                "saliency": Saliency(model).attribute,
                "input_x_gradient": InputXGradient(model).attribute,
                "integrated_gradients": IntegratedGradients(model).attribute,
                "simple_masking": simple_masking,
            },
            model,
            x,
            fills={
                "black": ConstantFill(0.0),
                "mean": MeanFill(),
                "blur": BlurFill(sigma=2.0),
                "noise": NoiseFill("uniform", low=0.0, high=1.0),
                "dataset": DatasetFill(train[:500]),
            },
            n_fill_samples=4,
            seed=0,
        )
    today = datetime.date.today().isoformat()
    header = (
        f"# captum-soundness {captum_soundness.__version__}, torch {torch.__version__}, "
        f"{today}: docs/_scripts/fill_sensitivity_mnist.py\n"
    )
    OUT.write_text(header + str(report) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
