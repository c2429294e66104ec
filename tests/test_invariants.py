"""The invariants every public entry point that runs a model keeps, checked with the shared
harness (:mod:`helpers.invariants`) through public imports only:

- the model is left as found (modes, ``requires_grad``, ``.grad``, parameters, buffers,
  hooks), for an eval-mode model with a frozen parameter and a stored gradient;
- the global random states are untouched where nothing is random or an explicit seed is
  given; with ``seed=None`` the one seed of a call is drawn from torch's global RNG, so
  ``torch.manual_seed`` before two calls gives the same result;
- the same seed gives the same result, another seed another one (random fills);
- ``max_examples_per_batch`` (and ``explain_batch_size``) of 1, 2 and ``None`` give the
  same result.

Each entry point runs on images ``(N, C, H, W)`` and, where it takes them (Captum's
conventions), on a tuple of inputs (an image and tabular metadata) and on tabular inputs
``(N, F)``. Tiny float64 models, few steps. A case that fails an invariant is marked
``xfail(strict=True)`` in ``XFAIL`` with the reason, until the entry point is fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from helpers import (
    TwoInputNet,
    assert_chunking_invariant,
    assert_global_rng_untouched,
    assert_global_seed_repeatable,
    assert_model_untouched,
    assert_same,
    assert_seeded_determinism,
    bn_dropout_cnn,
    mark_model_state,
    seeded_randn,
    tabular_net,
)
from torch import nn

from captum_soundness.attr import FullGrad, LayerGradCamPlusPlus, SimpleMasking
from captum_soundness.benchmark import QUICK_SETTINGS, evaluate_dataset
from captum_soundness.fills import MeanFill, NoiseFill
from captum_soundness.metrics import (
    completeness,
    deletion_curve,
    evaluate_all_labels,
    ig_completeness_error,
    ig_completeness_passes,
    ig_steps_for_tolerance,
    insertion_curve,
    soundness,
)
from captum_soundness.sanity import class_sensitivity, fill_sensitivity, model_randomization

pytestmark = [
    # captum's Saliency sets requires_grad on the inputs it is given, and says so
    pytest.mark.filterwarnings("ignore:Input Tensor . did not already require"),
    # the package never uses its own deprecated arguments
    pytest.mark.filterwarnings("error::DeprecationWarning"),
]

TARGET = [0, 2, 1]
CURVE = {"fractions": 4, "n_fill_samples": 2}  # with a random fill: the seed matters


@dataclass(frozen=True)
class Data:
    """A model and inputs of one kind, with attributions shaped like the inputs."""

    name: str
    model: Callable[[], nn.Module]
    inputs: Callable[[], Any]
    maps: Callable[[], Any]
    layer: Callable[[nn.Module], nn.Module]


def _model() -> nn.Module:
    """conv -> batch-norm -> ReLU -> dropout -> pool -> linear (float64, eval mode): the
    batch-norm statistics and the dropout make a mode or buffer change visible."""
    return bn_dropout_cnn().double()


def _inputs() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=1, dtype=torch.float64)


def _maps() -> torch.Tensor:
    return seeded_randn(3, 2, 8, 8, seed=2, dtype=torch.float64)


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = seeded_randn(3, 2, 8, 8, seed=seed, dtype=torch.float64)
    return image, seeded_randn(3, 3, seed=seed + 10, dtype=torch.float64)


IMAGES = Data("images", _model, _inputs, _maps, lambda m: m[0])
TUPLE = Data(
    "tuple",
    lambda: TwoInputNet().double(),
    lambda: _pair(1),
    lambda: _pair(2),
    lambda m: m.cam_layer,
)
TABULAR = Data(
    "tabular",
    lambda: tabular_net().double(),
    lambda: seeded_randn(3, 5, seed=1, dtype=torch.float64),
    lambda: seeded_randn(3, 5, seed=2, dtype=torch.float64),
    lambda m: m[0],
)


def _explain_one(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    t = target.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return x * torch.cos(t + torch.linspace(0.0, 3.0, x.shape[-1], dtype=x.dtype))


def _explain(inputs: Any, target: torch.Tensor) -> Any:
    """Deterministic maps that depend on the inputs and the label (not on the model), in
    the inputs' container."""
    if isinstance(inputs, tuple):
        return tuple(_explain_one(x, target) for x in inputs)
    return _explain_one(inputs, target)


