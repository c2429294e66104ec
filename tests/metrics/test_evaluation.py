"""Tests for evaluate_all_labels, SoundnessReport and restrict_labels."""

import json
import math

import pytest
import torch
from helpers.invariants import assert_chunking_invariant
from helpers.models import seeded_cnn
from torch import nn

from captum_soundness.fills import DatasetFill, NoiseFill
from captum_soundness.labels import PAPER_IMAGENET_LABELS, LabelSubset, restrict_labels
from captum_soundness.metrics import (
    SoundnessReport,
    completeness,
    deletion_curve,
    evaluate_all_labels,
    insertion_curve,
    soundness,
)

N, C, H, W, K = 3, 2, 4, 3, 5


def make_model() -> nn.Module:
    return seeded_cnn(C, H, W, K, nn.Tanh)


def make_inputs() -> torch.Tensor:
    return torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(1))


class FakeExplainer:
    """Deterministic maps that depend on the image and the label; records its calls."""

    def __init__(self, shape=None) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.shape = shape

    def __call__(self, inputs, target):
        self.calls.append((inputs.clone(), target.clone()))
        weights = torch.linspace(-1.0, 1.0, H * W).view(1, 1, H, W)
        maps = inputs * weights.roll(1, dims=-1) + target.view(-1, 1, 1, 1).to(inputs.dtype)
        maps = maps * torch.cos(target.view(-1, 1, 1, 1).to(inputs.dtype) * weights)
        if self.shape is not None:
            return torch.zeros(self.shape)
        return maps


def test_report_matches_per_label_metrics():
    model, x = make_model(), make_inputs()
    explain = FakeExplainer()
    report = evaluate_all_labels(explain, model, x, fractions=6)
    assert isinstance(report, SoundnessReport)
    assert report.labels == list(range(K))
    assert report.completeness.shape == (N, K) and report.soundness.shape == (N, K)
    assert report.insertion.shape == (N, K, 6) and report.probs.shape == (N, K)
    probs = torch.softmax(model(x), dim=1).detach()
    torch.testing.assert_close(report.probs, probs)
    assert torch.equal(report.predicted, probs.argmax(dim=1))
    assert torch.equal(report.second, probs.topk(2, dim=1).indices[:, 1])
    for label in range(K):
        target = torch.full((N,), label)
        attr = explain(x, target)
        torch.testing.assert_close(
            report.insertion[:, label], insertion_curve(model, x, attr, target, fractions=6)
        )
        torch.testing.assert_close(
            report.completeness[:, label], completeness(model, x, attr, target, fractions=6)
        )
        torch.testing.assert_close(
            report.soundness[:, label], soundness(model, x, attr, target, fractions=6)
        )


def test_explain_func_batches_pairs_image_major():
    model, x = make_model(), make_inputs()
    explain = FakeExplainer()
    evaluate_all_labels(explain, model, x, fractions=4, explain_batch_size=4)
    rows = N * K
    assert [len(t) for _, t in explain.calls] == [4, 4, 4, 3]
    targets = torch.cat([t for _, t in explain.calls])
    images = torch.cat([xi for xi, _ in explain.calls])
    assert torch.equal(targets, torch.arange(K).repeat(N))
    assert torch.equal(images, x.repeat_interleave(K, dim=0))
    assert targets.dtype == torch.long and rows == 15
    one = FakeExplainer()
    report_one = evaluate_all_labels(one, model, x, fractions=4)
    assert len(one.calls) == 1
    report_four = evaluate_all_labels(FakeExplainer(), model, x, fractions=4, explain_batch_size=4)
    assert torch.equal(report_one.insertion, report_four.insertion)


