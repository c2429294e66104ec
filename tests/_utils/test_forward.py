"""Tests for the model-output check of ``_utils.forward`` and the fill draws of
``_utils.fill_samples``."""

import pytest
import torch
from helpers import seeded_randn

from captum_soundness._utils.fill_samples import sample_fill
from captum_soundness._utils.forward import check_output
from captum_soundness.fills import ConstantFill, Fill, NoiseFill


def test_check_output_accepts_scores_and_returns_them():
    out = torch.zeros(3, 4)
    assert check_output(out, 3) is out
    assert check_output(out, None) is out  # any number of rows
    assert check_output(torch.zeros(3, 1), 3) is not None  # one score: fine without softmax


@pytest.mark.parametrize(
    ("output", "n", "match"),
    [
        (torch.zeros(3), 3, r"\(N, num_classes\).*shape \(3,\) for 3 inputs\.$"),
        (torch.zeros(2, 4), 3, r"shape \(2, 4\) for 3 inputs"),
        (torch.zeros(2, 3, 1), None, r"shape \(2, 3, 1\)\.$"),
    ],
)
def test_check_output_rejects_other_shapes(output, n, match):
    with pytest.raises(ValueError, match=match):
        check_output(output, n, "model")
    with pytest.raises(ValueError, match=r"^`model` must return"):
        check_output(output, n, "model")


def test_check_output_rejects_non_tensors():
    with pytest.raises(TypeError, match=r"`forward_func` must return .* got tuple"):
        check_output((torch.zeros(3, 2),), 3)


def test_sample_fill_broadcasts_single_samples():
    x = seeded_randn(2, 1, 3, 3, dtype=torch.float64)
    out = sample_fill(ConstantFill(0.5), x, 4)
    assert out.shape == (4, 2, 1, 3, 3) and out.dtype == torch.float64
    assert bool((out == 0.5).all())
    gen = torch.Generator().manual_seed(0)
    noise = sample_fill(NoiseFill(), x, 3, gen)
    assert torch.equal(noise, NoiseFill().sample(x, 3, torch.Generator().manual_seed(0)))


def test_sample_fill_rejects_wrong_shapes():
    class Bad(Fill):
        def _sample(self, inputs, n_samples, generator):
            return torch.zeros(n_samples, *inputs.shape[1:])

    with pytest.raises(ValueError, match="`fill` returned samples of shape"):
        sample_fill(Bad(), torch.zeros(2, 1, 3, 3), 2)


def test_run_forward_unpacks_tuples_like_captum():
    from captum_soundness._utils.forward import chunk_slices, run_forward

    seen = []

    def model(*args):
        seen.append(args)
        return torch.zeros(2, 3)

    a, b = torch.zeros(2, 1), torch.ones(2, 4)
    run_forward(model, a)
    run_forward(model, (a, b), (7,))
    run_forward(model, (a,), torch.ones(2))
    assert seen[0] == (a,) and seen[1] == (a, b, 7)
    assert seen[2][0] is a and torch.equal(seen[2][1], torch.ones(2))
    with pytest.raises(TypeError, match="must return a tensor"):
        run_forward(lambda *t: (torch.zeros(2, 3),), a)
    assert list(chunk_slices(5, 2)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert list(chunk_slices(5, None)) == [slice(0, 5)]