def _explain_abs(inputs: Any, target: torch.Tensor) -> Any:
    maps = _explain(inputs, target)
    return tuple(m.abs() for m in maps) if isinstance(maps, tuple) else maps.abs()


def _evaluate_dataset(
    model: nn.Module,
    x: torch.Tensor,
    a: Any,
    data: Data,
    seed: int = 0,
    batch_size: int | None = None,
) -> Any:
    """The benchmark on ``model`` and the images ``x``: Saliency and the random floor."""
    settings = dataclasses.replace(
        QUICK_SETTINGS,
        fractions=4,
        eval_fill_samples=2,
        sanity=False,
        show_progress=False,
        seed=seed,
    )
    return evaluate_dataset(
        model,
        [(image, 0) for image in x],
        ("saliency", "random"),
        settings=settings,
        batch_size=batch_size or len(x),
        figures=False,
        log=None,
    )


ALL_KINDS = (IMAGES, TUPLE, TABULAR)

#: fill_sensitivity's fills per kind of data (MeanFill needs spatial dimensions).
_FILLS: dict[str, Callable[[], dict[str, Any]]] = {
    "images": lambda: {"mean": MeanFill(), "noise": NoiseFill()},
    "tuple": lambda: {"mean": (MeanFill(), 0.0), "noise": NoiseFill()},
    "tabular": lambda: {"zero": 0.0, "noise": NoiseFill()},
}


@dataclass(frozen=True)
class EntryPoint:
    """``run(model, inputs, attributions, data, **kw)`` calls the entry point; ``kw`` holds
    ``seed`` where ``seeded`` and ``max_examples_per_batch`` (or ``chunk_arg``) where
    ``chunked``. ``kinds``: the data it takes; ``seed_none``: ``seed=None`` is allowed."""

    name: str
    run: Callable[..., Any]
    seeded: bool = False
    chunked: bool = False
    chunk_arg: str = "max_examples_per_batch"
    kinds: tuple[Data, ...] = ALL_KINDS
    seed_none: bool = True


def _curve(func: Callable[..., Any]) -> EntryPoint:
    return EntryPoint(
        func.__name__,
        lambda m, x, a, d, **kw: func(m, x, a, TARGET, baselines=NoiseFill(), **CURVE, **kw),
        seeded=True,
        chunked=True,
    )


