"""The bundled MNIST model, its data loaders and its training script."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from captum_soundness.models import (
    MNIST_GRADCAM_LAYER,
    MNIST_NUM_HELD_OUT,
    MNISTNet,
    load_mnist_cnn,
    load_mnist_digits,
    mnist_cnn_metadata,
    mnist_split_indices,
)

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "captum_soundness" / "models" / "mnist_cnn.pt"


def _train_script():
    spec = importlib.util.spec_from_file_location(
        "train_mnist", ROOT / "scripts" / "train_mnist.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_and_gradcam_layer():
    model = MNISTNet()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    layer = model.get_submodule(MNIST_GRADCAM_LAYER)
    assert isinstance(layer, nn.Conv2d)
    # Every ReLU is its own module (DeepLift / GuidedBackprop need that).
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == len({id(m) for m in relus}) == 3
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 300_000


def test_weights_file_is_small_and_packaged():
    assert WEIGHTS.is_file()
    assert WEIGHTS.stat().st_size < 1_000_000


def test_load_mnist_cnn_eval_mode_and_held_out_accuracy():
    model = load_mnist_cnn()
    assert isinstance(model, MNISTNet)
    assert not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    images, labels = load_mnist_digits("test")
    with torch.no_grad():
        accuracy = float((model(images).argmax(1) == labels).float().mean())
    assert accuracy >= 0.97
    metadata = mnist_cnn_metadata()
    assert metadata["held_out_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metadata["num_train"] == 4000
    assert metadata["num_held_out"] == 1000
    assert isinstance(metadata["torch_version"], str)


def test_load_mnist_cnn_fresh_copies():
    state = torch.get_rng_state()
    first, second = load_mnist_cnn(), load_mnist_cnn(device="cpu")
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not used
    assert all(p.is_leaf and p.requires_grad for p in first.parameters())
    with torch.no_grad():
        first.fc2.bias.add_(1.0)
    assert not torch.equal(first.fc2.bias, second.fc2.bias)


def test_load_mnist_digits_splits():
    x_train, y_train = load_mnist_digits("train")
    x_test, y_test = load_mnist_digits("test")
    x_all, y_all = load_mnist_digits("all")
    assert x_train.shape == (4000, 1, 28, 28) and y_train.shape == (4000,)
    assert x_test.shape == (1000, 1, 28, 28) and y_test.shape == (1000,)
    assert x_all.shape == (5000, 1, 28, 28)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert float(x.max()) > 0.9
    assert y_test.bincount().tolist() == [MNIST_NUM_HELD_OUT] * 10
    assert y_train.bincount().tolist() == [400] * 10
    train, test = mnist_split_indices()
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    assert sorted(train.tolist() + test.tolist()) == list(range(5000))
    assert torch.equal(x_test, x_all[torch.from_numpy(test)])
    assert torch.equal(y_train, y_all[torch.from_numpy(train)])
    # The split is fixed: a second call gives the same indices.
    train2, test2 = mnist_split_indices()
    assert (train == train2).all() and (test == test2).all()


def test_load_mnist_digits_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist_digits("validation")


def test_shift_batch_translates():
    script = _train_script()
    x = torch.zeros(2, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0
    out = script.shift_batch(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):
        (r, c) = out[i, 0].nonzero()[0].tolist()
        assert abs(r - 2) <= 2 and abs(c - 3) <= 2
        assert float(out[i].sum()) == 1.0


def test_training_script_is_reproducible(tmp_path):
    script = _train_script()
    outs = [tmp_path / "a.pt", tmp_path / "b.pt"]
    # The script configures torch globally (threads, determinism, seed): restore it.
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    try:
        for out in outs:
            script.main(["--epochs", "1", "--limit", "128", "--seed", "3", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)
    first, second = (torch.load(p, weights_only=True) for p in outs)
    state, other = first["state_dict"], second["state_dict"]
    assert state.keys() == MNISTNet().state_dict().keys()
    assert all(torch.equal(state[k], other[k]) for k in state)
    assert not torch.equal(state["fc2.weight"], MNISTNet().state_dict()["fc2.weight"])
    assert first["metadata"]["seed"] == 3
    assert first["metadata"]["num_train"] == 128
    assert 0.0 <= first["metadata"]["held_out_accuracy"] <= 1.0
