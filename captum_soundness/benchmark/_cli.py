"""The ``captum-soundness`` command line.

Subcommands:

- ``benchmark``: Captum's attribution methods and SimpleMasking on the bundled MNIST model,
  scored for completeness and soundness on every label (see
  :mod:`captum_soundness.benchmark`). Writes ``results.json``, ``results.csv``, figures
  and ``report.md`` under ``--out``.

Examples::

    captum-soundness benchmark --out results
    captum-soundness benchmark --quick --out /tmp/smoke
    captum-soundness benchmark --methods saliency,simple_masking --images 10 --steps 500
    python -m captum_soundness benchmark --full --out results-full
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def _methods_help() -> str:
    from captum_soundness.benchmark._core import METHODS

    return "; ".join(f"{name}: {spec.description}" for name, spec in METHODS.items())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``captum-soundness``."""
    from captum_soundness.benchmark._core import DEFAULT_SETTINGS as D
    from captum_soundness.benchmark._core import FILL_NAMES, FULL_SETTINGS, QUICK_SETTINGS

    parser = argparse.ArgumentParser(
        prog="captum-soundness",
        description="Completeness and soundness of saliency maps (Gupta et al., NeurIPS 2022).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    bench = sub.add_parser(
        "benchmark",
        help="benchmark attribution methods on the bundled MNIST model",
        description=(
            "Explain held-out MNIST digits for every label with Captum's methods and "
            "SimpleMasking (plus its TV / upsampling ablations and a random floor); report "
            "completeness, soundness, insertion/deletion AUC and seconds per map. "
            f"Defaults: {D.images} images, {D.steps} SimpleMasking steps. --quick: "
            f"{QUICK_SETTINGS.images} images, {QUICK_SETTINGS.steps} steps (smoke test). "
            f"--full: {FULL_SETTINGS.images} images, {FULL_SETTINGS.steps} steps (paper "
            "scale; slow on a CPU)."
        ),
    )
    preset = bench.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    preset.add_argument("--full", action="store_true", help="paper-scale settings")
    bench.add_argument(
        "--images", type=int, help=f"number of held-out images (default {D.images})"
    )
    bench.add_argument(
        "--methods",
        action="append",
        metavar="NAMES",
        help="comma-separated method names (repeatable; default: all, also 'all'). Valid: "
        + ", ".join(_valid_methods()),
    )
    bench.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    bench.add_argument(
        "--steps", type=int, help=f"SimpleMasking optimisation steps (default {D.steps})"
    )
    bench.add_argument(
        "--fill",
        help="evaluation fill: a number or one of "
        + ", ".join(FILL_NAMES)
        + f" (default {D.fill!r}, the constant 0 of the reference protocol)",
    )
    bench.add_argument("--device", help=f"torch device (default {D.device!r})")
    bench.add_argument("--seed", type=int, help=f"random seed (default {D.seed})")
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    bench.add_argument("--out", default="results", help="output folder (default 'results')")
    bench.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    bench.add_argument("--no-sanity", action="store_true", help="skip the sanity-check columns")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.set_defaults(subparser=bench)
    return parser


def _package_version() -> str:
    from captum_soundness import __version__

    return __version__


def _valid_methods() -> list[str]:
    from captum_soundness.benchmark._core import METHODS

    return list(METHODS)


def _benchmark(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from captum_soundness.benchmark._core import (
        DEFAULT_SETTINGS,
        FULL_SETTINGS,
        METHODS,
        QUICK_SETTINGS,
        check_settings,
        format_table,
        parse_fill,
        run_benchmark,
        write_outputs,
    )

    if args.list_methods:
        width = max(len(n) for n in METHODS)
        for name, spec in METHODS.items():
            print(f"{name:<{width}}  {spec.description}")
        return 0

    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS if args.full else DEFAULT_SETTINGS
    changes: dict[str, object] = {}
    if args.methods:
        names = [n.strip() for chunk in args.methods for n in chunk.split(",") if n.strip()]
        if "all" in names:  # 'all' adds every method (in report order) to the others
            names = [n for n in names if n != "all"] + list(METHODS)
        unknown = [n for n in names if n not in METHODS]
        if unknown:
            parser.error(
                f"argument --methods: unknown method name(s): {', '.join(unknown)}. "
                f"Valid names: {', '.join(METHODS)}."
            )
        if not names:
            parser.error("argument --methods: no method names given.")
        changes["methods"] = tuple(dict.fromkeys(names))
    for name in ("images", "steps", "seed"):
        value = getattr(args, name)
        if value is not None:
            if name != "seed" and value < 1:
                parser.error(f"argument --{name}: must be a positive integer, got {value}.")
            changes[name] = value
    if args.images is not None and args.images > 1000:
        parser.error(f"argument --images: at most 1000 held-out images, got {args.images}.")
    if args.fill is not None:
        try:
            parse_fill(args.fill, torch.zeros(1, 1, 28, 28))
        except ValueError as error:
            parser.error(f"argument --fill: {error}")
        changes["fill"] = args.fill
    if args.device is not None:
        try:
            check_settings(settings.replace(device=args.device))
        except ValueError as error:
            parser.error(f"argument --device: {error}")
        changes["device"] = args.device
    if args.no_sanity:
        changes["sanity"] = False
    if args.no_progress:
        changes["show_progress"] = False
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"argument --threads: must be a positive integer, got {args.threads}.")
        torch.set_num_threads(args.threads)
    settings = settings.replace(**changes)
    try:
        check_settings(settings)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.steps is not None and not any(
        m.startswith("simple_masking") for m in settings.methods
    ):
        print(
            "note: --steps sets SimpleMasking's optimisation steps; no SimpleMasking method "
            "is selected, so it has no effect.",
            file=sys.stderr,
        )
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        parser.error(f"argument --out: {out_dir} exists and is not a directory.")
    try:  # before the run, so that an unwritable --out does not waste it
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"argument --out: cannot create {out_dir}: {error.strerror or error}.")

    try:
        import matplotlib  # noqa: F401
        import mlxtend  # noqa: F401
    except ImportError as error:
        print(
            f"error: the benchmark needs the optional dependencies ({error.name} is missing): "
            "pip install 'captum-soundness[benchmark]'",
            file=sys.stderr,
        )
        return 1

    start = time.perf_counter()
    result = run_benchmark(settings)
    out = write_outputs(result, args.out, figures=not args.no_figures)
    print()
    print(format_table(result))
    print()
    print(
        f"Held-out accuracy of the model: {result.model_info['held_out_accuracy']:.4f}. "
        f"Wrote results.json, results.csv, report.md"
        + ("" if args.no_figures else " and figures")
        + f" to {out}/ ({time.perf_counter() - start:.1f} s)."
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``captum-soundness`` (and ``python -m captum_soundness``).

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success). Usage errors exit with status 2 via
        :class:`SystemExit`, as :mod:`argparse` does.
    """
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.command == "benchmark":
        return _benchmark(args, args.subparser)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse checks
    return 2  # pragma: no cover