def test_summary_headline_numbers():
    model, x = make_model(), make_inputs()
    report = evaluate_all_labels(FakeExplainer(), model, x, fractions=5, deletion="predicted")
    comp, sound, pred, second = (
        report.completeness,
        report.soundness,
        report.predicted,
        report.second,
    )
    expected = {key: [] for key in report.summary()}
    for i in range(N):
        others = [j for j in range(K) if j != pred[i]]
        expected["completeness_at_prediction"].append(comp[i, pred[i]])
        expected["soundness_other_labels_mean"].append(sum(sound[i, j] for j in others) / (K - 1))
        expected["soundness_worst"].append(sound[i].min())
        expected["completeness_worst_wrong_label"].append(min(comp[i, j] for j in others))
        expected["soundness_second_label"].append(sound[i, second[i]])
        expected["insertion_score_at_prediction"].append(report.insertion[i, pred[i]].mean())
        expected["deletion_score_at_prediction"].append(report.deletion_at_prediction[i].mean())
    summary = report.summary()
    assert list(summary)[:5] == [
        "completeness_at_prediction",
        "soundness_other_labels_mean",
        "soundness_worst",
        "completeness_worst_wrong_label",
        "soundness_second_label",
    ]
    for key, values in expected.items():
        assert summary[key] == pytest.approx(float(torch.stack(values).mean()), abs=1e-6), key
    per_image = report.per_image()
    assert all(v.shape == (N,) for v in per_image.values())


def test_label_subset_restricts_softmax_and_explanations():
    model, x = make_model(), make_inputs()
    labels = [4, 1, 2]
    explain = FakeExplainer()
    report = evaluate_all_labels(explain, model, x, labels=labels, fractions=4)
    assert report.labels == labels
    assert torch.equal(torch.cat([t for _, t in explain.calls]), torch.tensor(labels).repeat(N))
    logits = model(x).detach()[:, labels]
    torch.testing.assert_close(report.probs, torch.softmax(logits, dim=1))
    torch.testing.assert_close(report.probs.sum(dim=1), torch.ones(N))
    assert torch.equal(report.predicted_labels, torch.tensor(labels)[report.predicted])
    model3 = restrict_labels(model, labels)
    for j, label in enumerate(labels):
        attr = explain(x, torch.full((N,), label))
        expected = insertion_curve(model3, x, attr, j, fractions=4)  # position in the subset
        torch.testing.assert_close(report.insertion[:, j], expected)


def test_restricted_model_with_labels_none_is_the_paper_setting():
    model, x = make_model(), make_inputs()
    model3 = restrict_labels(model, [4, 1, 2])
    explain = FakeExplainer()
    report = evaluate_all_labels(explain, model3, x, fractions=4)
    assert report.labels == [0, 1, 2]
    assert torch.equal(torch.cat([t for _, t in explain.calls]), torch.arange(3).repeat(N))


def test_deletion_modes():
    model, x = make_model(), make_inputs()
    explain = FakeExplainer()
    none = evaluate_all_labels(explain, model, x, fractions=4)
    assert none.deletion is None and none.deletion_at_prediction is None
    full = evaluate_all_labels(explain, model, x, fractions=4, deletion="all")
    pred = evaluate_all_labels(explain, model, x, fractions=4, deletion="predicted")
    assert full.deletion.shape == (N, K, 4) and pred.deletion is None
    torch.testing.assert_close(pred.deletion_at_prediction, full.deletion_at_prediction)
    torch.testing.assert_close(full.insertion, none.insertion)
    for label in range(K):
        target = torch.full((N,), label)
        attr = explain(x, target)
        torch.testing.assert_close(
            full.deletion[:, label], deletion_curve(model, x, attr, target, fractions=4)
        )
    with pytest.raises(ValueError, match="deletion"):
        evaluate_all_labels(explain, model, x, fractions=4, deletion="yes")


@pytest.mark.parametrize(
    "fill", [None, NoiseFill("gaussian"), DatasetFill(torch.randn(4, C, H, W))]
)
def test_evaluation_chunked_equals_unchunked(fill):
    model, x = make_model().double(), make_inputs().double()
    if isinstance(fill, DatasetFill):
        fill = DatasetFill(fill.pool.double())
    kwargs = {"baselines": fill, "n_fill_samples": 2, "seed": 3, "fractions": 5, "deletion": "all"}
    assert_chunking_invariant(
        lambda m: evaluate_all_labels(
            FakeExplainer(), model, x, max_examples_per_batch=m, **kwargs
        ),
        sizes=(1, 6, 17),
        atol=1e-13,
    )


