"""The sanity checks under Captum's conventions: tuple and tabular inputs, Captum's
targets, ``explain_kwargs`` (per-example tensors repeated with the inputs), seeding."""

import warnings
from functools import partial

import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency
from captum.testing.helpers.basic_models import BasicModel_MultiLayer
from helpers import ImageMetaModel, captum_model, seeded_randn, small_cnn
from torch import nn

from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import BlurFill, MeanFill, NoiseFill
from captum_soundness.metrics import insertion_curve
from captum_soundness.sanity import class_sensitivity, fill_sensitivity, model_randomization

# Captum's gradient methods set requires_grad on the inputs they are given, and say so.
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


def _x(n: int = 3) -> torch.Tensor:
    return seeded_randn(n, 1, 8, 8, seed=1)


def _saliency(m: nn.Module):
    return Saliency(m).attribute


class _MultiDim(nn.Module):
    """Captum's BasicModel_MultiLayer with its (N, 2, 2, 2) outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = captum_model(BasicModel_MultiLayer)
        init = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.inner.parameters():
                p.copy_(torch.randn(p.shape, generator=init))

    def forward(self, x):
        return self.inner(x, None, True)


# ---- model_randomization ---------------------------------------------------------------


def test_randomization_one_tuple_equals_tensor_and_two_inputs_use_all_positions():
    model, x = small_cnn(2), _x()
    plain = model_randomization(_saliency, model, x, seed=0, similarity="spearman")
    one = model_randomization(_saliency, model, (x,), seed=0, similarity="spearman")
    assert torch.equal(plain.scores("spearman"), one.scores("spearman"))
    net = ImageMetaModel()
    inputs = (seeded_randn(3, 2, 6, 6, seed=4), seeded_randn(3, 4, seed=5))
    result = model_randomization(
        _saliency, net, inputs, seed=0, similarity=("spearman", "pearson"), return_maps=True
    )
    assert result.original_maps.shape == (3, 36 + 4)  # image positions, then features
    assert result.layers == ["head", "meta", "conv"]
    assert float(result.scores("spearman").min()) < 0.99
    with pytest.raises(ValueError, match="2-D maps"):
        model_randomization(_saliency, net, inputs, seed=0, similarity="ssim")


def test_randomization_tabular_inputs():
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    net = captum_model(lambda: net)
    x = seeded_randn(4, 5, seed=2)
    result = model_randomization(
        _saliency, net, x, target=[0, 1, 2, 0], seed=0, similarity="spearman", return_maps=True
    )
    assert result.original_maps.shape == (4, 5)
    want = Saliency(net).attribute(x.clone(), target=[0, 1, 2, 0])
    assert torch.allclose(result.original_maps, want)  # (N, F): the map itself
    assert result.targets.tolist() == [0, 1, 2, 0]


def test_randomization_tuple_target_into_multidimensional_output():
    net, x = _MultiDim().eval(), seeded_randn(4, 3, seed=3)
    seen = []

    def factory(m):
        def explain(inputs, target):
            seen.append(target)
            return InputXGradient(m).attribute(inputs, target=target)

        return explain

    result = model_randomization(
        factory, net, x, target=(1, 0, 1), seed=0, similarity="spearman", return_maps=True
    )
    assert seen[0] == [(1, 0, 1)] * 4  # Captum's form: one index tuple per example
    assert result.targets.tolist() == [[1, 0, 1]] * 4
    want = InputXGradient(net).attribute(x.clone(), target=(1, 0, 1)).detach()
    assert torch.allclose(result.original_maps, want)
    with pytest.raises(ValueError, match="target"):  # one score per example needed
        model_randomization(factory, net, x, target=1, seed=0, similarity="spearman")


@pytest.mark.parametrize("target", [(1, 0), [0, 1, 2], torch.tensor([[0], [1]])])
def test_randomization_targets_that_captum_refuses_raise(target):
    model, x = small_cnn(2), _x(2)
    with pytest.raises((ValueError, TypeError), match="target"):
        model_randomization(_saliency, model, x, target=target, seed=0)


def test_randomization_target_forms_agree_and_negative_labels_are_resolved():
    model, x = small_cnn(2), _x()
    got = [
        model_randomization(_saliency, model, x, target=t, seed=0, similarity="spearman")
        for t in (2, -1, torch.tensor(2), torch.tensor([2]), [2, 2, 2])
    ]
    for r in got[1:]:
        assert torch.equal(r.scores("spearman"), got[0].scores("spearman"))
        assert r.targets.tolist() == [2, 2, 2]


def test_randomization_passes_explain_kwargs():
    model, x = small_cnn(2), _x()
    base = seeded_randn(3, 1, 8, 8, seed=7)
    kwargs = {"baselines": base, "n_steps": 4}
    result = model_randomization(
        lambda m: IntegratedGradients(m).attribute,
        model,
        x,
        target=1,
        seed=0,
        layers="5",
        return_maps=True,
        explain_kwargs=kwargs,
    )
    want = IntegratedGradients(model).attribute(x, target=1, **kwargs)[:, 0]
    assert torch.allclose(result.original_maps, want.detach(), atol=1e-6)
    with pytest.raises(TypeError, match="explain_kwargs"):
        model_randomization(_saliency, model, x, explain_kwargs={"target": 1})


def test_randomization_seed_none_follows_the_global_rng():
    model, x = small_cnn(2), _x()

    def run():
        return model_randomization(_saliency, model, x, similarity="spearman").scores("spearman")

    torch.manual_seed(11)
    before = torch.get_rng_state()
    a = run()
    assert not torch.equal(torch.get_rng_state(), before)  # one seed was drawn
    torch.manual_seed(11)
    assert torch.equal(run(), a)
    before = torch.get_rng_state()
    model_randomization(_saliency, model, x, seed=3, similarity="spearman")
    assert torch.equal(torch.get_rng_state(), before)  # an explicit seed leaves it alone


# ---- class_sensitivity -----------------------------------------------------------------


def test_class_sensitivity_repeats_per_example_explain_kwargs():
    model, x = small_cnn(2), _x(4)
    per_example = seeded_randn(4, 1, 8, 8, seed=8)
    colour = torch.full((1, 1, 1), 0.5)
    calls = []

    def explain(inputs, target, baselines, scale):
        calls.append((inputs, target, baselines, scale))
        return (inputs - baselines) * scale * (1.0 + target.view(-1, 1, 1, 1))

    class_sensitivity(explain, model, x, explain_kwargs={"baselines": per_example, "scale": 2.0})
    inputs, target, baselines, scale = calls[0]
    assert inputs.shape == (8, 1, 8, 8) and target.shape == (8,)
    assert torch.equal(baselines, torch.cat([per_example, per_example]))
    assert scale == 2.0
    class_sensitivity(explain, model, x, explain_kwargs={"baselines": colour, "scale": 1.0})
    assert calls[1][2] is colour  # broadcastable to one example: passed as given


def test_class_sensitivity_tuple_and_two_inputs():
    model, x = small_cnn(2), _x(4)
    explain = Saliency(model).attribute
    assert torch.equal(
        class_sensitivity(explain, model, x), class_sensitivity(explain, model, (x,))
    )
    net = ImageMetaModel()
    inputs = (seeded_randn(3, 2, 6, 6, seed=4), seeded_randn(3, 4, seed=5))
    sim = class_sensitivity(Saliency(net).attribute, net, inputs)
    assert sim.shape == (3,) and bool(torch.isfinite(sim).all())
    # A method that ignores the class: similarity 1 over the positions of both inputs.
    same = class_sensitivity(lambda inp, target: tuple(t.clone() for t in inp), net, inputs)
    assert torch.allclose(same, torch.ones(3, dtype=torch.float64))


def test_class_sensitivity_other_as_captum_target():
    model, x = small_cnn(2), _x(4)
    pred = model(x).argmax(1)
    explain = Saliency(model).attribute
    last = next(c for c in range(3) if not bool((pred == c).any()))
    a = class_sensitivity(explain, model, x, other=last)
    assert torch.equal(a, class_sensitivity(explain, model, x, other=torch.tensor([last])))
    assert torch.equal(a, class_sensitivity(explain, model, x, other=last - 3))  # negative
    with pytest.raises(ValueError, match="tuple is one index"):
        class_sensitivity(explain, model, x, other=(last, 0))
    with pytest.raises(ValueError, match="`other`"):
        class_sensitivity(explain, model, x, other=[last, last])


# ---- fill_sensitivity ------------------------------------------------------------------


class _SpyMasking(SimpleMasking):
    """SimpleMasking that records the keyword arguments of every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.calls: list[dict] = []

    def attribute(self, inputs, target=None, additional_forward_args=None, **kwargs):
        self.calls.append(kwargs)
        return super().attribute(inputs, target, additional_forward_args, **kwargs)


