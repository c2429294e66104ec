"""Tests for the Integrated Gradients completeness axiom checks."""

import math

import pytest
import torch
from captum.attr import IntegratedGradients
from helpers.models import tanh_mlp
from torch import nn

from captum_soundness import metrics
from captum_soundness.metrics import (
    ig_completeness_error,
    ig_completeness_passes,
    ig_steps_for_tolerance,
)


def _model() -> nn.Module:
    return tanh_mlp()


def _x() -> torch.Tensor:
    return torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_matches_captum_convergence_delta():
    model, x = _model().eval(), _x()
    baselines = torch.full_like(x, 0.3)
    attr, delta = IntegratedGradients(model).attribute(
        x, baselines=baselines, target=[0, 1, 2, 0], n_steps=8, return_convergence_delta=True
    )
    with torch.no_grad():
        out = model(x) - model(baselines)
    diff = out[torch.arange(4), torch.tensor([0, 1, 2, 0])]
    err = ig_completeness_error(model, x, attr, baselines, [0, 1, 2, 0])
    assert torch.allclose(err, delta.abs() / diff.abs(), rtol=1e-9)
    # A scalar baseline means the same constant everywhere.
    assert torch.allclose(ig_completeness_error(model, x, attr, 0.3, [0, 1, 2, 0]), err)


def test_linear_model_is_exact_and_error_falls_with_steps():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().eval()
    x = _x()
    attr = IntegratedGradients(lin).attribute(x, target=2, n_steps=3)
    assert float(ig_completeness_error(lin, x, attr, target=2).max()) < 1e-6

    model = _model().eval()
    ig = IntegratedGradients(model)
    coarse = ig_completeness_error(
        model, x, ig.attribute(x, target=1, n_steps=2, method="riemann_middle"), target=1
    )
    fine = ig_completeness_error(
        model, x, ig.attribute(x, target=1, n_steps=300, method="riemann_middle"), target=1
    )
    assert float(fine.mean()) < float(coarse.mean())


def test_passes_and_steps_for_tolerance():
    model, x = _model().eval(), _x()
    ig = IntegratedGradients(model)
    steps = (2, 4, 16, 400)
    n_steps, attr, err = ig_steps_for_tolerance(
        ig, x, target=0, tolerance=1e-3, steps=steps, method="riemann_middle"
    )
    assert bool((err <= 1e-3).all())
    assert torch.equal(
        ig_completeness_passes(model, x, attr, target=0, tolerance=1e-3), err <= 1e-3
    )
    # The step count before the one returned did not pass.
    previous = steps[steps.index(n_steps) - 1]
    assert n_steps != steps[0]
    attr_prev = ig.attribute(x, target=0, n_steps=previous, method="riemann_middle")
    passes = ig_completeness_passes(model, x, attr_prev, target=0, tolerance=1e-3)
    assert not bool(passes.all())


def test_zero_difference_is_zero_or_inf():
    model, x = _model().eval(), _x()
    attr = torch.zeros_like(x)
    err = ig_completeness_error(model, x, attr, baselines=x, target=0)
    assert bool((err == 0).all())
    attr[:, 0, 0, 0] = 1.0
    err = ig_completeness_error(model, x, attr, baselines=x, target=0)
    assert all(math.isinf(v) for v in err.tolist())


def test_single_output_model_needs_no_target_and_model_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double().train()
    x = _x()
    attr = IntegratedGradients(model).attribute(x, n_steps=4)
    flags = [p.requires_grad for p in model.parameters()]
    assert ig_completeness_error(model, x, attr).shape == (4,)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_metrics_reexport():
    assert metrics.ig_completeness_error is ig_completeness_error
    assert "ig_completeness_error" in metrics.__all__


