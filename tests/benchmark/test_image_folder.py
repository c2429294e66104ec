"""``ImageFolder`` (the reader behind ``captum-soundness evaluate --data``)."""

import numpy as np
import pytest
from PIL import Image

from captum_soundness.benchmark._dataset import ImageFolder


def _save(root, rel):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(path)


def test_classes_are_top_level_folders_as_in_torchvision(tmp_path):
    for rel in ["cat/a.png", "cat/deep/b.png", "dog/c.png", "loose.png"]:
        _save(tmp_path, rel)
    folder = ImageFolder(tmp_path, image_size=8, normalize="0.5,0.25")
    assert folder.classes == ["cat", "dog"]
    labels = {f.relative_to(tmp_path).as_posix(): folder[i][1] for i, f in enumerate(folder.files)}
    assert labels == {"cat/a.png": 0, "cat/deep/b.png": 0, "dog/c.png": 1, "loose.png": -1}
    image = folder[0][0]
    assert image.shape == (3, 8, 8)
    assert abs(float(image.mean()) - (128 / 255 - 0.5) / 0.25) < 1e-2


def test_normalisation_must_match_the_channels(tmp_path):
    _save(tmp_path, "a.png")
    with pytest.raises(ValueError, match="give one value each or 3 each"):
        ImageFolder(tmp_path, normalize=((0.5, 0.5), (0.2, 0.2)))
