"""Conformance with Captum (issue 11): every public method and metric, run as a Captum
user runs Captum's own methods, on Captum's own test models.

1. Targets: every form of Captum's ``TargetType`` on ``(N, C)`` and ``(N, A, C)``
   outputs. Where Captum's :class:`~captum.attr.Saliency` raises, ours raises a
   ``ValueError``/``TypeError``; where Captum succeeds, ours succeeds and explains the
   score Captum selects (the same result as the canonical list of index tuples; for the
   metrics, the clean probability of that score). ``target=None`` explains the predicted
   label of ``(N, C)`` outputs (the documented rule) and raises on other outputs.
2. Inputs: a tensor and a 1-tuple give the same numbers bit for bit in the matching
   container; 2-tuples; a batch of one; tabular, image and float64 inputs.
3. Wrappers: ``DataParallel``, a traced model, ``NoiseTunnel``,
   ``captum.metrics.sensitivity_max`` and ``infidelity``.
4. ``explain_kwargs`` of :func:`evaluate_all_labels` with per-example tensors.
5. Seeds: ``seed=None`` follows ``torch.manual_seed`` (one draw, DataLoader's rule); an
   explicit seed leaves the global RNG untouched.
"""

from __future__ import annotations

import unittest
import warnings

import pytest
import torch
from captum.attr import (
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
)
from captum.metrics import infidelity, sensitivity_max
from captum.testing.helpers.basic import assertTensorAlmostEqual
from helpers.captum_cases import (
    OUTPUTS,
    TARGETS,
    N,
    as_index_tuples,
    attributions_like,
    expected_flat_target,
    find_layer,
    forward,
    input_case,
    pair_case,
    seeded_linear_model,
    tabular_inputs,
)
from torch import Tensor, nn

from captum_soundness.attr import FullGrad, LayerGradCamPlusPlus, SimpleMasking
from captum_soundness.fills import NoiseFill
from captum_soundness.metrics import (
    completeness,
    completeness_from_scores,
    deletion_curve,
    evaluate_all_labels,
    ig_completeness_error,
    insertion_curve,
    soundness,
    soundness_from_scores,
)

_TC = unittest.TestCase()

METHODS = ("SimpleMasking", "LayerGradCamPlusPlus", "FullGrad")
METRICS = (
    "insertion_curve",
    "deletion_curve",
    "completeness",
    "soundness",
    "evaluate_all_labels",
    "ig_completeness_error",
)
TARGET_METRICS = tuple(m for m in METRICS if m != "evaluate_all_labels")
INPUT_CASES = (
    "tabular",
    "image",
    "batch_of_one_tabular",
    "batch_of_one_image",
    "float64_tabular",
    "float64_image",
)
PAIR_CASES = ("tabular_pair", "image_pair")
#: SimpleMasking: the "fast" preset with a tiny override.
MASKING_KWARGS = {"preset": "fast", "steps": 2, "n_fill_samples": 2, "seed": 0}
FRACTIONS = (0.5, 1.0)


def _almost(actual: Tensor, expected: Tensor, delta: float = 1e-6) -> None:
    assertTensorAlmostEqual(_TC, actual, expected, delta=delta, mode="max")


