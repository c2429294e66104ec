"""Tests for SimpleMasking's recipes (captum_soundness.attr._recipes): presets, step-size
schedules and the area constraint (tiny models, few steps)."""

import inspect

import pytest
import torch
from helpers import (
    PATCH,
    PatchModel,
    assert_chunking_invariant,
    assert_seeded_determinism,
    bn_dropout_cnn,
    patch_inputs,
    seeded_randn,
)
from torch import nn

from captum_soundness.attr import LR_SCHEDULES, PRESETS, SimpleMasking
from captum_soundness.attr._recipes import lr_at
from captum_soundness.fills import DatasetFill, NoiseFill


def _x(n=3, c=2, h=6, w=5, seed=1):
    return seeded_randn(n, c, h, w, seed=seed)


RECIPE_OPTIONS = [
    {"lr_schedule": "cosine", "lr": 0.3},
    {"lr_schedule": "linear"},
    {"area": 0.2, "area_weight": 2.0},
    {"preset": "fast"},
    {"preset": "area"},
    {"preset": "sharp"},
]


@pytest.mark.parametrize("options", RECIPE_OPTIONS, ids=str)
def test_recipe_options_keep_the_invariants(options):
    x, sm = _x(n=5), SimpleMasking(bn_dropout_cnn())
    kw = {"target": [0, 1, 2, 0, 1], "steps": 12, "n_fill_samples": 3, **options}
    assert_chunking_invariant(
        lambda m: sm.attribute(x, baselines=NoiseFill(), seed=3, max_examples_per_batch=m, **kw),
        atol=1e-6,
    )
    assert_seeded_determinism(
        lambda s: sm.attribute(x, baselines=NoiseFill(), seed=s, **kw), other_seed=1
    )


def test_presets_table_and_signature():
    params = inspect.signature(SimpleMasking.attribute).parameters
    defaults = {k: v.default for k, v in params.items()}
    assert defaults["preset"] == "paper" and defaults["baselines"] is None
    # the overridable keywords default to None and take the preset's values
    assert all(defaults[k] is None for k in PRESETS["paper"])
    paper = PRESETS["paper"]
    assert paper["n_fill_samples"] == 10 and paper["steps"] == 2000
    assert paper["lr"] == 0.05 and paper["downsample"] == 4
    assert paper["l1"] == 2e-5 and paper["tv"] == 0.01
    assert paper["objective"] == "reference" and paper["lr_schedule"] == "constant"
    assert paper["area_weight"] == 0.0
    assert set(PRESETS) == {"paper", "fast", "area", "sharp"}
    sharp = dict(paper, n_fill_samples=5, steps=20, lr=0.1, downsample=1)
    assert PRESETS["sharp"] == dict(sharp, area=0.01, area_weight=10.0)
    assert all(set(recipe) == set(paper) for recipe in PRESETS.values())
    assert params["preset"].kind is inspect.Parameter.KEYWORD_ONLY


# Masks computed by the code before presets existed (commit 68685db, float64): the paper
# preset must reproduce them bit for bit.
PINNED_DATASET_FILL = [
    "0x1.75b9a5cb2beadp-1",
    "0x1.78f24e0908b18p-1",
    "0x1.7a770481ccc2cp-1",
    "0x1.78c2756494850p-1",
    "0x1.7a59c3cf2aae2p-1",
    "0x1.8136ea980249dp-1",
    "0x1.8541b931dabc9p-1",
    "0x1.7e8a92a74e86bp-1",
    "0x1.7be57fecce83ep-1",
    "0x1.849aa22581481p-1",
    "0x1.84fa0f3758c7fp-1",
    "0x1.83bdb46aa3e02p-1",
    "0x1.78f9697fb00c2p-1",
    "0x1.7a7fd6492dfd2p-1",
    "0x1.795521defd693p-1",
    "0x1.7a531f6c9682cp-1",
    "0x1.7c0b583d56856p-1",
    "0x1.7f8ac00d47acep-1",
    "0x1.80bf32a5a7633p-1",
    "0x1.7f3872e124d4cp-1",
    "0x1.7fbd35bb1e092p-1",
    "0x1.84ab2ad459f16p-1",
    "0x1.8b70feb2d133bp-1",
    "0x1.845d4890a7f44p-1",
    "0x1.80af671fc3973p-1",
    "0x1.8adf8f5bbf323p-1",
    "0x1.8d40a2ba61af8p-1",
    "0x1.8abe60724d941p-1",
    "0x1.7e6eef669b748p-1",
    "0x1.839f2c1b1ffe4p-1",
    "0x1.8557051913827p-1",
    "0x1.80cf81fbba447p-1",
]
PINNED_CONSTANT_FILL = [
    "0x1.6ea02bb195e8fp-1",
    "0x1.719a8dcd80089p-1",
    "0x1.706b99fec60bdp-1",
    "0x1.719a8dcd80089p-1",
    "0x1.801ad62c891a6p-1",
    "0x1.7b766d6af04cap-1",
    "0x1.706b99fec60bdp-1",
    "0x1.7b766d6af04cap-1",
    "0x1.77cf545753df0p-1",
    "0x1.d71709c0bc722p-3",
    "0x1.d826007f2b013p-3",
    "0x1.d7b8d879447c5p-3",
    "0x1.d826007f2b013p-3",
    "0x1.df4ac2d700ceep-3",
    "0x1.dcf81e5e865b0p-3",
    "0x1.d7b8d879447c5p-3",
    "0x1.dcf81e5e865afp-3",
    "0x1.db3b74efeac68p-3",
]