def test_random_fill_is_shared_with_the_curve_functions():
    # The same seed gives each image the same draws in evaluate_all_labels and in
    # insertion_curve (one seeded stream per image).
    model, x = make_model(), make_inputs()
    fill = NoiseFill("gaussian")
    report = evaluate_all_labels(
        FakeExplainer(), model, x, baselines=fill, n_fill_samples=3, seed=5, fractions=4
    )
    target = torch.full((N,), 2)
    attr = FakeExplainer()(x, target)
    curve = insertion_curve(
        model, x, attr, target, baselines=fill, n_fill_samples=3, seed=5, fractions=4
    )
    torch.testing.assert_close(report.insertion[:, 2], curve)


def test_report_serialisation_and_table(tmp_path):
    model, x = make_model(), make_inputs()
    report = evaluate_all_labels(FakeExplainer(), model, x, fractions=4, deletion="predicted")
    data = report.to_dict()
    assert data["num_images"] == N and data["num_labels"] == K
    assert len(data["completeness"]) == N and len(data["completeness"][0]) == K
    assert data["summary"] == report.summary()
    assert data["settings"]["epsilon"] == 0.1 and data["settings"]["beta"] == 0.1
    path = tmp_path / "report.json"
    text = report.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    assert json.loads(text)["predicted"] == report.predicted.tolist()
    table = str(report)
    assert "completeness at the prediction" in table
    assert "soundness, mean over the other labels" in table
    assert "Per label" in table and "Per image" in table
    assert repr(report).startswith("SoundnessReport(")


def test_restrict_labels():
    model = nn.Linear(3, 6)
    wrapped = restrict_labels(model, [5, 0, 2])
    assert isinstance(wrapped, LabelSubset) and wrapped.model is model
    x = torch.randn(2, 3)
    torch.testing.assert_close(wrapped(x), model(x)[:, [5, 0, 2]])
    assert any(p is model.weight for p in wrapped.parameters())
    func_wrapped = restrict_labels(lambda t: model(t), (1, 3))
    torch.testing.assert_close(func_wrapped(x), model(x)[:, [1, 3]])
    assert PAPER_IMAGENET_LABELS == (526, 527, 664, 673, 782, 851)
    with pytest.raises(ValueError, match="labels"):
        restrict_labels(model, [1, 6])(x)
    with pytest.raises(ValueError, match="duplicates"):
        restrict_labels(model, [1, 1])
    with pytest.raises(ValueError, match="negative"):
        restrict_labels(model, [-1, 2])
    with pytest.raises(ValueError, match="empty"):
        restrict_labels(model, [])
    with pytest.raises(TypeError, match="labels"):
        restrict_labels(model, [1.0, 2.0])


# ---- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "match"),
    [([1, 1, 2], "duplicates"), ([0, 5], "outside"), ([-1, 2], "outside"), ([3], "at least 2")],
)
def test_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        evaluate_all_labels(FakeExplainer(), make_model(), make_inputs(), labels=labels)


@pytest.mark.parametrize(
    "shape",
    [(N * K, C, H, W + 1), (N * K - 1, C, H, W), (N * K, 3, H, W), (N * K, H), (N, C, H, W)],
)
def test_rejects_explain_func_of_wrong_shape(shape):
    with pytest.raises(ValueError, match="explain_func"):
        evaluate_all_labels(FakeExplainer(shape), make_model(), make_inputs(), fractions=4)


def test_rejects_explain_func_returning_garbage():
    def nan_maps(inputs, target):
        return torch.full_like(inputs, math.nan)

    with pytest.raises(ValueError, match=r"explain_func.*NaN"):
        evaluate_all_labels(nan_maps, make_model(), make_inputs(), fractions=4)
    with pytest.raises(TypeError, match="explain_func"):
        evaluate_all_labels(lambda i, t: i.tolist(), make_model(), make_inputs(), fractions=4)
    with pytest.raises(TypeError, match="explain_func"):
        evaluate_all_labels("saliency", make_model(), make_inputs())