def test_fill_sensitivity_gives_simple_masking_baselines_without_deprecation():
    model, x = small_cnn(2), _x(2)
    spy = _SpyMasking(model)
    fills = {"zero": 0.0, "blur": BlurFill(1.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        report = fill_sensitivity(
            {"sm": partial(spy.attribute, steps=2, downsample=2, seed=0), "sal": _saliency(model)},
            model,
            x,
            fills,
            fractions=4,
        )
    assert report.fill_dependent == {"sm": True, "sal": False}
    assert [c["baselines"] for c in spy.calls] == [0.0, fills["blur"]]
    assert all("fill" not in c for c in spy.calls)
    assert report.map_correlation["sm"].shape == (2, 2, 2)


def _ixg_at(model, x, labels):
    return InputXGradient(model).attribute(x.clone(), target=labels).detach()


def test_fill_sensitivity_per_example_fill_matches_the_metric():
    """A per-example fill tensor is repeated with the inputs: the insertion score at the
    prediction equals insertion_curve's with the same baselines."""
    model, x = small_cnn(2), _x(3)
    per_example = seeded_randn(3, 1, 8, 8, seed=9)
    report = fill_sensitivity(
        {"ixg": InputXGradient(model).attribute}, model, x, {"pe": per_example}, fractions=4
    )
    pred = model(x).argmax(1)
    want = insertion_curve(
        model, x, _ixg_at(model, x, pred), target=pred, baselines=per_example, fractions=4
    ).mean(1)
    got = report.metrics["ixg"]["pe"]["insertion_score_at_prediction"]
    assert torch.allclose(got.float(), want.float(), atol=1e-6)


@pytest.mark.parametrize("evaluation", ["prediction", "all_labels"])
def test_fill_sensitivity_repeats_per_method_explain_kwargs(evaluation):
    model, x = small_cnn(2), _x(3)
    per_example = seeded_randn(3, 1, 8, 8, seed=8)
    seen = []

    def explain(inputs, target, baselines, scale):
        seen.append((baselines, scale))
        return (inputs - baselines) * scale * (1.0 + target.view(-1, 1, 1, 1))

    fill_sensitivity(
        {"mine": explain, "sal": _saliency(model)},
        model,
        x,
        {"zero": 0.0},
        evaluation=evaluation,
        fractions=4,
        explain_kwargs={"mine": {"baselines": per_example, "scale": 2.0}},
    )
    baselines, scale = seen[0]
    if evaluation == "prediction":  # predicted labels, then second labels
        assert torch.equal(baselines, torch.cat([per_example, per_example]))
    else:  # image-major (image, label) rows, 3 labels
        assert torch.equal(baselines, per_example.repeat_interleave(3, dim=0))
    assert scale == 2.0
    with pytest.raises(ValueError, match="explain_kwargs"):
        fill_sensitivity({"sal": _saliency(model)}, model, x, {"z": 0.0}, explain_kwargs={"x": {}})


def test_fill_sensitivity_tuple_inputs_and_heads():
    net = ImageMetaModel()
    inputs = (seeded_randn(3, 2, 6, 6, seed=4), seeded_randn(3, 4, seed=5))
    funcs = {"sal": Saliency(net).attribute, "ixg": InputXGradient(net).attribute}
    fills = {"zero": 0.0, "mean": (MeanFill(), 0.0)}  # a fill per input tensor
    for evaluation in ("prediction", "all_labels"):
        report = fill_sensitivity(funcs, net, inputs, fills, evaluation=evaluation, fractions=4)
        assert report.method_scores.shape == (2, 2)
        assert bool(torch.isfinite(report.method_scores).all())
    sig = fill_sensitivity(funcs, net, inputs, fills, head="sigmoid", fractions=4)
    soft = fill_sensitivity(funcs, net, inputs, fills, fractions=4)
    assert not torch.allclose(sig.method_scores, soft.method_scores)
    with pytest.warns(DeprecationWarning, match="apply_softmax"):
        old = fill_sensitivity(funcs, net, inputs, fills, apply_softmax=True, fractions=4)
    assert torch.equal(old.method_scores, soft.method_scores)
    with pytest.raises(TypeError, match="not both"):
        fill_sensitivity(funcs, net, inputs, fills, head="softmax", apply_softmax=True)


def test_fill_sensitivity_seed_none_follows_the_global_rng():
    model, x = small_cnn(2), _x(2)

    def run(**kw):
        return fill_sensitivity(
            {"sal": _saliency(model)}, model, x, {"noise": NoiseFill()}, fractions=4, **kw
        ).method_scores

    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = run()
    assert not torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    assert torch.equal(run(), a)
    before = torch.get_rng_state()
    assert torch.equal(run(seed=4), run(seed=4))
    assert torch.equal(torch.get_rng_state(), before)
