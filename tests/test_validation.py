"""Tests for the shared argument checks and the model guard."""

import warnings

import pytest
import torch
from torch import nn

from captum_soundness._utils.model_state import preserved_model, warn_if_training
from captum_soundness._utils.rng import make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_labels,
    check_max_examples_per_batch,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_targets,
)


def test_check_inputs():
    x = torch.zeros(2, 1, 3, 3)
    assert check_inputs(x) is x
    with pytest.raises(TypeError, match="inputs"):
        check_inputs([x])
    with pytest.raises(TypeError, match="inputs"):
        check_inputs(x.numpy())
    with pytest.raises(TypeError, match="floating"):
        check_inputs(x.long())
    with pytest.raises(ValueError, match="at least 3"):
        check_inputs(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        check_inputs(torch.zeros(0, 1, 3, 3))


def test_check_targets_forms():
    assert check_targets(3, 2).tolist() == [3, 3]
    assert check_targets([1, 2], 2).tolist() == [1, 2]
    assert check_targets(torch.tensor([0, 1]), 2).tolist() == [0, 1]
    assert check_targets(torch.tensor(4), 3).tolist() == [4, 4, 4]
    assert check_targets(None, 2, allow_none=True) is None


@pytest.mark.parametrize(
    ("target", "err", "msg"),
    [
        (None, ValueError, "required"),
        (1.5, TypeError, "target"),
        (True, TypeError, "bool"),
        ([1, 2, 3], ValueError, "3 entries"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer"),
        (torch.zeros(2, 2, dtype=torch.long), ValueError, "1-D"),
        ([0, 10], ValueError, "outside"),
        (-1, ValueError, "outside"),
        ([(0, 1), (1, 1)], TypeError, "tuple"),
    ],
)
def test_check_targets_rejects(target, err, msg):
    with pytest.raises(err, match=msg):
        check_targets(target, 2, num_classes=10)


def test_check_labels():
    assert check_labels(None, 3) == [0, 1, 2]
    assert check_labels(torch.tensor([2, 0]), 3) == [2, 0]
    with pytest.raises(ValueError, match="duplicates"):
        check_labels([1, 1], 3)
    with pytest.raises(ValueError, match="outside"):
        check_labels([0, 3], 3)
    with pytest.raises(ValueError, match="at least 2"):
        check_labels([0], 3)
    with pytest.raises(TypeError, match="labels"):
        check_labels("01", 3)


def test_scalar_checks():
    assert check_positive_int(3, "steps") == 3
    for bad in (0, -1):
        with pytest.raises(ValueError, match="steps"):
            check_positive_int(bad, "steps")
    for bad in (1.0, True, "2"):
        with pytest.raises(TypeError, match="steps"):
            check_positive_int(bad, "steps")
    with pytest.raises(ValueError, match="lr"):
        check_positive_float(0.0, "lr")
    with pytest.raises(ValueError, match="lr"):
        check_positive_float(float("inf"), "lr")
    with pytest.raises(ValueError, match="tv"):
        check_nonnegative_float(-0.1, "tv")
    with pytest.raises(ValueError, match="l1"):
        check_nonnegative_float(float("nan"), "l1")
    with pytest.raises(ValueError, match="objective"):
        check_choice("foo", "objective", ("reference", "log_prob"))
    assert check_max_examples_per_batch(None) is None
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        check_max_examples_per_batch(0)


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.1), nn.Linear(4, 2))


def test_preserved_model_restores_everything():
    model = _model()
    model.train()
    model[0].weight.requires_grad_(False)
    sentinel = torch.ones_like(model[3].weight)
    model[3].weight.grad = sentinel
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with preserved_model(model):
        assert not any(p.requires_grad for p in model.parameters())
        model.eval()
        model[1].train()
        model(torch.randn(8, 3, generator=torch.Generator().manual_seed(0)))  # BN stats move
        model[0].bias.grad = torch.ones(4)
    assert model.training and model[2].training
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad
    assert model[3].weight.grad is sentinel and model[0].bias.grad is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_preserved_model_restores_on_error_and_bound_methods():
    model = _model().eval()
    with pytest.raises(RuntimeError, match="boom"), preserved_model(model.forward):
        model.train()
        raise RuntimeError("boom")
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    with preserved_model(lambda x: x):  # plain callables are accepted
        pass


def test_warn_if_training():
    model = _model()
    with pytest.warns(UserWarning, match="training mode"):
        warn_if_training(model, "Test")
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_training(model, "Test")


def test_make_generator_does_not_touch_global_rng():
    before = torch.random.get_rng_state()
    g1, g2 = make_generator(7, "cpu"), make_generator(7, "cpu")
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    make_generator(None, "cpu")
    assert torch.equal(before, torch.random.get_rng_state())
    g = torch.Generator()
    assert make_generator(g, "cpu") is g
    with pytest.raises(TypeError, match="seed"):
        make_generator("1", "cpu")


def test_training_mode_warning_points_at_the_callers_line():
    from captum_soundness.metrics import insertion_curve

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).train()
    x = torch.rand(2, 1, 2, 2)
    with pytest.warns(UserWarning, match="training mode") as record:
        insertion_curve(model, x, torch.rand(2, 1, 2, 2), target=0, fractions=2)
    assert record[0].filename == __file__
