"""The ``captum-soundness`` command line (argument parsing only; the work is elsewhere).

Subcommands:

- ``benchmark``: Captum's attribution methods and SimpleMasking on the bundled MNIST model,
  scored for completeness and soundness on every label (see
  :mod:`captum_soundness.benchmark`). Writes ``results.json``, ``results.csv``, figures
  and ``report.md`` under ``--out``.
- ``evaluate``: the same on the user's model and image folder
  (:func:`~captum_soundness.benchmark.evaluate_dataset`), resumable, on ``torchrun``.

Examples::

    captum-soundness benchmark --out results
    captum-soundness benchmark --quick --out /tmp/smoke
    captum-soundness benchmark --methods saliency,simple_masking --images 10 --steps 500
    python -m captum_soundness benchmark --full --out results-full
    captum-soundness evaluate --model torchvision.models:resnet50 --weights r50.pt \\
        --data images/ --pool pool/ --labels imagenet6 --out results-r50
    torchrun --nproc-per-node 4 -m captum_soundness evaluate ... --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}.")
    return value


def _typed(parse: Any, metavar: str) -> Any:
    """An argparse type from a parser that raises ValueError (its message is shown)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = metavar
    return convert


def _existing_dir(text: str) -> str:
    from pathlib import Path

    if not Path(text).is_dir():
        raise ValueError(f"{text} is not a folder.")
    return text


def _existing_file(text: str) -> str:
    from pathlib import Path

    if not Path(text).is_file():
        raise ValueError(f"{text} is not a file.")
    return text


def _labels(text: str) -> Any:
    """``all`` -> None, ``imagenet6`` -> the paper's six labels, else a list of ints."""
    from captum_soundness._utils.validation import check_label_list
    from captum_soundness.labels import PAPER_IMAGENET_LABELS

    if text.strip().lower() == "all":
        return None
    if text.strip().lower() == "imagenet6":
        return list(PAPER_IMAGENET_LABELS)
    try:
        labels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"expected all, imagenet6 or label ids such as 1,3,5, got {text!r}."
        ) from None
    return check_label_list(labels, "--labels", min_count=2)


def method_names(values: Sequence[str] | None) -> list[str]:
    """The names of repeatable, comma-separated ``--methods`` options."""
    return [n.strip() for chunk in values or () for n in chunk.split(",") if n.strip()]


def _package_version() -> str:
    from captum_soundness import __version__

    return __version__


def _benchmark_description() -> str:
    from captum_soundness.benchmark._settings import DEFAULT_SETTINGS as D
    from captum_soundness.benchmark._settings import FULL_SETTINGS, QUICK_SETTINGS

    return (
        "Explain held-out MNIST digits for every label with Captum's methods and "
        "SimpleMasking (plus its TV / upsampling ablations and a random floor); report "
        "completeness, soundness, insertion/deletion AUC and seconds per map. "
        f"Defaults: {D.images} images, SimpleMasking preset {D.preset!r} ({D.steps} steps). "
        f"--quick: {QUICK_SETTINGS.images} images, {QUICK_SETTINGS.steps} steps (smoke "
        f"test). --full: {FULL_SETTINGS.images} images, preset {FULL_SETTINGS.preset!r} "
        f"({FULL_SETTINGS.steps} steps; paper scale, slow on a CPU). Outputs are written "
        "beside --out and moved into place at the end: an existing --out is either "
        "replaced by a complete run or left untouched. Ctrl-C stops with status 130, "
        "keeping the finished methods for --resume."
    )


def _add_preset(parser: Any) -> None:
    from captum_soundness.attr import PRESETS
    from captum_soundness.benchmark._settings import DEFAULT_SETTINGS as D

    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help=f"SimpleMasking's recipe (default {D.preset!r}; 'paper' is the reference recipe "
        "of Gupta et al.); --steps overrides its number of steps",
    )


def _preset_changes(args: argparse.Namespace) -> dict[str, object]:
    """The settings of ``--preset`` (its steps and fill samples), before ``--steps``."""
    from captum_soundness.attr import PRESETS

    if args.preset is None:
        return {}
    recipe = PRESETS[args.preset]
    return {
        "preset": args.preset,
        "steps": recipe["steps"],
        "n_fill_samples": recipe["n_fill_samples"],
    }


