"""Tests for insertion/deletion curves and the batched engine."""

import math

import pytest
import torch
from helpers.invariants import assert_chunking_invariant, assert_seeded_determinism
from helpers.models import TARGET, A, RowSums, X, seeded_cnn, sigmoid
from torch import nn

from captum_soundness.fills import DatasetFill, MeanFill, NoiseFill
from captum_soundness.metrics import _engine, deletion_curve, insertion_curve

FRACTIONS = [0.25, 0.5, 0.75, 1.0]  # k = 1, 2, 3, 4 of P = 4

# p_0 = sigmoid(z0 - z1), p_1 = sigmoid(z1 - z0); fill 0.
EXPECTED_INSERTION = [
    # A, label 0: keep [1,0,0,0] z=(1,0); [1,0,3,0] z=(1,3); [1,0,3,4] z=(1,7); full z=(3,7)
    [sigmoid(1), sigmoid(-2), sigmoid(-6), sigmoid(-4)],
    # B, label 1: keep [0,0,0,0] z=(0,0); [2,0,0,0] z=(2,0); [2,-1,0,0] z=(1,0); full z=(1,1)
    [0.5, sigmoid(-2), sigmoid(-1), 0.5],
]
EXPECTED_DELETION = [
    # A, label 0: [0,2,3,4] z=(2,7); [0,2,0,4] z=(2,4); [0,2,0,0] z=(2,0); all 0 z=(0,0)
    [sigmoid(-5), sigmoid(-2), sigmoid(2), 0.5],
    # B, label 1: [2,-1,0,1] z=(1,1); [0,-1,0,1] z=(-1,1); [0,0,0,1] z=(0,1); all 0
    [0.5, sigmoid(2), sigmoid(1), 0.5],
]


def test_insertion_curve_hand_computed():
    curve = insertion_curve(RowSums(), X, A, TARGET, fractions=FRACTIONS)
    assert curve.dtype == torch.float64
    expected = torch.tensor(EXPECTED_INSERTION, dtype=torch.float64)
    torch.testing.assert_close(curve, expected, rtol=0, atol=1e-12)


def test_deletion_curve_hand_computed():
    curve = deletion_curve(RowSums(), X, A, TARGET, fractions=FRACTIONS)
    expected = torch.tensor(EXPECTED_DELETION, dtype=torch.float64)
    torch.testing.assert_close(curve, expected, rtol=0, atol=1e-12)


def test_int_fractions_is_the_same_grid():
    a = insertion_curve(RowSums(), X, A, TARGET, fractions=4)
    b = insertion_curve(RowSums(), X, A, TARGET, fractions=FRACTIONS)
    assert torch.equal(a, b)


def test_constant_baseline_value_and_probabilities_head():
    # fill 1: A, label 0, k=1 keeps pos0 -> [1,1,1,1] z=(2,2)
    curve = insertion_curve(RowSums(), X, A, TARGET, baselines=1.0, fractions=[0.25])
    assert curve[0, 0].item() == pytest.approx(0.5, abs=1e-12)
    probs_model = nn.Sequential(RowSums(), nn.Softmax(dim=1)).eval()
    a = insertion_curve(probs_model, X, A, TARGET, fractions=4, head="probabilities")
    b = insertion_curve(RowSums(), X, A, TARGET, fractions=4)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_attribution_layouts_are_equivalent():
    model = RowSums()
    maps = A[:, 0]  # (N, H, W)
    three = torch.cat([A, A * 2, A * 3], dim=1)  # 3 "channels" with the same ranking
    x3 = X.expand(2, 3, 2, 2)

    class Mean3(nn.Module):
        def forward(self, x):
            return model(x.mean(dim=1, keepdim=True))

    mean3 = Mean3().eval()
    ref = insertion_curve(model, X, A, TARGET, fractions=4)
    assert torch.equal(insertion_curve(model, X, maps, TARGET, fractions=4), ref)
    assert torch.equal(insertion_curve(mean3, x3, three, TARGET, fractions=4), ref)
    assert torch.equal(insertion_curve(mean3, x3, A, TARGET, fractions=4), ref)  # (N,1,..)


def test_reduce_changes_the_ranking():
    # channel 0 = +m, channel 1 = -m: "sum" is a constant map (tie order 0, 1, 3, 2), "abs" m.
    m = torch.tensor([[[0.0, 0.0], [0.0, 5.0]]], dtype=torch.float64)
    attr = torch.stack([m, -m], dim=1)  # (1, 2, 2, 2)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64).expand(1, 2, 2, 2)

    def model(t):
        return RowSums()(t[:, :1])

    with pytest.warns(UserWarning, match="Constant saliency maps"):
        by_sum = insertion_curve(model, x, attr, 0, fractions=[0.25], reduce="sum")
    by_abs = insertion_curve(model, x, attr, 0, fractions=[0.25], reduce="abs")
    assert by_sum.item() == pytest.approx(sigmoid(1.0), abs=1e-12)  # keeps pos0
    assert by_abs.item() == pytest.approx(sigmoid(-4.0), abs=1e-12)  # keeps pos3


