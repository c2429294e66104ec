"""Tests for the sanity checks: model randomisation, class and fill sensitivity."""

import json

import pytest
import torch
from captum.attr import InputXGradient, Saliency
from helpers.models import small_cnn
from torch import nn

from captum_soundness.fills import BlurFill, MeanFill
from captum_soundness.sanity import class_sensitivity, fill_sensitivity, model_randomization


def _x(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _saliency(m: nn.Module):
    return Saliency(m).attribute


def test_randomization_changes_maps_and_leaves_model_untouched():
    model, x = small_cnn(2), _x()
    model[0].weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = model_randomization(_saliency, model, x, seed=0)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    # Output layers first.
    assert result.layers == ["5", "2", "0"]
    assert set(result.measures) == {"spearman", "spearman_abs", "ssim"}
    for measure in result.measures:
        for layer in result.layers:
            assert result.similarity[measure][layer].shape == (3,)
    # Saliency depends on the weights: the maps change.
    assert float(result.scores("spearman").max()) < 0.99
    assert result.targets.tolist() == model(x).argmax(1).tolist()


def test_method_ignoring_the_model_is_unchanged():
    model, x = small_cnn(2), _x()
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))

    def factory(m):
        return lambda inputs, target: maps

    result = model_randomization(factory, model, x, target=0, seed=0, mode="independent")
    for measure in result.measures:
        assert torch.allclose(result.scores(measure), torch.ones(3, 3, dtype=torch.float64))


def test_layer_the_method_does_not_depend_on():
    """Randomising a layer outside the explained path leaves the maps exactly as they were."""

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = small_cnn(2)
            self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.body(x)

    model, x = TwoHeads().eval(), _x()
    result = model_randomization(
        _saliency, model, x, layers=["unused", model.body[5]], mode="independent", seed=1
    )
    assert result.layers == ["body.5", "unused"]
    assert torch.allclose(result.similarity["spearman"]["unused"], torch.ones(3).double())
    assert float(result.similarity["spearman"]["body.5"].max()) < 0.99


def test_seed_reproducible_and_modes_share_first_layer():
    model, x = small_cnn(2), _x()
    a = model_randomization(_saliency, model, x, seed=3, similarity="spearman")
    b = model_randomization(_saliency, model, x, seed=3, similarity="spearman")
    c = model_randomization(_saliency, model, x, seed=3, similarity="spearman", mode="independent")
    assert torch.equal(a.scores("spearman"), b.scores("spearman"))
    # The first cascading step randomises one layer only: same as independent for it.
    assert torch.equal(a.similarity["spearman"]["5"], c.similarity["spearman"]["5"])
    assert not torch.equal(a.similarity["spearman"]["0"], c.similarity["spearman"]["0"])


def test_hog_maps_and_to_dict():
    model, x = small_cnn(2), _x(2)
    result = model_randomization(
        _saliency, model, x, layers="5", similarity=("hog", "pearson"), return_maps=True, seed=0
    )
    assert result.original_maps.shape == (2, 8, 8)
    assert result.randomized_maps["5"].shape == (2, 8, 8)
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d["similarity"]) == {"hog", "pearson"}
    assert "5" in str(result)