ENTRY_POINTS = [
    EntryPoint(
        "SimpleMasking.attribute",
        lambda m, x, a, d, **kw: SimpleMasking(m).attribute(
            x,
            TARGET,
            baselines=NoiseFill(),
            steps=6,
            n_fill_samples=2,
            downsample=2 if d is IMAGES else 1,
            **kw,
        ),
        seeded=True,
        chunked=True,
    ),
    EntryPoint(
        "LayerGradCamPlusPlus.attribute",
        lambda m, x, a, d: LayerGradCamPlusPlus(m, d.layer(m)).attribute(x, TARGET),
    ),
    EntryPoint("FullGrad.attribute", lambda m, x, a, d: FullGrad(m).attribute(x, TARGET)),
    _curve(insertion_curve),
    _curve(deletion_curve),
    _curve(completeness),
    _curve(soundness),
    EntryPoint(
        "evaluate_all_labels",
        lambda m, x, a, d, **kw: evaluate_all_labels(
            _explain, m, x, baselines=NoiseFill(), deletion="all", **CURVE, **kw
        ),
        seeded=True,
        chunked=True,
    ),
    EntryPoint(
        "evaluate_all_labels[explain_batch_size]",
        lambda m, x, a, d, **kw: evaluate_all_labels(
            _explain, m, x, baselines=NoiseFill(), **CURVE, **kw
        ),
        seeded=True,
        chunked=True,
        chunk_arg="explain_batch_size",
    ),
    EntryPoint(
        "ig_completeness_error",
        lambda m, x, a, d: ig_completeness_error(m, x, a, None, TARGET),
    ),
    EntryPoint(
        "ig_completeness_passes",
        lambda m, x, a, d: ig_completeness_passes(m, x, a, 0.1, TARGET),
    ),
    EntryPoint(
        "ig_steps_for_tolerance",
        lambda m, x, a, d: ig_steps_for_tolerance(
            IntegratedGradients(m), x, target=TARGET, steps=(2, 4)
        ),
    ),
    EntryPoint(
        "model_randomization",
        lambda m, x, a, d, **kw: model_randomization(
            lambda net: Saliency(net).attribute, m, x, TARGET, similarity=("spearman",), **kw
        ),
        seeded=True,
    ),
    EntryPoint(
        "class_sensitivity",
        lambda m, x, a, d: class_sensitivity(
            lambda i, target: Saliency(m).attribute(i, target), m, x
        ),
    ),
    EntryPoint(
        "fill_sensitivity",
        lambda m, x, a, d, **kw: fill_sensitivity(
            {"cos": _explain, "abs": _explain_abs},
            m,
            x,
            _FILLS[d.name](),
            **CURVE,
            **kw,
        ),
        seeded=True,
        chunked=True,
    ),
    EntryPoint(
        "evaluate_dataset",
        _evaluate_dataset,
        seeded=True,
        chunked=True,
        chunk_arg="batch_size",
        kinds=(IMAGES,),
        seed_none=False,  # the benchmark's seed is a setting (an int)
    ),
]

# Parts of a result that record the call rather than compute it (arguments, clock times).
NOT_COMPUTED = ("settings", "started", "wall_seconds", "seconds", "seconds_per_map")

# (check, entry point name) -> reason: known violations, fixed by a later issue.
XFAIL: dict[tuple[str, str], str] = {}


def _cases(check: str, keep: Callable[[EntryPoint], bool] = lambda ep: True) -> list[Any]:
    cases = []
    for ep in ENTRY_POINTS:
        if not keep(ep):
            continue
        for data in ep.kinds:
            reason = XFAIL.get((check, ep.name)) or XFAIL.get((check, f"{ep.name}[{data.name}]"))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(ep, data, id=f"{ep.name}-{data.name}", marks=marks))
    return cases


def _seed_kw(ep: EntryPoint, seed: int = 0) -> dict[str, Any]:
    return {"seed": seed} if ep.seeded else {}


def _run(ep: EntryPoint, data: Data, model: nn.Module, **kw: Any) -> Any:
    return ep.run(model, data.inputs(), data.maps(), data, **kw)


@pytest.mark.parametrize(("ep", "data"), _cases("model_untouched"))
def test_model_untouched(ep: EntryPoint, data: Data) -> None:
    model = mark_model_state(data.model())
    assert_model_untouched(model, lambda: _run(ep, data, model, **_seed_kw(ep)))


@pytest.mark.parametrize(("ep", "data"), _cases("global_rng_untouched"))
def test_global_rng_untouched_with_an_explicit_seed(ep: EntryPoint, data: Data) -> None:
    """Where nothing is random, or with an explicit seed, no global RNG is touched."""
    model = data.model()
    assert_global_rng_untouched(lambda: _run(ep, data, model, **_seed_kw(ep)))


@pytest.mark.parametrize(
    ("ep", "data"), _cases("global_seed", lambda ep: ep.seeded and ep.seed_none)
)
def test_seed_none_is_repeatable_under_manual_seed(ep: EntryPoint, data: Data) -> None:
    model = data.model()
    assert_global_seed_repeatable(
        lambda: _run(ep, data, model, seed=None), seed=7, ignore=NOT_COMPUTED
    )


