"""Deprecations: the 0.1 module paths and the 0.1 argument names (``fill=``,
``apply_softmax=``) keep working for one release, with a DeprecationWarning that points at
the caller; the package itself never uses them."""

import dataclasses
import importlib
import sys
import warnings

import pytest
import torch
from helpers import seeded_randn, tiny_cnn

from captum_soundness.attr import SimpleMasking
from captum_soundness.benchmark import QUICK_SETTINGS, evaluate_dataset
from captum_soundness.fills import BlurFill, MeanFill
from captum_soundness.metrics import (
    completeness,
    deletion_curve,
    evaluate_all_labels,
    insertion_curve,
    soundness,
)
from captum_soundness.sanity import fill_sensitivity

ALIASES = {
    "captum_soundness.curves": "captum_soundness.metrics",
    "captum_soundness.evaluation": "captum_soundness.metrics",
    "captum_soundness.axioms": "captum_soundness.metrics",
    "captum_soundness.similarity": "captum_soundness.sanity",
    "captum_soundness.cli": "captum_soundness.benchmark",
    "captum_soundness.attr.simple_masking": "captum_soundness.attr",
    "captum_soundness.attr.gradcam_plus_plus": "captum_soundness.attr",
    "captum_soundness.attr.fullgrad": "captum_soundness.attr",
}


@pytest.mark.parametrize(("old", "new"), sorted(ALIASES.items()))
def test_old_module_path_warns_and_reexports(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is getattr(target, name), name


# ---- deprecated arguments: `fill=` -> `baselines=`, `apply_softmax=` -> `head=` -----------

TARGET = [0, 2]


def _setup():
    model = tiny_cnn()
    x = seeded_randn(2, 3, 8, 8, seed=1)
    return model, x, seeded_randn(2, 3, 8, 8, seed=2)


def _explain(inputs, target):
    return inputs * (1.0 + target.view(-1, 1, 1, 1))


CURVE = {"fractions": 4}

#: name -> (call(model, x, attributions, **keywords), the old keyword, the new keyword).
ARGUMENT_ALIASES = {
    "insertion_curve[fill]": (
        lambda m, x, a, **kw: insertion_curve(m, x, a, TARGET, **CURVE, **kw),
        {"fill": BlurFill(1.0)},
        {"baselines": BlurFill(1.0)},
    ),
    "deletion_curve[apply_softmax]": (
        lambda m, x, a, **kw: deletion_curve(m, x, a, TARGET, **CURVE, **kw),
        {"apply_softmax": True},
        {"head": "softmax"},
    ),
    "completeness[fill]": (
        lambda m, x, a, **kw: completeness(m, x, a, TARGET, **CURVE, **kw),
        {"fill": 0.5},
        {"baselines": 0.5},
    ),
    "soundness[apply_softmax]": (
        lambda m, x, a, **kw: soundness(m, x, a, TARGET, **CURVE, **kw),
        {"apply_softmax": True},
        {"head": "softmax"},
    ),
    "evaluate_all_labels[fill]": (
        lambda m, x, a, **kw: evaluate_all_labels(_explain, m, x, **CURVE, **kw).completeness,
        {"fill": MeanFill()},
        {"baselines": MeanFill()},
    ),
    "SimpleMasking.attribute[fill]": (
        lambda m, x, a, **kw: SimpleMasking(m).attribute(x, TARGET, steps=2, seed=0, **kw),
        {"fill": 0.25},
        {"baselines": 0.25},
    ),
    "fill_sensitivity[apply_softmax]": (
        lambda m, x, a, **kw: (
            fill_sensitivity({"e": _explain}, m, x, {"zero": 0.0}, **CURVE, **kw).method_scores
        ),
        {"apply_softmax": True},
        {"head": "softmax"},
    ),
}


@pytest.mark.parametrize("name", sorted(ARGUMENT_ALIASES))
def test_deprecated_argument_warns_at_the_callers_line_and_gives_the_same_result(name):
    call, old, new = ARGUMENT_ALIASES[name]
    model, x, a = _setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        want = call(model, x, a, **new)
    with pytest.warns(DeprecationWarning, match=next(iter(old))) as record:
        got = call(model, x, a, **old)
    assert torch.equal(got, want)
    assert [w.filename for w in record if w.category is DeprecationWarning] == [__file__]
    with pytest.raises(TypeError, match="not both"):
        call(model, x, a, **old, **new)


def test_the_package_never_calls_its_own_deprecated_arguments():
    """The benchmark's methods (SimpleMasking with its DatasetFill, the area preset, the
    sanity columns) and the evaluation run without a DeprecationWarning of the package."""
    model = tiny_cnn()
    data = [(seeded_randn(3, 8, 8, seed=i), 0) for i in range(2)]
    pool = seeded_randn(4, 3, 8, 8, seed=9)
    settings = dataclasses.replace(
        QUICK_SETTINGS, steps=2, fractions=4, sanity=True, sanity_images=1, show_progress=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.filterwarnings("ignore", "Input Tensor", UserWarning)
        result = evaluate_dataset(
            model,
            data,
            ["simple_masking", "gradcam_plus_plus", "fullgrad"],
            pool=pool,
            settings=settings,
            figures=False,
            log=None,
        )
    assert set(result.methods) == {"simple_masking", "gradcam_plus_plus", "fullgrad"}
