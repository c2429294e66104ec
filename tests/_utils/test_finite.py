"""Tests for the finiteness and probability rule (``_utils.finite``)."""

import math

import pytest
import torch
from helpers.faults import NonFiniteFill, mark_examples

from captum_soundness._utils.fill_samples import sample_fill
from captum_soundness._utils.finite import (
    check_finite,
    check_probabilities,
    format_examples,
)
from captum_soundness._utils.heads import check_head_values
from captum_soundness.fills import ConstantFill


def test_format_examples_abbreviates_long_lists():
    assert format_examples([0, 3]) == "[0, 3]"
    assert format_examples(range(12)) == "[0, 1, 2, 3, 4, 5, 6, 7, ...] (12 in all)"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_check_finite_names_the_examples(bad):
    t = torch.zeros(4, 2, 3)
    t[1, 0, 2] = t[3, 1, 0] = bad
    with pytest.raises(
        ValueError, match=r"^`inputs`: NaN or infinite values \(examples \[1, 3\]\)"
    ):
        check_finite(t, "`inputs`")
    # rows mapped to their examples (masked inputs, doubled batches), distinct and sorted
    with pytest.raises(ValueError, match=r"\(examples \[0, 7\]\)"):
        check_finite(t, "`x`", torch.tensor([5, 7, 5, 0]))
    ok = torch.ones(2, 2)
    assert check_finite(ok, "`x`") is ok
    assert check_finite(torch.arange(3), "`x`") is not None  # integer tensors pass


def test_check_probabilities_and_scores():
    p = torch.tensor([[0.2, 0.9], [0.0, 1.0]])
    assert check_probabilities(p, "`p`") is p  # per-label values: rows need not sum to 1
    bad = torch.tensor([[0.2, 0.9], [-1.5, 3.0]])
    with pytest.raises(ValueError, match=r"outside \[0, 1\] \(examples \[1\]; from -1\.5 to 3\)"):
        check_probabilities(bad, "`p`")
    assert check_head_values(bad, "softmax", "`p`") is bad  # logits under a softmax
    assert check_head_values(bad, "sigmoid", "`p`") is bad
    with pytest.raises(ValueError, match="head='probabilities'"):
        check_head_values(bad, "probabilities", "`p`")
    with pytest.raises(ValueError, match="NaN"):
        check_head_values(torch.tensor([[math.nan]]), "softmax", "`p`")


def test_sample_fill_checks_the_samples_unless_told_not_to():
    x = mark_examples(torch.zeros(3, 1, 2, 2), [1])
    fill = NonFiniteFill(math.nan, deterministic=False)
    with pytest.raises(ValueError, match=r"samples of `fill`: NaN .*examples \[5\]\)"):
        sample_fill(fill, x, 2, examples=[4, 5, 6])
    assert sample_fill(fill, x, 2, check=False)[:, 1].isnan().all()
    # a finite constant that overflows in the inputs' dtype
    half = torch.zeros(2, 1, 2, 2, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"samples of `fill`: NaN .*examples \[0, 1\]\)"):
        sample_fill(ConstantFill(1e5), half, 1)
