"""Tests for completeness and soundness (Gupta et al., 2022, section 2)."""

import math

import pytest
import torch
from helpers.models import TARGET, A, ContrastToy, RowSums, X, sigmoid
from torch import nn

from captum_soundness.fills import NoiseFill
from captum_soundness.metrics import (
    completeness,
    completeness_from_scores,
    insertion_curve,
    soundness,
    soundness_from_scores,
)


def test_hand_computed_completeness_and_soundness():
    # Insertion curves (fill 0, k = 1..4), see tests/test_curves.py for the masked inputs.
    s_a = (sigmoid(1) + sigmoid(-2) + sigmoid(-6) + sigmoid(-4)) / 4  # ~0.218
    s_b = (0.5 + sigmoid(-2) + sigmoid(-1) + 0.5) / 4  # ~0.347
    p_a = sigmoid(-4)  # label 0 on [[1, 2], [3, 4]]: z = (3, 7)
    p_b = 0.5  # label 1 on [[2, -1], [0, 1]]: z = (1, 1)
    exp_comp = [min(1.0, max(0.1, s_a) / min(1.0, p_a)), min(1.0, max(0.1, s_b) / min(1.0, p_b))]
    exp_sound = [min(1.0, max(0.1, p_a) / s_a), min(1.0, max(0.1, p_b) / s_b)]
    assert exp_comp[0] == 1.0 and exp_sound[1] == 1.0  # both clamps are exercised
    comp = completeness(RowSums(), X, A, TARGET, fractions=4)
    sound = soundness(RowSums(), X, A, TARGET, fractions=4)
    torch.testing.assert_close(
        comp, torch.tensor(exp_comp, dtype=torch.float64), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        sound, torch.tensor(exp_sound, dtype=torch.float64), rtol=0, atol=1e-12
    )
    # non-reference constants
    comp2 = completeness(RowSums(), X, A, TARGET, fractions=4, epsilon=0.4, alpha=0.3)
    assert comp2[1].item() == pytest.approx(1.0)  # 0.4 / min(0.3, 0.5) > 1
    sound2 = soundness(RowSums(), X, A, TARGET, fractions=4, beta=0.0)
    assert sound2[0].item() == pytest.approx(p_a / s_a, abs=1e-12)


def test_formulas_clamps_and_zero_cases():
    s = torch.tensor([0.0, 0.05, 0.5, 0.2, 0.0])
    p = torch.tensor([0.3, 0.02, 0.25, 0.0, 0.0])
    comp = completeness_from_scores(s, p, epsilon=0.1, alpha=1.0)
    # 0.1/0.3; eps beats S; 0.5/0.25 -> 1; p = 0 -> 1; S = p = 0 -> 1
    torch.testing.assert_close(comp, torch.tensor([1 / 3, 1.0, 1.0, 1.0, 1.0]))
    sound = soundness_from_scores(s, p, beta=0.1)
    # S = 0 -> 1; 0.1/0.05 -> 1; 0.25/0.5; 0.1/0.2; S = 0 -> 1
    torch.testing.assert_close(sound, torch.tensor([1.0, 1.0, 0.5, 0.5, 1.0]))
    # alpha caps the clean probability that has to be matched
    assert completeness_from_scores(torch.tensor([0.3]), torch.tensor([0.9]), 0.1, 0.6).item() == (
        pytest.approx(0.5)
    )
    # epsilon = 0 with S = 0 < p: completeness 0
    assert completeness_from_scores(torch.tensor([0.0]), torch.tensor([0.5]), 0.0).item() == 0.0