def _same(actual, expected) -> None:
    """Bit-for-bit equality of tensors, tuples of tensors or reports."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _same(a, e)
    elif isinstance(expected, Tensor):
        assert isinstance(actual, Tensor)
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert torch.equal(actual, expected), (actual, expected)
    else:
        for field in ("probs", "insertion", "completeness", "soundness", "predicted"):
            _same(getattr(actual, field), getattr(expected, field))


def _attribution(method: str, model, layer: str):
    """The attribution object of ``method`` on ``model`` and the keywords of its calls."""
    if method == "SimpleMasking":
        return SimpleMasking(model), dict(MASKING_KWARGS)
    if method == "LayerGradCamPlusPlus":
        return LayerGradCamPlusPlus(model, find_layer(model, layer)), {}
    if method == "FullGrad":
        return FullGrad(model), {}
    raise KeyError(method)


def _metric(metric: str, model, inputs, attributions, target=None, **kwargs):
    """One metric call with the suite's tiny grid."""
    if metric == "ig_completeness_error":
        return ig_completeness_error(model, inputs, attributions, target=target, **kwargs)
    if metric == "evaluate_all_labels":
        explain = InputXGradient(model).attribute
        return evaluate_all_labels(explain, model, inputs, fractions=FRACTIONS, **kwargs)
    funcs = {
        "insertion_curve": insertion_curve,
        "deletion_curve": deletion_curve,
        "completeness": completeness,
        "soundness": soundness,
    }
    return funcs[metric](model, inputs, attributions, target, fractions=FRACTIONS, **kwargs)


def _selected(values: Tensor, flat: Tensor) -> Tensor:
    """``values.flatten(1)[i, flat[i]]`` for every example ``i``."""
    return values.flatten(1).gather(1, flat.view(-1, 1)).squeeze(1)


# ---- 1. targets ------------------------------------------------------------------------


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("case", list(TARGETS))
@pytest.mark.parametrize("method", METHODS)
def test_method_target_conforms_to_captum(method: str, case: str, output: str) -> None:
    model, x = OUTPUTS[output](), tabular_inputs()
    flat = expected_flat_target(model, x, TARGETS[case]())
    attribution, kwargs = _attribution(method, model, "linear1")
    if flat is None:
        with pytest.raises((ValueError, TypeError)):
            attribution.attribute(x, target=TARGETS[case](), **kwargs)
        return
    got = attribution.attribute(x, target=TARGETS[case](), **kwargs)
    canonical = as_index_tuples(flat, forward(model, x).shape)
    _same(got, attribution.attribute(x, target=canonical, **kwargs))


@pytest.mark.parametrize("method", METHODS)
def test_method_maps_depend_on_the_target(method: str) -> None:
    """The target cases have teeth: on ``N_C_linear`` labels 0 and 2 get different maps."""
    model, x = OUTPUTS["N_C_linear"](), tabular_inputs()
    attribution, kwargs = _attribution(method, model, "linear1")
    first = attribution.attribute(x, target=0, **kwargs)
    assert not torch.equal(first, attribution.attribute(x, target=2, **kwargs))


def _metric_reference(metric: str, model, x: Tensor, attr: Tensor, flat: Tensor) -> Tensor:
    """The metric for the score ``flat`` selects, from the canonical target and the
    clean (and fully deleted) probabilities computed here."""
    out = forward(model, x)
    canonical = as_index_tuples(flat, out.shape)
    if metric == "ig_completeness_error":
        diff = _selected(out, flat) - _selected(forward(model, torch.zeros_like(x)), flat)
        return (attr.flatten(1).sum(1) - diff).abs() / diff.abs()
    prob = _selected(torch.softmax(out, dim=-1), flat)
    curve = insertion_curve(model, x, attr, canonical, fractions=FRACTIONS)
    _almost(curve[:, -1], prob)  # the clean input at fraction 1: Captum's selected score
    if metric == "insertion_curve":
        return curve
    if metric == "deletion_curve":
        deleted = deletion_curve(model, x, attr, canonical, fractions=FRACTIONS)
        empty = torch.softmax(forward(model, torch.zeros_like(x)), dim=-1)
        _almost(deleted[:, -1], _selected(empty, flat))  # all removed: the baseline
        return deleted
    if metric == "completeness":
        return completeness_from_scores(curve.mean(dim=1), prob)
    return soundness_from_scores(curve.mean(dim=1), prob)


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("case", list(TARGETS))
@pytest.mark.parametrize("metric", TARGET_METRICS)
def test_metric_target_conforms_to_captum(metric: str, case: str, output: str) -> None:
    model, x = OUTPUTS[output](), tabular_inputs()
    attr = attributions_like(x)
    prediction = metric != "ig_completeness_error"  # IG's axiom needs one score, as Captum
    flat = expected_flat_target(model, x, TARGETS[case](), none_is_prediction=prediction)
    if flat is None:
        with pytest.raises((ValueError, TypeError)):
            _metric(metric, model, x, attr, TARGETS[case]())
        return
    got = _metric(metric, model, x, attr, TARGETS[case]())
    want = _metric_reference(metric, model, x, attr, flat)
    _almost(got, want, delta=1e-6 * max(1.0, float(want.abs().max())))  # relative errors


