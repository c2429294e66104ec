"""Image folders as map-style data sets: loading, resizing and normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "IMAGE_SUFFIXES",
    "NORMALIZATIONS",
    "ImageFolder",
    "load_images",
    "parse_normalize",
]

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: Named normalisations: name -> (per-channel mean, per-channel std), or None.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,
}

Normalization = tuple[tuple[float, ...], tuple[float, ...]] | None


def parse_normalize(spec: str) -> Normalization:
    """``imagenet``, ``none`` or ``MEAN,STD`` (one value each, or one per channel:
    ``0.5,0.5,0.5,0.2,0.2,0.2`` is three means then three standard deviations).

    Raises:
        ValueError: Another spelling, or a standard deviation that is not positive.

    Examples::

        >>> from captum_soundness.benchmark._dataset import parse_normalize
        >>> parse_normalize("0.5,0.25")
        ((0.5,), (0.25,))
    """
    text = spec.strip().lower()
    if text in NORMALIZATIONS:
        return NORMALIZATIONS[text]
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or len(values) % 2:
        raise ValueError(
            f"expected imagenet, none or MEAN,STD (per-channel means, then as many standard "
            f"deviations), got {spec!r}."
        )
    half = len(values) // 2
    mean, std = tuple(values[:half]), tuple(values[half:])
    if min(std) <= 0:
        raise ValueError(f"standard deviations must be positive, got {spec!r}.")
    return mean, std


def image_files(root: str | Path) -> list[Path]:
    """The image files below ``root`` (recursively), sorted by their relative path."""
    root = Path(root)
    return sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def _read(path: Path, size: int | None, channels: int) -> Tensor:
    """``(C, H, W)`` in [0, 1]: shorter side resized to ``size``, then centre-cropped."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - pillow ships with matplotlib
        raise ImportError(
            "Reading images needs Pillow: pip install 'captum-soundness[vision]'"
        ) from error
    with Image.open(path) as handle:
        image = handle.convert("L" if channels == 1 else "RGB")
    if size is not None:
        scale = size / min(image.size)
        width, height = (max(size, round(s * scale)) for s in image.size)
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.size[1], image.size[0], channels).permute(2, 0, 1).float() / 255


class ImageFolder(torch.utils.data.Dataset):
    """The png/jpg images below a folder, as ``(image, label)`` pairs.

    Files are sorted by their path relative to ``root``; image ``i`` is the ``i``-th file.
    When the images lie in sub-folders (one per class, as torchvision's ``ImageFolder``),
    ``label`` is the index of the top-level sub-folder among the sorted sub-folder names
    (images in deeper folders belong to their top-level sub-folder); images
    directly in ``root`` have label ``-1`` (unknown).

    Args:
        root: The folder.
        image_size: Side of the square images (shorter side resized, then centre crop);
            ``None`` keeps the files' sizes (they must then agree for batching).
        normalize: ``(mean, std)`` per channel (or one value each), ``None``, or a
            spelling of :func:`parse_normalize` (``"imagenet"``).
        channels: 3 (RGB) or 1 (grey levels).

    Examples::

        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from captum_soundness.benchmark._dataset import ImageFolder
        >>> root = tempfile.mkdtemp()
        >>> Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(f"{root}/a.png")
        >>> image, label = ImageFolder(root, image_size=32)[0]
        >>> tuple(image.shape), label
        ((3, 32, 32), -1)
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: int | None = 224,
        normalize: str | Normalization = None,
        channels: int = 3,
    ) -> None:
        if isinstance(normalize, str):
            normalize = parse_normalize(normalize)
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"`root`: {self.root} is not a folder.")
        self.files = image_files(self.root)
        if not self.files:
            raise ValueError(
                f"`root`: no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images in {self.root}."
            )
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, got {channels!r}.")
        self.image_size, self.channels, self.normalize = image_size, channels, normalize
        self.classes = sorted({c for c in map(self._class_of, self.files) if c is not None})
        self.mean = self.std = None
        if normalize is not None:
            if len(normalize[0]) not in (1, channels) or len(normalize[1]) != len(normalize[0]):
                raise ValueError(
                    f"`normalize`: {len(normalize[0])} mean(s) and {len(normalize[1])} "
                    f"standard deviation(s) for {channels}-channel images; give one value "
                    f"each or {channels} each."
                )
            shape = (-1, 1, 1)
            self.mean = torch.tensor(normalize[0]).view(shape)
            self.std = torch.tensor(normalize[1]).view(shape)

    def _class_of(self, path: Path) -> str | None:
        """The class of an image: its top-level sub-folder under ``root`` (also for images
        in deeper folders, as torchvision's ``ImageFolder``), ``None`` directly in root."""
        parts = path.relative_to(self.root).parts
        return parts[0] if len(parts) > 1 else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path = self.files[index]
        image = _read(path, self.image_size, self.channels)
        if self.mean is not None:
            image = (image - self.mean) / self.std
        name = self._class_of(path)
        label = -1 if name is None else self.classes.index(name)
        return image, label


def load_images(dataset: torch.utils.data.Dataset, indices: Sequence[int] | None = None) -> Tensor:
    """The images of ``dataset`` (items ``(image, label)`` or images) stacked: ``(N, C, H, W)``."""
    indices = range(len(dataset)) if indices is None else indices
    items = [dataset[i] for i in indices]
    return torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])
