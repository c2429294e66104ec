"""Issue 13, for every public entry point that runs a model: never a silent wrong number,
never a mutated model or global RNG.

- a fault raised from inside ``forward`` (an exception, ``KeyboardInterrupt``) at the first
  and at the last forward call, on images and (where an entry point takes them) on a
  tuple of inputs and on tabular inputs, leaves the model (eval and training mode: modes,
  ``requires_grad``, ``.grad``, parameters, batch-norm buffers, hooks) and the global
  random states as found; so does a complete run in training mode (dropout drawing);
- NaN and infinite values in the inputs, baselines, attributions, fill samples and model
  outputs raise a ``ValueError`` that names the value and the example;
- outputs declared to be probabilities (``head="probabilities"``) that are not raise;
- constant maps warn; no NaN becomes a score.

The entry points and their arguments are those of ``tests/test_invariants.py``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from helpers import (
    assert_global_rng_untouched,
    assert_model_untouched,
    bn_dropout_cnn,
    mark_model_state,
    seeded_randn,
)
from helpers.faults import (
    Fault,
    NonFiniteFill,
    assert_left_as_found,
    count_forward_calls,
    mark_examples,
    nonfinite_outputs,
)
from test_invariants import CURVE, ENTRY_POINTS, IMAGES, TARGET, TUPLE, XFAIL, Data, EntryPoint
from torch import nn

from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import MeanFill
from captum_soundness.metrics import (
    completeness,
    completeness_from_scores,
    deletion_curve,
    evaluate_all_labels,
    ig_completeness_error,
    ig_completeness_passes,
    ig_steps_for_tolerance,
    insertion_curve,
    soundness,
    soundness_from_scores,
)
from captum_soundness.sanity import class_sensitivity, fill_sensitivity, model_randomization

pytestmark = [
    pytest.mark.filterwarnings("ignore:Input Tensor . did not already require"),
    pytest.mark.filterwarnings("ignore:.*training mode:UserWarning"),
    pytest.mark.filterwarnings("error::DeprecationWarning"),
]

BAD = [math.nan, math.inf, -math.inf]


def _model(mode: str = "eval") -> nn.Module:
    """The model of test_invariants (batch-norm, dropout), with a frozen parameter and a
    stored gradient; in training mode on request."""
    model = mark_model_state(bn_dropout_cnn().double())
    return model.train() if mode == "train" else model


def _inputs() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=1, dtype=torch.float64)


def _maps() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=2, dtype=torch.float64)


#: Known violations in training mode, by entry point (fixed in the benchmark by its owner).
_TRAIN_MODE_XFAIL: dict[str, str] = {}


def _fault_cases(excs: tuple[type[BaseException], ...] = (Fault, KeyboardInterrupt)) -> list[Any]:
    """(entry point, data, mode, exception) parameters, ``xfail(strict=True)`` where
    test_invariants knows that the entry point changes the global RNG, or where it is known
    to change a training-mode model. Images get both exceptions; the tuple and tabular
    inputs (where an entry point takes them) the exception only, to keep the run short."""
    cases = []
    for ep in ENTRY_POINTS:
        for data in ep.kinds:
            for mode in ("eval", "train"):
                for exc in excs if data is IMAGES else excs[:1]:
                    reason = XFAIL.get(("global_rng_untouched", ep.name))
                    if mode == "train":
                        reason = reason or _TRAIN_MODE_XFAIL.get(ep.name)
                    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                    ident = f"{ep.name}-{data.name}-{mode}-{exc.__name__}"
                    cases.append(pytest.param(ep, data, mode, exc, id=ident, marks=marks))
    return cases


#: Entry points that score one data-set image per internal call: their messages name the
#: image by its index in the data set, then the example within that call (always 0).
_PER_IMAGE_CALLS = frozenset({"evaluate_dataset"})


def _names_example(ep: EntryPoint, message: str) -> str:
    """The regex of ``message`` about example 1 of the inputs, as ``ep`` words it."""
    if ep.name in _PER_IMAGE_CALLS:
        return rf"image 1 of the data set, method .*{message} \(examples \[0\]\)"
    return rf"{message} \(examples \[1\]\)"


def _kw(ep: EntryPoint) -> dict[str, Any]:
    return {"seed": 0} if ep.seeded else {}


def _explain(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    t = target.view(-1, 1, 1, 1).to(inputs.dtype)
    return inputs * torch.cos(t + torch.linspace(0.0, 3.0, inputs.shape[-1]))


def _with_nan_for_marked(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Maps that are NaN for marked inputs (:func:`helpers.faults.mark_examples`)."""
    maps = _explain(inputs, target)
    marked = inputs.flatten(1).amax(dim=1) >= 10
    return torch.where(marked.view(-1, 1, 1, 1), math.nan, maps)


