"""Tests for ranking, fraction grids and top-k masks."""

import pytest
import torch

from captum_soundness.masking import (
    compose,
    fraction_counts,
    fraction_grid,
    rank_positions,
    reduce_channels,
    topk_masks,
)


def test_reduce_channels_variants():
    a = torch.tensor([[[[1.0, -2.0]], [[3.0, 1.0]]]])
    assert torch.equal(reduce_channels(a, "sum"), torch.tensor([[[4.0, -1.0]]]))
    assert torch.equal(reduce_channels(a, "abs"), torch.tensor([[[4.0, 3.0]]]))
    assert torch.equal(reduce_channels(a, "max"), torch.tensor([[[3.0, 1.0]]]))


def test_reduce_channels_rejects_unknown():
    with pytest.raises(ValueError, match="reduce"):
        reduce_channels(torch.zeros(1, 1, 2, 2), "mean")


def test_rank_positions_is_inverse_of_descending_order():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, 6, generator=gen)
    ranks = rank_positions(s)
    assert ranks.shape == (5, 24)
    flat = s.reshape(5, -1)
    # rank 0 is the max, and ranks form a permutation.
    assert torch.equal(ranks.argmin(dim=1), flat.argmax(dim=1))
    assert torch.equal(ranks.sort(dim=1).values, torch.arange(24).expand(5, 24))
    # higher value => lower rank
    order = ranks.argsort(dim=1)
    sorted_vals = flat.gather(1, order)
    assert bool((sorted_vals[:, :-1] >= sorted_vals[:, 1:]).all())


def test_rank_positions_breaks_ties_in_a_fixed_pseudo_random_order():
    # the documented rule: a stable sort of the values laid out in randperm(P, seed 0)
    tie_order = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"Constant saliency maps \(rows \[0, 1\]\)"):
        ranks = rank_positions(torch.zeros(2, 3, 3))
    expected = torch.empty(9, dtype=torch.long)
    expected[tie_order] = torch.arange(9)
    assert torch.equal(ranks, expected.expand(2, 9))
    assert ranks[0].tolist() != list(range(9))  # not the reading order
    # partial ties: the tied positions keep the same relative order, values still rule
    values = torch.tensor([[2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0]])
    ranks = rank_positions(values)[0]
    assert ranks[4] == 0 and ranks[0] == 1
    tied = [p for p in tie_order.tolist() if p not in (0, 4)]
    assert ranks[tied].tolist() == list(range(2, 9))


def test_rank_positions_without_ties_is_the_plain_descending_sort():
    s = torch.randn(6, 5, 7, generator=torch.Generator().manual_seed(3)).reshape(6, -1)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    expected = torch.empty_like(order).scatter_(1, order, torch.arange(35).expand(6, 35))
    assert torch.equal(rank_positions(s), expected)


def test_rank_positions_half_precision():
    s = torch.tensor([[0.1, 0.9, 0.5]], dtype=torch.bfloat16)
    assert rank_positions(s).tolist() == [[2, 0, 1]]


def test_fraction_grid_int_and_sequence():
    assert torch.allclose(
        fraction_grid(4), torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    )
    assert fraction_grid([0.5, 1.0]).tolist() == [0.5, 1.0]
    assert fraction_grid(torch.tensor([0.1])).tolist() == pytest.approx([0.1])


@pytest.mark.parametrize(
    ("bad", "err"),
    [
        ([], ValueError),
        ([0.0, 0.5], ValueError),
        ([1.5], ValueError),
        (0, ValueError),
        ("0.5", TypeError),
        ([True], TypeError),
        (torch.ones(2, 2), ValueError),
    ],
)
def test_fraction_grid_rejects_bad(bad, err):
    with pytest.raises(err, match="fractions"):
        fraction_grid(bad)


def test_fraction_counts_rounding_and_minimum():
    counts = fraction_counts(torch.tensor([0.001, 0.25, 0.5, 1.0], dtype=torch.float64), 10)
    assert counts.tolist() == [1, 2, 5, 10]  # round half to even: 2.5 -> 2
    # the reference grid: 28 steps on 28x28 positions keeps whole rows' worth of pixels
    assert fraction_counts(fraction_grid(28), 784).tolist() == list(range(28, 785, 28))


def test_topk_masks_match_counts():
    ranks = rank_positions(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)))
    masks = topk_masks(ranks, torch.tensor([1, 4, 16]))
    assert masks.shape == (3, 3, 16)
    assert masks.sum(dim=2).tolist() == [[1, 4, 16]] * 3
    # nested: every smaller mask is contained in the bigger one
    assert bool((masks[:, 0] <= masks[:, 1]).all()) and bool((masks[:, 1] <= masks[:, 2]).all())


def test_compose_bool_and_soft():
    x, g = torch.full((4,), 2.0), torch.zeros(4)
    assert compose(x, torch.tensor([True, False, True, False]), g).tolist() == [2, 0, 2, 0]
    assert compose(x, torch.tensor([0.5, 0.0, 1.0, 0.25]), g).tolist() == [1.0, 0.0, 2.0, 0.5]