def test_bad_inputs():
    model, x = _model().eval(), _x()
    attr = torch.zeros_like(x)
    with pytest.raises(ValueError, match="`attributions`"):
        ig_completeness_error(model, x, attr[:, :, :2], target=0)
    with pytest.raises(ValueError, match="`target` is required"):
        ig_completeness_error(model, x, attr)
    with pytest.raises(ValueError, match="`baselines`"):
        ig_completeness_error(model, x, attr, torch.zeros(3, 1, 4, 4), target=0)
    with pytest.raises(ValueError, match="`target`"):
        ig_completeness_error(model, x, attr, target=7)
    # an int target indexes like Python (and Captum): -1 is the last output
    assert torch.equal(
        ig_completeness_error(model, x, attr + 0.1, target=-1),
        ig_completeness_error(model, x, attr + 0.1, target=2),
    )
    with pytest.raises(ValueError, match="`target`"):
        ig_completeness_error(model, x, attr, target=[0, 1, 2, -1])  # per-example: >= 0
    with pytest.raises(ValueError, match="`target`"):
        ig_completeness_error(model, x, attr, target=(1, 0))  # one index into a 3-D output
    with pytest.raises(TypeError, match="`forward_func`"):
        ig_completeness_error("model", x, attr, target=0)
    with pytest.raises(ValueError, match="`tolerance`"):
        ig_completeness_passes(model, x, attr, target=0, tolerance=-1.0)
    with pytest.raises(TypeError, match="`steps`"):
        ig_steps_for_tolerance(IntegratedGradients(model), x, target=0, steps=[])


# ---- Captum's conventions: tuple inputs and baselines, targets -------------------------


def test_tuple_inputs_match_captum_convergence_delta():
    from helpers import ImageMetaModel, seeded_randn

    model = ImageMetaModel().double()
    x = (seeded_randn(3, 2, 6, 6, seed=1).double(), seeded_randn(3, 4, seed=2).double())
    per_example = seeded_randn(3, 4, seed=3).double()
    for baselines in ((0.2, per_example), (x[0][:1] * 0.5, -0.1), None):
        attr, delta = IntegratedGradients(model).attribute(
            x, baselines=baselines, target=[0, 2, 1], n_steps=6, return_convergence_delta=True
        )
        with torch.no_grad():
            base = (0.0, 0.0) if baselines is None else baselines
            b = tuple(torch.zeros_like(t) + v for t, v in zip(x, base))
            diff = (model(*x) - model(*b))[torch.arange(3), torch.tensor([0, 2, 1])]
        err = ig_completeness_error(model, x, attr, baselines, [0, 2, 1])
        torch.testing.assert_close(err, delta.abs() / diff.abs(), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="one baseline per input"):
        ig_completeness_error(model, x, attr, (0.0,), 0)
    with pytest.raises(TypeError, match="tuple of 2"):
        ig_completeness_error(model, x, attr[0], None, 0)


def test_one_tuple_equals_tensor_and_steps_for_tolerance_with_tuples():
    from helpers import ImageMetaModel, seeded_randn

    model, x = _model().eval(), _x()
    attr = IntegratedGradients(model).attribute(x, target=1, n_steps=5)
    ref = ig_completeness_error(model, x, attr, 0.1, 1)
    assert torch.equal(ig_completeness_error(model, (x,), (attr,), (0.1,), 1), ref)
    meta_model = ImageMetaModel().double()
    both = (seeded_randn(2, 2, 6, 6, seed=1).double(), seeded_randn(2, 4, seed=2).double())
    n_steps, attr2, err = ig_steps_for_tolerance(
        IntegratedGradients(meta_model), both, target=torch.tensor([1]), steps=(1, 50, 400)
    )
    assert isinstance(attr2, tuple) and len(attr2) == 2 and bool((err <= 0.05).all())
    assert n_steps > 1  # a single step does not pass


def test_tuple_targets_on_multidimensional_outputs():
    from captum.testing.helpers.basic_models import BasicModel_MultiLayer
    from helpers import captum_model, init_params_, seeded_randn

    inner = init_params_(captum_model(BasicModel_MultiLayer), seed=0).double()
    x = seeded_randn(3, 3, seed=1).double()
    attr, delta = IntegratedGradients(inner).attribute(
        x,
        target=(1, 0, 1),
        additional_forward_args=(None, True),
        n_steps=4,
        return_convergence_delta=True,
    )
    err = ig_completeness_error(inner, x, attr, None, (1, 0, 1), (None, True))
    with torch.no_grad():
        out = inner(x, None, True) - inner(x * 0, None, True)
    torch.testing.assert_close(err, delta.abs() / out[:, 1, 0, 1].abs(), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="target"):
        ig_completeness_error(inner, x, attr, None, 1, (None, True))
