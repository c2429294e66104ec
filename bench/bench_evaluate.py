"""Throughput of ``captum-soundness evaluate``: 1 process x 2 threads against 2 processes x
1 thread (``torchrun``), and the model work it achieves.

Writes ``--images`` photos (``skimage.data``, resized) and a pool of 3 others to a
temporary folder, saves a random-weight torchvision model (``--arch``, ``--classes``
outputs) as a state dict, and runs the command twice on the same arguments:

1. ``python -m captum_soundness evaluate ... --threads 2`` (one process, two threads);
2. ``torchrun --standalone --nproc-per-node 2 -m captum_soundness evaluate ... --threads 1``;
3. ``python -m captum_soundness evaluate ... --threads 1`` (for the comparison of numbers).

For each it prints images per second and (image, label) maps per second, measured as the
run's ``wall_seconds`` in ``results.json`` (the evaluation: loading, explaining, scoring,
merging; interpreter start and imports excluded) and as the whole command's wall time. It
compares the numbers: runs with the same threads per process (2 and 3) must be identical;
PyTorch's CPU kernels round differently on 1 and 2 threads, so run 1 may differ from them
in the last float32 bits (the largest difference is printed). It also counts the FLOPs of
one forward + backward pass of the model (``torch.utils.flop_counter.FlopCounterMode``)
and prints the achieved FLOP rate of SimpleMasking, the figure the GPU scaling plan in
``docs/evaluate.md`` starts from.

Run: ``python bench/bench_evaluate.py`` (defaults: resnet18 at 32 px, 4 images, 3 labels,
SimpleMasking with 50 steps and 5 fill samples); ``--steps 200`` is the default recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "cat",
    "camera",
    "immunohistochemistry",
    "retina",
    "logo",
    "colorwheel",
    "hubble_deep_field",
    "moon",
)


def write_folders(root: Path, images: int, size: int) -> None:
    """``images`` evaluated photos in ``root/data`` and 3 others in ``root/pool``."""
    import skimage.data as photos

    if images + 3 > len(PHOTOS):
        raise SystemExit(f"at most {len(PHOTOS) - 3} images")
    for folder, names in (("data", PHOTOS[:images]), ("pool", PHOTOS[-3:])):
        (root / folder).mkdir(parents=True)
        for name in names:
            array = getattr(photos, name)()
            if array.ndim == 2:
                array = np.stack([array] * 3, axis=-1)
            image = Image.fromarray(array[..., :3].astype(np.uint8)).resize((size, size))
            image.save(root / folder / f"{name}.png")


def flops_per_pass(arch: str, classes: int, size: int, batch: int) -> float:
    """FLOPs of one forward + backward (to the inputs) pass over ``batch`` images."""
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision import models

    model = getattr(models, arch)(num_classes=classes).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(batch, 3, size, size, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        model(x).logsumexp(1).sum().backward()
    return float(counter.get_total_flops())


def run(command: list[str], out: Path) -> tuple[float, float, dict]:
    """Runs ``command``; returns its wall time, the evaluation's and the numbers."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    total = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    data = json.loads((out / "results.json").read_text())
    numbers = {
        name: {k: v for k, v in m["metrics"].items() if k != "seconds_per_map"}
        for name, m in data["methods"].items()
    }
    return total, data["wall_seconds"], numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18", help="torchvision model (default resnet18)")
    parser.add_argument("--classes", type=int, default=10, help="model outputs (default 10)")
    parser.add_argument("--image-size", type=int, default=32, help="image side (default 32)")
    parser.add_argument("--images", type=int, default=4, help="evaluated images (default 4)")
    parser.add_argument("--labels", default="0,1,2", help="explained labels (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=50, help="SimpleMasking steps (default 50)")
    parser.add_argument("--methods", default="simple_masking", help="methods (default SM)")
    args = parser.parse_args()
    from torchvision import models

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_folders(root, args.images, args.image_size)
        weights = root / "weights.pt"
        torch.save(getattr(models, args.arch)(num_classes=args.classes).state_dict(), weights)
        common = ["evaluate", "--model", f"torchvision.models:{args.arch}"]
        common += ["--model-kwargs", json.dumps({"num_classes": args.classes})]
        common += ["--weights", str(weights), "--data", str(root / "data")]
        common += ["--pool", str(root / "pool"), "--image-size", str(args.image_size)]
        common += ["--labels", args.labels, "--methods", args.methods]
        common += ["--steps", str(args.steps), "--batch-size", "1", "--no-figures"]
        common += ["--no-progress"]
        one = [sys.executable, "-m", "captum_soundness", *common, "--threads", "2"]
        one += ["--out", str(root / "one")]
        two = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        two += ["--nproc-per-node", "2", "-m", "captum_soundness", *common, "--threads", "1"]
        two += ["--out", str(root / "two")]
        single = [sys.executable, "-m", "captum_soundness", *common, "--threads", "1"]
        single += ["--out", str(root / "single")]
        results = {
            "1 process x 2 threads": run(one, root / "one"),
            "2 processes x 1 thread": run(two, root / "two"),
            "1 process x 1 thread": run(single, root / "single"),
        }
    labels = len(args.labels.split(","))
    maps = args.images * labels
    from captum_soundness.benchmark import DEFAULT_SETTINGS

    samples = DEFAULT_SETTINGS.n_fill_samples
    flops = flops_per_pass(args.arch, args.classes, args.image_size, labels * samples)
    per_image = flops * args.steps
    print(
        f"{args.arch} ({args.classes} outputs) at {args.image_size} px, {args.images} images "
        f"x {labels} labels, methods {args.methods}, SimpleMasking {args.steps} steps x "
        f"{samples} fill samples; {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    print(f"model work per image (forward + backward per step): {per_image / 1e9:.1f} GFLOP")
    for name, (total, wall, _) in results.items():
        print(
            f"{name:<24} {args.images / wall:7.3f} images/s  {maps / wall:7.3f} maps/s  "
            f"(evaluation {wall:6.1f} s; whole command {total:6.1f} s, "
            f"{args.images / total:.3f} images/s); {per_image * args.images / wall / 1e9:.1f} "
            "GFLOP/s achieved"
        )
    one, two, single = (numbers for _, _, numbers in results.values())
    print(f"2 processes x 1 thread == 1 process x 1 thread, every number: {two == single}")
    difference = largest_difference(one, two)
    print(f"largest difference, 1 process x 2 threads vs 2 x 1: {difference:.1e}")


def largest_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between the metrics of two runs."""
    return max(abs(a[m][k] - b[m][k]) for m in a for k in a[m])


if __name__ == "__main__":
    main()