# ---- faults from inside forward, and training mode ---------------------------------------


@pytest.mark.parametrize(("ep", "data", "mode", "exc"), _fault_cases())
def test_fault_inside_forward_leaves_model_and_global_rng(
    ep: EntryPoint, data: Data, mode: str, exc: type[BaseException]
) -> None:
    model = mark_model_state(data.model())
    model = model.train() if mode == "train" else model
    x, a = data.inputs(), data.maps()

    def run() -> Any:
        return ep.run(model, x, a, data, **_kw(ep))

    # a complete run (dropout drawing, batch-norm updating in training mode) first
    calls = assert_global_rng_untouched(
        lambda: assert_model_untouched(model, lambda: count_forward_calls(model, run))
    )
    assert calls >= 1
    for call in sorted({1, calls}):  # the first and the last forward pass
        assert_left_as_found(model, run, call, exc)


# ---- NaN and infinite values, at every position ----------------------------------------


def _kind_cases() -> list[Any]:
    return [
        pytest.param(ep, data, id=f"{ep.name}-{data.name}")
        for ep in ENTRY_POINTS
        for data in ep.kinds
    ]


def _with_bad_value(data: Data, bad: float) -> Any:
    """The inputs of ``data`` with ``bad`` in example 1 (of the last input tensor)."""
    x = data.inputs()
    last = x[-1] if isinstance(x, tuple) else x
    last[(1,) + (0,) * (last.dim() - 1)] = bad
    return x


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("ep", "data"), _kind_cases())
def test_nonfinite_inputs_are_named(ep: EntryPoint, data: Data, bad: float) -> None:
    x = _with_bad_value(data, bad)
    name = r"`inputs\[1\]`" if data is TUPLE else r"`inputs`"
    expected = _names_example(ep, rf"{name}: NaN or infinite values")
    with pytest.raises(ValueError, match=expected):
        ep.run(data.model(), x, data.maps(), data, **_kw(ep))


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("ep", "data"), _kind_cases())
def test_nonfinite_model_outputs_are_named(ep: EntryPoint, data: Data, bad: float) -> None:
    model, x = mark_model_state(data.model()), mark_examples(data.inputs(), [1])
    expected = _names_example(ep, r"outputs of `(forward_func|model)`.*NaN or infinite values")
    with nonfinite_outputs(model, bad), pytest.raises(ValueError, match=expected):
        ep.run(model, x, data.maps(), data, **_kw(ep))


def _bad_maps(bad: float) -> torch.Tensor:
    maps = _maps()
    maps[1, 1, 4, 4] = bad
    return maps


ATTRIBUTION_CASES = {
    "insertion_curve": lambda m, x, a: insertion_curve(m, x, a, TARGET, fractions=4),
    "deletion_curve": lambda m, x, a: deletion_curve(m, x, a, TARGET, fractions=4),
    "completeness": lambda m, x, a: completeness(m, x, a, TARGET, fractions=4),
    "soundness": lambda m, x, a: soundness(m, x, a, TARGET, fractions=4),
    "ig_completeness_error": lambda m, x, a: ig_completeness_error(m, x, a, None, TARGET),
    "ig_completeness_passes": lambda m, x, a: ig_completeness_passes(m, x, a, None, TARGET),
}