@pytest.mark.parametrize(("ep", "data"), _cases("seeded_determinism", lambda ep: ep.seeded))
def test_seeded_determinism(ep: EntryPoint, data: Data) -> None:
    model = data.model()
    assert_seeded_determinism(
        lambda s: _run(ep, data, model, seed=s), seed=0, other_seed=1, ignore=NOT_COMPUTED
    )


@pytest.mark.parametrize(("ep", "data"), _cases("chunking", lambda ep: ep.chunked))
def test_chunked_equals_unchunked(ep: EntryPoint, data: Data) -> None:
    model = data.model()
    # float64: equal up to the model's own batch-size-dependent rounding
    assert_chunking_invariant(
        lambda size: _run(ep, data, model, seed=0, **{ep.chunk_arg: size}),
        atol=1e-10,
        rtol=0.0,
        ignore=NOT_COMPUTED,
        name=ep.chunk_arg,
    )


# ---------------------------------------------------------------------------------------
# the harness catches what it should


def test_model_check_catches_changes() -> None:
    changes: list[Callable[[nn.Module], Any]] = [
        lambda m: m.train(),
        lambda m: m[1].train(),
        lambda m: m[0].weight.requires_grad_(True),
        lambda m: setattr(m[-1].bias, "grad", None),
        lambda m: setattr(m[-1].weight, "grad", torch.zeros_like(m[-1].weight)),
        lambda m: m[-1].bias.grad.add_(1.0),
        lambda m: m[-1].bias.data.add_(1e-12),
        lambda m: m[1].running_mean.add_(1.0),
        lambda m: m[0].register_forward_hook(lambda *args: None),
        lambda m: m[0].register_full_backward_hook(lambda *args: None),
        lambda m: m[0].bias.register_hook(lambda grad: grad),
    ]
    for change in changes:
        model = mark_model_state(_model())
        with pytest.raises(AssertionError):
            assert_model_untouched(model, lambda: change(model))  # noqa: B023
    model = mark_model_state(_model())
    assert_model_untouched(model, lambda: model(_inputs()))


def test_rng_and_result_checks_catch_changes() -> None:
    with pytest.raises(AssertionError, match="torch"):
        assert_global_rng_untouched(lambda: torch.rand(1))
    with pytest.raises(AssertionError):
        assert_seeded_determinism(lambda s: torch.rand(3, generator=None))
    with pytest.raises(AssertionError, match="gives the same result"):
        assert_seeded_determinism(lambda s: torch.zeros(3), other_seed=1)
    with pytest.raises(AssertionError, match="did not draw"):
        assert_global_seed_repeatable(lambda: torch.zeros(3))
    with pytest.raises(AssertionError, match="second call"):
        assert_global_seed_repeatable(
            lambda: (
                torch.rand(1)
                + torch.rand(
                    1,
                    generator=torch.Generator().manual_seed(
                        int(torch.empty((), dtype=torch.int64).random_()) ^ id(object())
                    ),
                )
            )
        )
    assert_same(
        assert_global_seed_repeatable(lambda: torch.rand(2), seed=3),
        torch.rand(2, generator=torch.Generator().manual_seed(3)),
    )
    with pytest.raises(AssertionError, match="max_examples_per_batch=1"):
        assert_chunking_invariant(lambda m: torch.tensor(float(m or 0)))
    assert_same({"a": [torch.ones(2), 1.0, "x"]}, {"a": [torch.ones(2), 1.0, "x"]})
    with pytest.raises(AssertionError):
        assert_same(torch.ones(2), torch.ones(2, dtype=torch.float64))
    assert_same({"a": 1, "settings": 2}, {"a": 1, "settings": 3}, ignore=("settings",))
