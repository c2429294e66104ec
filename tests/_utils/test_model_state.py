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


def test_preserved_model_restores_global_rng_buffers_and_hooks_on_interrupt():
    model = stateful_mlp()  # training mode: batch-norm and dropout
    own_hook = model[0].register_forward_hook(lambda *args: None)
    bn = model[1]
    running_mean, counter = bn.running_mean, bn.num_batches_tracked.clone()
    rng = torch.random.get_rng_state()
    with pytest.raises(KeyboardInterrupt), preserved_model(model, freeze_parameters=False):
        model[2].register_forward_pre_hook(lambda *args: None)
        model[3].weight.register_hook(lambda grad: grad)
        model(torch.ones(8, 3))  # dropout draws from the global RNG, statistics move
        bn.running_mean = torch.zeros(4)  # a buffer replaced, not updated in place
        raise KeyboardInterrupt
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert bn.running_mean is running_mean and torch.equal(bn.num_batches_tracked, counter)
    assert not model[2]._forward_pre_hooks and not model[3].weight._backward_hooks
    assert list(model[0]._forward_hooks) == [own_hook.id]
    own_hook.remove()


def test_preserved_model_forks_the_rng_for_plain_callables():
    rng = torch.random.get_rng_state()
    with preserved_model(lambda x: x):
        torch.rand(3)
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_preserved_model_restores_resized_buffers_and_drops_new_ones():
    model = nn.BatchNorm1d(3)
    mean = model.running_mean
    before = mean.clone()
    with preserved_model(model):
        mean.resize_(5).fill_(7.0)  # resized in place: same object, other shape
        model.register_buffer("scratch", torch.ones(2))
    assert model.running_mean is mean and torch.equal(mean, before)
    assert "scratch" not in dict(model.named_buffers())