def _add_benchmark(sub: Any) -> None:
    from captum_soundness.benchmark._registry import METHODS
    from captum_soundness.benchmark._settings import DEFAULT_SETTINGS as D
    from captum_soundness.benchmark._settings import FILL_NAMES

    bench = sub.add_parser(
        "benchmark",
        help="benchmark attribution methods on the bundled MNIST model",
        description=_benchmark_description(),
    )
    preset = bench.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    preset.add_argument("--full", action="store_true", help="paper-scale settings")
    bench.add_argument(
        "--images", type=positive_int, help=f"number of held-out images (default {D.images})"
    )
    bench.add_argument(
        "--methods",
        action="append",
        metavar="NAMES",
        help="comma-separated method names (repeatable; default: all, also 'all'). Valid: "
        + ", ".join(METHODS),
    )
    bench.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    _add_preset(bench)
    bench.add_argument(
        "--steps", type=positive_int, help=f"SimpleMasking optimisation steps (default {D.steps})"
    )
    bench.add_argument(
        "--fill",
        help="evaluation fill: a number or one of "
        + ", ".join(FILL_NAMES)
        + f" (default {D.fill!r}, the constant 0 of the reference protocol)",
    )
    bench.add_argument("--device", help=f"torch device (default {D.device!r})")
    bench.add_argument("--seed", type=int, help=f"random seed (default {D.seed})")
    bench.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    bench.add_argument(
        "--out",
        default="results",
        help="output folder (default 'results'), replaced as a whole only when the run is "
        "complete; the run works in .NAME.partial beside it",
    )
    bench.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (Ctrl-C) from the finished methods kept beside "
        "--out (same options needed)",
    )
    bench.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    bench.add_argument("--no-sanity", action="store_true", help="skip the sanity-check columns")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.set_defaults(subparser=bench, handler=_benchmark)


def _add_evaluate(sub: Any) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="evaluate attribution methods on your own model and image folder",
        description=(
            "Explain every label (or --labels) of the images of --data with the methods of "
            "the benchmark and score completeness and soundness; records are written batch "
            "by batch (--resume continues a killed run); under torchrun the images are "
            "split among the processes, with the same numbers as one process."
        ),
    )
    _add_model_options(ev.add_argument_group("model"))
    _add_data_options(ev.add_argument_group("data"))
    _add_run_options(ev.add_argument_group("evaluation"))
    out = ev.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder")
    out.add_argument("--resume", action="store_true", help="continue the run in --out")
    out.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(subparser=ev, handler=_evaluate)


def _add_model_options(model: Any) -> None:
    from captum_soundness.benchmark._loading import check_model_spec, parse_model_kwargs

    model.add_argument(
        "--model",
        required=True,
        type=_typed(check_model_spec, "model"),
        help="MODULE:CALLABLE returning an nn.Module (e.g. torchvision.models:resnet50), "
        "or a TorchScript file",
    )
    model.add_argument(
        "--model-kwargs",
        type=_typed(parse_model_kwargs, "JSON"),
        default={},
        metavar="JSON",
        help="keyword arguments of the callable, e.g. '{\"num_classes\": 3}'",
    )
    model.add_argument(
        "--weights",
        type=_typed(_existing_file, "PATH"),
        metavar="PATH",
        help="state dict file (never downloaded)",
    )
    model.add_argument(
        "--gradcam-layer", metavar="NAME", help="layer of the CAM methods (default: last conv)"
    )


def _add_data_options(data: Any) -> None:
    from captum_soundness.benchmark._dataset import parse_normalize

    data.add_argument(
        "--data",
        required=True,
        type=_typed(_existing_dir, "DIR"),
        metavar="DIR",
        help="image folder (png/jpg; class sub-folders optional)",
    )
    data.add_argument(
        "--image-size",
        type=positive_int,
        default=224,
        metavar="N",
        help="side of the square images (shorter side resized, centre crop; default 224)",
    )
    data.add_argument(
        "--normalize",
        type=_typed(parse_normalize, "normalize"),
        default="imagenet",
        metavar="imagenet|none|MEAN,STD",
        help="input normalisation (default imagenet)",
    )
    data.add_argument(
        "--pool",
        type=_typed(_existing_dir, "DIR"),
        metavar="DIR",
        help="fill images of SimpleMasking (and of --fill dataset), disjoint from --data",
    )
    data.add_argument(
        "--images",
        type=positive_int,
        metavar="N",
        help="evaluate N images chosen by --seed (default: all)",
    )