def test_randomization_bad_arguments():
    model, x = small_cnn(2), _x()
    with pytest.raises(ValueError, match="`mode`"):
        model_randomization(_saliency, model, x, mode="random")
    with pytest.raises(ValueError, match="`similarity`"):
        model_randomization(_saliency, model, x, similarity=("spearman", "mse"))
    with pytest.raises(ValueError, match="`layers`"):
        model_randomization(_saliency, model, x, layers=["fc"])
    with pytest.raises(ValueError, match="`layers`"):
        model_randomization(_saliency, model, x, layers=[nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="no parameters"):
        model_randomization(_saliency, model, x, layers=["1"])
    with pytest.raises(TypeError, match="`explain_factory`"):
        model_randomization(None, model, x)
    with pytest.raises(TypeError, match="`model`"):
        model_randomization(_saliency, _saliency(model), x)
    with pytest.raises(ValueError, match="N = 3"):
        model_randomization(lambda m: lambda inputs, target: torch.zeros(2, 8, 8), model, x)
    calls = []

    def shape_changing(m):
        calls.append(1)
        size = 8 if len(calls) == 1 else 4
        return lambda inputs, target: torch.rand(3, size, size)

    with pytest.raises(ValueError, match="explain_factory"):
        model_randomization(shape_changing, model, x, similarity="spearman")


def test_class_sensitivity():
    model, x = small_cnn(2), _x(4)
    sim = class_sensitivity(Saliency(model).attribute, model, x)
    assert sim.shape == (4,)
    assert float(sim.max()) < 0.99
    # A map that ignores the class is perfectly "similar" across classes.
    same = class_sensitivity(lambda inputs, target: inputs.clone(), model, x, other="least")
    assert torch.allclose(same, torch.ones(4, dtype=torch.float64))
    # Explicit other labels, one per example.
    pred = model(x).argmax(1)
    other = (pred + 1) % 3
    explicit = class_sensitivity(
        Saliency(model).attribute, model, x, other=other, similarity="ssim"
    )
    assert explicit.shape == (4,)


def test_class_sensitivity_bad_arguments():
    model, x = small_cnn(2), _x(4)
    pred = model(x).argmax(1)
    with pytest.raises(ValueError, match="`other`"):
        class_sensitivity(Saliency(model).attribute, model, x, other=pred)
    with pytest.raises(ValueError, match="`other`"):
        class_sensitivity(Saliency(model).attribute, model, x, other="third")
    with pytest.raises(ValueError, match="`similarity`"):
        class_sensitivity(Saliency(model).attribute, model, x, similarity="l2")


def test_fill_sensitivity_protocol_and_report():
    model, x = small_cnn(2), _x(4)
    seen = []
    counts = {"sal": 0}

    def fill_dependent(inputs, target, fill=None):
        seen.append(fill)
        scale = 1.0 + len(seen)
        return torch.sin(scale * inputs) + 0.1 * target.view(-1, 1, 1, 1)

    def counted(inputs, target):
        counts["sal"] += 1
        return Saliency(model).attribute(inputs, target=target)

    fills = {"zero": 0.0, "mean": MeanFill(), "blur": BlurFill(1.0)}
    report = fill_sensitivity(
        {"dep": fill_dependent, "sal": counted, "ixg": InputXGradient(model).attribute},
        model,
        x,
        fills,
        fractions=4,
    )
    assert len(seen) == 3 and isinstance(seen[1], MeanFill)
    assert counts["sal"] == 1
    assert report.fill_dependent == {"dep": True, "sal": False, "ixg": False}
    assert report.map_correlation["sal"] is None
    corr = report.map_correlation["dep"]
    assert corr.shape == (3, 3, 4)
    assert torch.allclose(corr[0, 0], torch.ones(4, dtype=torch.float64))
    assert float(corr[0, 1].mean()) < 0.999
    assert report.method_scores.shape == (3, 3)
    assert torch.allclose(torch.diagonal(report.ranking_spearman), torch.ones(3).double())
    rankings = report.rankings()
    assert report.ranking_changes == any(r != rankings["zero"] for r in rankings.values())
    for fill in fills:
        m = report.metrics["sal"][fill]
        assert set(m) == {
            "insertion_score_at_prediction",
            "completeness_at_prediction",
            "soundness_second_label",
        }
        assert m["completeness_at_prediction"].shape == (4,)
    # Fill-independent maps, different fills: metric values change with the fill.
    ins = report.metrics["ixg"]
    assert not torch.allclose(
        ins["zero"]["insertion_score_at_prediction"], ins["blur"]["insertion_score_at_prediction"]
    )
    json.dumps(report.to_dict())
    text = str(report)
    assert "dep" in text and "blur" in text and "ranking" in text


def test_fill_sensitivity_all_labels_and_label_subset():
    model, x = small_cnn(2), _x(3)
    report = fill_sensitivity(
        {"sal": Saliency(model).attribute, "ixg": InputXGradient(model).attribute},
        model,
        x,
        {"zero": 0.0, "blur": BlurFill(1.0)},
        labels=[0, 2],
        evaluation="all_labels",
        rank_by="soundness_worst",
        fractions=4,
    )
    assert "soundness_other_labels_mean" in report.metric_names
    assert report.metrics["sal"]["zero"]["soundness_worst"].shape == (3,)
    assert report.settings["labels"] == [0, 2]


def test_fill_sensitivity_bad_arguments():
    model, x = small_cnn(2), _x(2)
    funcs = {"sal": Saliency(model).attribute}
    with pytest.raises(TypeError, match="unexpected"):
        fill_sensitivity(funcs, model, x, {"zero": 0.0}, fractoins=4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'fill'"):
        fill_sensitivity(funcs, model, x, {"zero": 0.0}, fill=0.0)
    with pytest.raises(ValueError, match="`evaluation`"):
        fill_sensitivity(funcs, model, x, {"zero": 0.0}, evaluation="all")
    with pytest.raises(ValueError, match="`rank_by`"):
        fill_sensitivity(funcs, model, x, {"zero": 0.0}, rank_by="soundness_worst")
    with pytest.raises(TypeError, match="`explain_funcs`"):
        fill_sensitivity({}, model, x, {"zero": 0.0})
    with pytest.raises(TypeError, match="fills"):
        fill_sensitivity(funcs, model, x, {"bad": "black"})


def test_automatic_layers_randomise_only_their_own_parameters():
    """A model with a parameter of its own: randomising it must not touch its children."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = small_cnn(2)
            self.temperature = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.body(x) * self.temperature

    model, x = Scaled().eval(), _x()
    result = model_randomization(
        _saliency, model, x, mode="independent", similarity=("spearman_abs",), seed=0
    )
    assert "" in result.layers
    # Only the output scale changes: |saliency| keeps its ranks exactly.
    assert torch.allclose(
        result.similarity["spearman_abs"][""], torch.ones(3, dtype=torch.float64)
    )
    # The layers below still change the maps.
    assert float(result.similarity["spearman_abs"]["body.0"].max()) < 0.99
    # Named as a block, the whole model is randomised.
    block = model_randomization(
        _saliency, model, x, layers=[""], similarity=("spearman_abs",), seed=0
    )
    assert float(block.similarity["spearman_abs"][""].max()) < 0.99


def test_fill_sensitivity_accepts_tuple_attributions_and_matches_scipy():
    from scipy import stats as scipy_stats  # installed with scikit-image (test extra)

    model, x = small_cnn(2), _x(3)

    def as_tuple(inputs, target):
        return (Saliency(model).attribute(inputs, target=target),)

    def blurred(inputs, target, fill=None):
        base = InputXGradient(model).attribute(inputs, target=target)
        return base if fill is None else base + 0.5 * torch.sin(3 * inputs)

    report = fill_sensitivity(
        {"sal": as_tuple, "ixg": InputXGradient(model).attribute, "dep": blurred},
        model,
        x,
        {"zero": 0.0, "mean": MeanFill(), "blur": BlurFill(1.0)},
        labels=[0, 2],
        evaluation="all_labels",
        fractions=4,
    )
    names = list(report.fills)
    scores = report.method_scores.numpy()
    for i in range(len(names)):
        for j in range(len(names)):
            tau = scipy_stats.kendalltau(scores[i], scores[j]).statistic
            rho = scipy_stats.spearmanr(scores[i], scores[j]).statistic
            assert abs(float(report.ranking_kendall[i, j]) - tau) < 1e-9
            assert abs(float(report.ranking_spearman[i, j]) - rho) < 1e-9
