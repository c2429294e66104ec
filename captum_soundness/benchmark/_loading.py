"""``captum-soundness evaluate`` from its command-line spellings: the user's model
(``MODULE:CALLABLE`` or TorchScript), the image folders, the evaluated images."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_soundness.benchmark._dataset import ImageFolder, Normalization, load_images
from captum_soundness.benchmark._distributed import rank_device
from captum_soundness.benchmark._evaluate import EvaluationResult, check_out, evaluate_dataset
from captum_soundness.benchmark._settings import BenchmarkSettings, check_method_settings

__all__ = [
    "EvaluationJob",
    "check_model_spec",
    "load_model",
    "parse_model_kwargs",
    "prepare_evaluation",
]


def check_model_spec(spec: str) -> str:
    """``MODULE:CALLABLE`` (e.g. ``torchvision.models:resnet50``) or an existing file
    (TorchScript); returned unchanged.

    Raises:
        ValueError: Neither.
    """
    if Path(spec).is_file():
        return spec
    module, _, name = spec.partition(":")
    if not module or not name or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(
            f"expected MODULE:CALLABLE (e.g. torchvision.models:resnet50) or a TorchScript "
            f"file, got {spec!r}."
        )
    return spec


def parse_model_kwargs(text: str) -> dict[str, Any]:
    """The keyword arguments of the model's callable: a JSON object.

    Raises:
        ValueError: Not a JSON object.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg}): {text!r}.") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as '{{\"num_classes\": 3}}', got {text!r}.")
    return value


def load_model(
    spec: str,
    kwargs: dict[str, Any] | None = None,
    weights: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Builds the model, loads its weights, moves it to ``device``, in eval mode.

    Args:
        spec: ``MODULE:CALLABLE`` (the callable returns an ``nn.Module``) or a TorchScript
            file (:func:`torch.jit.load`).
        kwargs: Keyword arguments of the callable.
        weights: A state dict file (:func:`torch.load` with ``weights_only=True``); never
            downloaded.
        device: Where the model goes.

    Raises:
        ValueError: The module, the callable or the weights cannot be loaded, or the
            callable does not return a module (the message says which).
    """
    if Path(spec).is_file():
        if kwargs:
            raise ValueError("`model_kwargs` apply to MODULE:CALLABLE, not to a TorchScript file.")
        model = torch.jit.load(spec, map_location=device)
    else:
        model = _build(spec, kwargs or {})
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ValueError(f"`weights`: cannot load {weights} into the model: {first}") from None
    return model.to(device).eval()


def _build(spec: str, kwargs: dict[str, Any]) -> nn.Module:
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"`model`: cannot import {module_name!r}: {error}") from None
    factory: Any = module
    for part in name.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise ValueError(f"`model`: {module_name!r} has no callable {name!r}.")
    try:
        model = factory(**kwargs)
    except TypeError as error:
        raise ValueError(f"`model`: {spec}(**{kwargs!r}) failed: {error}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model`: {spec} returned a {type(model).__name__}, not an nn.Module.")
    return model


@dataclass
class EvaluationJob:
    """A checked ``captum-soundness evaluate``: the arguments of
    :func:`~captum_soundness.benchmark.evaluate_dataset`."""

    model: nn.Module
    dataset: ImageFolder
    settings: BenchmarkSettings
    indices: list[int]
    labels: list[int] | None
    pool: Tensor | None
    gradcam_layer: str | None
    batch_size: int
    workers: int
    out: Path
    resume: bool
    figures: bool
    model_name: str

    def run(self) -> EvaluationResult | None:
        """Runs it (the result on rank 0, ``None`` on the other ranks)."""
        return evaluate_dataset(
            self.model,
            self.dataset,
            self.settings.methods,
            labels=self.labels,
            pool=self.pool,
            settings=self.settings,
            gradcam_layer=self.gradcam_layer,
            indices=self.indices,
            batch_size=self.batch_size,
            num_workers=self.workers,
            out=self.out,
            resume=self.resume,
            figures=self.figures,
            model_name=self.model_name,
        )


def _deterministic_cuda() -> None:
    """Deterministic cuDNN and cuBLAS kernels, so that a resumed or a K-process run gives
    the numbers of an uninterrupted single process on GPUs too (the command's process
    only; :func:`evaluate_dataset` leaves these global switches to its caller)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def choose_indices(size: int, count: int | None, seed: int) -> list[int]:
    """``count`` of ``size`` image indices chosen by ``seed`` (sorted), or all of them."""
    if count is None or count == size:
        return list(range(size))
    if count > size:
        raise ValueError(f"`images`: asked for {count} images, the folder holds {size}.")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:count].tolist())


def _pool(folder: str | None, dataset: ImageFolder) -> Tensor | None:
    """The pool images, read like the data set's; refused when they overlap it."""
    if folder is None:
        return None
    pool = ImageFolder(
        folder,
        image_size=dataset.image_size,
        normalize=dataset.normalize,
        channels=dataset.channels,
    )
    overlap = {p.resolve() for p in pool.files} & {p.resolve() for p in dataset.files}
    if overlap:
        raise ValueError(
            f"`pool`: {len(overlap)} pool images are also evaluated images (e.g. "
            f"{sorted(overlap)[0]}): the fill images must be disjoint from --data."
        )
    return load_images(pool)


def prepare_evaluation(
    *,
    model: str,
    model_kwargs: dict[str, Any],
    weights: str | None,
    data: str,
    image_size: int,
    normalize: Normalization,
    pool: str | None,
    images: int | None,
    labels: Sequence[int] | None,
    settings: BenchmarkSettings,
    gradcam_layer: str | None,
    batch_size: int,
    workers: int,
    out: str,
    resume: bool,
    figures: bool,
) -> EvaluationJob:
    """Checks the cheap arguments first, then loads the data, the pool and the model.

    Raises:
        ValueError: The first argument found wrong (the message names it).
    """
    settings = check_method_settings(settings.replace(device=str(rank_device(settings.device))))
    if torch.device(settings.device).type == "cuda":
        _deterministic_cuda()
    if workers < 0:
        raise ValueError(f"`workers` must be >= 0, got {workers}.")
    check_out(out, resume)
    dataset = ImageFolder(data, image_size=image_size, normalize=normalize)
    indices = choose_indices(len(dataset), images, settings.seed)
    pool_images = _pool(pool, dataset)
    network = load_model(model, model_kwargs, weights, settings.device)
    return EvaluationJob(
        network,
        dataset,
        settings,
        indices,
        None if labels is None else list(labels),
        pool_images,
        gradcam_layer,
        batch_size,
        workers,
        Path(out),
        resume,
        figures,
        model,
    )