def test_evaluate_all_labels_refuses_multidimensional_outputs() -> None:
    model, x = OUTPUTS["N_A_C"](), tabular_inputs()
    with pytest.raises(ValueError, match=r"labels|shape"):
        _metric("evaluate_all_labels", model, x, None)


# ---- 2. inputs -------------------------------------------------------------------------


def _expected_shape(method: str, model, x: Tensor, layer: str) -> torch.Size:
    """Inputs' shape, or for GradCAM++ the shape of Captum's LayerGradCam map."""
    if method != "LayerGradCamPlusPlus":
        return x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LayerGradCam(model, find_layer(model, layer)).attribute(x, target=1).shape


@pytest.mark.parametrize("case", INPUT_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_method_tensor_and_one_tuple(method: str, case: str) -> None:
    model, x, layer = input_case(case)
    attribution, kwargs = _attribution(method, model, layer)
    plain = attribution.attribute(x, target=1, **kwargs)
    packed = attribution.attribute((x,), target=1, **kwargs)
    assert isinstance(plain, Tensor)
    assert isinstance(packed, tuple) and len(packed) == 1
    _same(packed[0], plain)
    assert plain.dtype == x.dtype
    assert plain.shape == _expected_shape(method, model, x, layer)
    assert bool(torch.isfinite(plain).all())


@pytest.mark.parametrize("case", PAIR_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_method_two_tuple(method: str, case: str) -> None:
    model, xs, args, layer = pair_case(case)
    attribution, kwargs = _attribution(method, model, layer)
    if method == "FullGrad" and case == "image_pair":  # documented: ambiguous bias terms
        with pytest.raises(ValueError, match="could belong to inputs"):
            attribution.attribute(xs, target=1, additional_forward_args=args)
        return
    got = attribution.attribute(xs, target=1, additional_forward_args=args, **kwargs)
    assert isinstance(got, tuple)
    if method == "LayerGradCamPlusPlus":  # one layer, one map, in a 1-tuple
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cam = LayerGradCam(model, find_layer(model, layer))
            want = cam.attribute(xs, target=1, additional_forward_args=args)
        assert len(got) == 1 and got[0].shape == want.shape
    else:
        assert len(got) == 2
        assert [g.shape for g in got] == [x.shape for x in xs]
    assert all(bool(torch.isfinite(g).all()) for g in got)


@pytest.mark.parametrize("case", INPUT_CASES)
@pytest.mark.parametrize("metric", METRICS)
def test_metric_tensor_and_one_tuple(metric: str, case: str) -> None:
    model, x, _ = input_case(case)
    attr = attributions_like(x)
    plain = _metric(metric, model, x, attr, 1)
    packed = _metric(metric, model, (x,), (attr,), 1)
    _same(packed, plain)
    if isinstance(plain, Tensor):
        assert plain.dtype == x.dtype
        assert plain.shape[0] == x.shape[0]
    else:
        assert plain.insertion.dtype == x.dtype
        assert plain.insertion.shape == (x.shape[0], 2 if x.dim() == 2 else 4, 2)


def _pair_metric_check(metric: str, got, model, xs, attrs, args) -> None:
    """What a metric on a 2-tuple must give: shapes, and the clean probabilities."""
    out = forward(model, (*xs, *(args or ())))
    prob = torch.softmax(out, dim=-1)
    if metric == "evaluate_all_labels":
        assert got.insertion.shape == (N, out.shape[1], len(FRACTIONS))
        _almost(got.probs, prob)
    elif metric == "ig_completeness_error":
        zeros = tuple(torch.zeros_like(x) for x in xs)
        diff = out[:, 1] - forward(model, (*zeros, *(args or ())))[:, 1]
        total = sum(a.flatten(1).sum(1) for a in attrs)
        _almost(got, (total - diff).abs() / diff.abs())
    elif metric == "insertion_curve":
        assert got.shape == (N, len(FRACTIONS))
        _almost(got[:, -1], prob[:, 1])
    else:
        assert got.shape == ((N, len(FRACTIONS)) if metric == "deletion_curve" else (N,))


@pytest.mark.parametrize("case", PAIR_CASES)
@pytest.mark.parametrize("metric", METRICS)
def test_metric_two_tuple(metric: str, case: str) -> None:
    model, xs, args, _ = pair_case(case)
    attrs = tuple(attributions_like(x, seed=i) for i, x in enumerate(xs))
    got = _metric(metric, model, xs, attrs, 1, additional_forward_args=args)
    _pair_metric_check(metric, got, model, xs, attrs, args)


# ---- 3. wrappers -----------------------------------------------------------------------


def _data_parallel(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no GPU: DataParallel calls the module
        return nn.DataParallel(model).eval()


def _traced(model: nn.Module, x: Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, x)


@pytest.mark.parametrize("case", ["tabular", "image"])
@pytest.mark.parametrize("method", METHODS)
def test_method_data_parallel(method: str, case: str) -> None:
    model, x, layer = input_case(case)
    attribution, kwargs = _attribution(method, model, layer)
    wrapped, _ = _attribution(method, _data_parallel(model), layer)
    for inputs in (x, (x,)):
        _same(
            wrapped.attribute(inputs, target=1, **kwargs),
            attribution.attribute(inputs, target=1, **kwargs),
        )


@pytest.mark.parametrize("case", ["tabular", "image"])
@pytest.mark.parametrize("method", METHODS)
def test_method_traced_model(method: str, case: str) -> None:
    model, x, layer = input_case(case)
    traced = _traced(model, x)
    if method != "SimpleMasking":  # hooks do not run in TorchScript: a clear refusal
        with pytest.raises(TypeError, match="TorchScript"):
            _attribution(method, traced, layer)
        return
    attribution, kwargs = _attribution(method, model, layer)
    wrapped, _ = _attribution(method, traced, layer)
    _almost(wrapped.attribute(x, target=1, **kwargs), attribution.attribute(x, 1, **kwargs))


#: How far a map may move when its example is explained in a larger batch (NoiseTunnel and
#: sensitivity_max repeat the examples). SimpleMasking divides the summed loss by the
#: number of examples (the reference recipe), which reaches the masks through Adam's eps:
#: about 1e-4 where the objective's gradient vanishes (Captum's tabular model, whose two
#: logits differ by a constant, leaves only the l1 term).
_BATCH_DELTA = {"SimpleMasking": 1e-3, "LayerGradCamPlusPlus": 1e-5, "FullGrad": 1e-5}


@pytest.mark.parametrize("case", ["tabular", "image"])
@pytest.mark.parametrize("method", METHODS)
def test_noise_tunnel(method: str, case: str) -> None:
    model, x, layer = input_case(case)
    attribution, kwargs = _attribution(method, model, layer)
    tunnel = NoiseTunnel(attribution)
    plain = attribution.attribute(x, target=1, **kwargs)
    # Without noise, the average over nt_samples copies is the method's own map.
    still = tunnel.attribute(x, nt_samples=2, stdevs=0.0, target=1, **kwargs)
    _almost(still, plain, delta=_BATCH_DELTA[method])
    noisy = tunnel.attribute((x,), nt_samples=2, stdevs=0.1, target=1, **kwargs)
    assert isinstance(noisy, tuple) and len(noisy) == 1
    assert noisy[0].shape == plain.shape and bool(torch.isfinite(noisy[0]).all())
    smooth = tunnel.attribute(
        x, nt_type="smoothgrad_sq", nt_samples=2, stdevs=0.1, target=1, **kwargs
    )
    assert smooth.shape == plain.shape


@pytest.mark.parametrize("method", METHODS)
def test_captum_sensitivity_max(method: str) -> None:
    model, x, layer = input_case("image")
    attribution, kwargs = _attribution(method, model, layer)
    sens = sensitivity_max(
        attribution.attribute, x, target=1, n_perturb_samples=2, perturb_radius=0.02, **kwargs
    )
    assert sens.shape == (x.shape[0],) and bool((sens >= 0).all())
    assert bool(torch.isfinite(sens).all())
    # No perturbation, no change: the method is deterministic (an explicit seed).
    still = sensitivity_max(
        attribution.attribute, (x,), target=1, n_perturb_samples=2, perturb_radius=0.0, **kwargs
    )
    _almost(still, torch.zeros(x.shape[0]), delta=_BATCH_DELTA[method])


def _noise(inputs: Tensor) -> tuple[Tensor, Tensor]:
    noise = 0.1 * torch.randn(inputs.shape, generator=torch.Generator().manual_seed(5))
    return noise, inputs - noise


@pytest.mark.parametrize("method", METHODS)
def test_captum_infidelity(method: str) -> None:
    model, x, layer = input_case("image")
    attribution, kwargs = _attribution(method, model, layer)
    attr = attribution.attribute(x, target=1, **kwargs)
    if method == "LayerGradCamPlusPlus":  # layer map, upsampled as Captum's GradCAM
        attr = LayerAttribution.interpolate(attr, tuple(x.shape[2:])).expand_as(x)
    value = infidelity(model, _noise, x, attr, target=1, n_perturb_samples=2)
    assert value.shape == (x.shape[0],)
    assert bool(torch.isfinite(value).all()) and bool((value >= 0).all())


@pytest.mark.parametrize("case", ["tabular", "image"])
@pytest.mark.parametrize("metric", METRICS)
def test_metric_data_parallel_and_traced(metric: str, case: str) -> None:
    model, x, _ = input_case(case)
    attr = attributions_like(x)
    plain = _metric(metric, model, x, attr, 1)
    _same(_metric(metric, _data_parallel(model), x, attr, 1), plain)
    traced = _metric(metric, _traced(model, x), x, attr, 1)
    if isinstance(plain, Tensor):
        _almost(traced, plain)
    else:
        for field in ("probs", "insertion", "completeness", "soundness"):
            _almost(getattr(traced, field), getattr(plain, field))


# ---- 4. explain_kwargs -----------------------------------------------------------------


def _manual_report(explain, model, x, labels, **kwargs) -> dict[str, Tensor]:
    """The per-label loop: the explanation and its scores label by label."""
    curves, comp, sound = [], [], []
    for label in labels:
        attr = explain(x, target=label, **kwargs)
        curves.append(insertion_curve(model, x, attr, label, fractions=FRACTIONS))
        comp.append(completeness(model, x, attr, label, fractions=FRACTIONS))
        sound.append(soundness(model, x, attr, label, fractions=FRACTIONS))
    return {
        "insertion": torch.stack(curves, dim=1),
        "completeness": torch.stack(comp, dim=1),
        "soundness": torch.stack(sound, dim=1),
    }


def _check_explain_kwargs(explain, model, x, kwargs, explain_batch_size) -> None:
    report = evaluate_all_labels(
        explain,
        model,
        x,
        explain_kwargs=kwargs,
        fractions=FRACTIONS,
        explain_batch_size=explain_batch_size,
    )
    manual = _manual_report(explain, model, x, report.labels, **kwargs)
    for field, expected in manual.items():
        _almost(getattr(report, field), expected, delta=1e-5)
    _almost(report.probs, torch.softmax(forward(model, x), dim=-1))


@pytest.mark.parametrize("explain_batch_size", [None, 2])
def test_explain_kwargs_integrated_gradients_baselines(explain_batch_size) -> None:
    model, x = seeded_linear_model(), tabular_inputs(3)
    baselines = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -2.0], [-1.0, 3.0, 1.0]])
    kwargs = {"baselines": baselines, "n_steps": 8}
    explain = IntegratedGradients(model).attribute
    _check_explain_kwargs(explain, model, x, kwargs, explain_batch_size)
    # The baselines matter: a shared zero baseline ranks differently.
    assert not torch.equal(explain(x, target=0, **kwargs), explain(x, target=0, n_steps=8))