def test_rejects_bad_model_outputs_and_arguments():
    x = make_inputs()
    with pytest.raises(ValueError, match="forward_func"):
        evaluate_all_labels(FakeExplainer(), lambda t: t.flatten(1).sum(1), x)
    with pytest.raises(ValueError, match="forward_func"):
        evaluate_all_labels(FakeExplainer(), lambda t: t.flatten(1)[:, :1], x)
    with pytest.raises(ValueError, match="beta"):
        evaluate_all_labels(FakeExplainer(), make_model(), x, beta=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        evaluate_all_labels(FakeExplainer(), make_model(), x, epsilon=-1)
    with pytest.raises(ValueError, match="fractions"):
        evaluate_all_labels(FakeExplainer(), make_model(), x, fractions=[0.5, 2.0])
    with pytest.raises(ValueError, match="reduce"):
        evaluate_all_labels(FakeExplainer(), make_model(), x, reduce="l2")
    with pytest.raises(ValueError, match="explain_batch_size"):
        evaluate_all_labels(FakeExplainer(), make_model(), x, explain_batch_size=0)


def test_with_captum_and_simple_masking():
    from captum.attr import IntegratedGradients

    from captum_soundness.attr import SimpleMasking

    model, x = make_model(), make_inputs()
    ig = evaluate_all_labels(IntegratedGradients(model).attribute, model, x, fractions=4)
    assert ig.completeness.shape == (N, K)

    def masking(inputs, target):
        return SimpleMasking(model).attribute(inputs, target, steps=3, downsample=1, seed=0)

    report = evaluate_all_labels(masking, model, x, labels=[0, 3], fractions=4)
    assert report.soundness.shape == (N, 2)
    assert bool(((report.soundness > 0) & (report.soundness <= 1)).all())


def test_explain_func_call_conventions():
    model, x = make_model(), make_inputs()
    seen = []

    def positional(inputs, labels_of_rows):  # no parameter named "target": by position
        seen.append(labels_of_rows)
        return inputs

    evaluate_all_labels(positional, model, x, fractions=4)
    assert torch.equal(seen[0], torch.arange(K).repeat(N))

    def keywords_only(inputs, **kwargs):  # no second positional slot: by keyword
        seen.append(kwargs["target"])
        return inputs

    evaluate_all_labels(keywords_only, model, x, fractions=4)
    assert torch.equal(seen[1], torch.arange(K).repeat(N))

    class Scaled(nn.Module):
        def forward(self, t, scale):
            return model(t) * scale.view(-1, 1)

    scale = torch.tensor([1.0, 2.0, -1.0])
    got = {}

    def with_args(inputs, target, additional_forward_args=None):
        got["args"] = additional_forward_args
        return inputs

    report = evaluate_all_labels(
        with_args, Scaled().eval(), x, additional_forward_args=(scale,), fractions=4
    )
    assert torch.equal(got["args"][0], scale.repeat_interleave(K))
    torch.testing.assert_close(
        report.probs, torch.softmax(model(x) * scale.view(-1, 1), dim=1).detach()
    )
    with pytest.raises(TypeError, match="additional_forward_args"):
        evaluate_all_labels(positional, Scaled().eval(), x, additional_forward_args=(scale,))


# ---- Captum's conventions: containers, explain_kwargs, heads ---------------------------


class _Recorder:
    """An explanation function that records its inputs and keyword arguments."""

    def __init__(self, explain_func) -> None:
        self.explain_func, self.calls = explain_func, []

    def __call__(self, inputs, target, **kwargs):
        self.calls.append((inputs, target, kwargs))
        return self.explain_func(inputs, target=target, **kwargs)


def _per_label(report, model, x, explain, **kw):
    """Each label's insertion curves and soundness, computed one label at a time."""
    for j, label in enumerate(report.labels):
        target = torch.full((N,), label)
        attr = explain(x, target)
        torch.testing.assert_close(
            report.insertion[:, j], insertion_curve(model, x, attr, target, fractions=4, **kw)
        )
        torch.testing.assert_close(
            report.soundness[:, j], soundness(model, x, attr, target, fractions=4, **kw)
        )


def test_explain_kwargs_repeat_per_example_baselines_for_integrated_gradients():
    from captum.attr import IntegratedGradients

    model, x = make_model().double(), make_inputs().double()
    base = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(7)).double()
    ig = _Recorder(IntegratedGradients(model).attribute)
    kwargs = {"baselines": base, "n_steps": 4}
    fill = -base  # per-example baselines of the metrics: repeated over labels too
    report = evaluate_all_labels(
        ig, model, x, explain_kwargs=kwargs, baselines=fill, fractions=4, max_examples_per_batch=5
    )
    ((_, _, seen),) = ig.calls
    assert torch.equal(seen["baselines"], base.repeat_interleave(K, dim=0))
    assert seen["n_steps"] == 4
    _per_label(
        report,
        model,
        x,
        lambda t, target: IntegratedGradients(model).attribute(
            t, baselines=base, target=target, n_steps=4
        ),
        baselines=fill,
    )
    # the call: baselines=ims * 0, in chunks of explain_batch_size
    zero = evaluate_all_labels(
        IntegratedGradients(model).attribute,
        model,
        x,
        explain_kwargs={"baselines": x * 0, "n_steps": 4},
        fractions=4,
        explain_batch_size=4,
    )
    plain = evaluate_all_labels(
        IntegratedGradients(model).attribute, model, x, explain_kwargs={"n_steps": 4}, fractions=4
    )
    torch.testing.assert_close(zero.insertion, plain.insertion)