def test_constant_maps_follow_the_tie_order_and_warn():
    # ties enter in randperm(4, seed 0) = (0, 1, 3, 2): the map ranking positions so
    tie_order = torch.randperm(4, generator=torch.Generator().manual_seed(0))
    ramp = torch.empty(4, dtype=torch.float64)
    ramp[tie_order] = torch.arange(4, 0, -1, dtype=torch.float64)
    ramp = ramp.view(1, 1, 2, 2).expand(2, 1, 2, 2)
    model = RowSums()
    for value in (0.0, 3.5, -2.0):
        const = torch.full((2, 1, 2, 2), value, dtype=torch.float64)
        for fn in (insertion_curve, deletion_curve):
            with pytest.warns(UserWarning, match=r"Constant saliency maps \(rows \[0, 1\]\)"):
                a = fn(model, X, const, TARGET, fractions=4)
            b = fn(model, X, ramp, TARGET, fractions=4)
            assert torch.equal(a, b)
            # the rule is fixed: repeated calls and other seeds are identical
            with pytest.warns(UserWarning, match="Constant saliency maps"):
                assert torch.equal(a, fn(model, X, const, TARGET, fractions=4, seed=1))


def test_deletion_grid_ends_fully_filled_and_rounds():
    model = RowSums()
    curve = deletion_curve(model, X, A, TARGET, fractions=[0.1, 1.0])
    # 0.1 * 4 = 0.4 rounds to 0 -> at least one position is removed (k = 1)
    torch.testing.assert_close(
        curve[:, 0], torch.tensor([sigmoid(-5), 0.5], dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert torch.equal(curve[:, 1], torch.full((2,), 0.5, dtype=torch.float64))


def test_target_none_uses_prediction():
    model = RowSums()
    pred = model(X).argmax(dim=1)
    assert torch.equal(
        insertion_curve(model, X, A, fractions=4), insertion_curve(model, X, A, pred, fractions=4)
    )


@pytest.mark.parametrize(
    "fill",
    [
        None,
        MeanFill(),
        NoiseFill("gaussian"),
        DatasetFill(torch.randn(5, 3, 6, 5, dtype=torch.float64)),
    ],
    ids=["constant", "mean", "noise", "dataset"],
)
def test_chunked_equals_unchunked(fill):
    model = seeded_cnn().double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 6, 5, generator=gen, dtype=torch.float64)
    attr = torch.randn(3, 3, 6, 5, generator=gen)
    kwargs = {"baselines": fill, "fractions": 5, "n_fill_samples": 3, "seed": 7}
    for fn in (insertion_curve, deletion_curve):
        # float64: identical up to the model's own batch-size-dependent rounding
        assert_chunking_invariant(
            lambda m, fn=fn: fn(model, x, attr, [0, 3, 6], max_examples_per_batch=m, **kwargs),
            sizes=(1, 4, 13, 1000),
            atol=1e-13,
        )


def test_mask_table_fallback_is_identical(monkeypatch):
    model = seeded_cnn()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    attr = torch.randn(2, 3, 6, 5, generator=gen)
    ref = [fn(model, x, attr, 1, fractions=7) for fn in (insertion_curve, deletion_curve)]
    monkeypatch.setattr(_engine, "_MASK_TABLE_BYTES", 0)
    out = [fn(model, x, attr, 1, fractions=7) for fn in (insertion_curve, deletion_curve)]
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


def test_random_fills_are_seeded_and_averaged():
    model = seeded_cnn()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    attr = torch.randn(2, 3, 6, 5, generator=gen)
    fill = NoiseFill("gaussian")
    a = assert_seeded_determinism(
        lambda s: insertion_curve(
            model, x, attr, 0, baselines=fill, fractions=4, n_fill_samples=4, seed=s
        ),
        seed=0,
        other_seed=1,
    )
    c = insertion_curve(model, x, attr, 0, baselines=fill, fractions=4, n_fill_samples=4, seed=1)
    # the full-image point does not depend on the fill
    torch.testing.assert_close(a[:, -1], c[:, -1], rtol=1e-6, atol=1e-7)
    g = torch.Generator().manual_seed(0)
    d = insertion_curve(model, x, attr, 0, baselines=fill, fractions=4, n_fill_samples=4, seed=g)
    assert torch.equal(a, d)
    # deterministic fills ignore n_fill_samples (the expectation is exact)
    e1 = insertion_curve(model, x, attr, 0, baselines=MeanFill(), fractions=4, n_fill_samples=1)
    e5 = insertion_curve(model, x, attr, 0, baselines=MeanFill(), fractions=4, n_fill_samples=5)
    assert torch.equal(e1, e5)


def test_additional_forward_args_follow_examples():
    class Scaled(nn.Module):
        def forward(self, x, scale):
            return RowSums()(x) * scale.view(-1, 1)

    scale = torch.tensor([2.0, -1.0], dtype=torch.float64)
    scaled = Scaled().eval()
    a = insertion_curve(scaled, X, A, TARGET, (scale,), fractions=4, max_examples_per_batch=3)
    for i in range(2):
        single = insertion_curve(
            scaled, X[i : i + 1], A[i : i + 1], TARGET[i], (scale[i : i + 1],), fractions=4
        )
        torch.testing.assert_close(a[i : i + 1], single, rtol=0, atol=1e-12)


def test_curves_leave_model_untouched_and_need_no_grad():
    model = seeded_cnn()
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    attr = torch.randn(2, 3, 6, 5)
    out = insertion_curve(model, x, attr, 0, fractions=3)
    assert not out.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


# ---- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "match"),
    [
        (torch.zeros(3, 1, 2, 2), "batch size"),
        (torch.zeros(2, 1, 2, 3), "spatial size"),
        (torch.zeros(2, 2, 3), "spatial size"),
        (torch.zeros(3, 2, 2), "batch size"),
        (torch.zeros(2, 5, 2, 2), "channels"),
        (torch.zeros(2, 4), "shape"),
    ],
)
def test_rejects_attributions_of_wrong_shape(attr, match):
    with pytest.raises(ValueError, match=match):
        insertion_curve(RowSums(), X, attr.double(), TARGET)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_attributions(bad):
    attr = A.clone()
    attr[1, 0, 0, 1] = bad
    with pytest.raises(ValueError, match=r"attributions.*NaN"):
        deletion_curve(RowSums(), X, attr, TARGET)


