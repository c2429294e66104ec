"""Tests for the model guard (``_utils.model_state``): the user's model left as found."""

import warnings

import pytest
import torch
from helpers import stateful_mlp
from torch import nn

from captum_soundness._utils.model_state import preserved_model, warn_if_training


def test_preserved_model_restores_everything():
    model = stateful_mlp()
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
    model = stateful_mlp().eval()
    with pytest.raises(RuntimeError, match="boom"), preserved_model(model.forward):
        model.train()
        raise RuntimeError("boom")
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    with preserved_model(lambda x: x):  # plain callables are accepted
        pass


def test_warn_if_training():
    model = stateful_mlp()
    with pytest.warns(UserWarning, match="training mode"):
        warn_if_training(model, "Test")
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_training(model, "Test")


def test_training_mode_warning_points_at_the_callers_line():
    from captum_soundness.metrics import insertion_curve

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).train()
    x = torch.rand(2, 1, 2, 2)
    with pytest.warns(UserWarning, match="training mode") as record:
        insertion_curve(model, x, torch.rand(2, 1, 2, 2), target=0, fractions=2)
    assert record[0].filename == __file__