@pytest.mark.parametrize("explain_batch_size", [None, 2])
def test_explain_kwargs_feature_ablation_mask(explain_batch_size) -> None:
    model, x = seeded_linear_model(), tabular_inputs(3)
    mask = torch.tensor([[0, 0, 1], [0, 1, 1], [0, 1, 2]])
    explain = FeatureAblation(model).attribute
    _check_explain_kwargs(explain, model, x, {"feature_mask": mask}, explain_batch_size)


# ---- 5. seeds --------------------------------------------------------------------------

RANDOM_CALLS = (
    "SimpleMasking",
    "insertion_curve",
    "deletion_curve",
    "completeness",
    "soundness",
    "evaluate_all_labels",
)
#: Calls whose results show a different seed (completeness and soundness may clip to 1).
SEED_VISIBLE = ("SimpleMasking", "insertion_curve", "deletion_curve", "evaluate_all_labels")


def _random_call(name: str, seed):
    """A call with a random fill (uniform noise, 2 samples) on a Captum tabular model."""
    model, x = seeded_linear_model(), tabular_inputs(3)
    kwargs = {"baselines": NoiseFill(), "n_fill_samples": 2, "seed": seed}
    if name == "SimpleMasking":
        return SimpleMasking(model).attribute(x, target=1, preset="fast", steps=2, **kwargs)
    return _metric(name, model, x, attributions_like(x), 1, **kwargs)