EXPLAIN_CASES = {
    "evaluate_all_labels": lambda m, x, f: evaluate_all_labels(f, m, x, fractions=4),
    "model_randomization": lambda m, x, f: model_randomization(
        lambda net: f, m, x, TARGET, similarity=("spearman",), seed=0
    ),
    "class_sensitivity": lambda m, x, f: class_sensitivity(f, m, x),
    "fill_sensitivity[prediction]": lambda m, x, f: fill_sensitivity(
        {"nan": f}, m, x, {"mean": MeanFill()}, fractions=4
    ),
    "fill_sensitivity[all_labels]": lambda m, x, f: fill_sensitivity(
        {"nan": f}, m, x, {"mean": MeanFill()}, fractions=4, evaluation="all_labels"
    ),
}


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("name", list(ATTRIBUTION_CASES))
def test_nonfinite_attributions_are_named(name: str, bad: float) -> None:
    with pytest.raises(
        ValueError, match=r"`attributions`: NaN or infinite values \(examples \[1\]"
    ):
        ATTRIBUTION_CASES[name](_model(), _inputs(), _bad_maps(bad))


@pytest.mark.parametrize("name", list(EXPLAIN_CASES))
def test_nonfinite_maps_of_an_explanation_function_are_named(name: str) -> None:
    x = mark_examples(_inputs(), [1])
    expected = r"attributions .*: NaN or infinite values \(examples \[1\]\)"
    with pytest.raises(ValueError, match=expected):
        EXPLAIN_CASES[name](_model(), x, _with_nan_for_marked)


@pytest.mark.parametrize("bad", BAD)
def test_nonfinite_baselines_are_named(bad: float) -> None:
    model, x, maps = _model(), _inputs(), _maps()
    baselines = torch.zeros_like(x)
    baselines[2, 0, 0, 0] = bad
    expected = r"`baselines`: NaN or infinite values \(examples \[2\]\)"
    for run in (
        lambda: ig_completeness_error(model, x, maps, baselines, TARGET),
        lambda: ig_completeness_passes(model, x, maps, baselines, TARGET),
        lambda: ig_steps_for_tolerance(
            IntegratedGradients(model), x, baselines, TARGET, steps=(2,)
        ),
    ):
        with pytest.raises(ValueError, match=expected):
            run()


FILL_CASES = {
    "insertion_curve": lambda m, x, f: insertion_curve(
        m, x, _maps(), TARGET, baselines=f, **CURVE
    ),
    "deletion_curve": lambda m, x, f: deletion_curve(m, x, _maps(), TARGET, baselines=f, **CURVE),
    "completeness": lambda m, x, f: completeness(m, x, _maps(), TARGET, baselines=f, **CURVE),
    "soundness": lambda m, x, f: soundness(m, x, _maps(), TARGET, baselines=f, **CURVE),
    "evaluate_all_labels": lambda m, x, f: evaluate_all_labels(
        _explain, m, x, baselines=f, **CURVE
    ),
    "SimpleMasking": lambda m, x, f: SimpleMasking(m).attribute(
        x, TARGET, baselines=f, steps=3, n_fill_samples=2, downsample=2, seed=0
    ),
}


@pytest.mark.parametrize("random", [False, True], ids=["deterministic", "random"])
@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("name", list(FILL_CASES))
def test_nonfinite_fill_samples_are_named(name: str, bad: float, random: bool) -> None:
    x, fill = mark_examples(_inputs(), [1]), NonFiniteFill(bad, deterministic=not random)
    expected = r"samples of `fill`: NaN or infinite values \(examples \[1\]\)"
    with pytest.raises(ValueError, match=expected):
        FILL_CASES[name](_model(), x, fill)