def _add_run_options(run: Any) -> None:
    from captum_soundness.benchmark._settings import DEFAULT_SETTINGS as D
    from captum_soundness.benchmark._settings import FILL_NAMES

    run.add_argument(
        "--methods",
        action="append",
        metavar="NAMES",
        help="comma-separated method names (default: all); see benchmark --list-methods",
    )
    run.add_argument(
        "--labels",
        type=_typed(_labels, "labels"),
        default=None,
        metavar="all|LIST|imagenet6",
        help="labels to explain (default all); a list restricts the softmax to it",
    )
    _add_preset(run)
    run.add_argument("--steps", type=positive_int, help=f"SimpleMasking steps (default {D.steps})")
    run.add_argument(
        "--fill",
        help=f"evaluation fill: a number or one of {', '.join(FILL_NAMES)} (default {D.fill!r})",
    )
    run.add_argument("--seed", type=int, help=f"random seed (default {D.seed})")
    run.add_argument(
        "--device",
        default="cpu",
        help="torch device (default 'cpu'; 'cuda' is cuda:LOCAL_RANK under torchrun)",
    )
    run.add_argument(
        "--batch-size", type=positive_int, default=8, help="images per batch (default 8)"
    )
    run.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    run.add_argument("--threads", type=positive_int, help="torch CPU threads per process")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``captum-soundness``."""
    parser = argparse.ArgumentParser(
        prog="captum-soundness",
        description="Completeness and soundness of saliency maps (Gupta et al., NeurIPS 2022).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_benchmark(sub)
    _add_evaluate(sub)
    return parser


def _list_methods() -> int:
    from captum_soundness.benchmark._registry import METHODS

    width = max(len(n) for n in METHODS)
    for name, spec in METHODS.items():
        print(f"{name:<{width}}  {spec.description}")
    return 0


def _benchmark_settings(args: argparse.Namespace) -> Any:
    """The :class:`BenchmarkSettings` the arguments ask for (not yet checked)."""
    from captum_soundness.benchmark._settings import (
        DEFAULT_SETTINGS,
        FULL_SETTINGS,
        QUICK_SETTINGS,
        resolve_methods,
    )

    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS if args.full else DEFAULT_SETTINGS
    changes: dict[str, object] = _preset_changes(args)
    changes |= {
        name: getattr(args, name)
        for name in ("images", "steps", "seed", "fill", "device")
        if getattr(args, name) is not None
    }
    if args.methods:
        changes["methods"] = resolve_methods(method_names(args.methods))
    if args.no_sanity:
        changes["sanity"] = False
    if args.no_progress:
        changes["show_progress"] = False
    return settings.replace(**changes)


def _benchmark(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from captum_soundness.benchmark._methods import PRESET_METHODS
    from captum_soundness.benchmark._settings import check_settings
    from captum_soundness.benchmark._staging import check_out

    if args.list_methods:
        return _list_methods()
    settings = check_settings(_benchmark_settings(args))
    if not _has_optional_dependencies():
        return 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.steps is not None and not any(  # the preset methods keep their own recipes
        m.startswith("simple_masking") and m not in PRESET_METHODS for m in settings.methods
    ):
        print(
            "note: --steps sets SimpleMasking's optimisation steps; no SimpleMasking method "
            "is selected, so it has no effect.",
            file=sys.stderr,
        )
    staging = check_out(args.out, resume=args.resume)
    try:
        return _run_staged(args, settings, staging)
    except KeyboardInterrupt:
        if staging.published:  # Ctrl-C held back during the move: the run is complete
            print(f"Interrupted after the results were written to {args.out}.", file=sys.stderr)
            return 130
        kept = f"the finished methods are kept in {staging.path} (--resume continues)"
        if not staging.has_records():
            staging.discard()
            kept = "no method had finished"
        print(f"Interrupted: {args.out} is untouched; {kept}.", file=sys.stderr)
        return 130
    finally:
        staging.unlock()


def _run_staged(args: argparse.Namespace, settings: Any, staging: Any) -> int:
    """Runs the benchmark in the staging folder, then moves the outputs into place."""
    from captum_soundness.benchmark._outputs import format_table, write_outputs
    from captum_soundness.benchmark._runner import run_methods

    done = staging.load(settings) if args.resume else {}
    start = time.perf_counter()
    result = run_methods(
        settings,
        done=done,
        on_finished=lambda method, predicted: staging.save(method, predicted, settings),
    )
    write_outputs(result, staging.path, figures=not args.no_figures)
    staging.publish()
    print(f"\n{format_table(result)}\n")
    print(
        f"Held-out accuracy of the model: {result.model_info['held_out_accuracy']:.4f}. "
        f"Wrote results.json, results.csv, report.md"
        + ("" if args.no_figures else " and figures")
        + f" to {args.out}/ ({time.perf_counter() - start:.1f} s)."
    )
    return 0


def _evaluate_settings(args: argparse.Namespace) -> Any:
    """The method settings the ``evaluate`` arguments ask for (not yet checked)."""
    from captum_soundness.benchmark._registry import METHODS
    from captum_soundness.benchmark._settings import DEFAULT_SETTINGS, resolve_methods

    changes: dict[str, object] = _preset_changes(args)
    changes |= {
        name: getattr(args, name)
        for name in ("steps", "seed", "fill", "device")
        if getattr(args, name) is not None
    }
    names = method_names(args.methods) or list(METHODS)
    changes["methods"] = resolve_methods(names)
    changes["show_progress"] = not args.no_progress
    return DEFAULT_SETTINGS.replace(**changes)


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from captum_soundness.benchmark._loading import prepare_evaluation

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        job = prepare_evaluation(
            model=args.model,
            model_kwargs=args.model_kwargs,
            weights=args.weights,
            data=args.data,
            image_size=args.image_size,
            normalize=args.normalize,
            pool=args.pool,
            images=args.images,
            labels=args.labels,
            settings=_evaluate_settings(args),
            gradcam_layer=args.gradcam_layer,
            batch_size=args.batch_size,
            workers=args.workers,
            out=args.out,
            resume=args.resume,
            figures=not args.no_figures,
        )
    except (TypeError, ValueError) as error:  # an argument: the usage line helps
        parser.error(str(error))
    result = job.run()  # its errors are one line (main)
    if result is not None:
        print(
            "Wrote results.json, results.csv, report.md"
            + ("" if args.no_figures else " and figures")
            + f" to {args.out}/ ({result.wall_seconds:.1f} s)."
        )
    return 0


def _has_optional_dependencies() -> bool:
    try:
        import matplotlib  # noqa: F401
        import mlxtend  # noqa: F401
    except ImportError as error:
        print(
            f"error: the benchmark needs the optional dependencies ({error.name} is missing): "
            "pip install 'captum-soundness[benchmark]'",
            file=sys.stderr,
        )
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``captum-soundness`` (and ``python -m captum_soundness``).

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success). Errors end with one line on stderr, never a
        traceback, and :class:`SystemExit`: status 2 for a user error (usage, a bad
        argument, an occupied ``--out``: :class:`ValueError` / :class:`TypeError`), 1 for
        a failing file system (:class:`OSError`). Ctrl-C returns 130; a closed stdout
        (``... | head``) ends silently with 141, the status of a process ended by SIGPIPE
        (the output was cut short, so not 0; ``set -o pipefail`` sees it as it sees
        ``yes | head``).
    """
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        status = args.handler(args, args.subparser)
        sys.stdout.flush()  # a closed pipe fails here, not in Python's final flush
        return status
    except KeyboardInterrupt:
        print(f"{args.subparser.prog}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except (TypeError, ValueError, OSError) as error:
        status = 1 if isinstance(error, OSError) else 2
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{args.subparser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(status) from None


def _silence_stdout() -> None:
    """Points stdout at the null device, so that Python's final flush of a closed pipe
    does not print a second error (the recipe of the :mod:`signal` docs)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
