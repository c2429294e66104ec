"""SimpleMasking follows Captum's conventions (issue 11): tuple inputs of any rank >= 2,
feature masks, baselines, TargetType, output heads, NoiseTunnel, Captum's metrics and the
seed rules, on Captum's own test models (tiny steps)."""

import unittest

import pytest
import torch
from captum.attr import NoiseTunnel
from captum.metrics import infidelity, sensitivity_max
from captum.testing.helpers.basic import assertTensorAlmostEqual
from captum.testing.helpers.basic_models import (
    BasicModel_ConvNet_MaxPool1d,
    BasicModel_ConvNet_MaxPool3d,
    BasicModel_ConvNet_One_Conv,
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)
from helpers import CountingModel, assert_global_rng_untouched, seeded_randn
from torch import nn

from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import ConstantFill, DatasetFill, NoiseFill

_TC = unittest.TestCase()


def _almost(actual, expected, delta=1e-6):
    assertTensorAlmostEqual(_TC, actual, expected, delta=delta, mode="max")


def _linear(features=4, classes=3, seed=0, bias=True):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Linear(features, classes, bias=bias).eval()


def _tab(n=3, f=3, seed=1):
    return seeded_randn(n, f, seed=seed)


def _img(n=3, seed=2):
    return seeded_randn(n, 1, 4, 4, seed=seed) * 10


def _rowwise(linear, x):
    """``linear(x)`` row by row (elementwise products and a reduction per row), so that
    the outputs of an example do not depend on the batch it is in."""
    return (x.unsqueeze(1) * linear.weight).sum(dim=-1) + linear.bias


class _ImageAndTable(nn.Module):
    """Two inputs: an image (N, 1, 4, 4) and a table (N, 3); 3 labels. Batch-invariant."""

    def __init__(self):
        super().__init__()
        self.img, self.tab = _linear(16, 3, seed=3), _linear(3, 3, seed=4)
        self.eval()

    def forward(self, img, tab):
        return _rowwise(self.img, img.flatten(1)) + _rowwise(self.tab, tab)


STEPS = {"steps": 3}
RANDOM = {"baselines": NoiseFill(), "n_fill_samples": 2, "seed": 0, **STEPS}


# ---- inputs: containers and ranks ----------------------------------------------------


@pytest.mark.parametrize("kw", [STEPS, RANDOM], ids=["constant", "noise"])
def test_one_tuple_equals_tensor_bit_for_bit(kw):
    sm, x = SimpleMasking(BasicModel_MultiLayer().eval()), _tab()
    plain = sm.attribute(x, 1, **kw)
    boxed = sm.attribute((x,), 1, **kw)
    assert isinstance(plain, torch.Tensor) and isinstance(boxed, tuple) and len(boxed) == 1
    assert torch.equal(boxed[0], plain)


def test_two_tuple_inputs_one_forward_per_step():
    net, calls = _ImageAndTable(), []
    img, tab = _img(), _tab()

    def run(a, b):
        calls.append((a.shape[0], b.shape[0]))
        return net(a, b)

    out = SimpleMasking(run).attribute((img, tab), [0, 1, 2], steps=4, downsample=2)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == img.shape and out[1].shape == tab.shape
    assert calls == [(3, 3)] * 5  # the clean pass, then one pass over both per step
    for m in out:
        assert bool((m >= 0).all() and (m <= 1).all())
    # the 2x2 logit grid of the image is upsampled; the table has one value per feature
    assert len(out[0][0].unique()) > 4 and len(out[1][0].unique()) == 3


def test_captum_multi_input_model_and_additional_forward_args():
    model = BasicModel_MultiLayer_MultiInput().eval()
    xs = (_tab(seed=1), _tab(seed=2), _tab(seed=3))
    out = SimpleMasking(model).attribute(xs, [0, 1, 0], (2,), **RANDOM)
    assert [m.shape for m in out] == [x.shape for x in xs]
    assert not torch.equal(out[0], out[1])  # one mask per input tensor
    chunked = SimpleMasking(model).attribute(
        xs, [0, 1, 0], (2,), max_examples_per_batch=2, **RANDOM
    )
    assert all(torch.equal(a, b) for a, b in zip(chunked, out))