def test_paper_preset_is_the_previous_recipe_bit_for_bit():
    x = patch_inputs().double()
    pool = torch.randn(
        7, 1, 12, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    model = PatchModel().double().eval()
    m = SimpleMasking(model).attribute(
        x, [0, 1], baselines=DatasetFill(pool), n_fill_samples=3, steps=30, downsample=2, seed=0
    )
    assert [v.hex() for v in m[:, 0, ::3, ::3].flatten().tolist()] == PINNED_DATASET_FILL
    m2 = SimpleMasking(model).attribute(
        x, [0, 2], baselines=0.0, steps=25, downsample=3, objective="log_prob"
    )
    assert [v.hex() for v in m2[:, 0, ::4, ::4].flatten().tolist()] == PINNED_CONSTANT_FILL


@pytest.mark.parametrize("preset", ["paper", "fast", "area", "sharp"])
def test_preset_equals_its_values_given_explicitly(preset):
    x, pool = (
        _x(n=4),
        DatasetFill(torch.randn(9, 2, 6, 5, generator=torch.Generator().manual_seed(2))),
    )
    sm = SimpleMasking(bn_dropout_cnn())
    values = dict(PRESETS[preset], steps=min(PRESETS[preset]["steps"], 12))
    a = sm.attribute(x, [0, 1, 2, 0], baselines=pool, seed=1, preset=preset, steps=values["steps"])
    other = "fast" if preset != "fast" else "paper"
    b = sm.attribute(x, [0, 1, 2, 0], baselines=pool, seed=1, preset=other, **values)
    assert torch.equal(a, b)


def test_explicit_keywords_override_the_preset():
    x = _x(n=2)
    sm = SimpleMasking(bn_dropout_cnn())
    kw = {"baselines": NoiseFill(), "seed": 0}
    fast = PRESETS["fast"]
    # one override at a time: only that keyword changes
    for key, value in (("steps", 3), ("n_fill_samples", 2), ("lr", 0.3), ("tv", 0.0)):
        a = sm.attribute(x, 1, preset="fast", **{key: value}, **kw)
        b = sm.attribute(x, 1, **dict(fast, **{key: value}), **kw)
        assert torch.equal(a, b), key
    # a value equal to the paper's still overrides the fast preset
    a = sm.attribute(x, 1, preset="fast", steps=5, lr=0.05, lr_schedule="constant", **kw)
    b = sm.attribute(x, 1, **dict(fast, steps=5, lr=0.05, lr_schedule="constant"), **kw)
    assert torch.equal(a, b)


@pytest.mark.parametrize("preset", ["Paper", "slow", "", 3, None, ("fast",)])
def test_bad_preset_names_preset(preset):
    with pytest.raises(ValueError, match="preset"):
        SimpleMasking(bn_dropout_cnn()).attribute(_x(n=1), 0, preset=preset, steps=2)


def test_lr_schedules():
    assert [lr_at("constant", 0.2, t, 4) for t in range(4)] == [0.2] * 4
    torch.testing.assert_close(
        torch.tensor([lr_at("cosine", 0.2, t, 4) for t in range(4)]),
        0.1 * (1 + torch.cos(torch.pi * torch.arange(4) / 4)),
    )
    torch.testing.assert_close(
        torch.tensor([lr_at("linear", 0.2, t, 4) for t in range(4)]),
        torch.tensor([0.2, 0.15, 0.1, 0.05]),
    )
    # one step: every schedule starts at the peak, so the masks agree
    x, sm = _x(n=2), SimpleMasking(bn_dropout_cnn())
    one = [sm.attribute(x, 1, steps=1, lr_schedule=s) for s in LR_SCHEDULES]
    assert all(torch.equal(one[0], m) for m in one[1:])
    # more steps: a decaying schedule moves the logits less
    const = sm.attribute(x, 1, steps=6, lr=0.5)
    cos = sm.attribute(x, 1, steps=6, lr=0.5, lr_schedule="cosine")
    assert (cos - 0.5).abs().sum() < (const - 0.5).abs().sum()


def test_area_constraint_sets_the_mask_area():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(144, 3)).eval()
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    kw = {"baselines": 0.0, "steps": 300, "lr": 0.1, "downsample": 1, "tv": 0.0}
    kw["objective"] = "log_prob"
    free = SimpleMasking(model).attribute(x, [0, 1], **kw)[:, 0]
    free_kept = (free > 0.5).flatten(1).float().mean(dim=1)
    for area in (0.2, 0.5):
        m = SimpleMasking(model).attribute(x, [0, 1], area=area, area_weight=10.0, **kw)[:, 0]
        kept = (m > 0.5).flatten(1).float().mean(dim=1)
        torch.testing.assert_close(kept, torch.full((2,), area), atol=0.02, rtol=0)
    assert bool((free_kept - 0.2).abs().min() > 0.1)  # without the term the area differs