def test_adversarial_wrong_label_mask_is_complete_but_unsound():
    """The paper's point: completeness alone cannot tell a manufactured certificate."""
    model = ContrastToy()
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    p1 = sigmoid(-4)
    # Adversarial map for the wrong label 1: x0 first, x1 last (keeps x0 without x1).
    adversarial = torch.tensor([[[[4.0, 1.0], [3.0, 2.0]]]], dtype=torch.float64)
    # Faithful map: the contrast pair is kept together, the image's own structure.
    faithful = torch.tensor([[[[3.0, 4.0], [2.0, 1.0]]]], dtype=torch.float64)

    s_adv = (sigmoid(6 - 1) + sigmoid(6 - 2) + sigmoid(6 - 3) + p1) / 4  # ~0.74
    s_faith = (sigmoid(-6 - 1) + sigmoid(0 - 2) + sigmoid(0 - 3) + p1) / 4  # ~0.046
    curve = insertion_curve(model, x, adversarial, 1, fractions=4)
    assert curve.mean().item() == pytest.approx(s_adv, abs=1e-12)
    assert insertion_curve(model, x, faithful, 1, fractions=4).mean().item() == pytest.approx(
        s_faith, abs=1e-12
    )

    comp_adv = completeness(model, x, adversarial, 1, fractions=4).item()
    sound_adv = soundness(model, x, adversarial, 1, fractions=4).item()
    assert comp_adv == 1.0
    assert sound_adv == pytest.approx(0.1 / s_adv, abs=1e-12)
    assert sound_adv < 0.2

    assert completeness(model, x, faithful, 1, fractions=4).item() == 1.0
    assert soundness(model, x, faithful, 1, fractions=4).item() == 1.0

    # At the predicted label 0, a faithful map (content first, contrast pair last) is
    # nearly complete and sound.
    content_first = torch.tensor([[[[1.0, 2.0], [4.0, 3.0]]]], dtype=torch.float64)
    p0 = sigmoid(4)
    s0 = (sigmoid(1) + sigmoid(2) + sigmoid(3 + 6) + p0) / 4
    assert completeness(model, x, content_first, 0, fractions=4).item() == pytest.approx(
        s0 / p0, abs=1e-12
    )
    assert soundness(model, x, content_first, 0, fractions=4).item() == 1.0


def test_curve_kwargs_are_passed_through():
    model = RowSums()
    kw = {
        "baselines": NoiseFill("uniform"),
        "n_fill_samples": 3,
        "seed": 0,
        "fractions": [0.5, 1.0],
    }
    s = insertion_curve(model, X, A, TARGET, **kw).mean(dim=1)
    p = torch.softmax(model(X), dim=1)[[0, 1], TARGET]
    torch.testing.assert_close(soundness(model, X, A, TARGET, **kw), soundness_from_scores(s, p))
    torch.testing.assert_close(
        completeness(model, X, A, TARGET, max_examples_per_batch=3, **kw),
        completeness_from_scores(s, p),
    )
    # target None = the prediction
    pred = model(X).argmax(dim=1)
    torch.testing.assert_close(
        completeness(model, X, A, fractions=4), completeness(model, X, A, pred, fractions=4)
    )


def test_probabilities_head():
    probs_model = nn.Sequential(RowSums(), nn.Softmax(dim=1)).eval()
    a = soundness(probs_model, X, A, TARGET, fractions=4, head="probabilities")
    b = soundness(RowSums(), X, A, TARGET, fractions=4)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# ---- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": math.nan}, "epsilon"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_completeness_rejects_bad_constants(kwargs, match):
    with pytest.raises(ValueError, match=match):
        completeness(RowSums(), X, A, TARGET, **kwargs)
    with pytest.raises(ValueError, match=match):
        completeness_from_scores(torch.ones(1), torch.ones(1), **kwargs)


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.inf])
def test_soundness_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        soundness(RowSums(), X, A, TARGET, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        soundness_from_scores(torch.ones(1), torch.ones(1), beta=beta)


def test_constants_must_be_numbers():
    with pytest.raises(TypeError, match="epsilon"):
        completeness(RowSums(), X, A, TARGET, epsilon="0.1")
    with pytest.raises(TypeError, match="beta"):
        soundness(RowSums(), X, A, TARGET, beta=None)


def test_unknown_curve_kwargs():
    with pytest.raises(TypeError, match="fractoins"):
        completeness(RowSums(), X, A, TARGET, fractoins=4)
    with pytest.raises(TypeError, match="beta"):
        completeness(RowSums(), X, A, TARGET, beta=0.1)


def test_metrics_reject_bad_attributions_and_targets():
    with pytest.raises(ValueError, match="batch size"):
        soundness(RowSums(), X, A[:1], TARGET)
    bad = A.clone()
    bad[0, 0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="NaN"):
        completeness(RowSums(), X, bad, TARGET)
    with pytest.raises(ValueError, match="target"):
        completeness(RowSums(), X, A, [0, 2])
    with pytest.raises(ValueError, match="reduce"):
        soundness(RowSums(), X, A, TARGET, reduce="median")
    with pytest.raises(ValueError, match="fractions"):
        soundness(RowSums(), X, A, TARGET, fractions=[])