def test_explain_kwargs_repeat_per_example_feature_masks_for_feature_ablation():
    from captum.attr import FeatureAblation

    model, x = make_model(), make_inputs()
    masks = torch.stack([torch.arange(H * W).view(1, H, W) // d for d in (2, 3, 4)])  # (N,1,H,W)
    fa = _Recorder(FeatureAblation(model).attribute)
    report = evaluate_all_labels(fa, model, x, explain_kwargs={"feature_mask": masks}, fractions=4)
    assert torch.equal(fa.calls[0][2]["feature_mask"], masks.repeat_interleave(K, dim=0))

    def one_label(t, target):  # each image with its own mask, one at a time
        return torch.cat(
            [
                FeatureAblation(model).attribute(
                    t[i : i + 1], target=target[i : i + 1], feature_mask=masks[i : i + 1]
                )
                for i in range(N)
            ]
        )

    _per_label(report, model, x, one_label)


def test_explain_kwargs_pass_shared_values_unchanged():
    model, x = make_model(), make_inputs()
    colour = torch.tensor([0.5, -0.5]).view(C, 1, 1)
    one_row = torch.zeros(1, C, H, W)
    fill = NoiseFill()
    shared = {"baselines": colour, "row": one_row, "fill": fill, "steps": 3, "per": x[:, 0]}
    seen = []

    def explain(inputs, target, **kwargs):
        seen.append(kwargs)
        return inputs

    evaluate_all_labels(explain, model, x, explain_kwargs=shared, fractions=4)
    got = seen[0]
    assert got["baselines"] is colour and got["row"] is one_row and got["fill"] is fill
    assert got["steps"] == 3
    assert torch.equal(got["per"], x[:, 0].repeat_interleave(K, dim=0))
    assert C != N  # a (C, 1, 1) colour with C == N would stay a colour too:
    square = torch.zeros(N, 1, 1)
    evaluate_all_labels(explain, model, x, explain_kwargs={"baselines": square}, fractions=4)
    assert seen[-1]["baselines"] is square
    with pytest.raises(TypeError, match="target"):
        evaluate_all_labels(explain, model, x, explain_kwargs={"target": 0})
    with pytest.raises(TypeError, match="explain_kwargs"):
        evaluate_all_labels(explain, model, x, explain_kwargs=[("steps", 3)])


def test_tuple_inputs_stay_tuples_and_one_tuple_equals_tensor():
    from captum.attr import IntegratedGradients
    from helpers import ImageMetaModel, seeded_randn

    model, x = make_model(), make_inputs()
    seen = []

    def explain(inputs, target):
        seen.append(inputs)
        return inputs

    ref = evaluate_all_labels(explain, model, x, fractions=4)
    one = evaluate_all_labels(explain, model, (x,), fractions=4)
    assert isinstance(seen[1], tuple) and len(seen[1]) == 1
    assert torch.equal(one.insertion, ref.insertion) and torch.equal(one.soundness, ref.soundness)
    meta_model = ImageMetaModel()
    both = (seeded_randn(2, 2, 6, 6, seed=1), seeded_randn(2, 4, seed=2))
    report = evaluate_all_labels(
        IntegratedGradients(meta_model).attribute,
        meta_model,
        both,
        explain_kwargs={"baselines": (both[0] * 0, both[1] * 0), "n_steps": 4},
        baselines=(0.0, seeded_randn(2, 4, seed=3)),
        fractions=4,
        deletion="all",
        max_examples_per_batch=7,
    )
    assert report.insertion.shape == (2, 3, 4) and report.deletion.shape == (2, 3, 4)


def test_batch_of_one():
    from captum.attr import IntegratedGradients

    model, x = make_model(), make_inputs()[:1]
    report = evaluate_all_labels(
        IntegratedGradients(model).attribute,
        model,
        x,
        explain_kwargs={"baselines": x * 0 + 0.1, "n_steps": 4},
        baselines=x * 0 - 0.2,
        fractions=4,
    )
    assert report.completeness.shape == (1, K)
    for label in (0, K - 1):
        attr = IntegratedGradients(model).attribute(x, x * 0 + 0.1, target=label, n_steps=4)
        curve = insertion_curve(model, x, attr, label, baselines=x * 0 - 0.2, fractions=4)
        torch.testing.assert_close(report.insertion[:, label], curve)


def test_heads():
    model, x = make_model(), make_inputs()
    explain = FakeExplainer()
    sig = evaluate_all_labels(explain, model, x, head="sigmoid", labels=[4, 1], fractions=4)
    logits = model(x).detach()
    torch.testing.assert_close(sig.probs, torch.sigmoid(logits[:, [4, 1]]))  # not renormalised
    for j, label in enumerate((4, 1)):
        attr = explain(x, torch.full((N,), label))
        curve = insertion_curve(model, x, attr, label, head="sigmoid", fractions=4)
        torch.testing.assert_close(sig.insertion[:, j], curve)
    probs_model = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    probs = evaluate_all_labels(explain, probs_model, x, head="probabilities", fractions=4)
    torch.testing.assert_close(
        probs.insertion, evaluate_all_labels(explain, model, x, fractions=4).insertion
    )
    with pytest.warns(UserWarning, match="look like probabilities"):
        evaluate_all_labels(explain, probs_model, x, fractions=4)
    with pytest.warns(DeprecationWarning, match="apply_softmax"):
        alias = evaluate_all_labels(explain, probs_model, x, apply_softmax=False, fractions=4)
    assert torch.equal(alias.insertion, probs.insertion)
    assert alias.settings["head"] == "probabilities"


def test_binary_head_has_two_labels():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 1)).eval()
    x = make_inputs()
    report = evaluate_all_labels(FakeExplainer(), lin, x, head="binary", fractions=4)
    assert report.labels == [0, 1]
    p1 = torch.sigmoid(lin(x)).detach()[:, 0]
    torch.testing.assert_close(report.probs, torch.stack([1 - p1, p1], dim=1))
    for label in (0, 1):
        attr = FakeExplainer()(x, torch.full((N,), label))
        curve = insertion_curve(lin, x, attr, label, head="binary", fractions=4)
        torch.testing.assert_close(report.insertion[:, label], curve)


def test_outputs_that_are_not_per_label_scores_raise():
    x = make_inputs()
    with pytest.raises(ValueError, match="num_labels"):
        evaluate_all_labels(FakeExplainer(), lambda t: t[:, :, :2, :2], x)  # (N, C, 2, 2)
    with pytest.raises(ValueError, match="head='binary'"):
        evaluate_all_labels(FakeExplainer(), lambda t: t.flatten(1)[:, :1], x, head="sigmoid")


def test_seed_none_follows_torch_manual_seed():
    model, x = make_model(), make_inputs()
    kw = {"baselines": NoiseFill("gaussian"), "n_fill_samples": 2, "fractions": 4}
    torch.manual_seed(0)
    a = evaluate_all_labels(FakeExplainer(), model, x, **kw)
    torch.manual_seed(0)
    b = evaluate_all_labels(FakeExplainer(), model, x, **kw)
    assert torch.equal(a.insertion, b.insertion)
    c = evaluate_all_labels(FakeExplainer(), model, x, **kw)  # another draw
    assert not torch.equal(a.insertion, c.insertion)
