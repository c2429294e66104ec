"""Evaluating the registered methods on any model and data set, streaming, resumable,
on one process or many (``torchrun``).

Every image is explained and scored on its own, for every evaluated label at once, with
seeds drawn from ``(seed, image index)`` only: the numbers of an image do not depend on
the batch it was in, on the process that computed it, or on whether the run was
interrupted and resumed.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from captum_soundness._utils.model_state import preserved_model
from captum_soundness._utils.rng import draw_seeds
from captum_soundness._utils.validation import check_labels, check_positive_int
from captum_soundness.benchmark._dataset import load_images
from captum_soundness.benchmark._distributed import Distributed, setup_distributed, shard
from captum_soundness.benchmark._outputs import write_outputs
from captum_soundness.benchmark._records import RecordStore, merge_records, write_json_atomic
from captum_soundness.benchmark._registry import METHODS, BenchmarkContext, last_conv_layer
from captum_soundness.benchmark._results import BenchmarkResult, versions
from captum_soundness.benchmark._runner import (
    PREVIEW_IMAGES,
    evaluation_fill,
    score_method,
    summary_line,
    warm_up,
)
from captum_soundness.benchmark._settings import (
    DEFAULT_SETTINGS,
    BenchmarkSettings,
    check_method_settings,
)
from captum_soundness.fills import Fill
from captum_soundness.labels import restrict_labels

__all__ = ["EvaluationResult", "check_out", "evaluate_dataset", "image_seeds"]

#: Mixes the run's seed with an image index (a 64-bit odd constant, the golden ratio).
_MIX = 0x9E3779B97F4A7C15


def image_seeds(seed: int, index: int) -> tuple[int, int]:
    """The method's and the evaluation fill's seeds for image ``index``: functions of
    ``(seed, index)`` only."""
    generator = torch.Generator().manual_seed((seed * _MIX + index) % 2**64)
    method_seed, fill_seed = draw_seeds(generator, 2)
    return method_seed, fill_seed


class EvaluationResult(BenchmarkResult):
    """A :class:`BenchmarkResult` of :func:`evaluate_dataset` (its own report text)."""

    report_title = "captum-soundness evaluate"

    def setting_lines(self) -> list[str]:
        info, s = self.model_info, self.settings
        lines = [
            f"- Model: {info['name']}, {info['num_parameters']} parameters.",
            f"- Images: {len(self.image_indices)} of the {info['dataset_size']} images of "
            f"{info['dataset']}, each explained for {len(info['labels'])} labels "
            f"({info['labels_text']}); seeds from (seed {s.seed}, image index).",
            *self._method_lines(),
        ]
        return [line.replace("training digits", "pool images") for line in lines]


def check_out(out: str | Path, resume: bool) -> Path:
    """The output folder, refused when it holds an earlier run and ``resume`` is false.

    Raises:
        ValueError: ``out`` is a file, or holds records or results without ``resume``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out`: {out} exists and is not a directory.")
    earlier = RecordStore(out).exists() or (out / "run.json").exists()
    if earlier and not resume:
        raise ValueError(
            f"`out`: {out} holds an earlier run; pass --resume (resume=True) to continue "
            "it, or choose another folder."
        )
    return out


@dataclass
class _Plan:
    """What the evaluation of every image needs."""

    model: nn.Module  # restricted to the labels when a subset was given
    label_ids: list[int]
    settings: BenchmarkSettings
    context: BenchmarkContext
    fill: tuple[Fill, int]
    preview: set[int]  # image indices whose map at the prediction is kept
    device: torch.device
    source: nn.Module  # the model as given
    dataset: Dataset
    indices: list[int]  # the evaluated images (sorted)
    image_shape: tuple[int, ...]  # (C, H, W)
    progress: bool  # the run's progress bar (the methods' own bars stay off)


def _image_record(plan: _Plan, name: str, image: Tensor, index: int, label: int) -> dict:
    """Explains and scores one image for every label with method ``name``."""
    method_seed, fill_seed = image_seeds(plan.settings.seed, index)
    settings = plan.settings.replace(seed=method_seed)
    explain = METHODS[name].make_factory(settings, plan.context)(plan.model)
    try:
        report, _, recorder = score_method(
            explain, plan.model, image, settings, *plan.fill, seed=fill_seed
        )
    except ValueError as error:  # its "examples [0]" is this one image of the data set
        raise ValueError(f"image {index} of the data set, method {name!r}: {error}") from error
    pred = int(report.predicted[0])
    assert report.deletion_at_prediction is not None
    preview = None
    if index in plan.preview:
        preview = torch.cat(recorder.records).view(report.num_labels, -1)[pred].tolist()
    return {
        "index": index,
        "label": label,
        "predicted": plan.label_ids[pred],
        "labels": plan.label_ids,
        "probs": report.probs[0].tolist(),
        "completeness": report.completeness[0].tolist(),
        "soundness": report.soundness[0].tolist(),
        "insertion_score": report.insertion_score[0].tolist(),
        "metrics": {key: float(value[0]) for key, value in report.per_image().items()},
        "insertion_curve": report.insertion[0, pred].tolist(),
        "deletion_curve": report.deletion_at_prediction[0].tolist(),
        "seconds": recorder.seconds,
        "preview": preview,
    }


class _Indexed(Dataset):
    """``dataset`` restricted to ``indices``, yielding ``(index, image, label)``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, Tensor, int]:
        item = self.dataset[self.indices[k]]
        if isinstance(item, (tuple, list)):
            return self.indices[k], item[0], int(item[1]) if len(item) > 1 else -1
        return self.indices[k], item, -1


def _run_shard(
    plan: _Plan,
    store: RecordStore,
    mine: list[int],
    loader_options: dict[str, Any],
    state: Distributed,
) -> dict[str, dict[int, dict]]:
    """This rank's records: read back where complete, computed batch by batch elsewhere."""
    names = plan.settings.methods
    done = {name: store.read(name, mine) for name in names}
    pending = [i for i in mine if any(i not in done[name] for name in names)]
    total = state.all_sum(len(pending))
    bar = tqdm(
        total=total,
        desc="images",
        unit="img",
        disable=not (plan.progress and state.is_root),
        file=sys.stderr,
    )
    warm: set[str] = set()
    for indices, images, labels in DataLoader(_Indexed(plan.dataset, pending), **loader_options):
        images = images.to(plan.device)
        for name in names:
            todo = [j for j, i in enumerate(indices.tolist()) if i not in done[name]]
            if not todo:
                continue
            if name not in warm:
                factory = METHODS[name].make_factory(plan.settings, plan.context)
                # Untimed first call, outside evaluate_all_labels' guard: guarded here.
                with preserved_model(plan.model, freeze_parameters=False, devices=[plan.device]):
                    warm_up(factory(plan.model), images)
                warm.add(name)
            records = [
                _image_record(plan, name, images[j : j + 1], int(indices[j]), int(labels[j]))
                for j in todo
            ]
            store.write(name, records)
            done[name].update((r["index"], r) for r in records)
        bar.update(min(len(indices) * state.world_size, total - bar.n))
    bar.close()
    return done


def _merge(
    gathered: list[dict[str, dict[int, dict]]], plan: _Plan, indices: list[int], shape: Any
) -> dict[str, Any]:
    """Rank 0: every rank's records -> :class:`MethodResult` per method."""
    methods = {}
    for name in plan.settings.methods:
        records = {i: r for part in gathered for i, r in part[name].items()}
        missing = sorted(set(indices) - set(records))
        if missing:
            raise RuntimeError(
                f"No records of {name!r} for {len(missing)} images (e.g. {missing[:5]}): "
                "resume on the same number of processes, or with --out on a shared file "
                "system."
            )
        methods[name] = merge_records(name, {i: records[i] for i in indices}, shape)
    return methods


def _plan(
    model: nn.Module,
    dataset: Dataset,
    settings: BenchmarkSettings,
    labels: Sequence[int] | None,
    pool: Tensor | None,
    gradcam_layer: str | None,
    indices: Sequence[int] | None,
) -> _Plan:
    """Checks the arguments; the evaluated model (restricted to ``labels``), its labels,
    the context and the evaluation fill."""
    chosen, num_outputs, image_shape = _check_inputs(
        model, dataset, settings, indices, pool, labels
    )
    device = _model_device(model)
    layer = gradcam_layer
    if layer is None and any(METHODS[m].needs_layer for m in settings.methods):
        layer = last_conv_layer(model)
    elif layer is not None:
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"`gradcam_layer`: the model has no layer {layer!r}.") from None
    label_ids = list(range(num_outputs)) if labels is None else [int(a) for a in labels]
    evaluated = model if labels is None else restrict_labels(model, label_ids)
    if labels is not None and layer is not None:
        layer = f"model.{layer}"
    pool = torch.zeros(0, device=device) if pool is None else pool.to(device)
    progress = settings.show_progress
    settings = settings.replace(
        images=len(chosen), pool_size=int(pool.shape[0]), show_progress=False
    )
    context = BenchmarkContext(pool=pool, gradcam_layer=layer or "")
    fill = evaluation_fill(settings, pool if pool.numel() else None)
    preview = set(chosen[:PREVIEW_IMAGES])
    return _Plan(
        evaluated,
        label_ids,
        settings,
        context,
        fill,
        preview,
        device,
        model,
        dataset,
        chosen,
        image_shape,
        progress,
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_inputs(
    model: nn.Module,
    dataset: Dataset,
    settings: BenchmarkSettings,
    indices: Sequence[int] | None,
    pool: Tensor | None,
    labels: Sequence[int] | None,
) -> tuple[list[int], int, tuple[int, ...]]:
    """Checked image indices (sorted), the number of model outputs, the image shape."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    size = len(dataset)
    chosen = sorted({int(i) for i in (range(size) if indices is None else indices)})
    if not chosen or chosen[0] < 0 or chosen[-1] >= size:
        raise ValueError(f"`indices` must be indices of the {size} images of `dataset`.")
    needs_pool = [m for m in settings.methods if METHODS[m].needs_pool]
    if needs_pool and (pool is None or pool.shape[0] == 0):
        raise ValueError(
            f"`pool`: {', '.join(needs_pool)} fill with random pool images: give a pool "
            "(--pool DIR), disjoint from the evaluated images."
        )
    first = load_images(dataset, chosen[:1]).to(_model_device(model))
    guard = preserved_model(model, freeze_parameters=False, devices=[first.device])
    with guard, torch.no_grad():
        outputs = model(first)
    if not isinstance(outputs, Tensor) or outputs.dim() != 2:
        raise ValueError("`model` must return (N, num_classes) scores.")
    num_outputs = int(outputs.shape[1])
    if labels is not None:
        check_labels(labels, num_outputs, "labels")
    return chosen, num_outputs, tuple(first.shape[1:])


def _prepare_out(out: Path, config: dict[str, Any], resume: bool, state: Distributed) -> None:
    """Refuses an occupied ``out`` without ``resume`` and a resume of another run; rank 0
    then writes ``run.json`` (after every rank has checked)."""
    check_out(out, resume)
    path = out / "run.json"
    if resume and path.exists():
        import json

        earlier = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in config if earlier.get(k) != config[k])
        if changed:
            raise ValueError(
                f"`out`: {out} holds a run with other {', '.join(changed)}; resume it with "
                "the same arguments, or choose another folder."
            )
    state.barrier()
    if state.is_root and not path.exists():
        write_json_atomic(path, config)


def _model_info(plan: _Plan, name: str | None) -> dict[str, Any]:
    model = plan.source
    subset = plan.model is not model
    return {
        "name": name or type(model).__name__,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "gradcam_layer": plan.context.gradcam_layer or "-",
        "dataset": str(getattr(plan.dataset, "root", type(plan.dataset).__name__)),
        "dataset_size": len(plan.dataset),
        "labels": plan.label_ids,
        "labels_text": "a subset, with the softmax over it" if subset else "all outputs",
    }


def _config(plan: _Plan, name: str | None) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (``run.json``)."""
    settings = plan.settings.as_dict()
    for key in ("device", "show_progress"):
        settings.pop(key)
    return {
        "model": name or type(plan.source).__name__,
        "model_sha256": _tensors_sha256(plan.source.state_dict().values()),
        "labels": plan.label_ids,
        "indices": plan.indices,
        "dataset": _dataset_identity(plan.dataset),
        "dataset_size": len(plan.dataset),
        "pool_sha256": _tensors_sha256([plan.context.pool]),
        "settings": settings,
    }


def _tensors_sha256(tensors: Any) -> str:
    """SHA-256 of the values, dtypes and shapes of ``tensors`` (weights, fill pool), so that
    a resumed run with other weights or another pool is refused instead of mixed in."""
    digest = hashlib.sha256()
    for t in tensors:
        if isinstance(t, Tensor):
            t = t.detach().to("cpu").contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _dataset_identity(dataset: Dataset) -> dict[str, Any]:
    """What identifies an image folder's inputs (files, size, normalisation), when known."""
    files = getattr(dataset, "files", None)
    return {
        "root": str(getattr(dataset, "root", type(dataset).__name__)),
        "files": None if files is None else [str(f) for f in files],
        "image_size": getattr(dataset, "image_size", None),
        "normalize": repr(getattr(dataset, "normalize", None)),
    }


def _result(
    plan: _Plan, gathered: list[dict[str, dict[int, dict]]], name: str | None, started: str
) -> EvaluationResult:
    """Rank 0: the merged :class:`EvaluationResult`."""
    methods = _merge(gathered, plan, plan.indices, plan.image_shape[1:])
    first = {i: r for part in gathered for i, r in part[plan.settings.methods[0]].items()}
    return EvaluationResult(
        settings=plan.settings,
        methods=methods,
        fractions=[
            float(f)
            for f in torch.arange(1, plan.settings.fractions + 1) / plan.settings.fractions
        ],
        images=load_images(plan.dataset, sorted(plan.preview)),
        image_labels=torch.tensor([first[i]["label"] for i in plan.indices]),
        image_indices=list(plan.indices),
        predicted=[first[i]["predicted"] for i in plan.indices],
        model_info=_model_info(plan, name),
        versions=versions(),
        started=started,
    )


def _evaluate(
    plan: _Plan,
    out: Path | None,
    resume: bool,
    loader_options: dict[str, Any],
    name: str | None,
    state: Distributed,
) -> EvaluationResult | None:
    """Prepares ``out``, runs this rank's shard, merges on rank 0."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if out is not None:
            _prepare_out(out, _config(plan, name), resume, state)
        store = RecordStore(scratch if out is None else out)
        mine = shard(plan.indices, state)
        done = _run_shard(plan, store, mine, loader_options, state)
    gathered = state.gather(done)
    if gathered is None:
        return None
    result = _result(plan, gathered, name, started)
    result.wall_seconds = time.perf_counter() - wall
    return result


def evaluate_dataset(
    model: nn.Module,
    dataset: Dataset,
    methods: Sequence[str],
    *,
    labels: Sequence[int] | None = None,
    pool: Tensor | None = None,
    settings: BenchmarkSettings = DEFAULT_SETTINGS,
    gradcam_layer: str | None = None,
    indices: Sequence[int] | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    figures: bool = True,
    model_name: str | None = None,
    log: Callable[[str], Any] | None = print,
) -> EvaluationResult | None:
    r"""Explains every label of every image of ``dataset`` with each method and scores
    completeness and soundness: the benchmark on any model and data set.

    Images stream through a :class:`~torch.utils.data.DataLoader` in batches of
    ``batch_size``; each image is explained (all labels in one call) and scored with
    :func:`~captum_soundness.metrics.evaluate_all_labels` on its own, with seeds drawn
    from ``(settings.seed, image index)``. With ``out``, the records of every finished
    (batch, method) are written atomically to ``out/records``; ``resume=True`` reads
    them back and computes only the rest, so an interrupted and resumed run gives the
    numbers of an uninterrupted one.

    Under ``torchrun`` (or any initialised :mod:`torch.distributed` process group) the
    images are split by position among the processes, every process writes its own
    records, and rank 0 gathers and merges them: 1 and K processes give the same numbers.

    Args:
        model: The classifier (``(N, C, H, W)`` -> ``(N, num_classes)`` scores), on the
            device to use, in eval mode. It is not modified.
        dataset: A map-style data set of ``(image, label)`` pairs or of images (e.g.
            :class:`ImageFolder`), already
            normalised as the model expects.
        methods: Registered method names (:data:`METHODS`).
        labels: ``None`` (every output of the model) or the label ids to explain; a
            subset also restricts the softmax of the masks and metrics to it
            (:func:`~captum_soundness.labels.restrict_labels`, the paper's 6-label
            ImageNet setting).
        pool: ``(P, C, H, W)`` images for SimpleMasking's
            :class:`~captum_soundness.fills.DatasetFill` (and the ``"dataset"``
            evaluation fill), disjoint from ``dataset``; needed by SimpleMasking.
        settings: The method and evaluation knobs (``methods``, ``images``, ``sanity``
            and ``device`` are set from the other arguments).
        gradcam_layer: Name of the CAM methods' layer (default: the last convolution).
        indices: The images of ``dataset`` to evaluate (default: all).
        batch_size: Images per loaded batch (and per record file).
        num_workers: :class:`~torch.utils.data.DataLoader` worker processes.
        out: Folder of the records and outputs (``results.json``, ``results.csv``,
            ``report.md``, figures); ``None``: records in memory only, no outputs.
        resume: Continue the run recorded in ``out``; without it an ``out`` that holds a
            run is refused.
        figures: Write the figures.
        model_name: How the report names the model (default: its class name).
        log: Called with progress messages on rank 0 (``None``: silent, no progress
            bar either).

    Returns:
        An :class:`EvaluationResult` (a :class:`BenchmarkResult`) on rank 0, ``None`` on
        the other ranks.

    Raises:
        ValueError: An argument out of range, an occupied ``out`` without ``resume``.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from torch.utils.data import TensorDataset
        >>> from captum_soundness.benchmark import evaluate_dataset
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 3)).eval()
        >>> data = TensorDataset(torch.rand(2, 3, 8, 8), torch.tensor([0, 2]))
        >>> result = evaluate_dataset(model, data, ["saliency", "random"], log=None)
        >>> sorted(result.methods), result.methods["random"].num_maps
        (['random', 'saliency'], 6)
    """
    settings = check_method_settings(
        settings.replace(
            methods=tuple(methods),
            sanity=False,
            device=str(_model_device(model)),
            show_progress=settings.show_progress and log is not None,
        )
    )
    check_positive_int(batch_size, "batch_size")
    plan = _plan(model, dataset, settings, labels, pool, gradcam_layer, indices)
    say = log if log is not None else (lambda message: None)
    loader_options = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "shuffle": False,
        # The DataLoader draws its workers' base seed from this generator, not from the
        # global RNG (which an evaluation leaves untouched).
        "generator": torch.Generator().manual_seed(plan.settings.seed),
    }
    out = None if out is None else Path(out)
    state = setup_distributed(plan.settings.device)
    try:
        if state.is_root:
            say(
                f"Evaluate: {len(plan.indices)} images x {len(plan.label_ids)} labels, "
                f"{len(plan.settings.methods)} methods, evaluation fill {plan.fill[0]}, "
                f"{state.world_size} process(es), device {plan.device}"
            )
        result = _evaluate(plan, out, resume, loader_options, model_name, state)
    finally:
        state.close()
    if result is not None:
        for method in result.methods.values():
            say(summary_line(method))
        if out is not None:
            write_outputs(result, out, figures=figures)
    return result