def test_rejects_non_tensor_attributions():
    with pytest.raises(TypeError, match="attributions"):
        insertion_curve(RowSums(), X, A.tolist(), TARGET)


@pytest.mark.parametrize("fractions", [[], [0.0, 0.5], [0.5, 1.5], [-0.1], 0])
def test_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        insertion_curve(RowSums(), X, A, TARGET, fractions=fractions)


@pytest.mark.parametrize("target", [2, [0, 2], -3, torch.tensor([0, -3]), [0, -1]])
def test_rejects_targets_out_of_range(target):
    for fn in (insertion_curve, deletion_curve):
        with pytest.raises(ValueError, match="target"):
            fn(RowSums(), X, A, target, fractions=4)


def test_rejects_target_of_wrong_length():
    with pytest.raises(ValueError, match="target"):
        insertion_curve(RowSums(), X, A, [0, 1, 1])


def test_rejects_unknown_reduce():
    with pytest.raises(ValueError, match="reduce"):
        insertion_curve(RowSums(), X, A, TARGET, reduce="mean")


def test_rejects_bad_n_fill_samples_and_chunking():
    with pytest.raises(ValueError, match="n_fill_samples"):
        insertion_curve(RowSums(), X, A, TARGET, n_fill_samples=0)
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        insertion_curve(RowSums(), X, A, TARGET, max_examples_per_batch=0)
    with pytest.raises(TypeError, match="apply_softmax"):
        insertion_curve(RowSums(), X, A, TARGET, apply_softmax="yes")


@pytest.mark.parametrize(
    "model",
    [
        lambda x: x.flatten(1).sum(dim=1),  # (N,)
        lambda x: x.flatten(1)[:, :2].unsqueeze(2),  # (N, 2, 1): a softmax over 1 class
        lambda x: x.flatten(1)[:, :1],  # (N, 1) under a softmax
    ],
    ids=["1d", "3d", "one-class"],
)
def test_rejects_outputs_that_are_not_n_by_classes(model):
    with pytest.raises(ValueError, match="forward_func"):
        insertion_curve(model, X, A, 0, fractions=4)


def test_one_output_is_fine_without_softmax():
    def model(x):
        return torch.sigmoid(x.flatten(1).sum(dim=1, keepdim=True))

    curve = insertion_curve(model, X, A, 0, fractions=4, head="probabilities")
    assert curve[0, -1].item() == pytest.approx(sigmoid(10.0))


def test_rejects_bad_inputs():
    with pytest.raises(TypeError, match="inputs"):
        insertion_curve(RowSums(), X.tolist(), A, TARGET)
    bad = X.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="inputs"):
        insertion_curve(RowSums(), bad, A, TARGET)