def test_nonfinite_fill_samples_in_fill_sensitivity():
    x = mark_examples(_inputs(), [1])
    fills = {"mean": MeanFill(), "bad": NonFiniteFill(math.nan, deterministic=False)}
    for evaluation in ("prediction", "all_labels"):
        with pytest.raises(ValueError, match=r"samples of `fill`: NaN or infinite values"):
            fill_sensitivity(
                {"cos": _explain}, _model(), x, fills, evaluation=evaluation, **CURVE, seed=0
            )


def test_simple_masking_stops_when_the_outputs_turn_nonfinite_during_optimisation():
    # forward call 1 counts the outputs; step s is call s + 1: the outputs turn NaN at step 3
    model = _model()
    with (
        nonfinite_outputs(model, math.nan, after=3),
        pytest.raises(ValueError, match=r"masked inputs at step 3: NaN .*examples \[0, 1, 2\]"),
    ):
        SimpleMasking(model).attribute(_inputs(), TARGET, steps=10, downsample=2)


# ---- declared probabilities ------------------------------------------------------------

PROBABILITY_CASES = {
    "insertion_curve": lambda m, x: insertion_curve(
        m, x, _maps(), TARGET, fractions=4, head="probabilities"
    ),
    "deletion_curve": lambda m, x: deletion_curve(
        m, x, _maps(), TARGET, fractions=4, head="probabilities"
    ),
    "completeness": lambda m, x: completeness(
        m, x, _maps(), TARGET, fractions=4, head="probabilities"
    ),
    "soundness": lambda m, x: soundness(m, x, _maps(), TARGET, fractions=4, head="probabilities"),
    "evaluate_all_labels": lambda m, x: evaluate_all_labels(
        _explain, m, x, fractions=4, head="probabilities"
    ),
    "fill_sensitivity": lambda m, x: fill_sensitivity(
        {"cos": _explain}, m, x, {"mean": MeanFill()}, fractions=4, head="probabilities"
    ),
}


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


@pytest.mark.parametrize("name", list(PROBABILITY_CASES))
def test_declared_probabilities_must_be_probabilities(name: str) -> None:
    logits = nn.Sequential(_model(), _Scale(10.0))  # raw scores, some negative
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*head='probabilities'"):
        PROBABILITY_CASES[name](logits, _inputs())
    # per-label probabilities (a sigmoid each) need not sum to 1: accepted
    sigmoid = nn.Sequential(_model(), nn.Sigmoid())
    PROBABILITY_CASES[name](sigmoid, _inputs())


# ---- constant maps and the formulas -----------------------------------------------------


def test_constant_maps_warn():
    model, x = _model(), _inputs()
    zeros = torch.zeros_like(x)
    with pytest.warns(UserWarning, match=r"Constant saliency maps \(rows \[0, 1, 2\]\)"):
        insertion_curve(model, x, zeros, TARGET, fractions=4)
    with pytest.warns(UserWarning, match="Constant saliency maps"):
        evaluate_all_labels(lambda i, t: torch.zeros_like(i), model, x, fractions=4)


@pytest.mark.parametrize("formula", [completeness_from_scores, soundness_from_scores])
def test_no_nan_becomes_a_score(formula: Any) -> None:
    half = torch.tensor([0.5, 0.5])
    nan = torch.tensor([0.5, math.nan])
    with pytest.raises(ValueError, match=r"`insertion_score`: NaN .*examples \[1\]"):
        formula(nan, half)
    with pytest.raises(ValueError, match=r"`prob`: NaN .*examples \[1\]"):
        formula(half, nan)  # was 1.0: NaN > 0 is false
    with pytest.raises(ValueError, match=r"`prob` must lie in \[0, 1\]"):
        formula(half, torch.tensor([0.5, -3.0]))


def test_saliency_explanations_of_a_nan_model_raise_in_class_sensitivity():
    model, x = _model(), mark_examples(_inputs(), [2])
    with nonfinite_outputs(model, math.nan), pytest.raises(ValueError, match=r"examples \[2\]"):
        class_sensitivity(Saliency(model).attribute, model, x)