def test_two_image_inputs_of_a_captum_model():
    model = BasicModel_ConvNet_One_Conv().eval()
    x1, x2 = _img(seed=1), _img(seed=2)
    out = SimpleMasking(model).attribute((x1, x2), 0, **STEPS)
    assert isinstance(out, tuple) and out[0].shape == x1.shape and out[1].shape == x2.shape


def _seq_model():  # (N, 1, 12) -> 10 probabilities
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return BasicModel_ConvNet_MaxPool1d().eval()


def _volume_model():  # (N, 1, 10, 10, 10) -> 10 probabilities
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return BasicModel_ConvNet_MaxPool3d().eval()


@pytest.mark.parametrize(
    ("model", "shape", "head"),
    [
        (lambda: BasicModel_MultiLayer().eval(), (2, 3), "softmax"),
        (_seq_model, (2, 1, 12), "probabilities"),
        (lambda: BasicModel_ConvNet_One_Conv().eval(), (2, 1, 4, 4), "softmax"),
        (_volume_model, (2, 1, 10, 10, 10), "probabilities"),
    ],
    ids=["tabular", "sequence", "image", "volume"],
)
def test_every_rank(model, shape, head):
    x = seeded_randn(*shape, seed=5)
    out = SimpleMasking(model()).attribute(x, 1, head=head, downsample=3, **RANDOM)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool((out >= 0).all() and (out <= 1).all())
    if len(shape) > 2:  # one mask over the positions, shared by the channels
        assert torch.equal(out, out[:, :1].expand_as(out))


def test_tabular_masks_have_no_upsampling_and_no_tv():
    sm, x = SimpleMasking(_linear(5, 3)), _tab(f=5)
    ref = sm.attribute(x, 2, **RANDOM)
    assert torch.equal(sm.attribute(x, 2, tv=10.0, downsample=3, **RANDOM), ref)
    assert not torch.equal(sm.attribute(x, 2, l1=1.0, **RANDOM), ref)  # l1 acts


def test_batch_of_one():
    for model, x in (
        (BasicModel_MultiLayer().eval(), _tab(n=1)),
        (_ImageAndTable(), (_img(1), _tab(1))),
    ):
        for target in (None, 1, [1], torch.tensor([1])):
            out = SimpleMasking(model).attribute(x, target, **RANDOM)
            shapes = [m.shape for m in (out if isinstance(out, tuple) else (out,))]
            assert shapes == [t.shape for t in (x if isinstance(x, tuple) else (x,))]


def test_bfloat16_tuple():
    model = _ImageAndTable().to(torch.bfloat16)
    img, tab = _img().to(torch.bfloat16), _tab().to(torch.bfloat16)
    out = SimpleMasking(model).attribute((img, tab), 0, **RANDOM)
    assert [m.dtype for m in out] == [torch.bfloat16, torch.bfloat16]
    assert all(bool(torch.isfinite(m.float()).all()) for m in out)


def test_area_constraint_over_all_positions_of_all_inputs():
    """Target area 2 of 8 positions: both go to the input the model reads (a constraint
    per input would keep one position of each)."""
    w = torch.tensor([[3.0, 2.0, -1.0, 0.5], [-3.0, -2.0, 1.0, -0.5], [0.0, 0.0, 0.0, 0.0]])

    def forward(a, b):  # b is ignored
        return (a.unsqueeze(1) * w).sum(dim=-1) + 0 * b.sum(dim=-1, keepdim=True)

    a, b = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 1.0, -1.0, 1.0]]), seeded_randn(2, 4, seed=3)
    kw = {"steps": 300, "lr": 0.1, "tv": 0.0, "objective": "log_prob"}
    free = SimpleMasking(forward).attribute((a, b), [0, 0], **kw)
    kept = SimpleMasking(forward).attribute((a, b), [0, 0], area=0.25, area_weight=10.0, **kw)
    assert (free[0] > 0.5).sum(dim=1).tolist() == [3, 4]
    assert (kept[0] > 0.5).sum(dim=1).tolist() == [2, 2]
    assert (kept[1] > 0.5).sum(dim=1).tolist() == [0, 0]