def test_area_constraint_favours_no_position():
    """Positions the objective cannot tell apart stay tied: the area term does not pick
    the ones that a sort happens to put last."""
    m = SimpleMasking(PatchModel().eval()).attribute(
        patch_inputs(),
        [0, 1],
        baselines=0.0,
        steps=50,
        downsample=1,
        tv=0.0,
        area=0.3,
        area_weight=10.0,
    )[:, 0]
    outside = m[:, ~PATCH]
    assert torch.equal(outside.amax(dim=1), outside.amin(dim=1))
    assert bool((m[:, PATCH].amin(dim=1) > outside.amax(dim=1)).all())


def test_docstring_table_lists_the_presets_values():
    doc = SimpleMasking.__doc__
    lines = doc[doc.index("    keyword  ") :].splitlines()
    border = lines[1]
    spans, start = [], None
    for k, ch in enumerate(border + " "):
        if ch == "=" and start is None:
            start = k
        elif ch != "=" and start is not None:
            spans.append((start, k + 1))
            start = None
    header = [lines[0][a:b].strip().strip("`").strip('"') for a, b in spans]
    assert len(header) >= 4 and header[1:] == list(PRESETS)[: len(header) - 1]
    seen = set()
    for line in lines[2:]:
        if line.strip().startswith("==="):
            break
        cells = [line[a:b].strip() for a, b in spans]
        key = cells[0].strip("`")
        seen.add(key)
        for name, cell in zip(header[1:], cells[1:]):
            value = PRESETS[name][key]
            if isinstance(value, str):
                assert cell.strip("`").strip('"') == value, (key, name)
            else:
                assert float(cell.split()[0]) == float(value), (key, name)
    assert seen == set(PRESETS["paper"])


def test_sharp_preset_isolates_the_evidence():
    """The full-resolution mask of the sharp preset ranks the positions the model reads
    (the patch) above all others, and its area term keeps the rest of the mask low."""
    m = SimpleMasking(PatchModel().eval()).attribute(
        patch_inputs(), [0, 1], baselines=0.0, preset="sharp"
    )[:, 0]
    assert bool((m[:, PATCH].amin(dim=1) > m[:, ~PATCH].amax(dim=1)).all())
    assert bool((m[:, ~PATCH] < 0.2).all())  # pulled towards 0 by the 1% area term
    paper_start = SimpleMasking(PatchModel().eval()).attribute(
        patch_inputs(), [0, 1], baselines=0.0, steps=20
    )[:, 0]
    assert bool((paper_start[:, ~PATCH] > 0.5).all())  # without the term: covers it all