def _global_draw() -> int:
    """DataLoader's base seed: one int64 drawn from the global RNG."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


@pytest.mark.parametrize("name", RANDOM_CALLS)
def test_seed_none_follows_manual_seed(name: str) -> None:
    torch.manual_seed(1234)
    first = _random_call(name, None)
    after = torch.get_rng_state()
    torch.manual_seed(1234)
    _same(_random_call(name, None), first)
    # One draw from the global RNG (DataLoader's rule), used as the seed.
    torch.manual_seed(1234)
    drawn = _global_draw()
    assert torch.equal(torch.get_rng_state(), after)
    _same(_random_call(name, drawn), first)
    if name in SEED_VISIBLE:
        torch.manual_seed(4321)
        other = _random_call(name, None)
        values = other.insertion if name == "evaluate_all_labels" else other
        reference = first.insertion if name == "evaluate_all_labels" else first
        assert not torch.equal(values, reference)


@pytest.mark.parametrize("kind", ["int", "generator"])
@pytest.mark.parametrize("name", RANDOM_CALLS)
def test_explicit_seed_leaves_global_rng(name: str, kind: str) -> None:
    def seed():
        return 7 if kind == "int" else torch.Generator().manual_seed(7)

    torch.manual_seed(99)
    state = torch.get_rng_state()
    first = _random_call(name, seed())
    assert torch.equal(torch.get_rng_state(), state)
    _same(_random_call(name, seed()), first)
    assert torch.equal(torch.get_rng_state(), state)
