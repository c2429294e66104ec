"""The shared invariants (tests/helpers/invariants.py) on every metrics entry point.

Each entry point runs a model: it must give the same result for every
``max_examples_per_batch``, the same result for the same seed (and another for another
seed) without touching the global random states, and leave the model as it found it.
"""

import pytest
import torch
from captum.attr import IntegratedGradients
from helpers.invariants import (
    assert_chunking_invariant,
    assert_model_untouched,
    assert_seeded_determinism,
    mark_model_state,
)
from helpers.models import seeded_cnn, seeded_randn, tanh_mlp

from captum_soundness.fills import NoiseFill
from captum_soundness.metrics import (
    completeness,
    deletion_curve,
    evaluate_all_labels,
    ig_completeness_error,
    insertion_curve,
    soundness,
)

X = seeded_randn(3, 3, 6, 5, seed=1, dtype=torch.float64)
ATTR = seeded_randn(3, 3, 6, 5, seed=2)
TARGETS = [0, 3, 6]


def _explain(inputs, target):
    """A fixed map per (image, label) row: the inputs scaled by the label id + 1."""
    return inputs * (target.to(inputs.dtype) + 1).view(-1, 1, 1, 1)


def _per_example(metric):
    def run(model, max_examples_per_batch=None, seed=0):
        return metric(
            model,
            X,
            ATTR,
            TARGETS,
            fill=NoiseFill("gaussian"),
            fractions=5,
            n_fill_samples=2,
            max_examples_per_batch=max_examples_per_batch,
            seed=seed,
        )

    return run


def _all_labels(model, max_examples_per_batch=None, seed=0):
    return evaluate_all_labels(
        _explain,
        model,
        X,
        labels=[1, 4, 6],
        fill=NoiseFill("uniform"),
        fractions=4,
        n_fill_samples=2,
        max_examples_per_batch=max_examples_per_batch,
        seed=seed,
        deletion="all",
    )


ENTRY_POINTS = {
    "insertion_curve": _per_example(insertion_curve),
    "deletion_curve": _per_example(deletion_curve),
    "completeness": _per_example(completeness),
    "soundness": _per_example(soundness),
    "evaluate_all_labels": _all_labels,
}


@pytest.fixture
def model():
    return mark_model_state(seeded_cnn().double())


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_chunking_invariant(name, model):
    run = ENTRY_POINTS[name]
    # float64: identical up to the model's own batch-size-dependent rounding
    assert_chunking_invariant(lambda m: run(model, m), sizes=(1, 4, 13), atol=1e-13)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_seeded_determinism(name, model):
    run = ENTRY_POINTS[name]
    assert_seeded_determinism(lambda s: run(model, seed=s), seed=0, other_seed=1)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_model_untouched(name, model):
    assert_model_untouched(model, lambda: ENTRY_POINTS[name](model))


def test_ig_completeness_error_leaves_model_untouched():
    model = mark_model_state(tanh_mlp())
    x = seeded_randn(4, 1, 4, 4, seed=1, dtype=torch.float64)
    attr = IntegratedGradients(model).attribute(x, target=1, n_steps=8)
    assert_model_untouched(model, lambda: ig_completeness_error(model, x, attr, target=1))