# ---- feature_mask ---------------------------------------------------------------------


def _constant_within_groups(values, groups):
    values, groups = values.flatten(), groups.expand_as(values).flatten()
    return all(len(values[groups == g].unique()) == 1 for g in groups.unique())


def test_feature_mask_one_value_per_group():
    model, x = _linear(16, 3), _img()
    quadrants = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    mask = quadrants.view(1, 1, 4, 4)
    sm = SimpleMasking(lambda t: model(t.flatten(1)))
    out = sm.attribute(x, [0, 1, 2], feature_mask=mask, **RANDOM)
    assert out.shape == x.shape
    for i in range(3):
        assert _constant_within_groups(out[i], mask[0])
        assert len(out[i].unique()) == 4
    # one logit per group: no upsampling, no TV
    assert torch.equal(sm.attribute(x, [0, 1, 2], feature_mask=mask, tv=5.0, **RANDOM), out)


def test_per_example_feature_masks_and_chunking():
    model, x = _linear(16, 3), _img()
    sm = SimpleMasking(lambda t: model(t.flatten(1)))
    rows = torch.arange(4).view(1, 1, 4, 1).expand(1, 1, 4, 4)
    cols = rows.transpose(2, 3)
    halves = (torch.arange(16) // 8).view(1, 1, 4, 4)  # groups 0, 1 only
    mask = torch.cat([rows, cols, halves])
    out = sm.attribute(x, 1, feature_mask=mask, **RANDOM)
    for i in range(3):
        assert _constant_within_groups(out[i], mask[i])
    assert len(out[2].unique()) == 2
    chunked = sm.attribute(x, 1, feature_mask=mask, max_examples_per_batch=2, **RANDOM)
    assert torch.equal(chunked, out)
    with pytest.raises(ValueError, match="area_weight"):
        sm.attribute(x, 1, feature_mask=mask, area_weight=1.0, **RANDOM)


def test_tuple_feature_masks_share_groups_across_inputs():
    img, tab = _img(), _tab()
    img_groups = torch.tensor([0, 1]).repeat_interleave(8).view(1, 1, 4, 4)
    tab_groups = torch.tensor([[1, 2, 2]])  # group 1 spans both inputs
    out = SimpleMasking(_ImageAndTable()).attribute(
        (img, tab), [0, 1, 2], feature_mask=(img_groups, tab_groups), **RANDOM
    )
    assert out[0].shape == img.shape and out[1].shape == tab.shape
    for i in range(3):
        assert _constant_within_groups(out[0][i], img_groups[0])
        assert torch.equal(out[0][i, 0, 3, 3].view(1), out[1][i, :1])  # group 1
        assert out[1][i, 1] == out[1][i, 2]


# ---- baselines ------------------------------------------------------------------------


def test_baselines_forms_agree():
    sm, x = SimpleMasking(_ImageAndTable().img), _img().flatten(1)
    ref = sm.attribute(x, 1, baselines=0.5, **STEPS)
    forms = [
        torch.tensor(0.5),
        torch.full((16,), 0.5),  # broadcastable to one example
        torch.full((1, 16), 0.5),  # one row for all
        torch.full((3, 16), 0.5),  # per example
        (0.5,),
        ConstantFill(0.5),
    ]
    for baselines in forms:
        assert torch.equal(sm.attribute(x, 1, baselines=baselines, **STEPS), ref)
    assert not torch.equal(sm.attribute(x, 1, **STEPS), ref)  # None is 0


def test_per_example_baselines_follow_the_examples_with_chunking():
    model, img, tab = _ImageAndTable(), _img(), _tab()
    base_img, base_tab = seeded_randn(3, 1, 4, 4, seed=7), seeded_randn(3, 3, seed=8)
    sm = SimpleMasking(model)
    kw = {"baselines": (base_img, base_tab), "steps": 4, "downsample": 2}
    out = sm.attribute((img, tab), [0, 1, 2], **kw)
    for rows in (1, 2):
        chunked = sm.attribute((img, tab), [0, 1, 2], max_examples_per_batch=rows, **kw)
        assert all(torch.equal(a, b) for a, b in zip(chunked, out))
    kw1 = dict(kw, baselines=(base_img[1:2], base_tab[1:2]))
    one = sm.attribute((img[1:2], tab[1:2]), 1, **kw1)
    # alone, its loss is scaled by 1 instead of 1/3: Adam's eps makes a rounding difference
    _almost(one[0][0], out[0][1], delta=1e-5)
    _almost(one[1][0], out[1][1], delta=1e-5)
    swapped = sm.attribute((img, tab), [0, 1, 2], **dict(kw, baselines=(base_img.flip(0), 0.0)))
    assert not torch.equal(swapped[0], out[0]) and not torch.equal(swapped[1], out[1])
    # the random DatasetFill for the image, a per-example constant for the table
    pool = DatasetFill(seeded_randn(5, 1, 4, 4, seed=9))
    mixed = {"baselines": (pool, base_tab), "n_fill_samples": 2, "seed": 0, "steps": 3}
    a = sm.attribute((img, tab), [0, 1, 2], **mixed)
    b = sm.attribute((img, tab), [0, 1, 2], max_examples_per_batch=2, **mixed)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_fill_is_a_deprecated_alias_of_baselines():
    sm, x = SimpleMasking(BasicModel_MultiLayer().eval()), _tab()
    with pytest.warns(DeprecationWarning, match="baselines"):
        old = sm.attribute(x, 1, fill=NoiseFill(), n_fill_samples=2, seed=0, **STEPS)
    assert torch.equal(old, sm.attribute(x, 1, **RANDOM))
    with pytest.raises(TypeError, match="fill"):
        sm.attribute(x, 1, baselines=0.0, fill=0.0, **STEPS)


# ---- targets --------------------------------------------------------------------------


def test_target_forms():
    sm, x = SimpleMasking(_linear(3, 4)), _tab()
    ref = sm.attribute(x, [2, 2, 2], **RANDOM)
    for target in (2, -2, (2,), torch.tensor(2), torch.tensor([2]), torch.tensor([2, 2, 2])):
        assert torch.equal(sm.attribute(x, target, **RANDOM), ref), target
    assert torch.equal(sm.attribute(x, [(2,), (2,), (2,)], **RANDOM), ref)
    predicted = _linear(3, 4)(x).argmax(dim=1)
    assert torch.equal(sm.attribute(x, None, **RANDOM), sm.attribute(x, predicted, **RANDOM))


def test_tuple_targets_on_a_three_dimensional_output():
    base = BasicModel_MultiLayer().eval()

    def forward(t):  # (N, 2, 2): a softmax over the last dimension
        return base(t, None, True)[..., 0] * torch.tensor([1.0, -0.5])

    x = _tab()
    sm = SimpleMasking(forward)
    out = sm.attribute(x, [(0, 1), (1, 0), (1, 1)], **RANDOM)
    for i, (a, b) in enumerate([(0, 1), (1, 0), (1, 1)]):
        # the same as the 2-D model of row a with label b
        row = SimpleMasking(lambda t, a=a: forward(t)[:, a]).attribute(x, b, **RANDOM)
        _almost(out[i], row[i])
        _almost(sm.attribute(x, (a, b), **RANDOM)[i], out[i])
    with pytest.raises(ValueError, match="target"):
        sm.attribute(x, None, **STEPS)  # None needs (N, C) outputs
    with pytest.raises(ValueError, match="target"):
        sm.attribute(x, [0, 1, 1], **STEPS)  # per-example labels on a 3-D output
    with pytest.raises(ValueError, match="target"):
        sm.attribute(x, (1, 0, 0), **STEPS)


@pytest.mark.parametrize(
    ("target", "err", "calls"),
    [
        ((1, 0), ValueError, 1),  # one index into a 3-D output, never per-example labels
        ([0, 1], ValueError, 0),
        (torch.tensor([0, 1]), ValueError, 0),
        ([0, 1, 2, 0], ValueError, 0),
        (torch.tensor([0.0, 1.0, 2.0]), TypeError, 0),
        (torch.tensor(1.0), TypeError, 0),
        (1.0, TypeError, 0),
        ([(0, 1), 1, 0], TypeError, 0),
    ],
)
def test_bad_targets_raise_as_in_captum(target, err, calls):
    model = CountingModel(net=_linear(3, 3))
    with pytest.raises(err, match="target"):
        SimpleMasking(model).attribute(_tab(), target, **STEPS)
    assert model.calls == calls  # never an optimisation on a misread target


# ---- heads ----------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["reference", "log_prob"])
def test_sigmoid_mask_of_a_label_ignores_the_other_heads(objective):
    x = _tab(f=4)
    a, b = _linear(4, 3, seed=0), _linear(4, 3, seed=1)
    with torch.no_grad():
        b.weight[0], b.bias[0] = a.weight[0], a.bias[0]  # label 0 identical
    kw = {"objective": objective, **RANDOM}
    ma = SimpleMasking(a).attribute(x, 0, head="sigmoid", **kw)
    mb = SimpleMasking(b).attribute(x, 0, head="sigmoid", **kw)
    _almost(ma, mb)
    soft_a = SimpleMasking(a).attribute(x, 0, **kw)
    assert not torch.allclose(soft_a, SimpleMasking(b).attribute(x, 0, **kw), atol=1e-4)


def test_binary_single_logit_model():
    model, x = _linear(4, 1), _tab(n=4, f=4)
    sm = SimpleMasking(model)
    one = sm.attribute(x, 1, head="binary", **RANDOM)
    flat = SimpleMasking(lambda t: model(t)[:, 0]).attribute(x, 1, head="binary", **RANDOM)
    assert torch.equal(one, flat)  # (N,) and (N, 1) logits
    assert not torch.equal(sm.attribute(x, 0, head="binary", **RANDOM), one)
    predicted = (model(x)[:, 0] > 0).long()
    assert 0 < int(predicted.sum()) < 4
    assert torch.equal(
        sm.attribute(x, None, head="binary", **RANDOM),
        sm.attribute(x, predicted, head="binary", **RANDOM),
    )
    with pytest.raises(ValueError, match="one class"):
        sm.attribute(x, 0, **STEPS)  # a softmax over one logit
    with pytest.raises(ValueError, match="binary"):
        SimpleMasking(_linear(4, 2)).attribute(x, 0, head="binary", **STEPS)
    with pytest.raises(ValueError, match="target"):
        sm.attribute(x, 2, head="binary", **STEPS)


def test_probabilities_head_and_the_softmax_warning():
    model, x = _seq_model(), seeded_randn(2, 1, 12, seed=3)
    kw = {"objective": "log_prob", "downsample": 2, **RANDOM}
    probs = SimpleMasking(model).attribute(x, [1, 4], head="probabilities", **kw)
    logits = SimpleMasking(lambda t: model(t).log()).attribute(x, [1, 4], **kw)
    _almost(probs, logits, delta=1e-5)  # softmax(log p) = p
    with pytest.warns(UserWarning, match="probabilities"):
        SimpleMasking(model).attribute(x, 1, **STEPS)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        SimpleMasking(lambda t: model(t).log()).attribute(x, 1, head="probabilities", **STEPS)


def test_heads_named_in_errors():
    with pytest.raises(ValueError, match="head"):
        SimpleMasking(BasicModel_MultiLayer().eval()).attribute(_tab(), 0, head="logits", **STEPS)


# ---- Captum's wrappers and metrics ----------------------------------------------------


def test_noise_tunnel():
    model, x = BasicModel_ConvNet_One_Conv().eval(), _img()
    nt = NoiseTunnel(SimpleMasking(model))
    out = nt.attribute(x, nt_type="smoothgrad", nt_samples=2, target=[0, 1, 2], steps=2)
    assert out.shape == x.shape and bool((out >= 0).all() and (out <= 1).all())
    groups = torch.arange(4).repeat_interleave(4).view(1, 1, 4, 4).expand(3, 1, 4, 4)
    out = nt.attribute(
        (x,),
        nt_type="smoothgrad_sq",
        nt_samples=2,
        target=torch.tensor([0, 1, 2]),
        baselines=x * 0,
        feature_mask=groups.contiguous(),
        steps=2,
    )
    assert isinstance(out, tuple) and out[0].shape == x.shape
    mm = BasicModel_MultiLayer_MultiInput().eval()
    xs = (_tab(seed=1), _tab(seed=2), _tab(seed=3))
    out = NoiseTunnel(SimpleMasking(mm)).attribute(
        xs, nt_samples=2, target=1, additional_forward_args=(2,), steps=2
    )
    assert [m.shape for m in out] == [t.shape for t in xs]


def test_default_baselines_reach_the_fill_through_captums_wrappers():
    """Captum's wrappers take only tensors and numbers as `baselines`; a Fill given to the
    constructor is used when a call gives none, so the paper's fill works under them."""
    model, x = BasicModel_ConvNet_One_Conv().eval(), _img()
    pool = DatasetFill(seeded_randn(5, *x.shape[1:], seed=7))
    masking = SimpleMasking(model, baselines=pool)
    direct = SimpleMasking(model).attribute(x, [0, 1, 2], baselines=pool, seed=0, **STEPS)
    assert torch.equal(masking.attribute(x, [0, 1, 2], seed=0, **STEPS), direct)
    # an explicit call-level value still wins over the default
    zero = SimpleMasking(model).attribute(x, [0, 1, 2], baselines=0.0, seed=0, **STEPS)
    assert torch.equal(masking.attribute(x, [0, 1, 2], baselines=0.0, seed=0, **STEPS), zero)
    nt = NoiseTunnel(masking).attribute(
        x, nt_type="smoothgrad", nt_samples=2, stdevs=0.0, target=[0, 1, 2], seed=0, **STEPS
    )
    assert nt.shape == x.shape
    sens = sensitivity_max(masking.attribute, x, target=0, n_perturb_samples=2, seed=0, **STEPS)
    assert sens.shape == (3,) and bool(torch.isfinite(sens).all())
    with pytest.raises(TypeError, match="baselines"):
        SimpleMasking(model, baselines="pool")


def test_captum_metrics_take_attribute():
    model, x = _ImageAndTable(), (_img(), _tab())
    sm = SimpleMasking(model)
    # Captum expands `baselines` itself and takes tensors and numbers only there
    kw = {"n_fill_samples": 2, "seed": 0, **STEPS}
    sens = sensitivity_max(sm.attribute, x, target=1, n_perturb_samples=2, **kw)
    assert sens.shape == (3,) and bool(torch.isfinite(sens).all())
    attributions = sm.attribute(x, 1, **RANDOM)

    def perturb(inputs):
        img, tab = inputs
        noise = (torch.randn_like(img) * 0.1, torch.randn_like(tab) * 0.1)
        return noise, (img - noise[0], tab - noise[1])

    infid = infidelity(model, perturb, x, attributions, target=1, n_perturb_samples=2)
    assert infid.shape == (3,) and bool(torch.isfinite(infid).all())


# ---- seeds ----------------------------------------------------------------------------


def test_seed_none_draws_once_from_the_global_rng():
    sm, x = SimpleMasking(BasicModel_MultiLayer().eval()), _tab()
    kw = {"baselines": NoiseFill(), "n_fill_samples": 2, **STEPS}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a = sm.attribute(x, 1, **kw)
        after = torch.get_rng_state()
        torch.manual_seed(0)
        b = sm.attribute(x, 1, **kw)
        torch.manual_seed(0)
        torch.empty((), dtype=torch.int64).random_()  # DataLoader's one draw
        expected = torch.get_rng_state()
        c = sm.attribute(x, 1, **kw)  # a fresh seed
        torch.manual_seed(0)
        sm.attribute(x, 1, **STEPS)  # deterministic baselines draw it too
        deterministic_after = torch.get_rng_state()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(after, expected) and torch.equal(deterministic_after, expected)


def test_explicit_seeds_leave_the_global_rng_alone():
    sm, x = SimpleMasking(BasicModel_MultiLayer().eval()), _tab()
    kw = {"baselines": NoiseFill(), "n_fill_samples": 2, **STEPS}
    a = assert_global_rng_untouched(lambda: sm.attribute(x, 1, seed=3, **kw))
    g = torch.Generator().manual_seed(3)
    b = assert_global_rng_untouched(lambda: sm.attribute(x, 1, seed=g, **kw))
    assert torch.equal(a, b)
