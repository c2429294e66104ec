"""Unit tests of the Captum-conventions layer of ``_utils``: inputs, targets, heads,
baselines and the feature layout (the entry points' own tests cover their use)."""

import math
import warnings

import pytest
import torch
from captum._utils.common import _select_targets

from captum_soundness._utils.baselines import (
    UNSET,
    ExampleFill,
    format_baselines,
    resolve_baselines,
)
from captum_soundness._utils.features import FeatureLayout
from captum_soundness._utils.heads import (
    head_output,
    log_probabilities,
    probabilities,
    resolve_head,
    warn_if_probabilities,
)
from captum_soundness._utils.inputs import format_inputs, format_like
from captum_soundness._utils.targets import resolve_targets
from captum_soundness.fills import ConstantFill, NoiseFill

# ---- inputs ------------------------------------------------------------------------------


def test_format_inputs_containers_and_errors():
    x = torch.zeros(2, 3)
    assert format_inputs(x) == ((x,), False)
    assert format_inputs((x,)) == ((x,), True)
    assert format_like((x,), False) is x and format_like((x,), True) == (x,)
    with pytest.raises(TypeError, match="list"):
        format_inputs([x])
    with pytest.raises(ValueError, match="same number of examples"):
        format_inputs((x, torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        format_inputs(torch.zeros(3))
    with pytest.raises(TypeError, match="floating point"):
        format_inputs(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty tuple"):
        format_inputs(())


# ---- targets: the same score as Captum's _select_targets -----------------------------------

_OUT2 = torch.arange(12.0).view(3, 4)
_OUT3 = torch.arange(24.0).view(3, 4, 2)


@pytest.mark.parametrize(
    ("target", "out"),
    [
        (2, _OUT2),
        (-1, _OUT2),
        ((1,), _OUT2),
        (torch.tensor(3), _OUT2),
        (torch.tensor([3]), _OUT2),
        (torch.tensor([0, 3, 1]), _OUT2),
        ([0, 3, 1], _OUT2),
        ([(0,), (3,), (1,)], _OUT2),
        ((1, 0), _OUT3),
        ((-1, 1), _OUT3),
        ([(0, 1), (3, 0), (2, 1)], _OUT3),
    ],
    ids=str,
)
def test_targets_select_what_captum_selects(target, out):
    flat = resolve_targets(target, 3).flat(out.shape)
    assert torch.equal(out.flatten(1).gather(1, flat[:, None])[:, 0], _select_targets(out, target))


@pytest.mark.parametrize(
    ("target", "out", "error"),
    [
        ((1, 0), _OUT2, ValueError),  # one index into a 3-D output, never two labels
        ([1, 0], _OUT2, ValueError),  # a list needs one entry per example
        (torch.tensor([[1, 0, 2]]), _OUT2, ValueError),
        (torch.tensor([1.0, 0.0, 2.0]), _OUT2, TypeError),
        (True, _OUT2, TypeError),
        ([1, (0,), 2], _OUT2, TypeError),
        (4, _OUT2, ValueError),
        ([0, -1, 1], _OUT2, ValueError),  # gather refuses negative labels in Captum too
        (1, _OUT3, ValueError),  # does not select one score per example
        ([0, 1, 2], _OUT3, ValueError),
    ],
    ids=str,
)
def test_targets_raise_where_captum_raises(target, out, error):
    with pytest.raises((AssertionError, IndexError, RuntimeError, TypeError, ValueError)):
        score = _select_targets(out, target)
        assert score.numel() == out.shape[0]  # Captum needs one score per example
    with pytest.raises(error, match="target"):
        resolve_targets(target, 3).flat(out.shape)


def test_targets_rows_and_none():
    t = resolve_targets([2, 0, 1], 3)
    assert torch.equal(t.rows(torch.tensor([2, 2, 0])).flat((3, 4)), torch.tensor([1, 1, 2]))
    none = resolve_targets(None, 3)
    assert none.is_none and none.rows(torch.tensor([0])).is_none
    with pytest.raises(ValueError, match="required"):
        none.flat((3, 4))


# ---- heads -------------------------------------------------------------------------------


def test_heads_probabilities_and_logs():
    z = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(probabilities(z, "softmax"), z.softmax(-1))
    assert torch.allclose(probabilities(z, "sigmoid"), z.sigmoid())
    assert torch.equal(probabilities(z.sigmoid(), "probabilities"), z.sigmoid())
    one = torch.tensor([0.3, -2.0])
    binary = probabilities(head_output(one, 2, "binary"), "binary")
    assert torch.allclose(binary, torch.stack([1 - one.sigmoid(), one.sigmoid()], 1))
    for head in ("softmax", "sigmoid"):
        assert torch.allclose(log_probabilities(z, head).exp(), probabilities(z, head))
    big = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(log_probabilities(big, "softmax")).all()
    assert torch.isfinite(log_probabilities(big, "sigmoid")).all()


def test_head_output_shapes():
    with pytest.raises(ValueError, match="binary"):
        head_output(torch.zeros(2, 3), 2, "binary")
    with pytest.raises(ValueError, match="head='binary'"):
        head_output(torch.zeros(2), 2, "softmax")
    with pytest.raises(ValueError, match="softmax over one"):
        head_output(torch.zeros(2, 1), 2, "softmax")
    with pytest.raises(ValueError, match="one row of scores per input"):
        head_output(torch.zeros(3, 2), 2, "sigmoid")
    with pytest.raises(TypeError, match="tensor"):
        head_output((torch.zeros(2, 2),), 2, "softmax")
    assert head_output(torch.zeros(2, 1), 2, "binary").shape == (2, 1)


def test_resolve_head_and_alias():
    assert resolve_head(None) == "softmax" and resolve_head("sigmoid") == "sigmoid"
    with pytest.raises(ValueError, match="head"):
        resolve_head("logits")
    with pytest.warns(DeprecationWarning, match="head='probabilities'"):
        assert resolve_head(None, False) == "probabilities"
    with pytest.raises(TypeError, match="not both"):
        resolve_head("softmax", True)


def test_probabilities_under_softmax_warn():
    with pytest.warns(UserWarning, match="probabilities already"):
        warn_if_probabilities(torch.tensor([[0.2, 0.8]]), "softmax", "caller")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_probabilities(torch.tensor([[0.2, 0.9]]), "softmax", "caller")
        warn_if_probabilities(torch.tensor([[0.2, 0.8]]), "probabilities", "caller")


# ---- baselines ---------------------------------------------------------------------------


def test_format_baselines_forms():
    x, t = torch.zeros(2, 3, 4, 4), torch.zeros(2, 5)
    (zero,) = format_baselines(None, (x,))
    assert isinstance(zero, ConstantFill) and zero.value == 0.0
    colour, per_example = format_baselines((torch.ones(3, 1, 1), torch.rand(2, 5)), (x, t))
    assert isinstance(colour, ConstantFill) and isinstance(per_example, ExampleFill)
    assert torch.equal(
        per_example.select([1, 1]).values, per_example.values[[1, 1]]
    )  # rows for chunks and label repetitions
    row = format_baselines(torch.ones(1, 3, 4, 4), (x,))[0]
    assert isinstance(row, ConstantFill)
    noise = NoiseFill()
    assert format_baselines(noise, (x, t)) == (noise, noise)
    with pytest.raises(ValueError, match="one baseline per input"):
        format_baselines(torch.zeros(2, 5), (x, t))
    with pytest.raises(ValueError, match="one row per example"):
        format_baselines(torch.zeros(3, 5), (t,))
    with pytest.raises(ValueError, match="finite"):
        format_baselines(math.inf, (t,))
    with pytest.raises(TypeError, match="baselines"):
        format_baselines("zero", (t,))


def test_resolve_baselines_alias():
    assert resolve_baselines(0.5) == 0.5 and resolve_baselines(0.5, UNSET) == 0.5
    with pytest.warns(DeprecationWarning, match="baselines"):
        assert resolve_baselines(None, 0.25) == 0.25
    with pytest.raises(TypeError, match="not both"):
        resolve_baselines(0.5, 0.25)


# ---- feature layout ----------------------------------------------------------------------


def test_layout_positions_without_groups():
    x = (torch.zeros(2, 3, 4, 4), torch.zeros(2, 5))
    layout = FeatureLayout(x)
    assert layout.num_positions == 16 + 5
    attr = (torch.ones(2, 3, 4, 4), -torch.ones(2, 5))
    scores = layout.maps(attr, "sum")
    assert torch.equal(scores[:, :16], torch.full((2, 16), 3.0))
    assert torch.equal(scores[:, 16:], -torch.ones(2, 5))
    assert torch.equal(layout.maps(attr, "abs")[:, 16:], torch.ones(2, 5))
    image, table = layout.expand(torch.arange(21.0).expand(2, 21))
    assert image.shape == (2, 1, 4, 4) and torch.equal(table[0], torch.arange(16.0, 21.0))


def test_layout_groups_mean_and_expand():
    x = (torch.zeros(2, 1, 2, 2), torch.zeros(2, 3))
    mask = (torch.tensor([[[[0, 0], [1, 1]]]]), torch.tensor([[1, 7, 7]]))
    layout = FeatureLayout(x, mask)
    assert layout.num_positions == 3  # ids 0, 1, 7 compacted
    attr = (torch.tensor([[[[1.0, 3.0], [4.0, 4.0]]]]).expand(2, 1, 2, 2), torch.ones(2, 3))
    scores = layout.maps(attr, "sum")
    assert torch.equal(scores[0], torch.tensor([2.0, (4 + 4 + 1) / 3, 1.0]))
    image, table = layout.expand(torch.tensor([[10.0, 20.0, 30.0]]).expand(2, 3))
    assert torch.equal(image[0, 0], torch.tensor([[10.0, 10.0], [20.0, 20.0]]))
    assert torch.equal(table[0], torch.tensor([20.0, 30.0, 30.0]))
    with pytest.raises(ValueError, match="feature_mask"):
        FeatureLayout(x, (torch.zeros(2, 2, dtype=torch.long), mask[1]))
    with pytest.raises(TypeError, match="integer"):
        FeatureLayout(x, (mask[0].float(), mask[1]))


def test_layout_per_example_groups_rank_absent_groups_last():
    x = (torch.zeros(2, 3),)
    layout = FeatureLayout(x, torch.tensor([[0, 0, 1], [0, 2, 2]]))
    scores = layout.maps(torch.ones(2, 3))
    assert scores[0, 2] < -1e30 and scores[1, 1] < -1e30  # groups an example lacks
    rows = layout.expand(torch.arange(3.0).expand(2, 3), torch.tensor([1, 1]))[0]
    assert torch.equal(rows, torch.tensor([[0.0, 2.0, 2.0], [0.0, 2.0, 2.0]]))
